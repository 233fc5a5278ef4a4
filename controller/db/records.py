"""Plain immutable values the ledger takes and returns (no ORM objects leave ``controller.db``).

- ``UserMatch(user_id, matched_by, linked_customer)``; ``MatchedBy``: reference | customer | email |
  created.
- ``CatalogEntry(id, tenant, pass_id, stripe_price_id, name, duration_days)``.
- ``SubscriptionFacts``: what the row must say; ``period_start``/``period_end`` derive from
  ``purchased_at`` and ``duration_days``.
- ``UpsertResult(id, outcome)``; ``UpsertOutcome``: created | updated | unchanged.
- ``SubscriptionRecord``: a whole ``subscriptions`` row.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

ACTIVE = "active"


class MatchedBy(StrEnum):
    REFERENCE = "reference"
    CUSTOMER = "customer"
    EMAIL = "email"
    CREATED = "created"


class Source(StrEnum):
    WEBHOOK = "webhook"
    SYNC = "sync"
    BACKFILL = "backfill"
    MANUAL = "manual"


class UpsertOutcome(StrEnum):
    CREATED = "created"
    UPDATED = "updated"  # the row existed with other values (changed by hand, or new facts)
    UNCHANGED = "unchanged"  # a replay


@dataclass(frozen=True)
class UserMatch:
    user_id: int
    matched_by: MatchedBy
    linked_customer: bool = False  # the Stripe customer id was written onto the user just now


@dataclass(frozen=True)
class CatalogEntry:
    id: int
    tenant: str
    pass_id: str
    stripe_price_id: str
    name: str | None
    duration_days: int | None


def period_end(start: datetime, duration_days: int | None) -> datetime | None:
    return None if duration_days is None else start + timedelta(days=duration_days)


@dataclass(frozen=True)
class SubscriptionFacts:
    tenant: str
    checkout_session_id: str
    user_id: int
    pass_id: str
    purchased_at: datetime
    source: Source
    duration_days: int | None = None
    stripe_subscription_id: str | None = None
    stripe_customer_id: str | None = None
    livemode: bool = False
    amount_total: int | None = None
    currency: str | None = None
    status: str = ACTIVE

    def __post_init__(self) -> None:
        # A naive datetime would be read in the server's time zone: refuse the ambiguity.
        if self.purchased_at.tzinfo is None:
            raise ValueError("purchased_at must be timezone-aware")
        if not self.checkout_session_id:
            raise ValueError("checkout_session_id is required")

    @property
    def period_start(self) -> datetime:
        return self.purchased_at

    @property
    def period_end(self) -> datetime | None:
        return period_end(self.purchased_at, self.duration_days)


@dataclass(frozen=True)
class UpsertResult:
    id: int
    outcome: UpsertOutcome


@dataclass(frozen=True)
class SubscriptionRecord:
    id: int
    tenant: str
    user_id: int
    pass_id: str
    checkout_session_id: str
    stripe_subscription_id: str | None
    stripe_customer_id: str | None
    status: str
    period_start: datetime
    period_end: datetime | None
    source: str
    livemode: bool
    amount_total: int | None
    currency: str | None
    created_at: datetime
    updated_at: datetime
