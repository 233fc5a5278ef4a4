"""The gateway's HTTP application: Stripe's webhook endpoint, the purchase status API and the probes."""

from __future__ import annotations

import asyncio
import hmac
import logging
import time
from typing import Any, Final

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, generate_latest

from passops.config import Settings
from passops.kube import KubeError, PurchaseClient
from passops.resource import Phase, purchase_name
from webhook_gateway import metrics
from webhook_gateway.checkout import EventInfo, Malformed, event_info, facts_from_event, parse_event
from webhook_gateway.ratelimit import TokenBucket
from webhook_gateway.signature import InvalidSignature, verify
from webhook_gateway.store import Outcome, store_purchase
from webhook_gateway.sync import CustomerSync

DEFAULT_MAX_BODY_BYTES: Final = 256 * 1024
# Stripe waits a limited time for an answer; better a 503 (it retries) than its timeout.
DEFAULT_STORE_TIMEOUT: Final = 15.0
_CHUNK: Final = 64 * 1024

log = logging.getLogger("webhook_gateway")


class ConfigurationError(ValueError):
    """The gateway cannot run as configured (e.g. no signing secret: it would accept forgeries)."""


class _TooLarge(Exception):
    pass


def create_app(
    settings: Settings,
    purchases: PurchaseClient,
    *,
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
    store_timeout: float = DEFAULT_STORE_TIMEOUT,
    sync_limiter: TokenBucket | None = None,
) -> web.Application:
    """The aiohttp application. Raises ConfigurationError when no webhook secret is configured."""
    if not settings.stripe_webhook_secrets:
        raise ConfigurationError(
            "no Stripe webhook signing secret configured (PASSOPS_STRIPE_WEBHOOK_SECRETS); "
            "the gateway never accepts unsigned events"
        )
    if max_body_bytes <= 0:
        raise ConfigurationError("max_body_bytes must be positive")
    gateway = _Gateway(settings, purchases, max_body_bytes=max_body_bytes, store_timeout=store_timeout)
    app = web.Application()
    app.router.add_post("/webhooks/stripe", gateway.stripe_webhook)
    app.router.add_get("/v1/purchases/{checkoutSessionId}", gateway.get_purchase)
    sync = CustomerSync(settings, purchases, authorize=gateway._authorize, limiter=sync_limiter)
    app.router.add_post("/v1/customers/{stripeCustomerId}/sync", sync.handle)
    app.on_cleanup.append(sync.close)
    app.router.add_get("/healthz", gateway.healthz)
    app.router.add_get("/readyz", gateway.readyz)
    app.router.add_get("/metrics", gateway.metrics)
    return app


def error(status: int, type_: str, message: str, **headers: str) -> web.Response:
    return web.json_response({"error": {"type": type_, "message": message}}, status=status, headers=headers)


async def read_body(request: web.Request, limit: int) -> bytes:
    """At most ``limit`` bytes of the body: a declared length over it is refused before reading, and
    the read is capped too (chunked bodies declare none, and a declared length may lie)."""
    if request.content_length is not None and request.content_length > limit:
        raise _TooLarge
    chunks: list[bytes] = []
    size = 0
    while chunk := await request.content.read(_CHUNK):
        size += len(chunk)
        if size > limit:
            raise _TooLarge
        chunks.append(chunk)
    return b"".join(chunks)


class _Gateway:
    def __init__(
        self, settings: Settings, purchases: PurchaseClient, *, max_body_bytes: int, store_timeout: float
    ) -> None:
        self.settings = settings
        self.purchases = purchases
        self.max_body_bytes = max_body_bytes
        self.store_timeout = store_timeout

    async def stripe_webhook(self, request: web.Request) -> web.Response:
        started = time.perf_counter()
        outcome, response = await self._deliver(request)
        metrics.observe(outcome, time.perf_counter() - started)
        return response

    async def _deliver(self, request: web.Request) -> tuple[Outcome, web.Response]:
        # Never log the secrets, the signature header or the body: only ids, types and outcomes.
        try:
            body = await read_body(request, self.max_body_bytes)
        except _TooLarge:
            log.warning("webhook refused: body over %d bytes", self.max_body_bytes)
            return Outcome.TOO_LARGE, error(413, "too_large", f"body over {self.max_body_bytes} bytes")
        try:
            verify(body, request.headers.get("Stripe-Signature"), self.settings.stripe_webhook_secrets)
        except InvalidSignature as exc:
            log.warning("webhook refused: invalid signature (%s)", exc)
            return Outcome.INVALID_SIGNATURE, error(400, "invalid_signature", str(exc))
        try:
            event = parse_event(body)
            info = event_info(event)
            facts = facts_from_event(event, default_tenant=self.settings.default_tenant)
        except Malformed as exc:
            log.warning("webhook refused: malformed event (%s)", exc)
            return Outcome.MALFORMED, error(400, "malformed", str(exc))
        if facts is None:
            _log_delivery(info, Outcome.IGNORED)
            return Outcome.IGNORED, web.json_response({"outcome": Outcome.IGNORED.value})
        try:
            async with asyncio.timeout(self.store_timeout):
                stored = await store_purchase(self.purchases, facts)
        except (KubeError, TimeoutError) as exc:
            reason = str(exc) or type(exc).__name__
            _log_delivery(info, Outcome.UNAVAILABLE, logging.ERROR, f" purchase={facts.name} error={reason}")
            return Outcome.UNAVAILABLE, error(
                503, "unavailable", "the purchase could not be stored; retry later", **{"Retry-After": "5"}
            )
        _log_delivery(info, stored.outcome, extra=f" purchase={stored.name} written={stored.written}")
        return stored.outcome, web.json_response({"outcome": stored.outcome.value, "purchase": stored.name})

    async def get_purchase(self, request: web.Request) -> web.Response:
        refused = self._authorize(request)
        if refused is not None:
            return refused
        session_id = request.match_info["checkoutSessionId"]
        name = purchase_name(session_id)
        try:
            body = await self.purchases.find(name)
        except KubeError as exc:
            log.error("purchase lookup failed: purchase=%s error=%s", name, exc)
            return error(503, "unavailable", "the Kubernetes API is unavailable; retry later")
        if body is None or (body.get("spec") or {}).get("checkoutSessionId") != session_id:
            return error(404, "not_found", "no purchase for this Checkout Session")
        return web.json_response(purchase_view(session_id, body))

    def _authorize(self, request: web.Request) -> web.Response | None:
        expected = self.settings.api_token
        if not expected:
            return error(503, "not_configured", "the API is not configured (no PASSOPS_API_TOKEN)")
        scheme, _, token = request.headers.get("Authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(token.strip().encode(), expected.encode()):
            return error(
                401, "unauthorized", "a valid bearer token is required", **{"WWW-Authenticate": "Bearer"}
            )
        return None

    async def healthz(self, request: web.Request) -> web.Response:
        return web.json_response({"status": "ok"})

    async def readyz(self, request: web.Request) -> web.Response:
        try:
            established = await self.purchases.crd_established()
        except KubeError as exc:
            log.warning("not ready: %s", exc)
            return error(503, "unavailable", "the Kubernetes API is unreachable")
        if not established:
            return error(503, "unavailable", "the PassPurchase CRD is not installed or not established")
        return web.json_response({"status": "ready"})

    async def metrics(self, request: web.Request) -> web.Response:
        return web.Response(body=generate_latest(REGISTRY), headers={"Content-Type": CONTENT_TYPE_LATEST})


def purchase_view(session_id: str, body: dict[str, Any]) -> dict[str, Any]:
    """What the app's "processing your pass" page polls. A purchase the controller has not yet
    visited has no status: it is Pending."""
    status = body.get("status") or {}
    ready = next(
        (c for c in status.get("conditions") or [] if isinstance(c, dict) and c.get("type") == "Ready"), {}
    )
    return {
        "checkoutSessionId": session_id,
        "name": body["metadata"]["name"],
        "phase": status.get("phase") or Phase.PENDING.value,
        "ready": ready.get("status") == "True",
        "reason": ready.get("reason"),
        "subscriptionId": status.get("subscriptionId"),
    }


def _log_delivery(info: EventInfo, outcome: Outcome, level: int = logging.INFO, extra: str = "") -> None:
    log.log(
        level,
        "webhook event=%s type=%s session=%s outcome=%s%s",
        info.id,
        info.type,
        info.session_id or "-",
        outcome.value,
        extra,
    )
