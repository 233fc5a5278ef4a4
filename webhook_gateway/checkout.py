"""Stripe Checkout events -> the facts of a PassPurchase spec (camelCase, as the CRD declares them).

Pure functions: no I/O. Shared with whoever else writes purchases from Checkout Sessions (sync,
backfill), hence the ``source`` argument of ``spec_from_session``.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final

from passops.resource import LABEL_CUSTOMER, LABEL_TENANT, Source, label_value, purchase_name

Spec = dict[str, Any]

CHECKOUT_COMPLETED: Final = "checkout.session.completed"
ASYNC_PAYMENT_SUCCEEDED: Final = "checkout.session.async_payment_succeeded"
ASYNC_PAYMENT_FAILED: Final = "checkout.session.async_payment_failed"
HANDLED_TYPES: Final = frozenset({CHECKOUT_COMPLETED, ASYNC_PAYMENT_SUCCEEDED, ASYNC_PAYMENT_FAILED})

_MODES: Final = frozenset({"payment", "subscription"})
_PAYMENT_STATUSES: Final = frozenset({"paid", "unpaid", "no_payment_required"})


class Malformed(ValueError):
    """The body is not JSON, or the event lacks a field the purchase needs."""


@dataclass(frozen=True)
class EventInfo:
    """What identifies a delivery, for logs and for the ignored/duplicate answers."""

    id: str
    type: str
    session_id: str | None = None


@dataclass(frozen=True)
class PurchaseFacts:
    """A PassPurchase to create or merge into: its name, spec and labels."""

    name: str
    spec: Spec
    labels: dict[str, str]
    event: EventInfo


def parse_event(payload: bytes) -> dict[str, Any]:
    """The event object of a (verified) body; Malformed when it is not a JSON object with id and type."""
    try:
        event = json.loads(payload)
    except (ValueError, UnicodeDecodeError):
        raise Malformed("body is not valid JSON") from None
    except RecursionError:  # signed, yet nested beyond what any Stripe event is
        raise Malformed("body is nested too deeply") from None
    if not isinstance(event, dict):
        raise Malformed("body is not a JSON object")
    if not _nonempty_str(event.get("id")) or not _nonempty_str(event.get("type")):
        raise Malformed("event has no id or type")
    return event


def event_info(event: Mapping[str, Any]) -> EventInfo:
    data = event.get("data")
    obj = data.get("object") if isinstance(data, dict) else None
    session_id = _str(obj.get("id")) if isinstance(obj, dict) else None
    return EventInfo(id=str(event["id"]), type=str(event["type"]), session_id=session_id)


def facts_from_event(event: Mapping[str, Any], *, default_tenant: str) -> PurchaseFacts | None:
    """The purchase an event is about, or None when the gateway ignores it (other types, setup mode)."""
    info = event_info(event)
    if info.type not in HANDLED_TYPES:
        return None
    data = event.get("data")
    session = data.get("object") if isinstance(data, dict) else None
    if not isinstance(session, dict) or session.get("object", "checkout.session") != "checkout.session":
        raise Malformed("event carries no Checkout Session")
    if info.session_id is None:
        raise Malformed("Checkout Session has no id")
    if session.get("mode") == "setup":
        return None  # saves a payment method; nothing is bought
    spec = spec_from_session(session, default_tenant=default_tenant, source=Source.WEBHOOK)
    if info.type == ASYNC_PAYMENT_SUCCEEDED:
        # The event itself is Stripe's word that the money arrived, whatever the snapshot says.
        spec["paymentStatus"] = "paid"
    spec["events"] = [event_record(event)]
    return PurchaseFacts(name=purchase_name(info.session_id), spec=spec, labels=labels_for(spec), event=info)


def event_record(event: Mapping[str, Any]) -> dict[str, str]:
    """The entry of ``spec.events`` for an event: id, type and (when known) when Stripe created it."""
    record = {"id": str(event["id"]), "type": str(event["type"])}
    created = _timestamp(event.get("created"))
    if created:
        record["created"] = created
    return record


def spec_from_session(
    session: Mapping[str, Any], *, default_tenant: str, source: Source = Source.WEBHOOK
) -> Spec:
    """The spec facts of a Checkout Session. Null, empty or ill-typed values are left out, so that
    a later writer can fill them in (and so that the API's schema never rejects the object)."""
    metadata = _object(session.get("metadata"))
    details = _object(session.get("customer_details"))
    payment_status = session.get("payment_status")
    mode = session.get("mode")
    spec: Spec = {
        "checkoutSessionId": _str(session.get("id")),
        "livemode": session.get("livemode") if isinstance(session.get("livemode"), bool) else None,
        "tenant": _str(metadata.get("tenant")) or default_tenant,
        "customer": {
            "stripeCustomerId": _id(session.get("customer")),
            "userId": _str(session.get("client_reference_id")) or _str(metadata.get("user_id")),
            "email": _str(details.get("email")) or _str(session.get("customer_email")),
        },
        "pass": {"priceId": _str(metadata.get("price_id")), "passId": _str(metadata.get("pass_id"))},
        "mode": mode if mode in _MODES else None,
        "subscriptionId": _id(session.get("subscription")),
        "amountTotal": _int(session.get("amount_total")),
        "currency": _str(session.get("currency")),
        "paymentStatus": payment_status if payment_status in _PAYMENT_STATUSES else None,
        "purchasedAt": _timestamp(session.get("created")),
        "source": source.value,
    }
    return prune(spec)


def labels_for(spec: Mapping[str, Any]) -> dict[str, str]:
    """The tenant and customer labels of a spec; a value that is not a valid label value is left out."""
    customer = spec.get("customer") or {}
    candidates = {LABEL_TENANT: spec.get("tenant"), LABEL_CUSTOMER: customer.get("stripeCustomerId")}
    labels = {key: label_value(value) for key, value in candidates.items()}
    return {key: value for key, value in labels.items() if value}


def prune(value: Mapping[str, Any]) -> dict[str, Any]:
    """Drop None, empty strings and (after pruning) empty objects; keep 0 and False, which are facts."""
    result: dict[str, Any] = {}
    for key, item in value.items():
        if isinstance(item, Mapping):
            item = prune(item)
        if item is None or item == "" or item == {}:
            continue
        result[key] = item
    return result


def _object(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, dict) else {}


def _nonempty_str(value: Any) -> bool:
    return _str(value) is not None


def _str(value: Any) -> str | None:
    """A usable text value: non-empty, no NUL (PostgreSQL text cannot hold it), encodable as UTF-8
    (JSON escapes can smuggle in lone surrogates)."""
    if not isinstance(value, str) or not value or "\x00" in value:
        return None
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return None
    return value


def _id(value: Any) -> str | None:
    """An expandable field: the id string, or the ``id`` of the expanded object."""
    if isinstance(value, dict):
        value = value.get("id")
    return _str(value)


_INT64 = range(-(2**63), 2**63)


def _int(value: Any) -> int | None:
    """An integer that fits the schema's int64 (and the database's bigint)."""
    return value if isinstance(value, int) and not isinstance(value, bool) and value in _INT64 else None


def _timestamp(value: Any) -> str | None:
    """Unix seconds -> RFC 3339 in UTC (``2026-12-01T10:00:00Z``)."""
    seconds = _int(value)
    if seconds is None:
        return None
    try:
        moment = datetime.fromtimestamp(seconds, UTC)
    except (OverflowError, OSError, ValueError):
        return None
    # Not strftime("%Y"): it does not zero-pad years before 1000, which RFC 3339 requires.
    return f"{moment.year:04d}-{moment:%m-%dT%H:%M:%S}Z"
