"""Status conditions after the Kubernetes API conventions (and kstatus: Ready, Reconciling, Stalled)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

READY = "Ready"
RECONCILING = "Reconciling"
STALLED = "Stalled"
PAYMENT_CONFIRMED = "PaymentConfirmed"
USER_RESOLVED = "UserResolved"

# Every type is set from the first visit, in this order, so tools never see a partial set.
ALL_TYPES = (READY, RECONCILING, STALLED, PAYMENT_CONFIRMED, USER_RESOLVED)


class Status(StrEnum):
    TRUE = "True"
    FALSE = "False"
    UNKNOWN = "Unknown"


@dataclass(frozen=True)
class Condition:
    type: str
    status: Status
    reason: str
    message: str

    def as_status(
        self, *, now: str, generation: int | None, previous: Mapping[str, Any] | None
    ) -> dict[str, Any]:
        # lastTransitionTime moves only when the status flips, as the API conventions require.
        unchanged = previous is not None and previous.get("status") == self.status.value
        transition = str(previous.get("lastTransitionTime")) if unchanged and previous else now
        result: dict[str, Any] = {
            "type": self.type,
            "status": self.status.value,
            "reason": self.reason,
            "message": self.message,
            "lastTransitionTime": transition,
        }
        if generation is not None:
            result["observedGeneration"] = generation
        return result


def by_type(conditions: Iterable[Mapping[str, Any]] | None) -> dict[str, Mapping[str, Any]]:
    return {str(c.get("type")): c for c in conditions or () if isinstance(c, Mapping)}


def render(
    conditions: Iterable[Condition],
    *,
    now: str,
    generation: int | None,
    previous: Iterable[Mapping[str, Any]] | None,
) -> list[dict[str, Any]]:
    old = by_type(previous)
    new = {c.type: c for c in conditions}
    missing = [t for t in ALL_TYPES if t not in new]
    if missing:
        raise ValueError(f"every condition type must be set, missing: {missing}")
    return [new[t].as_status(now=now, generation=generation, previous=old.get(t)) for t in ALL_TYPES]


def is_true(conditions: Iterable[Mapping[str, Any]] | None, type_: str) -> bool:
    found = by_type(conditions).get(type_)
    return found is not None and found.get("status") == Status.TRUE.value
