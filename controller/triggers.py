"""When a PassPurchase needs a visit, judged from the object alone (as each watch event brings it).

The controller's own status writes come back as watch events too; they must not cause visits, or
every reconcile would trigger the next one.
"""

from __future__ import annotations

from datetime import datetime

from controller.purchase import PurchaseView
from passops.resource import Phase


def visit_in(purchase: PurchaseView, now: datetime, *, retention: float) -> float | None:
    """Seconds until the purchase should be reconciled, or None if nothing is to be done."""
    if purchase.paused != (purchase.phase == Phase.PAUSED):
        return 0.0
    if purchase.paused:  # a resync asked for meanwhile waits until the pause is lifted
        return None
    if purchase.resync_pending:
        return 0.0
    if not purchase.status or purchase.observed_generation != purchase.generation:
        return 0.0
    if purchase.phase == Phase.READY:
        ready_at = purchase.ready_at
        if retention <= 0 or ready_at is None:
            return None
        return max(0.0, (ready_at - now).total_seconds() + retention)
    if purchase.phase == Phase.FAILED:
        return None
    next_at = purchase.next_attempt_at
    if next_at is not None:  # also restores retries scheduled before a controller restart
        return max(0.0, (next_at - now).total_seconds())
    return None
