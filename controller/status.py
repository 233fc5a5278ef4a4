"""Turn an Outcome into the status to write and the delay until the next visit."""

from __future__ import annotations

import random
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any

from controller import conditions
from controller.backoff import retry_delay
from controller.conditions import READY, RECONCILING, STALLED, Condition
from controller.conditions import Status as S
from controller.outcome import Outcome, Requeue, Result
from controller.purchase import PurchaseView, format_time
from passops.config import Settings


@dataclass(frozen=True)
class Plan:
    status: dict[str, Any]  # a merge patch: None removes a field
    outcome: Outcome  # possibly escalated to Stalled
    requeue_after: float | None


def escalate(outcome: Outcome, purchase: PurchaseView, now: datetime, settings: Settings) -> Outcome:
    """A purchase failing for longer than stalled_after is Stalled, while retries go on at the cap."""
    if outcome.result is not Result.RETRY or outcome.error is None or purchase.resync_pending:
        return outcome
    since = purchase.failing_since
    if since is None or (now - since).total_seconds() < settings.stalled_after:
        return outcome
    minutes = int((now - since).total_seconds() // 60)
    message = f"no success for {minutes} min ({outcome.error.reason}); still retrying with backoff"
    rest = [c for c in outcome.conditions if c.type not in (STALLED, RECONCILING)]
    return replace(
        outcome,
        result=Result.STALLED,
        conditions=(
            *rest,
            Condition(RECONCILING, S.TRUE, outcome.error.reason, "retrying with backoff"),
            Condition(STALLED, S.TRUE, outcome.error.reason, message),
        ),
    )


def plan(
    purchase: PurchaseView,
    outcome: Outcome,
    now: datetime,
    settings: Settings,
    rng: random.Random | None = None,
) -> Plan:
    outcome = escalate(outcome, purchase, now, settings)
    stamp = format_time(now)
    paused = outcome.result is Result.PAUSED
    previous_attempts = 0 if purchase.resync_pending and not paused else purchase.attempts

    status: dict[str, Any] = {
        "phase": outcome.phase.value,
        "observedGeneration": purchase.generation,
        "conditions": conditions.render(
            outcome.conditions,
            now=stamp,
            generation=purchase.generation,
            previous=purchase.status.get("conditions"),
        ),
    }
    if purchase.resync_requested is not None and outcome.result is not Result.PAUSED:
        status["lastHandledResyncAt"] = purchase.resync_requested

    requeue_after: float | None = None
    if paused:
        # Keep the attempt count so that removing the annotation resumes where it was.
        status["attempts"] = previous_attempts
        status["nextAttemptAt"] = None
    else:
        status["lastAttemptAt"] = stamp
        attempts = previous_attempts + 1 if outcome.counts_as_attempt else 0
        status["attempts"] = attempts
        if outcome.requeue is Requeue.BACKOFF:
            # A dependency's Retry-After is honoured, up to the slow re-check: never parked for long.
            asked = min(outcome.retry_after or 0.0, max(settings.backoff.cap, settings.recheck_interval))
            requeue_after = max(retry_delay(attempts, settings.backoff, rng), asked)
        elif outcome.requeue is Requeue.SLOW:
            spread = settings.recheck_interval * settings.backoff.jitter
            requeue_after = settings.recheck_interval + (rng or random).uniform(-spread, spread)
        status["nextAttemptAt"] = (
            format_time(now + timedelta(seconds=requeue_after)) if requeue_after is not None else None
        )
        if outcome.error is None:
            status["lastError"] = None
        else:
            since = purchase.failing_since if previous_attempts else None
            status["lastError"] = {
                "reason": outcome.error.reason,
                "message": outcome.error.message,
                "since": format_time(since or now),
            }

    if outcome.user_id is not None:
        status["userId"] = outcome.user_id
    if outcome.subscription_id is not None:
        status["subscriptionId"] = outcome.subscription_id
    if outcome.pass_id is not None:
        status["passId"] = outcome.pass_id
    if outcome.result is Result.READY:
        status["readyAt"] = purchase.status.get("readyAt") or stamp
        # Ready is re-checked: at the retention deadline, and every sync_period against drift.
        due: list[float] = []
        if settings.retention > 0:
            ready_at = purchase.ready_at or now
            due.append(max(0.0, (ready_at + timedelta(seconds=settings.retention) - now).total_seconds()))
        if settings.sync_period > 0:
            due.append(settings.sync_period)
        requeue_after = min(due) if due else None
    return Plan(status=status, outcome=outcome, requeue_after=requeue_after)


def is_ready(status: dict[str, Any]) -> bool:
    return conditions.is_true(status.get("conditions"), READY)
