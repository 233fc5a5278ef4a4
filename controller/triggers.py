"""When a PassPurchase needs a visit, judged from the object alone (as each watch event brings it).

The controller's own status writes come back as watch events too; they must not cause visits, or
every reconcile would trigger the next one.
"""

from __future__ import annotations

from datetime import datetime

from controller.purchase import PurchaseView
from passops.resource import Phase


def visit_in(
    purchase: PurchaseView,
    now: datetime,
    *,
    retention: float,
    sync_period: float = 0.0,
    first_sight: bool = False,
) -> float | None:
    """Seconds until the purchase should be reconciled, or None if nothing is to be done.

    ``first_sight``: the controller has just started (or just learnt of the object): a Ready
    purchase is checked against the database at once, as controller-runtime reconciles everything
    on start; retries keep the times they were scheduled for, so a restart is no retry storm.
    """
    if purchase.paused != (purchase.phase == Phase.PAUSED):
        return 0.0
    if purchase.paused:  # a resync asked for meanwhile waits until the pause is lifted
        return None
    if purchase.resync_pending:
        return 0.0
    if not purchase.status or purchase.observed_generation != purchase.generation:
        return 0.0
    if purchase.phase == Phase.READY:
        if first_sight and sync_period > 0:
            return 0.0
        candidates: list[float] = []
        if retention > 0 and purchase.ready_at is not None:
            candidates.append((purchase.ready_at - now).total_seconds() + retention)
        if sync_period > 0:
            last = purchase.last_attempt_at or purchase.ready_at or now
            candidates.append((last - now).total_seconds() + sync_period)
        return max(0.0, min(candidates)) if candidates else None
    if purchase.phase == Phase.FAILED:
        return None
    next_at = purchase.next_attempt_at
    if next_at is not None:  # also restores retries scheduled before a controller restart
        return max(0.0, (next_at - now).total_seconds())
    return None
