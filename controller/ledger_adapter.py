"""Connects the reconcile rules to the database layer: its types in, our error kinds out."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager

import psycopg
import sqlalchemy.exc

from controller.db import (
    DatabaseUnavailable,
    Ledger,
    LedgerConflict,
    SubscriptionConflict,
    SubscriptionFacts,
    UnknownUser,
    create_engine,
)
from controller.db.records import Source
from controller.metrics import ControllerMetrics
from controller.reconcile import (
    PermanentError,
    ResolvedPass,
    ResolvedUser,
    SubscriptionRequest,
    TransientError,
)


def _invalid_data(exc: BaseException) -> PermanentError | None:
    """A value the database cannot store (NUL in text, a number or date out of range): retrying the
    same spec cannot help, a person must correct it."""
    driver = exc.orig if isinstance(exc, sqlalchemy.exc.DBAPIError) and exc.orig is not None else exc
    if isinstance(exc, OverflowError) or isinstance(driver, psycopg.DataError):
        detail = (
            str(driver).splitlines()[0][:200]
            if isinstance(driver, psycopg.DataError)
            else "date or number overflow"
        )
        return PermanentError(
            "InvalidData",
            f"the purchase holds a value the database cannot store ({detail}); correct the spec",
        )
    return None


@contextmanager
def _data_errors() -> Iterator[None]:
    try:
        yield
    except (sqlalchemy.exc.StatementError, psycopg.DataError, OverflowError) as exc:
        permanent = _invalid_data(exc)
        if permanent is None:
            raise
        raise permanent from None


class ReconcileLedger:
    """The `controller.reconcile.Ledger` protocol over `controller.db.Ledger`."""

    def __init__(self, ledger: Ledger, metrics: ControllerMetrics | None = None) -> None:
        self.ledger = ledger
        self._metrics = metrics

    def _unavailable(self, exc: DatabaseUnavailable) -> TransientError:
        if self._metrics is not None:
            self._metrics.db_errors.inc()
        return TransientError("DatabaseUnavailable", str(exc))  # already free of the URL's password

    async def resolve_user(
        self, tenant: str, reference: str | None, customer_id: str | None, email: str | None, *, create: bool
    ) -> ResolvedUser | None:
        try:
            with _data_errors():
                match = await self.ledger.resolve_user(tenant, reference, customer_id, email, create=create)
        except DatabaseUnavailable as exc:
            raise self._unavailable(exc) from None
        return None if match is None else ResolvedUser(match.user_id, match.matched_by.value)

    async def resolve_pass(
        self, tenant: str, pass_id: str | None, price_id: str | None
    ) -> ResolvedPass | None:
        try:
            with _data_errors():
                entry = await self.ledger.resolve_pass(tenant, pass_id, price_id)
        except DatabaseUnavailable as exc:
            raise self._unavailable(exc) from None
        return (
            None if entry is None else ResolvedPass(entry.pass_id, entry.stripe_price_id, entry.duration_days)
        )

    async def granted_pass(self, checkout_session_id: str) -> ResolvedPass | None:
        try:
            with _data_errors():
                row = await self.ledger.get_subscription(checkout_session_id)
        except DatabaseUnavailable as exc:
            raise self._unavailable(exc) from None
        if row is None:
            return None
        days = (row.period_end - row.period_start).days if row.period_end and row.period_start else None
        return ResolvedPass(row.pass_id, None, days)

    async def record_subscription(self, request: SubscriptionRequest) -> int:
        try:
            source = Source(request.source)
        except ValueError:
            source = Source.WEBHOOK
        try:
            with _data_errors():
                facts = _facts(request, source)
                return (await self.ledger.upsert_subscription(facts)).id
        except DatabaseUnavailable as exc:
            raise self._unavailable(exc) from None
        except SubscriptionConflict as exc:
            raise PermanentError("SubscriptionConflict", str(exc)) from None
        except UnknownUser as exc:
            # The user was deleted between resolution and the write: the next visit resolves again.
            raise TransientError("UserDeleted", str(exc)) from None
        except LedgerConflict as exc:
            raise PermanentError("DatabaseConflict", str(exc)) from None


def _facts(request: SubscriptionRequest, source: Source) -> SubscriptionFacts:
    return SubscriptionFacts(
        tenant=request.tenant,
        checkout_session_id=request.checkout_session_id,
        user_id=request.user_id,
        pass_id=request.pass_id,
        purchased_at=request.purchased_at,
        source=source,
        duration_days=request.duration_days,
        stripe_subscription_id=request.stripe_subscription_id,
        stripe_customer_id=request.stripe_customer_id,
        livemode=request.livemode,
        amount_total=request.amount_total,
        currency=request.currency,
    )


@asynccontextmanager
async def open_ledger(
    database_url: str, metrics: ControllerMetrics | None = None
) -> AsyncIterator[ReconcileLedger]:
    engine = create_engine(database_url)
    try:
        yield ReconcileLedger(Ledger(engine), metrics)
    finally:
        await engine.dispose()
