"""Connects the reconcile rules to the database layer: its types in, our error kinds out."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

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
            match = await self.ledger.resolve_user(tenant, reference, customer_id, email, create=create)
        except DatabaseUnavailable as exc:
            raise self._unavailable(exc) from None
        return None if match is None else ResolvedUser(match.user_id, match.matched_by.value)

    async def resolve_pass(
        self, tenant: str, pass_id: str | None, price_id: str | None
    ) -> ResolvedPass | None:
        try:
            entry = await self.ledger.resolve_pass(tenant, pass_id, price_id)
        except DatabaseUnavailable as exc:
            raise self._unavailable(exc) from None
        return (
            None if entry is None else ResolvedPass(entry.pass_id, entry.stripe_price_id, entry.duration_days)
        )

    async def record_subscription(self, request: SubscriptionRequest) -> int:
        try:
            source = Source(request.source)
        except ValueError:
            source = Source.WEBHOOK
        facts = SubscriptionFacts(
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
        try:
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


@asynccontextmanager
async def open_ledger(
    database_url: str, metrics: ControllerMetrics | None = None
) -> AsyncIterator[ReconcileLedger]:
    engine = create_engine(database_url)
    try:
        yield ReconcileLedger(Ledger(engine), metrics)
    finally:
        await engine.dispose()
