"""A typed, read-only view of a PassPurchase object as the controller needs it."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from passops.resource import ANNOTATION_RESYNC, is_paused

SUCCEEDED = "checkout.session.async_payment_succeeded"
FAILED = "checkout.session.async_payment_failed"
CONFIRMING_PAYMENT_STATUSES = frozenset({"paid", "no_payment_required"})


def parse_time(value: object) -> datetime | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def format_time(value: datetime) -> str:
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _str(mapping: Mapping[str, Any], key: str) -> str | None:
    value = mapping.get(key)
    return value if isinstance(value, str) and value else None


def _map(mapping: Mapping[str, Any], key: str) -> Mapping[str, Any]:
    value = mapping.get(key)
    return value if isinstance(value, Mapping) else {}


@dataclass(frozen=True)
class PurchaseView:
    name: str
    namespace: str
    generation: int | None
    resource_version: str | None
    created_at: datetime | None
    annotations: Mapping[str, str]
    labels: Mapping[str, str]
    spec: Mapping[str, Any]
    status: Mapping[str, Any]
    raw: Mapping[str, Any] = field(repr=False)

    @classmethod
    def from_body(cls, body: Mapping[str, Any]) -> PurchaseView:
        meta = _map(body, "metadata")
        generation = meta.get("generation")
        return cls(
            name=str(meta.get("name") or ""),
            namespace=str(meta.get("namespace") or ""),
            generation=generation if isinstance(generation, int) else None,
            resource_version=_str(meta, "resourceVersion"),
            created_at=parse_time(meta.get("creationTimestamp")),
            annotations={str(k): str(v) for k, v in _map(meta, "annotations").items()},
            labels={str(k): str(v) for k, v in _map(meta, "labels").items()},
            spec=_map(body, "spec"),
            status=_map(body, "status"),
            raw=body,
        )

    # --- facts from Stripe (spec) ---
    @property
    def checkout_session_id(self) -> str | None:
        return _str(self.spec, "checkoutSessionId")

    @property
    def tenant(self) -> str | None:
        return _str(self.spec, "tenant")

    @property
    def user_reference(self) -> str | None:
        return _str(_map(self.spec, "customer"), "userId")

    @property
    def stripe_customer_id(self) -> str | None:
        return _str(_map(self.spec, "customer"), "stripeCustomerId")

    @property
    def email(self) -> str | None:
        return _str(_map(self.spec, "customer"), "email")

    @property
    def pass_id(self) -> str | None:
        return _str(_map(self.spec, "pass"), "passId")

    @property
    def price_id(self) -> str | None:
        return _str(_map(self.spec, "pass"), "priceId")

    @property
    def event_types(self) -> frozenset[str]:
        events = self.spec.get("events")
        if not isinstance(events, list):
            return frozenset()
        return frozenset(str(e.get("type")) for e in events if isinstance(e, Mapping))

    @property
    def payment_confirmed(self) -> bool:
        return self.spec.get("paymentStatus") in CONFIRMING_PAYMENT_STATUSES or SUCCEEDED in self.event_types

    @property
    def payment_failed(self) -> bool:
        # A confirmed payment wins over a failure seen for the same session (events arrive in any order).
        return not self.payment_confirmed and FAILED in self.event_types

    @property
    def purchased_at(self) -> datetime | None:
        return parse_time(self.spec.get("purchasedAt"))

    # --- what people asked for (annotations) ---
    @property
    def paused(self) -> bool:
        return is_paused(dict(self.annotations))

    @property
    def resync_requested(self) -> str | None:
        """The annotation's value when set; "any new value" includes an empty one."""
        return self.annotations.get(ANNOTATION_RESYNC)

    @property
    def resync_pending(self) -> bool:
        requested = self.resync_requested
        return requested is not None and requested != self.status.get("lastHandledResyncAt")

    # --- what the controller recorded (status) ---
    @property
    def phase(self) -> str | None:
        return _str(self.status, "phase")

    @property
    def attempts(self) -> int:
        value = self.status.get("attempts")
        return value if isinstance(value, int) and value >= 0 else 0

    @property
    def observed_generation(self) -> int | None:
        value = self.status.get("observedGeneration")
        return value if isinstance(value, int) else None

    @property
    def next_attempt_at(self) -> datetime | None:
        return parse_time(self.status.get("nextAttemptAt"))

    @property
    def last_attempt_at(self) -> datetime | None:
        return parse_time(self.status.get("lastAttemptAt"))

    @property
    def ready_at(self) -> datetime | None:
        return parse_time(self.status.get("readyAt"))

    @property
    def failing_since(self) -> datetime | None:
        """When the current run of failed attempts began (reset by success and by a resync)."""
        error = self.status.get("lastError")
        if not self.attempts or not isinstance(error, Mapping):
            return None
        return parse_time(error.get("since"))
