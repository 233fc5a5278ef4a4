"""Kubernetes Events and condition timestamps over successive visits, on a real PostgreSQL.

People read Events in `kubectl describe pp` and alerts key on them: one per transition that matters,
never one per retry of a storm; and conditions follow the API conventions (lastTransitionTime moves
only when the status flips).
"""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from controller.conditions import PAYMENT_CONFIRMED, READY, RECONCILING, STALLED, USER_RESOLVED
from controller.db import Ledger, create_engine
from controller.events import NORMAL, WARNING, Event
from controller.ledger_adapter import ReconcileLedger
from controller.purchase import format_time
from controller.reconcile import Reconciler
from passops.config import Backoff, Settings, UserPolicy
from passops.testing import stripe_events as se
from tests.purchases import DEFAULT_TENANT, Body, annotate, deliver, purchase_body, visit
from webhook_gateway.checkout import ASYNC_PAYMENT_FAILED, ASYNC_PAYMENT_SUCCEEDED

NOW = datetime(2026, 12, 3, 12, 5, 0, tzinfo=UTC)
# stalled_after far away: a storm of 20 attempts must not escalate here.
SETTINGS = Settings(backoff=Backoff(base=1, cap=8, jitter=0), stalled_after=86_400.0)


def _closed_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
async def reconciler(ledger: Ledger) -> Reconciler:
    await ledger.add_catalog_entry(DEFAULT_TENANT, "gold-30", "price_1GoldMonthly", "Gold", 30)
    return Reconciler(ReconcileLedger(ledger), UserPolicy.CREATE, DEFAULT_TENANT)


@pytest.fixture
async def dead_reconciler() -> AsyncIterator[Reconciler]:
    engine = create_engine(f"postgresql+psycopg://u:secretpw@127.0.0.1:{_closed_port()}/db")
    yield Reconciler(ReconcileLedger(Ledger(engine)), UserPolicy.CREATE, DEFAULT_TENANT)
    await engine.dispose()


def gold_session(**kwargs: Any) -> dict[str, Any]:
    kwargs.setdefault("metadata", {"pass_id": "gold-30"})
    return se.paid_session(**kwargs)


def kinds(events: list[Event]) -> list[tuple[str, str]]:
    return [(e.type, e.reason) for e in events]


async def test_first_ready_posts_one_normal_ready_event_and_a_replay_posts_none(
    reconciler: Reconciler,
) -> None:
    first = await visit(reconciler, purchase_body(gold_session()), NOW, SETTINGS)
    assert kinds(first.events) == [(NORMAL, "Ready")]
    assert "subscription" in first.events[0].message

    replay = await visit(reconciler, first.body, NOW + timedelta(seconds=30), SETTINGS)
    assert replay.status["phase"] == "Ready"
    assert replay.events == []


async def test_a_retry_storm_posts_warnings_only_at_attempts_1_2_4_8_16(dead_reconciler: Reconciler) -> None:
    body: Body = purchase_body(gold_session(client_reference_id="user-1"))
    now = NOW
    warned_at: list[int] = []
    for attempt in range(1, 21):
        v = await visit(dead_reconciler, body, now, SETTINGS)
        assert v.status["attempts"] == attempt
        assert all(e.type == WARNING and e.reason == "DatabaseUnavailable" for e in v.events)
        assert len(v.events) <= 1
        if v.events:
            warned_at.append(attempt)
            assert f"attempt {attempt} failed" in v.events[0].message
            assert "secretpw" not in v.events[0].message
        assert v.plan.requeue_after is not None
        body, now = v.body, now + timedelta(seconds=v.plan.requeue_after)

    assert warned_at == [1, 2, 4, 8, 16]


async def test_pause_posts_reconciliation_paused_and_unpause_resumed(reconciler: Reconciler) -> None:
    ready = await visit(reconciler, purchase_body(gold_session()), NOW, SETTINGS)

    paused = await visit(
        reconciler, annotate(ready.body, paused="true"), NOW + timedelta(minutes=1), SETTINGS
    )
    assert kinds(paused.events) == [(NORMAL, "ReconciliationPaused")]
    # Pausing keeps what was found: the purchase is still Ready for `kubectl wait`.
    assert paused.condition(READY)["status"] == "True"
    assert paused.condition(READY)["lastTransitionTime"] == format_time(NOW)

    still = await visit(reconciler, paused.body, NOW + timedelta(minutes=2), SETTINGS)
    assert still.events == []

    resumed = await visit(reconciler, annotate(still.body, paused=None), NOW + timedelta(minutes=3), SETTINGS)
    assert (NORMAL, "ReconciliationResumed") in kinds(resumed.events)
    assert resumed.status["phase"] == "Ready"


async def test_a_failed_async_payment_posts_one_payment_failed_warning(reconciler: Reconciler) -> None:
    session = se.async_unpaid_session(metadata={"pass_id": "gold-30"})
    waiting = await visit(reconciler, purchase_body(session), NOW, SETTINGS)
    assert kinds(waiting.events) == [(NORMAL, "AwaitingPayment")]

    failed = await visit(
        reconciler, deliver(waiting.body, ASYNC_PAYMENT_FAILED, session), NOW + timedelta(days=3), SETTINGS
    )
    assert kinds(failed.events) == [(WARNING, "PaymentFailed")]

    again = await visit(reconciler, failed.body, NOW + timedelta(days=3, seconds=5), SETTINGS)
    assert again.events == []


async def test_async_payment_succeeded_after_waiting_posts_ready(reconciler: Reconciler) -> None:
    session = se.async_unpaid_session(metadata={"pass_id": "gold-30"})
    waiting = await visit(reconciler, purchase_body(session), NOW, SETTINGS)
    ready = await visit(
        reconciler, deliver(waiting.body, ASYNC_PAYMENT_SUCCEEDED, session), NOW + timedelta(days=2), SETTINGS
    )
    assert kinds(ready.events) == [(NORMAL, "Ready")]
    # PaymentConfirmed flipped False -> True: its transition time moves; Stalled stayed False: it stays.
    assert ready.condition(PAYMENT_CONFIRMED)["lastTransitionTime"] == format_time(NOW + timedelta(days=2))
    assert ready.condition(STALLED)["lastTransitionTime"] == format_time(NOW)


async def test_an_unknown_price_posts_a_warning_with_reason_unknown_price(reconciler: Reconciler) -> None:
    session = gold_session(metadata={"price_id": "price_1Unlisted"})
    v = await visit(reconciler, purchase_body(session), NOW, SETTINGS)
    assert kinds(v.events) == [(WARNING, "UnknownPrice")]
    assert "price_1Unlisted" in v.events[0].message
    # Its slow re-checks (attempts 2, 3, 4...) are not news: no more Events until something changes.
    for hours in range(1, 6):
        v = await visit(reconciler, v.body, NOW + timedelta(hours=hours), SETTINGS)
        assert v.events == [], (v.status["attempts"], v.events)


async def test_resync_of_a_ready_purchase_says_so(reconciler: Reconciler) -> None:
    ready = await visit(reconciler, purchase_body(gold_session()), NOW, SETTINGS)
    v = await visit(reconciler, annotate(ready.body, resync="r-1"), NOW + timedelta(hours=1), SETTINGS)
    assert kinds(v.events) == [(NORMAL, "ResyncRequested"), (NORMAL, "Ready")]


async def test_last_transition_time_moves_only_when_the_status_value_flips(
    dead_reconciler: Reconciler, reconciler: Reconciler
) -> None:
    body = purchase_body(gold_session(client_reference_id="user-1"))
    t0, t1, t2, t3 = (NOW + timedelta(seconds=s) for s in (0, 1, 3, 60))

    first = await visit(dead_reconciler, body, t0, SETTINGS)
    second = await visit(dead_reconciler, first.body, t1, SETTINGS)
    for type_ in (READY, RECONCILING, STALLED, PAYMENT_CONFIRMED, USER_RESOLVED):
        assert second.condition(type_)["lastTransitionTime"] == format_time(t0), type_
    assert second.condition(READY)["observedGeneration"] == 1

    ready = await visit(reconciler, second.body, t2, SETTINGS)
    assert ready.condition(READY)["status"] == "True"
    assert ready.condition(READY)["lastTransitionTime"] == format_time(t2)
    assert ready.condition(RECONCILING)["lastTransitionTime"] == format_time(t2)  # True -> False
    # Same status, a new reason (DatabaseUnavailable -> SubscriptionActive): no transition.
    assert ready.condition(STALLED)["reason"] == "SubscriptionActive"
    assert ready.condition(STALLED)["lastTransitionTime"] == format_time(t0)
    assert ready.condition(PAYMENT_CONFIRMED)["lastTransitionTime"] == format_time(t0)

    # A replay: the user created on the last visit is now found by reference; nothing flips.
    replay = await visit(reconciler, ready.body, t3, SETTINGS)
    assert replay.condition(USER_RESOLVED)["reason"] == "UserFound"  # stable across replays
    assert "matched by reference" in replay.condition(USER_RESOLVED)["message"]
    for type_ in (READY, RECONCILING, STALLED, PAYMENT_CONFIRMED, USER_RESOLVED):
        assert replay.condition(type_)["lastTransitionTime"] == ready.condition(type_)["lastTransitionTime"]
    assert replay.status["readyAt"] == format_time(t2)
