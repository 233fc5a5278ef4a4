"""The merge rules of PassPurchase specs: what a later delivery of the same session may change.

Stripe delivers events at least once and in no particular order, and the gateway, sync and backfill
may race, so a merge must be commutative enough that every order converges on the same facts:
- a fact already set stays (first writer wins); a missing or empty one is filled in;
- ``paymentStatus`` only moves forward (unpaid -> paid | no_payment_required), never back;
- ``events`` is the union by id, ordered by creation time (newest last), bounded to MAX_EVENTS.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Final

from passops.resource import LABEL_CUSTOMER, LABEL_TENANT, MAX_EVENTS

Spec = dict[str, Any]

# Higher is further along; equal ranks keep the first writer's value.
_PAYMENT_RANK: Final = {"unpaid": 0, "paid": 1, "no_payment_required": 1}


def is_empty(value: Any) -> bool:
    return value is None or value == "" or value == {} or value == []


def merge_spec(current: Mapping[str, Any], incoming: Mapping[str, Any]) -> Spec:
    """The spec after ``incoming`` facts are merged into the stored ``current`` ones (both unchanged)."""
    merged = _fill(current, incoming, skip=("paymentStatus", "events"))
    status = merge_payment_status(current.get("paymentStatus"), incoming.get("paymentStatus"))
    if status is not None:
        merged["paymentStatus"] = status
    events = merge_events(current.get("events") or [], incoming.get("events") or [])
    if events:
        merged["events"] = events
    return merged


def _fill(current: Mapping[str, Any], incoming: Mapping[str, Any], skip: Sequence[str] = ()) -> Spec:
    merged: Spec = {key: _copy(value) for key, value in current.items()}
    for key, new in incoming.items():
        if key in skip or is_empty(new):
            continue
        old = merged.get(key)
        if isinstance(old, Mapping) and isinstance(new, Mapping):
            merged[key] = _fill(old, new)  # customer, pass: fact by fact
        elif is_empty(old):
            merged[key] = _copy(new)
    return merged


def merge_payment_status(current: str | None, incoming: str | None) -> str | None:
    if current is None or current not in _PAYMENT_RANK:
        return incoming if incoming in _PAYMENT_RANK else current
    if incoming in _PAYMENT_RANK and _PAYMENT_RANK[incoming] > _PAYMENT_RANK[current]:
        return incoming
    return current


def merge_events(current: Sequence[Mapping[str, Any]], incoming: Sequence[Mapping[str, Any]]) -> list[Any]:
    seen: set[str] = set()
    events: list[dict[str, Any]] = []
    for record in [*current, *incoming]:
        event_id = record.get("id") if isinstance(record, Mapping) else None
        if not isinstance(event_id, str) or event_id in seen:
            continue
        seen.add(event_id)
        events.append(dict(record))
    # Stable: events without a time keep their arrival position relative to each other.
    events.sort(key=lambda record: str(record.get("created") or ""))
    return events[-MAX_EVENTS:]


def event_ids(spec: Mapping[str, Any]) -> set[str]:
    return {str(e.get("id")) for e in spec.get("events") or [] if isinstance(e, Mapping)}


def merge_labels(current: Mapping[str, str] | None, incoming: Mapping[str, str]) -> dict[str, str]:
    """Add the tenant/customer labels a first writer could not set; never change one (nor the phase)."""
    merged = dict(current or {})
    for key in (LABEL_TENANT, LABEL_CUSTOMER):
        if key not in merged and incoming.get(key):
            merged[key] = incoming[key]
    return merged


def _copy(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {key: _copy(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_copy(item) for item in value]
    return value
