"""Kubernetes Events for the transitions a person cares about, not one per retry of a storm."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from controller.conditions import STALLED, by_type
from controller.outcome import Result
from controller.purchase import PurchaseView
from controller.status import Plan
from passops.resource import Phase

NORMAL = "Normal"
WARNING = "Warning"


@dataclass(frozen=True)
class Event:
    type: str
    reason: str
    message: str


def _is_power_of_two(n: int) -> bool:
    return n > 0 and n & (n - 1) == 0


def transition_events(purchase: PurchaseView, plan: Plan) -> list[Event]:
    old: dict[str, Any] = dict(purchase.status)
    new = plan.status
    outcome = plan.outcome
    old_phase, new_phase = old.get("phase"), new.get("phase")
    events: list[Event] = []

    if purchase.resync_pending and outcome.result is not Result.PAUSED:
        events.append(Event(NORMAL, "ResyncRequested", f"resync {purchase.resync_requested!r} handled"))
    if new_phase == Phase.PAUSED and old_phase != Phase.PAUSED:
        events.append(
            Event(NORMAL, "ReconciliationPaused", 'passops.dev/paused is "true": nothing is written')
        )
        return events
    if old_phase == Phase.PAUSED and new_phase != Phase.PAUSED:
        events.append(Event(NORMAL, "ReconciliationResumed", "passops.dev/paused removed"))

    message = outcome.conditions[0].message
    if outcome.result is Result.READY and (old_phase != Phase.READY or purchase.resync_pending):
        events.append(Event(NORMAL, "Ready", message))
    elif outcome.result is Result.WAITING and old_phase != Phase.AWAITING_PAYMENT:
        events.append(Event(NORMAL, "AwaitingPayment", message))
    elif outcome.result is Result.FAILED and old_phase != Phase.FAILED:
        events.append(Event(WARNING, "PaymentFailed", message))
    elif outcome.error is not None:
        old_stalled = by_type(old.get("conditions")).get(STALLED) or {}
        new_stalled = by_type(new.get("conditions")).get(STALLED) or {}
        stalled_now = new_stalled.get("status") == "True"
        stalled_changed = stalled_now and (
            old_stalled.get("status") != "True" or old_stalled.get("reason") != new_stalled.get("reason")
        )
        old_reason = (
            (old.get("lastError") or {}).get("reason") if isinstance(old.get("lastError"), dict) else None
        )
        attempts = int(new.get("attempts") or 0)
        if stalled_changed:
            events.append(Event(WARNING, outcome.error.reason, f"Stalled: {outcome.error.message}"))
        elif stalled_now:
            pass  # already announced; its slow re-checks are not news
        elif outcome.error.reason != old_reason or _is_power_of_two(attempts):
            # The first failure, a new kind of failure, then attempts 2, 4, 8...: a storm stays readable.
            events.append(
                Event(
                    WARNING,
                    outcome.error.reason,
                    f"attempt {attempts} failed: {outcome.error.message}; retrying",
                )
            )
    return events
