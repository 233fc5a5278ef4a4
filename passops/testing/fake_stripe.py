"""A local fake of the parts of the Stripe API passops calls, for the real ``stripe`` library.

Stripe itself is unreachable from tests (and must never be hit by them), so the library is pointed
at this server instead (``base_addresses={"api": fake.url}``). It answers in Stripe's documented
shapes for the API version the library pins (``stripe.api_version``):

- ``GET /v1/checkout/sessions/{id}``: the session, or a 404 ``resource_missing`` error;
- ``GET /v1/checkout/sessions/{id}/line_items``: a list object of line items with ``price`` objects;
- ``GET /v1/checkout/sessions?customer=&status=&created[gte]=``: a list, newest first.

Lists paginate as Stripe's do (``limit`` 1-100, default 10; ``starting_after`` an id of the previous
page; ``has_more``). Requests need ``Authorization: Bearer <the configured key>``, else a 401 in
Stripe's error shape with the key redacted as Stripe redacts it. Failure injection for tests:
``fail_next``, ``rate_limit_next`` (429 with ``Retry-After``) and ``delay``; ``requests`` logs
every request.
"""

from __future__ import annotations

import asyncio
import contextlib
import operator
import secrets
import string
import time
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

from aiohttp import web
from aiohttp.typedefs import Handler

from passops.testing.stripe_events import API_VERSION, stripe_id

Payload = dict[str, Any]

_MAX_LIMIT: Final = 100
_DEFAULT_LIMIT: Final = 10
_ALPHANUMERIC: Final = string.ascii_letters + string.digits
_CREATED_FILTERS: Final[dict[str, Callable[[int, int], bool]]] = {
    "gt": operator.gt,
    "gte": operator.ge,
    "lt": operator.lt,
    "lte": operator.le,
}


def secret_key() -> str:
    """A fresh test-mode secret key, shaped like Stripe's ``sk_test_...``."""
    return "sk_test_" + "".join(secrets.choice(_ALPHANUMERIC) for _ in range(99))


def redacted(key: str) -> str:
    """How Stripe echoes a rejected key: its prefix, asterisks, and the last four characters."""
    prefix, _, rest = key.rpartition("_")
    return f"{prefix}_{'*' * max(len(rest) - 4, 0)}{rest[-4:]}" if prefix else "*" * len(key)


@dataclass(frozen=True)
class LoggedRequest:
    method: str
    path: str
    query: dict[str, str]
    api_key: str | None
    stripe_version: str | None
    status: int = 0


@dataclass
class _Session:
    payload: Payload
    line_items: list[Payload] = field(default_factory=list)


def price(
    price_id: str, *, unit_amount: int = 1900, currency: str = "eur", recurring: bool = False
) -> Payload:
    """A Price object as it appears expanded in a line item."""
    return {
        "id": price_id,
        "object": "price",
        "active": True,
        "billing_scheme": "per_unit",
        "created": int(time.time()) - 86400,
        "currency": currency,
        "custom_unit_amount": None,
        "livemode": False,
        "lookup_key": None,
        "metadata": {},
        "nickname": None,
        "product": stripe_id("prod", 14),
        "recurring": (
            {"interval": "month", "interval_count": 1, "meter": None, "usage_type": "licensed"}
            if recurring
            else None
        ),
        "tax_behavior": "unspecified",
        "tiers_mode": None,
        "transform_quantity": None,
        "type": "recurring" if recurring else "one_time",
        "unit_amount": unit_amount,
        "unit_amount_decimal": str(unit_amount),
    }


def line_item(price_id: str, *, session: Mapping[str, Any]) -> Payload:
    """A Checkout Session line item (``object: item``) of one unit of ``price_id``."""
    amount = session.get("amount_total") or 0
    currency = session.get("currency") or "eur"
    return {
        "id": stripe_id("li"),
        "object": "item",
        "amount_discount": 0,
        "amount_subtotal": amount,
        "amount_tax": 0,
        "amount_total": amount,
        "currency": currency,
        "description": "Pass",
        "metadata": {},
        "price": price(
            price_id, unit_amount=amount, currency=currency, recurring=session.get("mode") == "subscription"
        ),
        "quantity": 1,
    }


def _error(status: int, type_: str, message: str, **extra: Any) -> web.Response:
    body = {"error": {"type": type_, "message": message, **extra}}
    return web.json_response(body, status=status, headers={"Request-Id": stripe_id("req", 14)})


def _no_such(what: str, id_: str, param: str) -> web.Response:
    return _error(
        404 if param == "session" else 400,
        "invalid_request_error",
        f"No such {what}: '{id_}'",
        code="resource_missing",
        param=param,
        doc_url="https://stripe.com/docs/error-codes/resource-missing",
    )


class FakeStripe:
    """The fake's state and its failure injection; ``run_fake_stripe`` serves it."""

    def __init__(self, api_key: str | None = None) -> None:
        self.api_key = api_key or secret_key()
        self.url = ""  # set once serving
        self.requests: list[LoggedRequest] = []
        self._sessions: dict[str, _Session] = {}
        self._customers: set[str] = set()
        self._failures: list[tuple[int, float | None]] = []
        self._delay = 0.0
        self._closing = asyncio.Event()

    # --- state -----------------------------------------------------------------------------------

    def add_session(self, session: Mapping[str, Any], line_items: Sequence[str] = ()) -> Payload:
        """Store a Checkout Session (as built by ``stripe_events``) with one line item per price id."""
        payload = dict(session)
        items = [line_item(price_id, session=payload) for price_id in line_items]
        self._sessions[str(payload["id"])] = _Session(payload, items)
        customer = payload.get("customer")
        if isinstance(customer, str):
            self._customers.add(customer)
        return payload

    def add_customer(self, customer_id: str) -> None:
        """A customer Stripe knows, with or without sessions (unknown ones get ``resource_missing``)."""
        self._customers.add(customer_id)

    # --- failure injection -----------------------------------------------------------------------

    def fail_next(self, n: int = 1, status: int = 500) -> None:
        """The next ``n`` requests answer ``status`` with Stripe's ``api_error`` body."""
        self._failures.extend([(status, None)] * n)

    def rate_limit_next(self, n: int = 1, retry_after: float = 1) -> None:
        """The next ``n`` requests answer 429 (``rate_limit``) with a ``Retry-After`` header."""
        self._failures.extend([(429, retry_after)] * n)

    def delay(self, seconds: float) -> None:
        """Hold every answer for ``seconds`` (0 to stop): for client timeouts."""
        self._delay = seconds

    def calls(self, path_prefix: str = "/v1/") -> list[LoggedRequest]:
        return [r for r in self.requests if r.path.startswith(path_prefix)]

    # --- HTTP ------------------------------------------------------------------------------------

    def app(self) -> web.Application:
        app = web.Application(middlewares=[self._middleware])
        app.router.add_get("/v1/checkout/sessions", self._list_sessions)
        app.router.add_get("/v1/checkout/sessions/{id}", self._get_session)
        app.router.add_get("/v1/checkout/sessions/{id}/line_items", self._list_line_items)
        return app

    @web.middleware
    async def _middleware(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        response = await self._answer(request, handler)
        scheme, _, token = request.headers.get("Authorization", "").partition(" ")
        self.requests.append(
            LoggedRequest(
                method=request.method,
                path=request.path,
                query=dict(request.query),
                api_key=token.strip() if scheme.lower() == "bearer" else None,
                stripe_version=request.headers.get("Stripe-Version"),
                status=response.status,
            )
        )
        return response

    async def _answer(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        if self._delay:
            # Released early on close, so that a test's teardown never waits out the delay.
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._closing.wait(), self._delay)
        if self._failures:
            status, retry_after = self._failures.pop(0)
            if retry_after is not None:
                limited = _error(
                    429,
                    "invalid_request_error",
                    "Request rate limit exceeded. Learn more about rate limits here "
                    "https://stripe.com/docs/rate-limits.",
                    code="rate_limit",
                )
                limited.headers["Retry-After"] = f"{retry_after:g}"
                return limited
            return _error(status, "api_error", "An unknown error occurred")
        refused = self._authenticate(request)
        if refused is not None:
            return refused
        try:
            response = await handler(request)
        except web.HTTPNotFound:
            return _error(
                404, "invalid_request_error", f"Unrecognized request URL ({request.method}: {request.path})."
            )
        response.headers.setdefault("Request-Id", stripe_id("req", 14))
        response.headers["Stripe-Version"] = request.headers.get("Stripe-Version") or API_VERSION
        return response

    def _authenticate(self, request: web.Request) -> web.Response | None:
        scheme, _, token = request.headers.get("Authorization", "").partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not token:
            return _error(
                401,
                "invalid_request_error",
                "You did not provide an API key. You need to provide your API key in the Authorization "
                "header, using Bearer auth (e.g. 'Authorization: Bearer YOUR_SECRET_KEY').",
            )
        if not secrets.compare_digest(token.encode(), self.api_key.encode()):
            return _error(401, "invalid_request_error", f"Invalid API Key provided: {redacted(token)}")
        return None

    async def _get_session(self, request: web.Request) -> web.Response:
        session = self._sessions.get(request.match_info["id"])
        if session is None:
            return _no_such("checkout.session", request.match_info["id"], "session")
        return web.json_response(session.payload)

    async def _list_line_items(self, request: web.Request) -> web.Response:
        session_id = request.match_info["id"]
        session = self._sessions.get(session_id)
        if session is None:
            return _no_such("checkout.session", session_id, "session")
        return _page(request, session.line_items, f"/v1/checkout/sessions/{session_id}/line_items")

    async def _list_sessions(self, request: web.Request) -> web.Response:
        sessions = [s.payload for s in self._sessions.values()]
        customer = request.query.get("customer")
        if customer is not None:
            if customer not in self._customers:
                return _no_such("customer", customer, "customer")
            sessions = [s for s in sessions if s.get("customer") == customer]
        if "status" in request.query:
            sessions = [s for s in sessions if s.get("status") == request.query["status"]]
        for op, keep in _CREATED_FILTERS.items():
            bound = request.query.get(f"created[{op}]")
            if bound is not None:
                sessions = [s for s in sessions if keep(int(s["created"]), int(bound))]
        sessions.sort(key=lambda s: int(s["created"]), reverse=True)  # newest first, as Stripe lists
        return _page(request, sessions, "/v1/checkout/sessions")


def _page(request: web.Request, items: Sequence[Payload], url: str) -> web.Response:
    try:
        limit = int(request.query.get("limit", _DEFAULT_LIMIT))
    except ValueError:
        limit = 0
    if not 1 <= limit <= _MAX_LIMIT:
        return _error(
            400,
            "invalid_request_error",
            f"Invalid integer: limit must be between 1 and {_MAX_LIMIT}",
            param="limit",
        )
    start = 0
    after = request.query.get("starting_after")
    if after is not None:
        ids = [item["id"] for item in items]
        if after not in ids:
            return _no_such("object", after, "starting_after")
        start = ids.index(after) + 1
    data = list(items[start : start + limit])
    return web.json_response(
        {"object": "list", "data": data, "has_more": start + limit < len(items), "url": url}
    )


@contextlib.asynccontextmanager
async def run_fake_stripe(api_key: str | None = None) -> AsyncIterator[FakeStripe]:
    """Serve a FakeStripe on 127.0.0.1 on a free port; ``fake.url`` is its API base."""
    fake = FakeStripe(api_key)
    runner = web.AppRunner(fake.app(), access_log=None, shutdown_timeout=1.0)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    try:
        sockets = getattr(site._server, "sockets", None) or []  # the bound port lives only there
        fake.url = f"http://127.0.0.1:{sockets[0].getsockname()[1]}"
        yield fake
    finally:
        fake._closing.set()
        await runner.cleanup()
