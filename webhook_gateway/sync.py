"""``POST /v1/customers/{stripeCustomerId}/sync``: the "Missing pass?" button.

Asks Stripe for the customer's recent complete Checkout Sessions and stores each as a PassPurchase
with ``source: sync``: created when missing (the webhook never arrived, or not yet), merged when
present (so a payment that succeeded since, whose webhook was lost, is recorded too). The answer
lists every purchase with its phase, so the app can show progress at once.
"""

from __future__ import annotations

import logging
import math
import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Final

import aiohttp
import stripe
from aiohttp import web
from prometheus_client import Counter
from stripe.params.checkout import SessionListParams

from passops.config import Settings
from passops.kube import AlreadyExists, Body, KubeError, PurchaseClient
from passops.resource import Phase, Source, purchase_name
from passops.stripe_api import new_client, retry_after
from webhook_gateway.checkout import EventInfo, PurchaseFacts, labels_for, spec_from_session
from webhook_gateway.ratelimit import TokenBucket
from webhook_gateway.store import new_body, store_purchase

log = logging.getLogger("webhook_gateway.sync")

RECOVERED: Final = Counter(
    "passops_stripe_sync_recovered",
    "Purchases the customer sync created because no webhook delivery had stored them.",
)

DEFAULT_LOOKBACK: Final = 30 * 86400.0
DEFAULT_MAX_SESSIONS: Final = 20  # one page: the button answers fast and costs Stripe one call
DEFAULT_TIMEOUT: Final = 10.0
_CUSTOMER_ID: Final = re.compile(r"^cus_[A-Za-z0-9]{1,64}$")
_STRIPE_ERRORS: Final = (stripe.StripeError, aiohttp.ClientError, TimeoutError)

Authorize = Callable[[web.Request], web.Response | None]


class StripeUnavailable(Exception):
    """Stripe could not answer (down, slow, rate limiting us) or refused the gateway's key."""

    def __init__(self, message: str, *, auth: bool = False, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.auth = auth
        self.retry_after = retry_after


class StripeSessions:
    """A customer's recent complete Checkout Sessions, from the Stripe API."""

    def __init__(self, api_key: str, api_base: str, *, timeout: float = DEFAULT_TIMEOUT) -> None:
        # No retries inside the library: a person is waiting, and the app can press again.
        self._client, self._http = new_client(api_key, api_base, timeout)
        self._used = False

    async def recent(self, customer_id: str, *, since: int, limit: int) -> list[dict[str, Any]]:
        """Newest first; empty for a customer Stripe does not know. Raises StripeUnavailable."""
        params: SessionListParams = {
            "customer": customer_id,
            "status": "complete",
            "created": {"gte": since},
            "limit": limit,
        }
        try:
            self._used = True
            page = await self._client.v1.checkout.sessions.list_async(params=params)
        except stripe.InvalidRequestError as exc:
            if exc.code == "resource_missing" and getattr(exc, "param", None) == "customer":
                return []
            raise _unavailable(exc) from None
        except _STRIPE_ERRORS as exc:
            raise _unavailable(exc) from None  # not chained: the response would carry headers and all
        data = getattr(page, "data", None)
        if not isinstance(data, list):
            raise StripeUnavailable("the Stripe API answered with no list of sessions")
        # Skip what is not a session object with an id: one odd entry must not lose the others.
        return [
            item.to_dict(for_json=True)
            for item in data
            if isinstance(item, stripe.StripeObject) and isinstance(getattr(item, "id", None), str)
        ]

    async def close(self) -> None:
        if self._used:  # closing an unused transport would first open a session
            await self._http.close_async()  # type: ignore[no-untyped-call]  # untyped in stripe 16


def _unavailable(exc: BaseException) -> StripeUnavailable:
    if isinstance(exc, stripe.AuthenticationError | stripe.PermissionError):
        # Stripe's message quotes part of the key: never pass it on.
        return StripeUnavailable(f"Stripe refused the gateway's API key (HTTP {exc.http_status})", auth=True)
    if isinstance(exc, stripe.RateLimitError):
        return StripeUnavailable("Stripe is rate-limiting the gateway", retry_after=retry_after(exc.headers))
    if isinstance(exc, stripe.StripeError) and exc.http_status is not None:
        return StripeUnavailable(f"the Stripe API answered HTTP {exc.http_status}")
    cause = exc.__cause__ or exc
    if isinstance(cause, TimeoutError):
        return StripeUnavailable("the Stripe API did not answer in time")
    return StripeUnavailable(f"the Stripe API is unreachable ({type(cause).__name__})")


@dataclass(frozen=True)
class Synced:
    checkout_session_id: str
    name: str
    phase: str
    created: bool

    def to_json(self) -> dict[str, Any]:
        return {
            "checkoutSessionId": self.checkout_session_id,
            "name": self.name,
            "phase": self.phase,
            "created": self.created,
        }


def sync_facts(session: Mapping[str, Any], *, default_tenant: str) -> PurchaseFacts | None:
    """The purchase of a session as sync stores it, or None when there is nothing to store."""
    session_id = session.get("id")
    if not isinstance(session_id, str) or not session_id:
        return None
    if session.get("status") != "complete" or session.get("mode") == "setup":
        return None  # open: not bought yet; expired: never bought; setup: nothing bought
    spec = spec_from_session(session, default_tenant=default_tenant, source=Source.SYNC)
    if "checkoutSessionId" not in spec:  # an id the gateway refuses (NUL, lone surrogates...)
        return None
    # No event: the EventInfo only tells store_purchase's duplicate check that this is none.
    info = EventInfo(id=f"sync:{session_id}", type="sync", session_id=session_id)
    return PurchaseFacts(name=purchase_name(session_id), spec=spec, labels=labels_for(spec), event=info)


async def store_synced(purchases: PurchaseClient, facts: PurchaseFacts) -> Synced:
    """Create the purchase, or merge into the existing one. Raises passops.kube errors."""
    session_id = str(facts.spec["checkoutSessionId"])
    try:
        # Created here (not inside store_purchase) to know exactly whether sync was the first
        # writer: that is what the recovered counter counts.
        await purchases.create(new_body(facts))
    except AlreadyExists:
        pass
    else:
        RECOVERED.inc()
        return Synced(session_id, facts.name, Phase.PENDING.value, created=True)
    await store_purchase(purchases, facts)
    body = await purchases.find(facts.name)
    return Synced(session_id, facts.name, _phase(body), created=False)


def _phase(body: Body | None) -> str:
    status = (body or {}).get("status") or {}
    return str(status.get("phase") or Phase.PENDING.value)


class CustomerSync:
    """The endpoint: bearer token, Stripe configured, per-customer rate limit, then the sync."""

    def __init__(
        self,
        settings: Settings,
        purchases: PurchaseClient,
        *,
        authorize: Authorize,
        limiter: TokenBucket | None = None,
        lookback: float = DEFAULT_LOOKBACK,
        max_sessions: int = DEFAULT_MAX_SESSIONS,
    ) -> None:
        self._settings = settings
        self._purchases = purchases
        self._authorize = authorize
        self._limiter = limiter or TokenBucket()
        self._lookback = lookback
        self._max_sessions = max_sessions
        self._stripe = (
            StripeSessions(settings.stripe_api_key, settings.stripe_api_base)
            if settings.stripe_api_key
            else None
        )

    async def handle(self, request: web.Request) -> web.Response:
        refused = self._authorize(request)
        if refused is not None:
            return refused
        if self._stripe is None:
            return _error(
                503, "not_configured", "customer sync is not configured (no PASSOPS_STRIPE_API_KEY)"
            )
        customer = request.match_info["stripeCustomerId"]
        if not _CUSTOMER_ID.fullmatch(customer):
            return _error(400, "invalid_customer", "not a Stripe customer id (cus_...)")
        wait = self._limiter.acquire(customer)
        if wait is not None:
            return _error(
                429,
                "rate_limited",
                f"this customer was synced moments ago; retry in {math.ceil(wait)}s",
                **{"Retry-After": str(math.ceil(wait))},
            )
        since = int(time.time() - self._lookback)
        try:
            sessions = await self._stripe.recent(customer, since=since, limit=self._max_sessions)
        except StripeUnavailable as exc:
            log.error("sync customer=%s: %s", customer, exc)
            retry = str(math.ceil(exc.retry_after)) if exc.retry_after is not None else "5"
            type_ = "stripe_auth_failed" if exc.auth else "stripe_unavailable"
            return _error(503, type_, f"{exc}; retry later", **{"Retry-After": retry})
        synced: list[Synced] = []
        try:
            for session in sessions:
                facts = sync_facts(session, default_tenant=self._settings.default_tenant)
                if facts is not None:
                    synced.append(await store_synced(self._purchases, facts))
        except KubeError as exc:
            log.error("sync customer=%s: storing failed: %s", customer, exc)
            return _error(503, "unavailable", "the purchases could not be stored; retry later")
        created = sum(s.created for s in synced)
        log.info("sync customer=%s sessions=%d created=%d", customer, len(synced), created)
        return web.json_response({"customer": customer, "purchases": [s.to_json() for s in synced]})

    async def close(self, app: web.Application | None = None) -> None:
        if self._stripe is not None:
            await self._stripe.close()


def _error(status: int, type_: str, message: str, **headers: str) -> web.Response:
    return web.json_response({"error": {"type": type_, "message": message}}, status=status, headers=headers)
