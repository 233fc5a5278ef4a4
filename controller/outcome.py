"""What one reconciliation concluded, before it is turned into status, Events, metrics and a requeue."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from controller.conditions import Condition
from passops.resource import Phase


class Result(StrEnum):
    """The `result` label of passops_reconcile_total."""

    READY = "ready"
    RETRY = "retry"  # a transient error or a user the app has not created yet: backoff
    STALLED = "stalled"  # a person must act (unknown price), or retrying for too long
    FAILED = "failed"  # terminal: the async payment failed
    PAUSED = "paused"
    WAITING = "waiting"  # waiting for Stripe (an async payment): nothing to retry


class Requeue(StrEnum):
    NONE = "none"
    BACKOFF = "backoff"  # exponential with jitter, from the attempt count
    SLOW = "slow"  # a slow re-check of something only a person can fix


@dataclass(frozen=True)
class ErrorInfo:
    reason: str
    message: str


@dataclass(frozen=True)
class Outcome:
    phase: Phase
    result: Result
    conditions: tuple[Condition, ...]
    requeue: Requeue = Requeue.NONE
    error: ErrorInfo | None = None
    user_id: int | None = None
    subscription_id: int | None = None
    pass_id: str | None = None  # the pass granted (shown in `kubectl get pp`'s PASS column)
    retry_after: float | None = None  # a dependency's own "not before" (HTTP Retry-After)

    @property
    def counts_as_attempt(self) -> bool:
        """Whether this visit adds to status.attempts (it failed and will be retried)."""
        return self.requeue is not Requeue.NONE
