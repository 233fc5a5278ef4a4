"""Merge rules of PassPurchase specs: first writer wins, payment only moves forward, events union."""

from __future__ import annotations

import itertools
from typing import Any

import pytest

from passops.resource import LABEL_CUSTOMER, LABEL_PHASE, LABEL_TENANT, MAX_EVENTS
from webhook_gateway.merge import merge_events, merge_labels, merge_payment_status, merge_spec


def _event(n: int, type_: str = "checkout.session.completed") -> dict[str, str]:
    return {"id": f"evt_{n:03d}", "type": type_, "created": f"2026-12-01T10:{n // 60:02d}:{n % 60:02d}Z"}


def test_facts_already_set_are_kept() -> None:
    current = {"checkoutSessionId": "cs_1", "tenant": "acme", "amountTotal": 1900, "source": "webhook"}
    incoming = {"checkoutSessionId": "cs_1", "tenant": "other", "amountTotal": 5, "source": "sync"}
    assert merge_spec(current, incoming) == current


def test_missing_and_empty_facts_are_filled() -> None:
    current = {"checkoutSessionId": "cs_1", "currency": "", "customer": {"email": "a@example.com"}}
    incoming = {
        "checkoutSessionId": "cs_1",
        "currency": "eur",
        "subscriptionId": "sub_1",
        "customer": {"email": "b@example.com", "stripeCustomerId": "cus_1"},
    }
    assert merge_spec(current, incoming) == {
        "checkoutSessionId": "cs_1",
        "currency": "eur",
        "subscriptionId": "sub_1",
        "customer": {"email": "a@example.com", "stripeCustomerId": "cus_1"},
    }


def test_zero_and_false_are_facts_not_gaps() -> None:
    current = {"amountTotal": 0, "livemode": False}
    assert merge_spec(current, {"amountTotal": 100, "livemode": True}) == current


def test_inputs_are_not_mutated() -> None:
    current = {"customer": {"email": "a@example.com"}, "events": [_event(1)]}
    incoming = {"customer": {"userId": "u"}, "events": [_event(2)]}
    snapshot = (repr(current), repr(incoming))
    merge_spec(current, incoming)
    assert (repr(current), repr(incoming)) == snapshot


@pytest.mark.parametrize(
    ("current", "incoming", "expected"),
    [
        (None, "unpaid", "unpaid"),
        ("unpaid", "paid", "paid"),
        ("unpaid", "no_payment_required", "no_payment_required"),
        ("paid", "unpaid", "paid"),  # a late `completed` after `async_payment_succeeded`
        ("no_payment_required", "unpaid", "no_payment_required"),
        ("paid", "no_payment_required", "paid"),
        ("paid", None, "paid"),
        ("unpaid", "bogus", "unpaid"),
        (None, None, None),
    ],
)
def test_payment_status_only_moves_forward(
    current: str | None, incoming: str | None, expected: str | None
) -> None:
    assert merge_payment_status(current, incoming) == expected


def test_late_completed_unpaid_does_not_undo_async_payment_succeeded() -> None:
    succeeded = {"paymentStatus": "paid", "events": [_event(2, "checkout.session.async_payment_succeeded")]}
    completed = {"paymentStatus": "unpaid", "events": [_event(1)]}
    merged = merge_spec(succeeded, completed)
    assert merged["paymentStatus"] == "paid"
    assert [e["id"] for e in merged["events"]] == ["evt_001", "evt_002"]


def test_events_are_deduplicated_by_id() -> None:
    assert merge_events([_event(1), _event(2)], [_event(2), _event(1)]) == [_event(1), _event(2)]


def test_events_are_ordered_newest_last() -> None:
    assert merge_events([_event(5)], [_event(3)]) == [_event(3), _event(5)]


def test_events_are_bounded_to_the_newest() -> None:
    current = [_event(n) for n in range(MAX_EVENTS)]
    merged = merge_events(current, [_event(100)])
    assert len(merged) == MAX_EVENTS
    assert merged[-1]["id"] == "evt_100"
    assert merged[0]["id"] == "evt_001"


def test_async_payment_failed_is_appended() -> None:
    merged = merge_spec(
        {"paymentStatus": "unpaid", "events": [_event(1)]},
        {"paymentStatus": "unpaid", "events": [_event(2, "checkout.session.async_payment_failed")]},
    )
    assert merged["events"][-1]["type"] == "checkout.session.async_payment_failed"


def test_redelivery_changes_nothing() -> None:
    spec = {"checkoutSessionId": "cs_1", "paymentStatus": "paid", "events": [_event(1)]}
    assert merge_spec(spec, spec) == spec


def test_every_delivery_order_converges_on_the_same_spec() -> None:
    completed: dict[str, Any] = {
        "checkoutSessionId": "cs_1",
        "tenant": "acme",
        "paymentStatus": "unpaid",
        "events": [_event(1)],
    }
    succeeded: dict[str, Any] = {
        "checkoutSessionId": "cs_1",
        "tenant": "acme",
        "customer": {"userId": "u"},
        "paymentStatus": "paid",
        "events": [_event(2, "checkout.session.async_payment_succeeded")],
    }
    results = []
    for order in itertools.permutations([completed, succeeded, completed]):
        spec: dict[str, Any] = {}
        for delivery in order:
            spec = merge_spec(spec, delivery)
        results.append(spec)
    assert all(r == results[0] for r in results)
    assert results[0]["paymentStatus"] == "paid"
    assert [e["id"] for e in results[0]["events"]] == ["evt_001", "evt_002"]


def test_labels_are_added_when_missing_but_never_changed() -> None:
    current = {LABEL_TENANT: "acme", LABEL_PHASE: "Ready"}
    incoming = {LABEL_TENANT: "other", LABEL_CUSTOMER: "cus_1"}
    assert merge_labels(current, incoming) == {
        LABEL_TENANT: "acme",
        LABEL_PHASE: "Ready",
        LABEL_CUSTOMER: "cus_1",
    }
    assert merge_labels(None, {}) == {}
