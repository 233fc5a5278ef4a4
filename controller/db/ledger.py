"""The ledger: every read and write the controller makes, as typed async methods over an AsyncEngine.

``Ledger(engine)`` (the caller owns and disposes the engine):

- ``resolve_user(tenant, reference, stripe_customer_id, email, *, create) -> UserMatch | None``:
  by the app's reference, else the Stripe customer id, else the email (case-insensitive, oldest user
  first). A user found by reference or email that has no Stripe customer yet gets this one linked.
  When nothing matches and ``create`` is set, the user is inserted; concurrent resolutions of the
  same person yield one user. None when nothing matches and ``create`` is false, or when there is
  nothing to identify the user by.
- ``resolve_pass(tenant, pass_id, price_id) -> CatalogEntry | None``: by pass id, else by price id.
- ``upsert_subscription(facts) -> UpsertResult``: exactly one row per Checkout Session, idempotent;
  puts back a row changed by hand. Raises ``SubscriptionConflict`` (Stripe subscription id held by
  another session's row) or ``UnknownUser`` (user deleted meanwhile).
- ``get_subscription(checkout_session_id) -> SubscriptionRecord | None``,
  ``list_subscriptions(*, tenant, user_id, stripe_customer_id, limit) -> list[SubscriptionRecord]``.
- ``add_catalog_entry(tenant, pass_id, price_id, name, duration_days) -> CatalogEntry`` (upsert by
  price: a pass may have several prices, a known price is re-pointed), ``list_catalog(tenant)``.
- ``ping()``: a round trip, for readiness checks.

Every method raises ``DatabaseUnavailable`` for transient failures (see ``controller.db.errors``).
All statements run at READ COMMITTED; the uniqueness promises rest on constraints and
``INSERT ... ON CONFLICT``, not on isolation.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import sqlalchemy.exc
from sqlalchemy import Boolean, func, literal_column, select, text, tuple_, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from controller.db.errors import (
    DatabaseUnavailable,
    SubscriptionConflict,
    UnknownUser,
    translate_errors,
)
from controller.db.models import PassCatalogEntry, Subscription, User
from controller.db.records import (
    CatalogEntry,
    MatchedBy,
    SubscriptionFacts,
    SubscriptionRecord,
    UpsertOutcome,
    UpsertResult,
    UserMatch,
)

_SUBSCRIPTION_SESSION_KEY = "uq_subscriptions_checkout_session_id"
_SUBSCRIPTION_STRIPE_ID_KEY = "uq_subscriptions_stripe_subscription_id"
_SUBSCRIPTION_USER_FK = "fk_subscriptions_user_id_users"

# The columns an upsert sets (all but the conflict key); a row differing in any of them is restored.
_SUBSCRIPTION_FACT_COLUMNS = (
    "tenant",
    "user_id",
    "pass_id",
    "stripe_subscription_id",
    "stripe_customer_id",
    "status",
    "period_start",
    "period_end",
    "source",
    "livemode",
    "amount_total",
    "currency",
)


def _constraint_of(exc: sqlalchemy.exc.IntegrityError) -> str | None:
    diag = getattr(exc.orig, "diag", None)
    name = getattr(diag, "constraint_name", None)
    return name if isinstance(name, str) else None


def _blank_to_none(value: str | None) -> str | None:
    return value.strip() or None if value is not None else None


class Ledger:
    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine

    @asynccontextmanager
    async def _begin(self) -> AsyncIterator[AsyncConnection]:
        with translate_errors(self.engine.url):
            async with self.engine.begin() as connection:
                yield connection

    async def ping(self) -> None:
        async with self._begin() as connection:
            await connection.execute(text("SELECT 1"))

    # --- users ---------------------------------------------------------------------------------

    async def resolve_user(
        self,
        tenant: str,
        reference: str | None,
        stripe_customer_id: str | None,
        email: str | None,
        *,
        create: bool,
    ) -> UserMatch | None:
        reference, customer, email = map(_blank_to_none, (reference, stripe_customer_id, email))
        if reference is None and customer is None and email is None:
            return None
        async with self._begin() as connection:
            found = await self._find_user(connection, tenant, reference, customer, email)
            if found is None and create:
                await self._lock_identities(connection, tenant, reference, customer, email)
                # Re-check under the locks: a concurrent resolver may have just created the user.
                found = await self._find_user(connection, tenant, reference, customer, email)
                if found is None:
                    found = await self._insert_user(connection, tenant, reference, customer, email)
            if found is None:
                return None
            user_id, matched_by, has_customer = found
            linked = False
            if (
                customer is not None
                and not has_customer
                and matched_by in (MatchedBy.REFERENCE, MatchedBy.EMAIL)
            ):
                linked = await self._link_customer(connection, user_id, customer)
            return UserMatch(user_id, matched_by, linked)

    async def _find_user(
        self,
        connection: AsyncConnection,
        tenant: str,
        reference: str | None,
        customer: str | None,
        email: str | None,
    ) -> tuple[int, MatchedBy, bool] | None:
        lookups = (
            (MatchedBy.REFERENCE, reference, User.reference == reference),
            (MatchedBy.CUSTOMER, customer, User.stripe_customer_id == customer),
            (MatchedBy.EMAIL, email, func.lower(User.email) == func.lower(email)),
        )
        for matched_by, value, condition in lookups:
            if value is None:
                continue
            query = (
                select(User.id, User.stripe_customer_id.is_not(None))
                .where(User.tenant == tenant, condition)
                .order_by(User.id)  # several users may share an email: the oldest wins, always the same
                .limit(1)
            )
            row = (await connection.execute(query)).first()
            if row is not None:
                return row[0], matched_by, row[1]
        return None

    async def _lock_identities(
        self,
        connection: AsyncConnection,
        tenant: str,
        reference: str | None,
        customer: str | None,
        email: str | None,
    ) -> None:
        # The unique indexes cover reference and customer, but not email, and not two resolvers that
        # know the same person by different identifiers (one by reference+email, one by customer+email).
        # Locking every identifier, in a fixed order (no deadlocks), serializes those creations.
        keys = sorted(
            f"passops:user:{tenant}:{kind}:{value}"
            for kind, value in (
                ("reference", reference),
                ("customer", customer),
                ("email", email.lower() if email else None),
            )
            if value is not None
        )
        for key in keys:
            await connection.execute(
                text("SELECT pg_advisory_xact_lock(hashtextextended(:key, 0))"), {"key": key}
            )

    async def _insert_user(
        self,
        connection: AsyncConnection,
        tenant: str,
        reference: str | None,
        customer: str | None,
        email: str | None,
    ) -> tuple[int, MatchedBy, bool] | None:
        insert = (
            pg_insert(User)
            .values(tenant=tenant, reference=reference, stripe_customer_id=customer, email=email)
            .on_conflict_do_nothing()  # any unique index: the app itself may have inserted the user
            .returning(User.id)
        )
        user_id = (await connection.execute(insert)).scalar_one_or_none()
        if user_id is not None:
            return user_id, MatchedBy.CREATED, customer is not None
        found = await self._find_user(connection, tenant, reference, customer, email)
        if found is None:  # the conflicting row vanished between the two statements
            raise DatabaseUnavailable("user row changed concurrently; retry")
        return found

    async def _link_customer(self, connection: AsyncConnection, user_id: int, customer: str) -> bool:
        try:
            async with connection.begin_nested():
                result = await connection.execute(
                    update(User)
                    .where(User.id == user_id, User.stripe_customer_id.is_(None))
                    .values(stripe_customer_id=customer)
                )
        except sqlalchemy.exc.IntegrityError:
            return False  # another user took this customer id meanwhile; the match itself stands
        return bool(result.rowcount)

    # --- catalog -------------------------------------------------------------------------------

    async def resolve_pass(
        self, tenant: str, pass_id: str | None, price_id: str | None
    ) -> CatalogEntry | None:
        async with self._begin() as connection:
            for column, value in (
                (PassCatalogEntry.pass_id, _blank_to_none(pass_id)),
                (PassCatalogEntry.stripe_price_id, _blank_to_none(price_id)),
            ):
                if value is None:
                    continue
                # A pass sold by several prices: the oldest entry decides (they should agree).
                query = (
                    select(PassCatalogEntry.__table__)
                    .where(PassCatalogEntry.tenant == tenant, column == value)
                    .order_by(PassCatalogEntry.id)
                    .limit(1)
                )
                row = (await connection.execute(query)).mappings().first()
                if row is not None:
                    return _catalog_entry(row)
        return None

    async def add_catalog_entry(
        self,
        tenant: str,
        pass_id: str,
        price_id: str,
        name: str | None = None,
        duration_days: int | None = None,
    ) -> CatalogEntry:
        insert = pg_insert(PassCatalogEntry).values(
            tenant=tenant, pass_id=pass_id, stripe_price_id=price_id, name=name, duration_days=duration_days
        )
        # Keyed by price: `catalog add` of a known price re-points it; of a new price, adds one.
        upsert = insert.on_conflict_do_update(
            index_elements=[PassCatalogEntry.tenant, PassCatalogEntry.stripe_price_id],
            set_={
                "pass_id": insert.excluded.pass_id,
                "name": insert.excluded.name,
                "duration_days": insert.excluded.duration_days,
            },
        ).returning(*PassCatalogEntry.__table__.c)
        async with self._begin() as connection:
            row = (await connection.execute(upsert)).mappings().one()
        return _catalog_entry(row)

    async def list_catalog(self, tenant: str | None = None) -> list[CatalogEntry]:
        query = select(PassCatalogEntry.__table__).order_by(
            PassCatalogEntry.tenant, PassCatalogEntry.pass_id, PassCatalogEntry.stripe_price_id
        )
        if tenant is not None:
            query = query.where(PassCatalogEntry.tenant == tenant)
        async with self._begin() as connection:
            return [_catalog_entry(row) for row in (await connection.execute(query)).mappings()]

    # --- subscriptions -------------------------------------------------------------------------

    async def upsert_subscription(self, facts: SubscriptionFacts) -> UpsertResult:
        values: dict[str, Any] = {
            "checkout_session_id": facts.checkout_session_id,
            "tenant": facts.tenant,
            "user_id": facts.user_id,
            "pass_id": facts.pass_id,
            "stripe_subscription_id": facts.stripe_subscription_id,
            "stripe_customer_id": facts.stripe_customer_id,
            "status": facts.status,
            "period_start": facts.period_start,
            "period_end": facts.period_end,
            "source": facts.source.value,
            "livemode": facts.livemode,
            "amount_total": facts.amount_total,
            "currency": facts.currency,
        }
        table = Subscription.__table__
        insert = pg_insert(Subscription).values(values)
        current = tuple_(*(table.c[name] for name in _SUBSCRIPTION_FACT_COLUMNS))
        expected = tuple_(*(insert.excluded[name] for name in _SUBSCRIPTION_FACT_COLUMNS))
        upsert = insert.on_conflict_do_update(
            index_elements=[Subscription.checkout_session_id],
            set_={
                **{name: insert.excluded[name] for name in _SUBSCRIPTION_FACT_COLUMNS},
                "updated_at": func.now(),
            },
            # Only write when something differs: a replay leaves the row (and updated_at) alone.
            where=current.is_distinct_from(expected),
        ).returning(
            Subscription.id,
            # xmax is 0 on a freshly inserted tuple and set on an updated one.
            literal_column("xmax = 0", Boolean).label("inserted"),
        )
        try:
            async with self._begin() as connection:
                row = (await connection.execute(upsert)).first()
                if row is not None:
                    outcome = UpsertOutcome.CREATED if row.inserted else UpsertOutcome.UPDATED
                    return UpsertResult(row.id, outcome)
                # The WHERE was false: the row is already right (and locked by ON CONFLICT until commit).
                row_id = (
                    await connection.execute(
                        select(Subscription.id).where(
                            Subscription.checkout_session_id == facts.checkout_session_id
                        )
                    )
                ).scalar_one()
                return UpsertResult(row_id, UpsertOutcome.UNCHANGED)
        except sqlalchemy.exc.IntegrityError as exc:
            constraint = _constraint_of(exc)
            if constraint == _SUBSCRIPTION_STRIPE_ID_KEY:
                raise SubscriptionConflict(
                    f"Stripe subscription {facts.stripe_subscription_id!r} already belongs to another "
                    f"Checkout Session's row"
                ) from None
            if constraint == _SUBSCRIPTION_USER_FK:
                raise UnknownUser(f"user {facts.user_id} does not exist") from None
            raise

    async def get_subscription(self, checkout_session_id: str) -> SubscriptionRecord | None:
        query = select(Subscription.__table__).where(Subscription.checkout_session_id == checkout_session_id)
        async with self._begin() as connection:
            row = (await connection.execute(query)).mappings().first()
        return None if row is None else SubscriptionRecord(**row)

    async def list_subscriptions(
        self,
        *,
        tenant: str | None = None,
        user_id: int | None = None,
        stripe_customer_id: str | None = None,
        limit: int = 100,
    ) -> list[SubscriptionRecord]:
        """Newest first."""
        query = select(Subscription.__table__).order_by(
            Subscription.created_at.desc(), Subscription.id.desc()
        )
        if tenant is not None:
            query = query.where(Subscription.tenant == tenant)
        if user_id is not None:
            query = query.where(Subscription.user_id == user_id)
        if stripe_customer_id is not None:
            query = query.where(Subscription.stripe_customer_id == stripe_customer_id)
        async with self._begin() as connection:
            rows = (await connection.execute(query.limit(limit))).mappings()
            return [SubscriptionRecord(**row) for row in rows]


def _catalog_entry(row: Any) -> CatalogEntry:
    return CatalogEntry(
        id=row["id"],
        tenant=row["tenant"],
        pass_id=row["pass_id"],
        stripe_price_id=row["stripe_price_id"],
        name=row["name"],
        duration_days=row["duration_days"],
    )
