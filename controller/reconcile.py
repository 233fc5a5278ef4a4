"""The reconciliation rules of a PassPurchase: plain async Python, no Kubernetes and no kopf.

Level-triggered: every visit decides from the current spec and the database alone, never from
which event arrived last, so replays, reordering and restarts converge on the same row.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Protocol

from controller.conditions import (
    PAYMENT_CONFIRMED,
    READY,
    RECONCILING,
    STALLED,
    USER_RESOLVED,
    Condition,
    by_type,
)
from controller.conditions import Status as S
from controller.outcome import ErrorInfo, Outcome, Requeue, Result
from controller.purchase import PurchaseView
from passops.config import UserPolicy
from passops.resource import Phase


class TransientError(Exception):
    """A dependency is down or slow (database, Stripe API): retry with backoff.

    ``retry_after``: the dependency asked us to wait at least this long (an HTTP Retry-After).
    """

    def __init__(self, reason: str, message: str, *, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message
        self.retry_after = retry_after


class PermanentError(Exception):
    """The data contradicts itself in a way retrying will not fix: a person must look (Stalled)."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message


@dataclass(frozen=True)
class ResolvedUser:
    user_id: int
    matched_by: str  # reference | customer | email | created


@dataclass(frozen=True)
class ResolvedPass:
    pass_id: str
    price_id: str | None
    duration_days: int | None


@dataclass(frozen=True)
class SubscriptionRequest:
    tenant: str
    checkout_session_id: str
    user_id: int
    pass_id: str
    purchased_at: datetime
    duration_days: int | None
    stripe_subscription_id: str | None
    stripe_customer_id: str | None
    source: str
    livemode: bool
    amount_total: int | None
    currency: str | None


class Ledger(Protocol):
    """What reconciliation needs from the database; transient failures raise TransientError."""

    async def resolve_user(
        self, tenant: str, reference: str | None, customer_id: str | None, email: str | None, *, create: bool
    ) -> ResolvedUser | None: ...

    async def resolve_pass(
        self, tenant: str, pass_id: str | None, price_id: str | None
    ) -> ResolvedPass | None: ...

    async def record_subscription(self, request: SubscriptionRequest) -> int: ...

    async def granted_pass(self, checkout_session_id: str) -> ResolvedPass | None:
        """The pass of the session's existing subscription row, if there is one."""
        ...


class LineItems(Protocol):
    """Looks up the price ids of a Checkout Session's line items (the Stripe API)."""

    async def price_ids(self, checkout_session_id: str) -> list[str]: ...


@dataclass(frozen=True)
class Reconciler:
    ledger: Ledger
    user_policy: UserPolicy
    default_tenant: str
    line_items: LineItems | None = None

    async def reconcile(self, purchase: PurchaseView) -> Outcome:
        if purchase.paused:
            return _paused(purchase)
        if purchase.payment_failed:
            return _payment_failed()
        if not purchase.payment_confirmed:
            return _awaiting_payment()
        try:
            return await self._reconcile_paid(purchase)
        except TransientError as exc:
            return _transient(exc, purchase)
        except PermanentError as exc:
            paid = Condition(
                PAYMENT_CONFIRMED, S.TRUE, "Paid", f"payment status {purchase.spec.get('paymentStatus')}"
            )
            return _stalled(exc.reason, exc.message, paid, _unknown_user(exc.reason), requeue=Requeue.SLOW)

    async def _reconcile_paid(self, purchase: PurchaseView) -> Outcome:
        paid = Condition(
            PAYMENT_CONFIRMED, S.TRUE, "Paid", f"payment status {purchase.spec.get('paymentStatus')}"
        )
        session_id = purchase.checkout_session_id
        if not session_id:  # the schema requires it; guard against objects written around the schema
            return _stalled(
                "InvalidSpec", "spec.checkoutSessionId is empty", paid, _unknown_user("InvalidSpec")
            )
        tenant = purchase.tenant or self.default_tenant

        create = self.user_policy is UserPolicy.CREATE
        user = await self.ledger.resolve_user(
            tenant, purchase.user_reference, purchase.stripe_customer_id, purchase.email, create=create
        )
        if user is None:
            if not (purchase.user_reference or purchase.stripe_customer_id or purchase.email):
                return _stalled(
                    "NoUserIdentity",
                    "the session carries no client_reference_id, customer or email to find the user by",
                    paid,
                    Condition(USER_RESOLVED, S.FALSE, "NoUserIdentity", "nothing to look the user up by"),
                )
            who = _identity(purchase)
            message = f"no user {who} yet; policy 'wait' retries until the app creates it"
            return Outcome(
                phase=Phase.PENDING,
                result=Result.RETRY,
                requeue=Requeue.BACKOFF,
                error=ErrorInfo("UserNotFound", message),
                conditions=(
                    Condition(READY, S.FALSE, "UserNotFound", message),
                    Condition(RECONCILING, S.TRUE, "UserNotFound", "waiting for the user to exist"),
                    Condition(STALLED, S.FALSE, "UserNotFound", "retrying with backoff"),
                    paid,
                    Condition(USER_RESOLVED, S.FALSE, "UserNotFound", message),
                ),
            )
        # One stable reason: how the user was matched differs between the first visit and replays.
        found = Condition(
            USER_RESOLVED,
            S.TRUE,
            "UserFound",
            f"user {user.user_id} (created by passops)"
            if user.matched_by == "created"
            else f"user {user.user_id} (matched by {user.matched_by})",
        )

        pass_ = await self._resolve_pass(tenant, purchase)
        if isinstance(pass_, str) and purchase.observed_generation == purchase.generation:
            # The same spec was granted before and the catalog changed since (a price removed): the
            # row says which pass was bought, and a catalog edit must not take it away. A spec edited
            # to an unknown pass is different: that edit needs a person (Stalled, the row is kept).
            pass_ = await self.ledger.granted_pass(session_id) or pass_
        if isinstance(pass_, str):
            return _stalled("UnknownPrice", pass_, paid, found, requeue=Requeue.SLOW, user_id=user.user_id)

        try:
            subscription_id = await self.ledger.record_subscription(
                SubscriptionRequest(
                    tenant=tenant,
                    checkout_session_id=session_id,
                    user_id=user.user_id,
                    pass_id=pass_.pass_id,
                    purchased_at=purchase.purchased_at or purchase.created_at or datetime.now(UTC),
                    duration_days=pass_.duration_days,
                    stripe_subscription_id=_opt_str(purchase.spec.get("subscriptionId")),
                    stripe_customer_id=purchase.stripe_customer_id,
                    source=str(purchase.spec.get("source") or "webhook"),
                    livemode=bool(purchase.spec.get("livemode", False)),
                    amount_total=_opt_int(purchase.spec.get("amountTotal")),
                    currency=_opt_str(purchase.spec.get("currency")),
                )
            )
        except PermanentError as exc:
            return _stalled(exc.reason, exc.message, paid, found, requeue=Requeue.SLOW, user_id=user.user_id)
        message = f"subscription {subscription_id} for user {user.user_id}, pass {pass_.pass_id}"
        return Outcome(
            phase=Phase.READY,
            result=Result.READY,
            user_id=user.user_id,
            subscription_id=subscription_id,
            pass_id=pass_.pass_id,
            conditions=(
                Condition(READY, S.TRUE, "SubscriptionActive", message),
                Condition(RECONCILING, S.FALSE, "SubscriptionActive", "nothing left to do"),
                Condition(STALLED, S.FALSE, "SubscriptionActive", "nothing left to do"),
                paid,
                found,
            ),
        )

    async def _resolve_pass(self, tenant: str, purchase: PurchaseView) -> ResolvedPass | str:
        """The catalog entry, or why there is none (a sentence for status and Events)."""
        fix = f"add it to the pass catalog of tenant {tenant!r} with `passops catalog add`, then resync"
        if purchase.pass_id or purchase.price_id:
            found = await self.ledger.resolve_pass(tenant, purchase.pass_id, purchase.price_id)
            if found is not None:
                return found
            what = f"pass {purchase.pass_id!r}" if purchase.pass_id else f"price {purchase.price_id!r}"
            return f"{what} is unknown: {fix}"
        if self.line_items is None or not purchase.checkout_session_id:
            return (
                "the session names no pass or price (metadata pass_id / price_id) and its line items "
                "cannot be looked up without a Stripe API key (PASSOPS_STRIPE_API_KEY)"
            )
        prices = await self.line_items.price_ids(purchase.checkout_session_id)
        for price_id in prices:
            found = await self.ledger.resolve_pass(tenant, None, price_id)
            if found is not None:
                return found
        if not prices:
            return "the session has no line items with a price"
        return f"price {', '.join(repr(p) for p in prices)} of the line items is unknown: {fix}"


def _identity(purchase: PurchaseView) -> str:
    if purchase.user_reference:
        return f"with reference {purchase.user_reference!r}"
    if purchase.stripe_customer_id:
        return f"with Stripe customer {purchase.stripe_customer_id!r}"
    return "with that email"  # an email is personal data: not in status or Events


def _unknown_user(reason: str) -> Condition:
    return Condition(USER_RESOLVED, S.UNKNOWN, reason, "not looked up yet")


def _kept(purchase: PurchaseView, type_: str, otherwise: Condition) -> Condition:
    """The condition as the last visit left it (what this visit did not re-evaluate), else ``otherwise``."""
    old = by_type(purchase.status.get("conditions")).get(type_)
    if old is None or old.get("status") not in tuple(S):
        return otherwise
    return Condition(type_, S(str(old.get("status"))), str(old.get("reason")), str(old.get("message")))


def _paused(purchase: PurchaseView) -> Outcome:
    message = "paused by the passops.dev/paused annotation: no database writes, no retries"

    def kept(type_: str) -> Condition:
        # Pausing changes nothing that was true: keep what the last visit found, as it found it.
        return _kept(purchase, type_, Condition(type_, S.UNKNOWN, "Paused", message))

    return Outcome(
        phase=Phase.PAUSED,
        result=Result.PAUSED,
        conditions=(
            kept(READY),
            Condition(RECONCILING, S.FALSE, "Paused", message),
            Condition(STALLED, S.FALSE, "Paused", message),
            kept(PAYMENT_CONFIRMED),
            kept(USER_RESOLVED),
        ),
    )


def _payment_failed() -> Outcome:
    message = "the asynchronous payment failed (checkout.session.async_payment_failed); no pass is granted"
    return Outcome(
        phase=Phase.FAILED,
        result=Result.FAILED,
        conditions=(
            Condition(READY, S.FALSE, "PaymentFailed", message),
            Condition(RECONCILING, S.FALSE, "PaymentFailed", message),
            Condition(STALLED, S.TRUE, "PaymentFailed", message),
            Condition(PAYMENT_CONFIRMED, S.FALSE, "PaymentFailed", message),
            _unknown_user("PaymentFailed"),
        ),
    )


def _awaiting_payment() -> Outcome:
    message = "waiting for checkout.session.async_payment_succeeded (bank debit or voucher payment)"
    return Outcome(
        phase=Phase.AWAITING_PAYMENT,
        result=Result.WAITING,
        conditions=(
            Condition(READY, S.FALSE, "AwaitingPayment", message),
            Condition(RECONCILING, S.TRUE, "AwaitingPayment", message),
            Condition(STALLED, S.FALSE, "AwaitingPayment", message),
            Condition(PAYMENT_CONFIRMED, S.FALSE, "AwaitingPayment", message),
            _unknown_user("AwaitingPayment"),
        ),
    )


def _stalled(
    reason: str,
    message: str,
    payment: Condition,
    user: Condition,
    *,
    requeue: Requeue = Requeue.NONE,
    user_id: int | None = None,
) -> Outcome:
    return Outcome(
        phase=Phase.RECONCILING,
        result=Result.STALLED,
        requeue=requeue,
        error=ErrorInfo(reason, message),
        user_id=user_id,
        conditions=(
            Condition(READY, S.FALSE, reason, message),
            Condition(RECONCILING, S.FALSE, reason, "a person must act; see Stalled"),
            Condition(STALLED, S.TRUE, reason, message),
            payment,
            user,
        ),
    )


def _transient(exc: TransientError, purchase: PurchaseView) -> Outcome:
    payment = Condition(
        PAYMENT_CONFIRMED, S.TRUE, "Paid", f"payment status {purchase.spec.get('paymentStatus')}"
    )
    user = _kept(purchase, USER_RESOLVED, _unknown_user(exc.reason))
    return Outcome(
        phase=Phase.RECONCILING,
        result=Result.RETRY,
        requeue=Requeue.BACKOFF,
        retry_after=exc.retry_after,
        error=ErrorInfo(exc.reason, exc.message),
        conditions=(
            Condition(READY, S.FALSE, exc.reason, exc.message),
            Condition(RECONCILING, S.TRUE, exc.reason, "retrying with backoff"),
            Condition(STALLED, S.FALSE, exc.reason, "retrying with backoff"),
            payment,
            user,
        ),
    )


def _opt_str(value: object) -> str | None:
    return value if isinstance(value, str) and value else None


def _opt_int(value: object) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None
