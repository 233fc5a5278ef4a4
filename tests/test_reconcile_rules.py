"""The reconciliation rules of the contract, on a real PostgreSQL: no Kubernetes, no mocks.

Each test feeds the reconciler a PassPurchase as the gateway writes it from a realistic Stripe
Checkout Session (tests/purchases.py) and checks what a user relies on: the phase and conditions
in status, the retry plan, and the one subscription row in the database.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from controller.conditions import PAYMENT_CONFIRMED, READY, RECONCILING, STALLED, USER_RESOLVED
from controller.db import Ledger, create_engine
from controller.ledger_adapter import ReconcileLedger
from controller.outcome import Requeue, Result
from controller.purchase import format_time, parse_time
from controller.reconcile import Reconciler
from passops.config import Backoff, Settings, UserPolicy
from passops.resource import Phase
from passops.testing import stripe_events as se
from tests.purchases import (
    DEFAULT_TENANT,
    Body,
    Visit,
    annotate,
    apply_status,
    deliver,
    purchase_body,
    visit,
)
from webhook_gateway.checkout import ASYNC_PAYMENT_FAILED, ASYNC_PAYMENT_SUCCEEDED, CHECKOUT_COMPLETED

NOW = datetime(2026, 12, 3, 12, 5, 0, tzinfo=UTC)
PURCHASED = 1_796_300_000  # the session's `created` (unix seconds)
GOLD_PASS, GOLD_PRICE, GOLD_DAYS = "gold-30", "price_1GoldMonthly", 30
SETTINGS = Settings(backoff=Backoff(base=1, cap=8, jitter=0), recheck_interval=600.0)


def _closed_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def _scalar(engine: AsyncEngine, sql: str, **params: Any) -> Any:
    async with engine.begin() as connection:
        return (await connection.execute(text(sql), params)).scalar()


async def _execute(engine: AsyncEngine, sql: str, **params: Any) -> None:
    async with engine.begin() as connection:
        await connection.execute(text(sql), params)


async def _count(engine: AsyncEngine, table: str) -> int:
    return int(await _scalar(engine, f"SELECT count(*) FROM {table}"))


async def _row(engine: AsyncEngine, session_id: str) -> dict[str, Any] | None:
    async with engine.begin() as connection:
        found = (
            (
                await connection.execute(
                    text("SELECT * FROM subscriptions WHERE checkout_session_id = :id"), {"id": session_id}
                )
            )
            .mappings()
            .first()
        )
    return None if found is None else dict(found)


def _conditions(v: Visit) -> dict[str, tuple[str, str]]:
    return {c["type"]: (c["status"], c["reason"]) for c in v.status["conditions"]}


def _matched_by(v: Visit) -> str:
    """How UserResolved says the user was found (its reason is the stable `UserFound`)."""
    (condition,) = [c for c in v.status["conditions"] if c["type"] == USER_RESOLVED]
    assert condition["status"] == "True" and condition["reason"] == "UserFound", condition
    message = str(condition["message"])
    if "(created by passops)" in message:
        return "created"
    return message.rsplit("matched by ", 1)[-1].rstrip(")")


@pytest.fixture
async def catalog(ledger: Ledger) -> Ledger:
    await ledger.add_catalog_entry(DEFAULT_TENANT, GOLD_PASS, GOLD_PRICE, "Gold", GOLD_DAYS)
    return ledger


@pytest.fixture
def reconciler(catalog: Ledger) -> Reconciler:
    return Reconciler(ReconcileLedger(catalog), UserPolicy.CREATE, DEFAULT_TENANT)


@pytest.fixture
def waiting_reconciler(catalog: Ledger) -> Reconciler:
    return Reconciler(ReconcileLedger(catalog), UserPolicy.WAIT, DEFAULT_TENANT)


@pytest.fixture
async def dead_reconciler() -> AsyncIterator[Reconciler]:
    engine = create_engine(f"postgresql+psycopg://u:secretpw@127.0.0.1:{_closed_port()}/db")
    yield Reconciler(ReconcileLedger(Ledger(engine)), UserPolicy.CREATE, DEFAULT_TENANT)
    await engine.dispose()


def gold_session(**kwargs: Any) -> dict[str, Any]:
    kwargs.setdefault("metadata", {"pass_id": GOLD_PASS})
    kwargs.setdefault("created", PURCHASED)
    return se.paid_session(**kwargs)


# --- payment ------------------------------------------------------------------------------------


async def test_paid_card_session_becomes_ready_with_exactly_one_row(
    reconciler: Reconciler, db_engine: AsyncEngine
) -> None:
    session = gold_session(client_reference_id="user-42")
    await _execute(db_engine, "INSERT INTO users (tenant, reference) VALUES ('default', 'user-42')")
    user_id = await _scalar(db_engine, "SELECT id FROM users WHERE reference = 'user-42'")

    first = await visit(reconciler, purchase_body(session), NOW, SETTINGS)

    assert first.outcome.phase is Phase.READY and first.outcome.result is Result.READY
    assert first.status["phase"] == "Ready"
    assert _conditions(first) == {
        READY: ("True", "SubscriptionActive"),
        RECONCILING: ("False", "SubscriptionActive"),
        STALLED: ("False", "SubscriptionActive"),
        PAYMENT_CONFIRMED: ("True", "Paid"),
        USER_RESOLVED: ("True", "UserFound"),
    }
    assert [c["type"] for c in first.status["conditions"]] == [
        READY,
        RECONCILING,
        STALLED,
        PAYMENT_CONFIRMED,
        USER_RESOLVED,
    ]
    row = await _row(db_engine, session["id"])
    assert row is not None
    purchased = datetime.fromtimestamp(PURCHASED, UTC)
    assert (row["user_id"], row["pass_id"], row["status"]) == (user_id, "gold-30", "active")
    assert row["period_start"] == purchased
    assert row["period_end"] == purchased + timedelta(days=30)  # the catalog's duration
    assert (row["amount_total"], row["currency"]) == (1900, "eur")
    assert row["stripe_customer_id"] == session["customer"]
    assert first.status["subscriptionId"] == row["id"]
    assert first.status["userId"] == user_id
    assert first.status["attempts"] == 0 and first.status["lastError"] is None
    assert first.status["readyAt"] == format_time(NOW)

    # A replay of the stored object, and of a redelivered completed event: the same row, still one.
    again = await visit(reconciler, first.body, NOW + timedelta(seconds=5), SETTINGS)
    redelivered = await visit(reconciler, purchase_body(session), NOW + timedelta(seconds=9), SETTINGS)
    assert again.status["subscriptionId"] == redelivered.status["subscriptionId"] == row["id"]
    assert again.outcome.phase is Phase.READY
    assert await _count(db_engine, "subscriptions") == 1
    assert (await _row(db_engine, session["id"])) == row  # a replay does not even touch updated_at


async def test_free_checkout_without_payment_is_ready_with_zero_amount_and_no_currency(
    reconciler: Reconciler, db_engine: AsyncEngine
) -> None:
    session = se.free_session(metadata={"pass_id": "gold-30"}, created=PURCHASED)
    assert session["currency"] is None and session["amount_total"] == 0

    v = await visit(reconciler, purchase_body(session), NOW, SETTINGS)

    assert v.status["phase"] == "Ready"
    assert _conditions(v)[PAYMENT_CONFIRMED] == ("True", "Paid")
    row = await _row(db_engine, session["id"])
    assert row is not None
    assert row["amount_total"] == 0
    assert row["currency"] is None


async def test_sepa_waits_for_the_async_payment_then_a_late_completed_event_changes_nothing(
    reconciler: Reconciler, db_engine: AsyncEngine
) -> None:
    session = se.async_unpaid_session(
        metadata={"pass_id": "gold-30"}, client_reference_id="user-sepa", created=PURCHASED
    )
    body = purchase_body(session)

    waiting = await visit(reconciler, body, NOW, SETTINGS)
    assert waiting.status["phase"] == "AwaitingPayment"
    assert waiting.outcome.result is Result.WAITING
    assert waiting.plan.requeue_after is None  # nothing to retry: Stripe will tell us
    assert _conditions(waiting)[PAYMENT_CONFIRMED] == ("False", "AwaitingPayment")
    assert _conditions(waiting)[READY] == ("False", "AwaitingPayment")
    assert await _count(db_engine, "subscriptions") == 0
    assert await _count(db_engine, "users") == 0  # no write at all before the money is there

    succeeded = deliver(waiting.body, ASYNC_PAYMENT_SUCCEEDED, session)
    assert succeeded["spec"]["paymentStatus"] == "paid"
    ready = await visit(reconciler, succeeded, NOW + timedelta(days=2), SETTINGS)
    assert ready.status["phase"] == "Ready"
    row_id = ready.status["subscriptionId"]

    # Stripe redelivers the old `completed` (unpaid) snapshot late: paymentStatus never moves back.
    late = deliver(ready.body, CHECKOUT_COMPLETED, session)
    assert late["spec"]["paymentStatus"] == "paid"
    still = await visit(reconciler, late, NOW + timedelta(days=2, minutes=1), SETTINGS)
    assert still.status["phase"] == "Ready"
    assert still.status["subscriptionId"] == row_id
    assert await _count(db_engine, "subscriptions") == 1


async def test_async_payment_success_before_completed_also_converges(
    reconciler: Reconciler, db_engine: AsyncEngine
) -> None:
    session = se.async_unpaid_session(metadata={"pass_id": "gold-30"}, created=PURCHASED)
    body = purchase_body(session, ASYNC_PAYMENT_SUCCEEDED, CHECKOUT_COMPLETED)
    v = await visit(reconciler, body, NOW, SETTINGS)
    assert v.status["phase"] == "Ready"
    assert await _count(db_engine, "subscriptions") == 1


async def test_async_payment_failed_is_failed_and_stalled_without_a_row(
    reconciler: Reconciler, db_engine: AsyncEngine
) -> None:
    session = se.async_unpaid_session(metadata={"pass_id": "gold-30"}, created=PURCHASED)
    body = deliver(purchase_body(session), ASYNC_PAYMENT_FAILED, session)
    assert body["spec"]["paymentStatus"] == "unpaid"

    v = await visit(reconciler, body, NOW, SETTINGS)

    assert v.status["phase"] == "Failed"
    assert v.outcome.result is Result.FAILED
    assert _conditions(v)[STALLED] == ("True", "PaymentFailed")
    assert _conditions(v)[READY] == ("False", "PaymentFailed")
    assert _conditions(v)[PAYMENT_CONFIRMED] == ("False", "PaymentFailed")
    assert v.plan.requeue_after is None  # terminal
    assert await _count(db_engine, "subscriptions") == 0


# --- user resolution ------------------------------------------------------------------------------


async def test_user_found_by_client_reference_id(reconciler: Reconciler, db_engine: AsyncEngine) -> None:
    await _execute(db_engine, "INSERT INTO users (tenant, reference) VALUES ('default', 'ref-7')")
    user_id = await _scalar(db_engine, "SELECT id FROM users WHERE reference = 'ref-7'")
    session = gold_session(client_reference_id="ref-7", email="someone-else@example.com")

    v = await visit(reconciler, purchase_body(session), NOW, SETTINGS)

    assert _matched_by(v) == "reference"
    assert v.status["userId"] == user_id
    assert await _count(db_engine, "users") == 1
    row = await _row(db_engine, session["id"])
    assert row is not None and row["user_id"] == user_id


async def test_user_found_by_stripe_customer_without_client_reference_id(
    reconciler: Reconciler, db_engine: AsyncEngine
) -> None:
    await _execute(
        db_engine, "INSERT INTO users (tenant, stripe_customer_id) VALUES ('default', 'cus_Known123')"
    )
    user_id = await _scalar(db_engine, "SELECT id FROM users WHERE stripe_customer_id = 'cus_Known123'")
    session = gold_session(customer="cus_Known123", email="new-address@example.com")

    v = await visit(reconciler, purchase_body(session), NOW, SETTINGS)

    assert _matched_by(v) == "customer"
    assert v.status["userId"] == user_id
    assert await _count(db_engine, "users") == 1


async def test_user_found_by_email_case_insensitively(reconciler: Reconciler, db_engine: AsyncEngine) -> None:
    await _execute(
        db_engine, "INSERT INTO users (tenant, email) VALUES ('default', 'Ada.Lovelace@Example.COM')"
    )
    user_id = await _scalar(db_engine, "SELECT id FROM users")
    session = gold_session(customer="cus_NewAda", email="ada.lovelace@example.com")

    v = await visit(reconciler, purchase_body(session), NOW, SETTINGS)

    assert _matched_by(v) == "email"
    assert v.status["userId"] == user_id
    assert await _count(db_engine, "users") == 1
    # The Stripe customer is linked, so the next purchase finds the user by customer.
    linked = await _scalar(db_engine, "SELECT stripe_customer_id FROM users WHERE id = :id", id=user_id)
    assert linked == "cus_NewAda"


async def test_default_policy_creates_the_missing_user(
    reconciler: Reconciler, db_engine: AsyncEngine
) -> None:
    session = gold_session(client_reference_id="brand-new", customer="cus_Brand")

    v = await visit(reconciler, purchase_body(session), NOW, SETTINGS)

    assert v.status["phase"] == "Ready"
    assert _matched_by(v) == "created"
    created = await _scalar(db_engine, "SELECT id FROM users WHERE reference = 'brand-new'")
    assert v.status["userId"] == created


async def test_wait_policy_retries_with_backoff_until_the_app_creates_the_user(
    waiting_reconciler: Reconciler, db_engine: AsyncEngine
) -> None:
    session = gold_session(client_reference_id="user-later")

    pending = await visit(waiting_reconciler, purchase_body(session), NOW, SETTINGS)

    assert pending.status["phase"] == "Pending"
    assert pending.outcome.result is Result.RETRY
    assert pending.outcome.requeue is Requeue.BACKOFF
    assert pending.plan.requeue_after == 1.0
    assert _conditions(pending)[USER_RESOLVED] == ("False", "UserNotFound")
    assert _conditions(pending)[STALLED] == ("False", "UserNotFound")
    assert _conditions(pending)[PAYMENT_CONFIRMED] == ("True", "Paid")
    assert pending.status["attempts"] == 1
    assert pending.status["lastError"]["reason"] == "UserNotFound"
    assert "user-later" in pending.status["lastError"]["message"]
    assert await _count(db_engine, "users") == 0
    assert await _count(db_engine, "subscriptions") == 0

    second = await visit(waiting_reconciler, pending.body, NOW + timedelta(seconds=1), SETTINGS)
    assert second.status["attempts"] == 2 and second.plan.requeue_after == 2.0

    # The app signs the user up; the next visit finds them.
    await _execute(db_engine, "INSERT INTO users (tenant, reference) VALUES ('default', 'user-later')")
    ready = await visit(waiting_reconciler, second.body, NOW + timedelta(seconds=3), SETTINGS)
    assert ready.status["phase"] == "Ready"
    assert _matched_by(ready) == "reference"
    assert ready.status["attempts"] == 0 and ready.status["lastError"] is None
    assert await _count(db_engine, "subscriptions") == 1


async def test_wait_policy_never_puts_an_email_into_status(waiting_reconciler: Reconciler) -> None:
    session = gold_session(customer=None, email="private.person@example.com")
    v = await visit(waiting_reconciler, purchase_body(session), NOW, SETTINGS)
    assert v.status["phase"] == "Pending"
    assert "private.person" not in repr(v.status)
    assert all("private.person" not in e.message for e in v.events)


# --- pass resolution ------------------------------------------------------------------------------


async def test_pass_found_by_metadata_pass_id(reconciler: Reconciler, db_engine: AsyncEngine) -> None:
    session = gold_session(metadata={"pass_id": "gold-30"})
    v = await visit(reconciler, purchase_body(session), NOW, SETTINGS)
    assert v.status["phase"] == "Ready"
    row = await _row(db_engine, session["id"])
    assert row is not None and row["pass_id"] == "gold-30"


async def test_pass_found_by_metadata_price_id(reconciler: Reconciler, db_engine: AsyncEngine) -> None:
    session = gold_session(metadata={"price_id": "price_1GoldMonthly"})
    v = await visit(reconciler, purchase_body(session), NOW, SETTINGS)
    assert v.status["phase"] == "Ready"
    row = await _row(db_engine, session["id"])
    assert row is not None and row["pass_id"] == "gold-30"
    assert row["period_end"] == datetime.fromtimestamp(PURCHASED, UTC) + timedelta(days=30)


async def test_a_granted_pass_survives_its_price_leaving_the_catalog(
    reconciler: Reconciler, db_engine: AsyncEngine
) -> None:
    """Ready by price, then the price is removed from the catalog: the next visit (drift check,
    resync) keeps the pass the row already grants; it does not turn Stalled."""
    session = gold_session(metadata={"price_id": "price_1GoldMonthly"})
    ready = await visit(reconciler, purchase_body(session), NOW, SETTINGS)
    assert ready.status["passId"] == "gold-30"
    before = await _row(db_engine, session["id"])
    await _execute(db_engine, "DELETE FROM pass_catalog")

    again = await visit(reconciler, ready.body, NOW + timedelta(hours=1), SETTINGS)
    assert again.status["phase"] == "Ready" and again.status["passId"] == "gold-30"
    after = await _row(db_engine, session["id"])
    assert after is not None and before is not None
    assert (after["id"], after["pass_id"], after["period_end"]) == (
        before["id"],
        "gold-30",
        before["period_end"],
    )


async def test_no_pass_nor_price_without_line_item_lookup_is_stalled_and_rechecked_slowly(
    reconciler: Reconciler, db_engine: AsyncEngine
) -> None:
    session = gold_session(metadata={})
    v = await visit(reconciler, purchase_body(session), NOW, SETTINGS)

    assert v.outcome.result is Result.STALLED
    assert v.outcome.requeue is Requeue.SLOW
    assert v.plan.requeue_after == SETTINGS.recheck_interval  # slow, never dropped
    assert v.status["nextAttemptAt"] == format_time(NOW + timedelta(seconds=SETTINGS.recheck_interval))
    assert _conditions(v)[STALLED] == ("True", "UnknownPrice")
    assert _conditions(v)[READY] == ("False", "UnknownPrice")
    assert _conditions(v)[USER_RESOLVED][0] == "True"
    assert v.status["phase"] != "Ready"
    assert await _count(db_engine, "subscriptions") == 0


async def test_unknown_price_is_stalled_naming_the_price_until_it_is_added_to_the_catalog(
    reconciler: Reconciler, catalog: Ledger, db_engine: AsyncEngine
) -> None:
    session = gold_session(metadata={"price_id": "price_1NewPlatinum"})

    stalled = await visit(reconciler, purchase_body(session), NOW, SETTINGS)

    assert _conditions(stalled)[STALLED] == ("True", "UnknownPrice")
    assert stalled.plan.requeue_after == SETTINGS.recheck_interval
    message = stalled.condition(STALLED)["message"]
    assert "price_1NewPlatinum" in message
    assert "passops catalog add" in message
    assert stalled.status["lastError"]["reason"] == "UnknownPrice"
    assert "price_1NewPlatinum" in stalled.status["lastError"]["message"]
    assert await _count(db_engine, "subscriptions") == 0

    await catalog.add_catalog_entry(DEFAULT_TENANT, "platinum-365", "price_1NewPlatinum", "Platinum", 365)
    ready = await visit(reconciler, stalled.body, NOW + timedelta(minutes=10), SETTINGS)

    assert ready.status["phase"] == "Ready"
    assert _conditions(ready)[STALLED] == ("False", "SubscriptionActive")
    assert ready.status["lastError"] is None and ready.status["attempts"] == 0
    row = await _row(db_engine, session["id"])
    assert row is not None and row["pass_id"] == "platinum-365"
    assert row["period_end"] == datetime.fromtimestamp(PURCHASED, UTC) + timedelta(days=365)


# --- subscriptions --------------------------------------------------------------------------------


async def test_subscription_mode_records_the_stripe_subscription_and_a_second_claim_is_stalled(
    reconciler: Reconciler, db_engine: AsyncEngine
) -> None:
    first = se.subscription_session(
        subscription="sub_1Shared", metadata={"pass_id": "gold-30"}, created=PURCHASED
    )
    ready = await visit(reconciler, purchase_body(first), NOW, SETTINGS)
    assert ready.status["phase"] == "Ready"
    row = await _row(db_engine, first["id"])
    assert row is not None and row["stripe_subscription_id"] == "sub_1Shared"

    other = se.subscription_session(
        subscription="sub_1Shared", metadata={"pass_id": "gold-30"}, created=PURCHASED + 60
    )
    conflict = await visit(reconciler, purchase_body(other), NOW, SETTINGS)

    assert conflict.outcome.result is Result.STALLED  # a person must look; not a crash, not a retry storm
    assert _conditions(conflict)[STALLED] == ("True", "SubscriptionConflict")
    assert _conditions(conflict)[READY] == ("False", "SubscriptionConflict")
    assert conflict.status["lastError"]["reason"] == "SubscriptionConflict"
    # The user was found: support sees who it is while sorting out the conflict.
    assert _conditions(conflict)[USER_RESOLVED] == ("True", "UserFound")
    assert isinstance(conflict.status.get("userId"), int)
    assert "sub_1Shared" in conflict.status["lastError"]["message"]
    assert conflict.plan.requeue_after == SETTINGS.recheck_interval
    assert await _count(db_engine, "subscriptions") == 1
    assert (await _row(db_engine, first["id"])) == row


# --- transient errors -----------------------------------------------------------------------------


async def test_dead_database_retries_without_leaking_the_password(dead_reconciler: Reconciler) -> None:
    session = gold_session(client_reference_id="user-1")

    v = await visit(dead_reconciler, purchase_body(session), NOW, SETTINGS)

    assert v.outcome.result is Result.RETRY
    assert v.status["phase"] == "Reconciling"
    assert _conditions(v)[READY] == ("False", "DatabaseUnavailable")
    assert _conditions(v)[RECONCILING] == ("True", "DatabaseUnavailable")
    assert _conditions(v)[STALLED] == ("False", "DatabaseUnavailable")
    assert _conditions(v)[PAYMENT_CONFIRMED] == ("True", "Paid")
    assert v.status["attempts"] == 1
    assert v.plan.requeue_after == 1.0
    assert v.status["nextAttemptAt"] == format_time(NOW + timedelta(seconds=1))
    assert v.status["lastAttemptAt"] == format_time(NOW)
    assert v.status["lastError"]["reason"] == "DatabaseUnavailable"
    assert v.status["lastError"]["since"] == format_time(NOW)
    assert "secretpw" not in repr(v.status)
    assert all("secretpw" not in e.message for e in v.events)


async def test_dead_database_backs_off_exponentially_to_the_cap_then_stalls_while_retrying(
    dead_reconciler: Reconciler,
) -> None:
    settings = Settings(backoff=Backoff(base=1, cap=8, jitter=0), stalled_after=20.0)
    body: Body = purchase_body(gold_session(client_reference_id="user-1"))
    now = NOW
    delays: list[float | None] = []
    stalled: list[str] = []
    for attempt in range(1, 8):
        v = await visit(dead_reconciler, body, now, settings)
        assert v.status["attempts"] == attempt
        assert v.status["lastError"]["since"] == format_time(NOW)  # the run of failures began at NOW
        assert v.status["phase"] == "Reconciling"
        assert v.condition(RECONCILING)["status"] == "True"
        delays.append(v.plan.requeue_after)
        stalled.append(v.condition(STALLED)["status"])
        assert v.plan.requeue_after is not None
        body, now = v.body, now + timedelta(seconds=v.plan.requeue_after)

    assert delays == [1.0, 2.0, 4.0, 8.0, 8.0, 8.0, 8.0]
    # Visits at +0, +1, +3, +7, +15 are within stalled_after; +23 and +31 are past it.
    assert stalled == ["False"] * 5 + ["True"] * 2
    last = parse_time(body["status"]["nextAttemptAt"])
    assert last is not None and last == now  # a stalled purchase is still retried at the cap
    stalled_condition = next(c for c in body["status"]["conditions"] if c["type"] == STALLED)
    assert stalled_condition["reason"] == "DatabaseUnavailable"
    assert "still retrying" in stalled_condition["message"]


# --- annotations ----------------------------------------------------------------------------------


async def test_paused_purchase_writes_nothing_and_is_not_retried(
    reconciler: Reconciler, db_engine: AsyncEngine
) -> None:
    session = gold_session(client_reference_id="would-be-created")
    body = purchase_body(session, annotations={"passops.dev/paused": "true"})

    v = await visit(reconciler, body, NOW, SETTINGS)

    assert v.outcome.result is Result.PAUSED
    assert v.status["phase"] == "Paused"
    assert v.plan.requeue_after is None
    assert v.status["nextAttemptAt"] is None
    assert _conditions(v)[RECONCILING] == ("False", "Paused")
    assert _conditions(v)[STALLED] == ("False", "Paused")
    assert await _count(db_engine, "users") == 0
    assert await _count(db_engine, "subscriptions") == 0


async def test_pausing_a_failing_purchase_keeps_its_attempts_for_when_it_resumes(
    dead_reconciler: Reconciler,
) -> None:
    body = purchase_body(gold_session(client_reference_id="user-1"))
    for second in range(3):
        body = (await visit(dead_reconciler, body, NOW + timedelta(seconds=second * 10), SETTINGS)).body
    assert body["status"]["attempts"] == 3

    paused = await visit(dead_reconciler, annotate(body, paused="true"), NOW + timedelta(minutes=1), SETTINGS)
    assert paused.status["phase"] == "Paused"
    assert paused.status["attempts"] == 3
    assert paused.plan.requeue_after is None


@pytest.mark.parametrize("value", ["True", "yes", "1", ""])
async def test_only_the_exact_value_true_pauses(
    value: str, reconciler: Reconciler, db_engine: AsyncEngine
) -> None:
    session = gold_session()
    v = await visit(
        reconciler, purchase_body(session, annotations={"passops.dev/paused": value}), NOW, SETTINGS
    )
    assert v.status["phase"] == "Ready"
    assert await _count(db_engine, "subscriptions") == 1


async def test_resync_recreates_a_row_deleted_by_hand(reconciler: Reconciler, db_engine: AsyncEngine) -> None:
    session = gold_session()
    ready = await visit(reconciler, purchase_body(session), NOW, SETTINGS)
    await _execute(db_engine, "DELETE FROM subscriptions")

    resync = annotate(ready.body, resync="2026-12-04T09:00:00Z")
    v = await visit(reconciler, resync, NOW + timedelta(days=1), SETTINGS)

    assert v.status["phase"] == "Ready"
    assert v.status["lastHandledResyncAt"] == "2026-12-04T09:00:00Z"
    assert v.status["attempts"] == 0
    row = await _row(db_engine, session["id"])
    assert row is not None
    assert v.status["subscriptionId"] == row["id"]
    assert (row["pass_id"], row["status"]) == ("gold-30", "active")
    assert row["period_end"] == datetime.fromtimestamp(PURCHASED, UTC) + timedelta(days=30)
    assert await _count(db_engine, "subscriptions") == 1


async def test_resync_restores_a_row_changed_by_hand(reconciler: Reconciler, db_engine: AsyncEngine) -> None:
    session = gold_session()
    ready = await visit(reconciler, purchase_body(session), NOW, SETTINGS)
    original = await _row(db_engine, session["id"])
    assert original is not None
    await _execute(db_engine, "UPDATE subscriptions SET status = 'cancelled', pass_id = 'bronze-7'")

    v = await visit(reconciler, annotate(ready.body, resync="support-ticket-4711"), NOW, SETTINGS)

    assert v.status["lastHandledResyncAt"] == "support-ticket-4711"
    restored = await _row(db_engine, session["id"])
    assert restored is not None
    assert restored["id"] == original["id"] == v.status["subscriptionId"]
    assert (restored["status"], restored["pass_id"]) == ("active", "gold-30")
    assert restored["period_end"] == original["period_end"]


async def test_resync_during_an_outage_resets_the_backoff(dead_reconciler: Reconciler) -> None:
    body = purchase_body(gold_session(client_reference_id="user-1"))
    now = NOW
    for _ in range(5):
        v = await visit(dead_reconciler, body, now, SETTINGS)
        assert v.plan.requeue_after is not None
        body, now = v.body, now + timedelta(seconds=v.plan.requeue_after)
    assert body["status"]["attempts"] == 5

    v = await visit(dead_reconciler, annotate(body, resync="now-please"), now, SETTINGS)

    assert v.status["lastHandledResyncAt"] == "now-please"
    assert v.status["attempts"] == 1  # from scratch: this is the first attempt of a new run
    assert v.plan.requeue_after == 1.0
    assert v.status["lastError"]["since"] == format_time(now)

    # The same value again is not a new request: the backoff goes on growing.
    after = await visit(dead_reconciler, v.body, now + timedelta(seconds=1), SETTINGS)
    assert after.status["attempts"] == 2 and after.plan.requeue_after == 2.0


async def test_resync_of_a_healthy_purchase_after_failures_resets_attempts(
    dead_reconciler: Reconciler, reconciler: Reconciler, db_engine: AsyncEngine
) -> None:
    body = purchase_body(gold_session(client_reference_id="user-1"))
    for second in range(3):
        body = (await visit(dead_reconciler, body, NOW + timedelta(seconds=second * 10), SETTINGS)).body
    assert body["status"]["attempts"] == 3

    v = await visit(reconciler, annotate(body, resync="r1"), NOW + timedelta(minutes=1), SETTINGS)

    assert v.status["phase"] == "Ready"
    assert v.status["attempts"] == 0 and v.status["lastError"] is None
    assert v.status["nextAttemptAt"] is None
    assert v.status["lastHandledResyncAt"] == "r1"
    assert "lastError" not in v.body["status"]
    assert await _count(db_engine, "subscriptions") == 1


def test_apply_status_removes_fields_patched_to_none() -> None:
    body = apply_status(purchase_body(gold_session()), {"phase": "Reconciling", "lastError": {"reason": "X"}})
    body = apply_status(body, {"phase": "Ready", "lastError": None})
    assert body["status"] == {"phase": "Ready"}


async def test_a_resync_asked_while_paused_waits_for_the_resume(dead_reconciler: Reconciler) -> None:
    body = purchase_body(gold_session(client_reference_id="user-1"))
    for second in range(4):
        body = (await visit(dead_reconciler, body, NOW + timedelta(seconds=second * 10), SETTINGS)).body
    assert body["status"]["attempts"] == 4

    paused = annotate(body, paused="true", resync="while-paused")
    v = await visit(dead_reconciler, paused, NOW + timedelta(minutes=1), SETTINGS)
    assert v.status["phase"] == "Paused"
    assert "lastHandledResyncAt" not in v.body["status"]  # not handled: nothing was done
    assert v.status["attempts"] == 4

    resumed = await visit(
        dead_reconciler, annotate(v.body, paused=None), NOW + timedelta(minutes=2), SETTINGS
    )
    assert resumed.status["lastHandledResyncAt"] == "while-paused"
    assert resumed.status["attempts"] == 1  # the resync's fresh start happens now


async def test_concurrent_visits_of_the_same_purchase_make_one_user_and_one_row(
    clean_database_url: str, catalog: Ledger, db_engine: AsyncEngine
) -> None:
    # Several controllers (each its own engine and pool) race on the same purchase and its replays.
    engines = [create_engine(clean_database_url) for _ in range(4)]
    try:
        reconcilers = [
            Reconciler(ReconcileLedger(Ledger(e)), UserPolicy.CREATE, DEFAULT_TENANT) for e in engines
        ]
        body = purchase_body(gold_session(client_reference_id="racer", customer="cus_Racer"))
        visits = await asyncio.gather(*(visit(r, body, NOW, SETTINGS) for r in reconcilers * 3))
    finally:
        await asyncio.gather(*(e.dispose() for e in engines))

    assert {v.status["phase"] for v in visits} == {"Ready"}
    assert len({v.status["subscriptionId"] for v in visits}) == 1
    assert len({v.status["userId"] for v in visits}) == 1
    assert await _count(db_engine, "subscriptions") == 1
    assert await _count(db_engine, "users") == 1


async def test_the_catalog_is_per_tenant(
    reconciler: Reconciler, catalog: Ledger, db_engine: AsyncEngine
) -> None:
    session = gold_session(metadata={"pass_id": GOLD_PASS, "tenant": "acme"})
    stalled = await visit(reconciler, purchase_body(session), NOW, SETTINGS)
    assert stalled.condition(STALLED)["reason"] == "UnknownPrice"
    assert "'acme'" in stalled.condition(STALLED)["message"]

    await catalog.add_catalog_entry("acme", GOLD_PASS, GOLD_PRICE, "Acme Gold", 7)
    ready = await visit(reconciler, stalled.body, NOW + timedelta(minutes=10), SETTINGS)
    row = await _row(db_engine, session["id"])
    assert ready.status["phase"] == "Ready"
    assert row is not None and row["tenant"] == "acme"
    assert row["period_end"] == datetime.fromtimestamp(PURCHASED, UTC) + timedelta(days=7)
