"""What users see through Kubernetes, written once and run on each tier (emulator and real API).

Each scenario sends real signed Stripe deliveries to the gateway and watches the PassPurchase and
the database converge; each asserts what a platform engineer or support person relies on.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

from passops.resource import ANNOTATION_PAUSED, ANNOTATION_RESYNC, LABEL_CUSTOMER, LABEL_PHASE, LABEL_TENANT
from passops.testing import stripe_events as se
from tests.e2e.stack import TENANT, Stack

Scenario = Callable[[Stack], Awaitable[None]]
COMPLETED = "checkout.session.completed"
SUCCEEDED = "checkout.session.async_payment_succeeded"
FAILED = "checkout.session.async_payment_failed"
CONDITION_TYPES = {"Ready", "Reconciling", "Stalled", "PaymentConfirmed", "UserResolved"}


def _user() -> str:
    return f"user-{uuid.uuid4().hex[:10]}"


def _conditions(body: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {c["type"]: c for c in (body.get("status") or {}).get("conditions") or []}


async def _accepted(stack: Stack, event: dict[str, Any]) -> str:
    status, answer = await stack.deliver(event)
    assert status == 200 and answer["outcome"] == "accepted", (status, answer)
    return str(answer["purchase"])


async def _eventually_event(stack: Stack, name: str, reason: str) -> None:
    for _ in range(100):
        if reason in await stack.event_reasons(name):
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"no Event {reason!r} for {name}; saw {await stack.event_reasons(name)}")


async def paid_delivery_becomes_ready_with_one_row(stack: Stack) -> None:
    """A signed checkout.session.completed (paid) -> Ready, every condition set, one row, an Event."""
    session = se.paid_session(client_reference_id=_user(), metadata={"pass_id": "month-pass"})
    name = await _accepted(stack, se.event(COMPLETED, session))

    body = await stack.wait_for_phase(name, "Ready")
    status = body["status"]
    conditions = _conditions(body)
    assert set(conditions) == CONDITION_TYPES
    assert conditions["Ready"]["status"] == "True"
    assert conditions["Stalled"]["status"] == "False"
    assert all(c["observedGeneration"] == body["metadata"]["generation"] for c in conditions.values())
    assert status["observedGeneration"] == body["metadata"]["generation"]
    rows = await stack.rows(session["id"])
    assert len(rows) == 1
    assert rows[0]["pass_id"] == "month-pass" and rows[0]["status"] == "active"
    assert status["subscriptionId"] == rows[0]["id"] and status["userId"] == rows[0]["user_id"]
    assert status["attempts"] == 0 and "readyAt" in status
    labeled = await stack.wait_for(
        name, lambda b: b["metadata"].get("labels", {}).get(LABEL_PHASE) == "Ready"
    )
    assert labeled["metadata"]["labels"][LABEL_TENANT] == TENANT
    assert labeled["metadata"]["labels"][LABEL_CUSTOMER] == session["customer"]
    await _eventually_event(stack, name, "Ready")


async def concurrent_deliveries_make_one_resource_and_one_row(stack: Stack) -> None:
    """20 concurrent deliveries of one purchase, mixed types and duplicates -> all 200, one of each."""
    session = se.async_unpaid_session(client_reference_id=_user(), metadata={"pass_id": "day-pass"})
    completed = se.event(COMPLETED, session)
    succeeded = se.event(SUCCEEDED, dict(session, payment_status="paid"))
    events = [completed, succeeded] * 6 + [se.event(COMPLETED, session) for _ in range(8)]
    answers = await asyncio.gather(*(stack.deliver(e) for e in events))
    assert [status for status, _ in answers] == [200] * 20, answers
    assert {a["outcome"] for _, a in answers} <= {"accepted", "duplicate"}
    names = {a["purchase"] for _, a in answers if "purchase" in a}
    assert len(names) == 1
    name = names.pop()

    body = await stack.wait_for_phase(name, "Ready")
    mine = [p for p in await stack.purchases.list() if p["spec"]["checkoutSessionId"] == session["id"]]
    assert len(mine) == 1
    assert {e["id"] for e in body["spec"]["events"]} == {e["id"] for e in events}
    assert body["spec"]["paymentStatus"] == "paid"
    assert len(await stack.rows(session["id"])) == 1


async def async_payment_waits_then_succeeds(stack: Stack) -> None:
    """unpaid (SEPA) -> AwaitingPayment and no row; async_payment_succeeded -> Ready; a late
    completed (unpaid) delivered afterwards does not move it back."""
    session = se.async_unpaid_session(client_reference_id=_user(), metadata={"price_id": "price_e2e_day"})
    name = await _accepted(stack, se.event(COMPLETED, session))
    body = await stack.wait_for_phase(name, "AwaitingPayment")
    assert _conditions(body)["PaymentConfirmed"]["status"] == "False"
    assert await stack.rows(session["id"]) == []

    await _accepted(stack, se.event(SUCCEEDED, dict(session, payment_status="paid")))
    body = await stack.wait_for_phase(name, "Ready")
    assert body["status"]["passId"] == "day-pass"  # found by price: the PASS column shows the pass
    await _accepted(stack, se.event(COMPLETED, session))  # a late, reordered delivery
    await asyncio.sleep(0.5)
    body = await stack.wait_for_phase(name, "Ready")
    assert body["spec"]["paymentStatus"] == "paid"
    assert len(await stack.rows(session["id"])) == 1


async def failed_async_payment_ends_failed_without_row(stack: Stack) -> None:
    """async_payment_failed -> Failed, Stalled True (PaymentFailed), no row, a Warning Event."""
    session = se.async_unpaid_session(method="us_bank_account", client_reference_id=_user())
    name = await _accepted(stack, se.event(COMPLETED, session))
    await stack.wait_for_phase(name, "AwaitingPayment")
    await _accepted(stack, se.event(FAILED, session))
    body = await stack.wait_for_phase(name, "Failed")
    assert _conditions(body)["Stalled"]["status"] == "True"
    assert _conditions(body)["Stalled"]["reason"] == "PaymentFailed"
    assert await stack.rows(session["id"]) == []
    await _eventually_event(stack, name, "PaymentFailed")


async def resync_restores_a_row_deleted_by_hand(stack: Stack) -> None:
    """A row deleted by hand comes back when support sets passops.dev/resync-requested-at."""
    session = se.paid_session(client_reference_id=_user(), metadata={"pass_id": "day-pass"})
    name = await _accepted(stack, se.event(COMPLETED, session))
    await stack.wait_for_phase(name, "Ready")
    await stack.execute("DELETE FROM subscriptions WHERE checkout_session_id = :id", id=session["id"])

    await stack.purchases.patch(
        name, {"metadata": {"annotations": {ANNOTATION_RESYNC: "2026-12-03T10:00:00Z"}}}
    )
    body = await stack.wait_for(
        name, lambda b: (b.get("status") or {}).get("lastHandledResyncAt") == "2026-12-03T10:00:00Z"
    )
    assert body["status"]["phase"] == "Ready"
    rows = await stack.rows(session["id"])
    assert len(rows) == 1 and body["status"]["subscriptionId"] == rows[0]["id"]
    await _eventually_event(stack, name, "ResyncRequested")


async def pause_stops_writes_until_removed(stack: Stack) -> None:
    """passops.dev/paused "true" -> Paused, an Event, no database write even on resync; removing it
    resumes and handles what was asked meanwhile."""
    session = se.paid_session(client_reference_id=_user(), metadata={"pass_id": "day-pass"})
    name = await _accepted(stack, se.event(COMPLETED, session))
    await stack.wait_for_phase(name, "Ready")

    await stack.purchases.patch(name, {"metadata": {"annotations": {ANNOTATION_PAUSED: "true"}}})
    await stack.wait_for_phase(name, "Paused")
    await _eventually_event(stack, name, "ReconciliationPaused")
    await stack.execute("DELETE FROM subscriptions WHERE checkout_session_id = :id", id=session["id"])
    await stack.purchases.patch(name, {"metadata": {"annotations": {ANNOTATION_RESYNC: "while-paused"}}})
    await asyncio.sleep(1.0)
    assert await stack.rows(session["id"]) == []  # paused: nothing written
    assert (await stack.wait_for_phase(name, "Paused"))["status"].get("lastHandledResyncAt") != "while-paused"

    await stack.purchases.patch(name, {"metadata": {"annotations": {ANNOTATION_PAUSED: None}}})
    body = await stack.wait_for(
        name, lambda b: (b.get("status") or {}).get("lastHandledResyncAt") == "while-paused"
    )
    assert body["status"]["phase"] == "Ready"
    assert len(await stack.rows(session["id"])) == 1
    await _eventually_event(stack, name, "ReconciliationResumed")


async def unknown_price_is_stalled_until_added_and_resynced(stack: Stack) -> None:
    """An unknown price -> Stalled (UnknownPrice), never dropped; catalog add + resync -> Ready."""
    session = se.paid_session(client_reference_id=_user(), metadata={"price_id": "price_e2e_unknown"})
    name = await _accepted(stack, se.event(COMPLETED, session))
    body = await stack.wait_for(name, lambda b: _conditions(b).get("Stalled", {}).get("status") == "True")
    assert _conditions(body)["Stalled"]["reason"] == "UnknownPrice"
    assert "price_e2e_unknown" in body["status"]["lastError"]["message"]
    assert body["status"].get("nextAttemptAt")  # re-checked slowly, never given up
    await _eventually_event(stack, name, "UnknownPrice")

    await stack.ledger.add_catalog_entry(TENANT, "week-pass", "price_e2e_unknown", "Week pass", 7)
    await stack.purchases.patch(name, {"metadata": {"annotations": {ANNOTATION_RESYNC: "catalog-fixed"}}})
    await stack.wait_for_phase(name, "Ready")
    assert (await stack.rows(session["id"]))[0]["pass_id"] == "week-pass"


async def observed_generation_and_labels_follow_spec_changes(stack: Stack) -> None:
    """A spec fixed by hand bumps metadata.generation; status and the selector labels follow it."""
    session = se.paid_session(client_reference_id=_user(), metadata={"pass_id": "day-pass"})
    name = await _accepted(stack, se.event(COMPLETED, session))
    body = await stack.wait_for_phase(name, "Ready")
    generation = body["metadata"]["generation"]
    fixed = {"customer": {"email": "changed@example.com", "stripeCustomerId": "cus_FixedByHand"}}
    await stack.purchases.patch(name, {"spec": fixed})
    body = await stack.wait_for(
        name, lambda b: (b.get("status") or {}).get("observedGeneration") == generation + 1
    )
    assert body["metadata"]["generation"] == generation + 1
    assert all(c["observedGeneration"] == generation + 1 for c in _conditions(body).values())
    body = await stack.wait_for(
        name, lambda b: b["metadata"]["labels"].get(LABEL_CUSTOMER) == "cus_FixedByHand"
    )
    assert body["metadata"]["labels"][LABEL_PHASE] == "Ready"


SCENARIOS: list[Scenario] = [
    paid_delivery_becomes_ready_with_one_row,
    concurrent_deliveries_make_one_resource_and_one_row,
    async_payment_waits_then_succeeds,
    failed_async_payment_ends_failed_without_row,
    resync_restores_a_row_deleted_by_hand,
    pause_stops_writes_until_removed,
    unknown_price_is_stalled_until_added_and_resynced,
    observed_generation_and_labels_follow_spec_changes,
]
