"""Stripe Checkout events -> PassPurchase spec facts (camelCase per the CRD, nulls left out)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from passops.resource import LABEL_CUSTOMER, LABEL_PHASE, LABEL_TENANT, purchase_name
from passops.testing import stripe_events as se
from webhook_gateway.checkout import (
    Malformed,
    event_record,
    facts_from_event,
    parse_event,
    spec_from_session,
)

CRD = Path(__file__).parent.parent / "crds" / "passpurchase.yaml"


def _facts(event: dict[str, Any], tenant: str = "default") -> Any:
    facts = facts_from_event(event, default_tenant=tenant)
    assert facts is not None
    return facts


def _declared(schema: dict[str, Any], value: Any, path: str = "spec") -> None:
    """Every key we write is declared by the CRD schema (the API would prune or reject others)."""
    if isinstance(value, dict):
        props = schema.get("properties") or {}
        for key, item in value.items():
            assert key in props, f"{path}.{key} is not declared by the CRD"
            _declared(props[key], item, f"{path}.{key}")
    elif isinstance(value, list):
        for item in value:
            _declared(schema["items"], item, f"{path}[]")
    if "enum" in schema:
        assert value in schema["enum"], f"{path}={value!r} not in {schema['enum']}"


def _spec_schema() -> dict[str, Any]:
    crd = yaml.safe_load(CRD.read_text())
    return dict(crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"])


def test_paid_card_checkout_maps_every_fact() -> None:
    session = se.paid_session(
        client_reference_id="user-42",
        metadata={"tenant": "acme", "price_id": "price_123", "pass_id": "gold"},
        created=1_800_000_000,
    )
    event = se.event(se.CHECKOUT_COMPLETED, session, created=1_800_000_010)
    facts = _facts(event)
    assert facts.name == purchase_name(session["id"])
    assert facts.spec == {
        "checkoutSessionId": session["id"],
        "livemode": False,
        "tenant": "acme",
        "customer": {
            "stripeCustomerId": session["customer"],
            "userId": "user-42",
            "email": "buyer@example.com",
        },
        "pass": {"priceId": "price_123", "passId": "gold"},
        "mode": "payment",
        "amountTotal": 1900,
        "currency": "eur",
        "paymentStatus": "paid",
        "purchasedAt": "2027-01-15T08:00:00Z",
        "source": "webhook",
        "events": [{"id": event["id"], "type": se.CHECKOUT_COMPLETED, "created": "2027-01-15T08:00:10Z"}],
    }
    assert facts.labels == {LABEL_TENANT: "acme", LABEL_CUSTOMER: session["customer"]}
    assert facts.event.session_id == session["id"]


@pytest.mark.parametrize(
    "session",
    [
        se.paid_session(),
        se.async_unpaid_session(),
        se.async_unpaid_session(method="us_bank_account"),
        se.free_session(),
        se.subscription_session(),
        se.paid_session(customer=None, email=None, customer_email="guest@example.com"),
    ],
    ids=["paid", "sepa", "ach", "free", "subscription", "guest"],
)
def test_every_written_key_is_declared_by_the_crd(session: dict[str, Any]) -> None:
    facts = _facts(se.event(se.CHECKOUT_COMPLETED, session))
    _declared(_spec_schema(), facts.spec)
    assert LABEL_PHASE not in facts.labels
    assert "status" not in facts.spec


def test_free_checkout_keeps_amount_zero_and_omits_null_currency() -> None:
    facts = _facts(se.event(se.CHECKOUT_COMPLETED, se.free_session()))
    assert facts.spec["amountTotal"] == 0
    assert facts.spec["paymentStatus"] == "no_payment_required"
    assert "currency" not in facts.spec


def test_async_payment_unpaid_at_completion() -> None:
    facts = _facts(se.event(se.CHECKOUT_COMPLETED, se.async_unpaid_session()))
    assert facts.spec["paymentStatus"] == "unpaid"


def test_async_payment_succeeded_means_paid_even_if_the_snapshot_says_unpaid() -> None:
    facts = _facts(se.event(se.ASYNC_PAYMENT_SUCCEEDED, se.async_unpaid_session()))
    assert facts.spec["paymentStatus"] == "paid"


def test_async_payment_failed_is_recorded_as_an_event() -> None:
    event = se.event(se.ASYNC_PAYMENT_FAILED, se.async_unpaid_session())
    facts = _facts(event)
    assert facts.spec["events"][0]["type"] == se.ASYNC_PAYMENT_FAILED
    assert facts.spec["paymentStatus"] == "unpaid"


def test_subscription_mode_carries_the_subscription_id() -> None:
    session = se.subscription_session()
    facts = _facts(se.event(se.CHECKOUT_COMPLETED, session))
    assert facts.spec["mode"] == "subscription"
    assert facts.spec["subscriptionId"] == session["subscription"]


def test_expanded_customer_and_subscription_give_their_ids() -> None:
    session = se.subscription_session()
    session["customer"] = {"id": "cus_Expanded1", "object": "customer"}
    session["subscription"] = {"id": "sub_Expanded1", "object": "subscription"}
    facts = _facts(se.event(se.CHECKOUT_COMPLETED, session))
    assert facts.spec["customer"]["stripeCustomerId"] == "cus_Expanded1"
    assert facts.spec["subscriptionId"] == "sub_Expanded1"


def test_user_id_from_metadata_when_no_client_reference_id() -> None:
    facts = _facts(se.event(se.CHECKOUT_COMPLETED, se.paid_session(metadata={"user_id": "u-7"})))
    assert facts.spec["customer"]["userId"] == "u-7"


def test_client_reference_id_wins_over_metadata_user_id() -> None:
    session = se.paid_session(client_reference_id="u-1", metadata={"user_id": "u-2"})
    assert _facts(se.event(se.CHECKOUT_COMPLETED, session)).spec["customer"]["userId"] == "u-1"


def test_email_falls_back_to_customer_email() -> None:
    session = se.paid_session(email=None, customer_email="fallback@example.com")
    assert (
        _facts(se.event(se.CHECKOUT_COMPLETED, session)).spec["customer"]["email"] == "fallback@example.com"
    )


def test_guest_checkout_without_metadata_uses_default_tenant_and_omits_missing_facts() -> None:
    session = se.paid_session(customer=None, email=None)
    facts = _facts(se.event(se.CHECKOUT_COMPLETED, session), tenant="main")
    assert facts.spec["tenant"] == "main"
    assert "customer" not in facts.spec
    assert "pass" not in facts.spec
    assert facts.labels == {LABEL_TENANT: "main"}


def test_label_values_that_are_not_valid_are_left_out() -> None:
    facts = _facts(se.event(se.CHECKOUT_COMPLETED, se.paid_session(metadata={"tenant": "Acme Corp!"})))
    assert facts.spec["tenant"] == "Acme Corp!"
    assert LABEL_TENANT not in facts.labels


def test_ill_typed_values_are_left_out_rather_than_rejected_by_the_schema() -> None:
    session = se.paid_session()
    session.update(amount_total="1900", livemode="no", payment_status="weird", mode="other")
    spec = _facts(se.event(se.CHECKOUT_COMPLETED, session)).spec
    for key in ("amountTotal", "livemode", "paymentStatus", "mode"):
        assert key not in spec


def test_livemode_is_kept() -> None:
    assert _facts(se.event(se.CHECKOUT_COMPLETED, se.paid_session(livemode=True))).spec["livemode"] is True


def test_setup_mode_session_is_ignored() -> None:
    session = se.checkout_session(mode="setup", payment_status="no_payment_required", amount_total=None)
    assert facts_from_event(se.event(se.CHECKOUT_COMPLETED, session), default_tenant="d") is None


@pytest.mark.parametrize("type_", ["checkout.session.expired", "invoice.paid", "customer.created"])
def test_other_event_types_are_ignored(type_: str) -> None:
    assert facts_from_event(se.event(type_, se.paid_session()), default_tenant="d") is None


def test_other_event_types_need_no_session() -> None:
    event = {"id": "evt_1", "type": "charge.succeeded", "data": {"object": {"object": "charge"}}}
    assert facts_from_event(event, default_tenant="d") is None


@pytest.mark.parametrize("body", [b"{not json", b"[]", b'"x"', b"", b'{"type": "x"}', b'{"id": "evt_1"}'])
def test_malformed_body_is_refused(body: bytes) -> None:
    with pytest.raises(Malformed):
        parse_event(body)


@pytest.mark.parametrize(
    "data",
    [
        None,
        {},
        {"object": None},
        {"object": {"object": "charge", "id": "ch_1"}},
        {"object": {"mode": "payment"}},
    ],
    ids=["no-data", "no-object", "null-object", "not-a-session", "no-session-id"],
)
def test_handled_event_without_a_session_is_malformed(data: Any) -> None:
    event = {"id": "evt_1", "type": se.CHECKOUT_COMPLETED, "data": data}
    with pytest.raises(Malformed):
        facts_from_event(parse_event(json.dumps(event).encode()), default_tenant="d")


def test_event_record_without_created() -> None:
    assert event_record({"id": "evt_1", "type": "t"}) == {"id": "evt_1", "type": "t"}


def test_spec_from_session_records_the_source() -> None:
    from passops.resource import Source

    spec = spec_from_session(se.paid_session(), default_tenant="d", source=Source.SYNC)
    assert spec["source"] == "sync"
    assert "events" not in spec


def test_builders_produce_realistic_ids_and_api_version() -> None:
    session = se.paid_session()
    event = se.event(se.CHECKOUT_COMPLETED, session)
    assert session["id"].startswith("cs_test_")
    assert session["customer"].startswith("cus_")
    assert session["payment_intent"].startswith("pi_")
    assert event["id"].startswith("evt_")
    assert event["api_version"] == se.API_VERSION
    assert se.webhook_secret().startswith("whsec_")
    free = se.free_session()
    assert free["payment_intent"] is None and free["currency"] is None and free["amount_total"] == 0
    assert se.subscription_session()["subscription"].startswith("sub_")
