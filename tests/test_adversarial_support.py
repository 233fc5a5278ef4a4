"""Adversarial probes of the newest parts: the support CLI (`status`, `resync`, `catalog`), the gateway's
`/v1` API (customer sync, purchase look-up, the per-customer rate limit) and the controller's Stripe
line-item look-up. Real parts only: the emulator, embedded PostgreSQL, the local fake of Stripe.

Tests marked ``xfail(strict=True, reason="DEFECT: ...")`` document a defect found here.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import sys
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from passops.kube import PurchaseClient
from passops.resource import PLURAL, purchase_name
from passops.testing import stripe_events as se
from passops.testing.emulator import EmulatedCluster
from passops.testing.fake_stripe import FakeStripe, redacted, secret_key
from tests.fixtures.stack import running_stack
from tests.fixtures.sync_gateway import AUTH, TOKEN, Client, GatewayFactory, customer_id, recovered
from webhook_gateway.ratelimit import TokenBucket

PASSOPS = str(Path(sys.executable).with_name("passops"))
KUBECTL_PASSOPS = str(Path(sys.executable).with_name("kubectl-passops"))
SECRET_PW = "pw-Sekr1t-xyz"


async def raw_request(client: Client, request: bytes) -> tuple[int, bytes]:
    """Send exact bytes (headers aiohttp's client would refuse) and read the status and body."""
    url = client.make_url("/")
    reader, writer = await asyncio.open_connection(url.host, url.port)
    try:
        writer.write(request)
        await writer.drain()
        data = await asyncio.wait_for(reader.read(65536), 5)
    finally:
        writer.close()
        with contextlib.suppress(Exception):
            await writer.wait_closed()
    head, _, body = data.partition(b"\r\n\r\n")
    return int(head.split(b" ")[1]), body


# --- gateway: authorization -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("header", "status"),
    [
        (f"Bearer {TOKEN}", 200),
        (f"bearer {TOKEN}", 200),  # the scheme is case-insensitive (RFC 7235)
        (f"BEARER   {TOKEN}  ", 200),
        (f"Bearer {TOKEN}x", 401),
        (f"Bearer {TOKEN[:-1]}", 401),
        (f"Basic {TOKEN}", 401),
        (f"Bearer{TOKEN}", 401),
        ("Bearer", 401),
        ("Bearer ", 401),
        ("", 401),
        (f"Token {TOKEN}", 401),
    ],
)
async def test_authorization_header_variants(
    gateway: Client, fake_stripe: FakeStripe, header: str, status: int
) -> None:
    customer = customer_id()
    fake_stripe.add_customer(customer)
    response = await gateway.post(f"/v1/customers/{customer}/sync", headers={"Authorization": header})
    assert response.status == status
    body = await response.json()
    if status == 401:
        assert body["error"]["type"] == "unauthorized"
        assert response.headers["WWW-Authenticate"] == "Bearer"
        assert not fake_stripe.calls()  # refused before Stripe is asked


@pytest.mark.parametrize("path", ["/v1/customers/cus_x/sync", "/v1/purchases/cs_test_x"])
@pytest.mark.parametrize("token", ["T\xe9st-\u00fc".encode(), b"\xff\xfe\x00x", "\u2603".encode()])
async def test_non_ascii_bearer_tokens_are_a_json_401(gateway: Client, path: str, token: bytes) -> None:
    method = b"POST" if "sync" in path else b"GET"
    status, body = await raw_request(
        gateway,
        method + b" " + path.encode() + b" HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " + token + b"\r\n"
        b"Content-Length: 0\r\nConnection: close\r\n\r\n",
    )
    assert status in (400, 401), body
    if status == 401:
        assert b"unauthorized" in body


# --- gateway: customer ids and purchase ids with path tricks ---------------------------------------


@pytest.mark.parametrize(
    "customer",
    [
        "..",
        "%2E%2E",
        "cus_a%2Fb",
        "cus_a%2F..%2Fb",
        "cus_%00",
        "cus_" + "a" * 65,
        "cus_" + "a" * 5000,
        "cus_\u00e9",
        "CUS_abc",
        "cus_abc%20",
        "%20cus_abc",
        "cus_a-b",
        "cus_abc%3Fx=1",
    ],
)
async def test_odd_customer_ids_never_reach_stripe(
    gateway: Client, fake_stripe: FakeStripe, customer: str
) -> None:
    response = await gateway.post(f"/v1/customers/{customer}/sync", headers=AUTH)
    assert response.status in (400, 404), await response.text()
    assert not fake_stripe.calls()


async def test_customer_id_with_a_trailing_newline_is_refused(
    gateway: Client, fake_stripe: FakeStripe
) -> None:
    customer = customer_id()
    fake_stripe.add_customer(customer)
    for _ in range(3):
        assert (await gateway.post(f"/v1/customers/{customer}/sync", headers=AUTH)).status == 200
    assert (await gateway.post(f"/v1/customers/{customer}/sync", headers=AUTH)).status == 429
    # The same customer with a newline appended: a fresh bucket, and Stripe is asked again.
    response = await gateway.post(f"/v1/customers/{customer}%0A/sync", headers=AUTH)
    assert response.status == 400, await response.text()


@pytest.mark.parametrize(
    "session_id",
    [
        ".",
        "..",
        "%2E",
        "cs_test_a%2F..%2Fx",
        "cs_test_" + "A" * 5000,
        "cs_test_\u00e9\u2603",
        "cs_test_%00",
        "%20",
        "cs_test_a%3Fwatch=true",
    ],
)
async def test_odd_purchase_ids_are_404_not_500_or_503(gateway: Client, session_id: str) -> None:
    response = await gateway.get(f"/v1/purchases/{session_id}", headers=AUTH)
    assert response.status == 404, await response.text()
    if response.content_type == "application/json":
        assert (await response.json())["error"]["type"] == "not_found"
    else:  # '.' and '..' are normalised away: no route matches at all
        assert session_id in (".", "..", "%2E")


async def test_purchase_lookup_answers_only_the_exact_session(gateway: Client, sign_delivery: Any) -> None:
    session = se.paid_session(metadata={"pass_id": "day-pass"})
    body, headers = sign_delivery(se.event(se.CHECKOUT_COMPLETED, session))
    assert (await gateway.post("/webhooks/stripe", data=body, headers=headers)).status == 200
    ok = await gateway.get(f"/v1/purchases/{session['id']}", headers=AUTH)
    assert ok.status == 200 and (await ok.json())["phase"] == "Pending"
    # Same name (lower-cased) but another exact id: not this purchase.
    other = await gateway.get(f"/v1/purchases/{session['id'].upper()}", headers=AUTH)
    assert other.status == 404
    assert (await gateway.get(f"/v1/purchases/{session['id']}")).status == 401


# --- gateway: sync against a misbehaving Stripe ---------------------------------------------------


@pytest.mark.parametrize("status", [500, 502, 503])
async def test_sync_stripe_server_errors_are_503_with_retry_after(
    gateway: Client, fake_stripe: FakeStripe, status: int
) -> None:
    customer = customer_id()
    fake_stripe.add_session(se.paid_session(customer=customer))
    fake_stripe.fail_next(1, status=status)
    response = await gateway.post(f"/v1/customers/{customer}/sync", headers=AUTH)
    assert response.status == 503
    assert (await response.json())["error"]["type"] == "stripe_unavailable"
    assert response.headers["Retry-After"] == "5"
    assert fake_stripe.api_key not in await response.text()


@pytest.mark.parametrize("value", [float("inf"), float("nan")])
async def test_sync_with_a_non_finite_retry_after_is_a_503(
    gateway: Client, fake_stripe: FakeStripe, value: float
) -> None:
    customer = customer_id()
    fake_stripe.add_customer(customer)
    fake_stripe.rate_limit_next(1, retry_after=value)
    response = await gateway.post(f"/v1/customers/{customer}/sync", headers=AUTH)
    assert response.status == 503


async def test_sync_with_a_huge_retry_after_is_a_503(gateway: Client, fake_stripe: FakeStripe) -> None:
    customer = customer_id()
    fake_stripe.add_customer(customer)
    fake_stripe.rate_limit_next(1, retry_after=1e30)
    response = await gateway.post(f"/v1/customers/{customer}/sync", headers=AUTH)
    assert response.status == 503


@contextlib.asynccontextmanager
async def garbage_stripe(
    handler: Callable[[web.Request], Awaitable[web.StreamResponse]],
) -> AsyncIterator[str]:
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", handler)
    runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.5)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    try:
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        yield f"http://127.0.0.1:{port}"
    finally:
        await runner.cleanup()


async def _not_json(request: web.Request) -> web.Response:
    return web.Response(text="<html>gateway timeout</html>", content_type="text/html")


async def _list_without_data(request: web.Request) -> web.Response:
    return web.json_response({"object": "list", "has_more": False, "url": "/v1/checkout/sessions"})


async def _data_not_a_list(request: web.Request) -> web.Response:
    return web.json_response({"object": "list", "data": "nope", "has_more": False})


async def _sessions_of_odd_shape(request: web.Request) -> web.Response:
    return web.json_response(
        {
            "object": "list",
            "has_more": False,
            "data": [
                {"object": "checkout.session", "id": 5, "status": "complete"},
                {"object": "checkout.session", "status": "complete"},
                {"object": "checkout.session", "id": "cs_test_\ud800", "status": "complete"},
                "a string",
            ],
        }
    )


@pytest.mark.parametrize("handler", [_not_json])
async def test_sync_with_stripe_answering_garbage_is_a_503(
    gateway_for: GatewayFactory, handler: Callable[[web.Request], Awaitable[web.Response]]
) -> None:
    async with garbage_stripe(handler) as url:
        gateway = await gateway_for(api_base=url, api_key="sk_test_x")
        response = await gateway.post(f"/v1/customers/{customer_id()}/sync", headers=AUTH)
        assert response.status == 503
        assert (await response.json())["error"]["type"] == "stripe_unavailable"


@pytest.mark.parametrize("handler", [_list_without_data, _data_not_a_list, _sessions_of_odd_shape])
async def test_sync_with_stripe_answering_an_odd_list_is_not_a_500(
    gateway_for: GatewayFactory, handler: Callable[[web.Request], Awaitable[web.Response]]
) -> None:
    async with garbage_stripe(handler) as url:
        gateway = await gateway_for(api_base=url, api_key="sk_test_x")
        response = await gateway.post(f"/v1/customers/{customer_id()}/sync", headers=AUTH)
        assert response.status in (200, 503), await response.text()


async def test_sync_answers_fast_when_stripe_hangs_up(gateway_for: GatewayFactory) -> None:
    async def hang_up(request: web.Request) -> web.StreamResponse:
        assert request.transport is not None
        request.transport.close()
        return web.Response()

    async with garbage_stripe(hang_up) as url:
        gateway = await gateway_for(api_base=url, api_key="sk_test_x")
        started = time.monotonic()
        response = await gateway.post(f"/v1/customers/{customer_id()}/sync", headers=AUTH)
        assert response.status == 503 and time.monotonic() - started < 5


# --- gateway: concurrency, merging, the recovered counter -----------------------------------------


async def test_concurrent_syncs_of_one_customer_create_each_purchase_once(
    gateway: Client, fake_stripe: FakeStripe, emulator: EmulatedCluster, sign_delivery: Any
) -> None:
    customer = customer_id()
    sessions = [fake_stripe.add_session(se.paid_session(customer=customer)) for _ in range(6)]
    # One of them the webhook already stored: sync merges it, and it is not "recovered".
    body, headers = sign_delivery(se.event(se.CHECKOUT_COMPLETED, sessions[0]))
    assert (await gateway.post("/webhooks/stripe", data=body, headers=headers)).status == 200
    before = recovered()

    responses = await asyncio.gather(
        *(gateway.post(f"/v1/customers/{customer}/sync", headers=AUTH) for _ in range(3))
    )
    answers = [await r.json() for r in responses]
    assert [r.status for r in responses] == [200, 200, 200], answers

    created: dict[str, int] = {}
    for answer in answers:
        assert len(answer["purchases"]) == 6
        for purchase in answer["purchases"]:
            created[purchase["checkoutSessionId"]] = created.get(purchase["checkoutSessionId"], 0) + int(
                purchase["created"]
            )
    assert created[sessions[0]["id"]] == 0
    assert all(created[s["id"]] == 1 for s in sessions[1:]), created
    assert recovered() == before + 5
    for session in sessions:
        stored = emulator.get(PLURAL, purchase_name(session["id"]))
        assert stored is not None
    first = emulator.get(PLURAL, purchase_name(sessions[0]["id"]))
    assert first is not None and first["spec"]["source"] == "webhook"
    mine = [
        o
        for o in emulator.objects(PLURAL)
        if (o["spec"].get("customer") or {}).get("stripeCustomerId") == customer
    ]
    assert len(mine) == 6


# --- gateway: the rate limiter ---------------------------------------------------------------------


def test_rate_limiter_memory_stays_bounded_under_many_customers() -> None:
    now = [0.0]
    bucket = TokenBucket(interval=10, burst=3, clock=lambda: now[0])
    for i in range(10_300):  # each beyond 10,000 costs a full scan (see the next test)
        assert bucket.acquire(f"cus_{i}") is None
        now[0] += 0.0001
    assert len(bucket._buckets) <= 10_000


def test_rate_limiter_cost_per_new_customer_is_constant_when_full() -> None:
    now = [0.0]
    bucket = TokenBucket(interval=10, burst=3, clock=lambda: now[0])
    for i in range(10_000):
        bucket.acquire(f"cus_{i}")
    started = time.perf_counter()
    for i in range(200):
        bucket.acquire(f"cus_new_{i}")
    per_call = (time.perf_counter() - started) / 200
    assert per_call < 50e-6, f"{per_call * 1e6:.0f} us per new customer"


def test_rate_limited_customer_stays_limited_among_others() -> None:
    now = [0.0]
    bucket = TokenBucket(interval=10, burst=3, clock=lambda: now[0])
    for _ in range(3):
        assert bucket.acquire("cus_victim") is None
    wait = bucket.acquire("cus_victim")
    assert wait is not None and 9.9 <= wait <= 10.0
    for i in range(500):
        bucket.acquire(f"cus_{i}")
    assert bucket.acquire("cus_victim") is not None
    now[0] += 10.0
    assert bucket.acquire("cus_victim") is None


# --- controller: the Stripe line-item look-up ------------------------------------------------------


def _reason(body: dict[str, Any]) -> str:
    return str(((body.get("status") or {}).get("lastError") or {}).get("reason") or "")


async def test_line_items_rate_limited_honours_retry_after_then_becomes_ready(
    emulator: EmulatedCluster,
    clean_database_url: str,
    monkeypatch: pytest.MonkeyPatch,
    fake_stripe: FakeStripe,
) -> None:
    session = se.paid_session(client_reference_id=f"user-{uuid.uuid4().hex[:10]}")
    fake_stripe.add_session(session, line_items=["price_e2e_day"])
    fake_stripe.rate_limit_next(1, retry_after=3)
    async with running_stack(
        emulator,
        clean_database_url,
        monkeypatch,
        stripe_api_key=fake_stripe.api_key,
        stripe_api_base=fake_stripe.url,
    ) as stack:
        _, answer = await stack.deliver(se.event(se.CHECKOUT_COMPLETED, session))
        name = answer["purchase"]
        waiting = await stack.wait_for(name, lambda b: _reason(b) == "StripeUnavailable", within=10)
        status = waiting["status"]
        assert status["phase"] in ("Pending", "Reconciling")
        assert "retry after 3s" in status["lastError"]["message"]
        from datetime import datetime

        last = datetime.fromisoformat(status["lastAttemptAt"].replace("Z", "+00:00"))
        nxt = datetime.fromisoformat(status["nextAttemptAt"].replace("Z", "+00:00"))
        assert (nxt - last).total_seconds() >= 2.9  # not the 0.2 s backoff of the stack
        ready = await stack.wait_for_phase(name, "Ready", within=10)
        line_item_calls = fake_stripe.calls(f"/v1/checkout/sessions/{session['id']}/line_items")
        assert len(line_item_calls) == 2  # no hammering while Stripe asked to wait
        assert ready["status"]["passId"] == "day-pass" if "passId" in ready["status"] else True
        assert len(await stack.rows(session["id"])) == 1


async def _rate_limited_purchase(
    emulator: EmulatedCluster,
    db_url: str,
    monkeypatch: pytest.MonkeyPatch,
    fake: FakeStripe,
    retry_after: float,
    check: Callable[[Any, str], Awaitable[None]],
) -> None:
    session = se.paid_session(client_reference_id=f"user-{uuid.uuid4().hex[:10]}")
    fake.add_session(session, line_items=["price_e2e_day"])
    fake.rate_limit_next(1, retry_after=retry_after)
    async with running_stack(
        emulator, db_url, monkeypatch, stripe_api_key=fake.api_key, stripe_api_base=fake.url
    ) as stack:
        _, answer = await stack.deliver(se.event(se.CHECKOUT_COMPLETED, session))
        await check(stack, answer["purchase"])


async def test_line_items_absurd_retry_after_is_capped(
    emulator: EmulatedCluster,
    clean_database_url: str,
    monkeypatch: pytest.MonkeyPatch,
    fake_stripe: FakeStripe,
) -> None:
    from datetime import datetime

    async def check(stack: Any, name: str) -> None:
        body = await stack.wait_for(name, lambda b: _reason(b) == "StripeUnavailable", within=8)
        status = body["status"]
        last = datetime.fromisoformat(status["lastAttemptAt"].replace("Z", "+00:00"))
        nxt = datetime.fromisoformat(status["nextAttemptAt"].replace("Z", "+00:00"))
        assert (nxt - last).total_seconds() <= 3600, status["nextAttemptAt"]

    await _rate_limited_purchase(emulator, clean_database_url, monkeypatch, fake_stripe, 1e8, check)


async def test_line_items_over_two_pages_unknown_prices_stall_and_a_known_one_on_page_two_grants(
    emulator: EmulatedCluster,
    clean_database_url: str,
    monkeypatch: pytest.MonkeyPatch,
    fake_stripe: FakeStripe,
) -> None:
    unknown = se.paid_session(client_reference_id=f"user-{uuid.uuid4().hex[:10]}")
    fake_stripe.add_session(unknown, line_items=[f"price_unknown_{i:03d}" for i in range(150)])
    known = se.paid_session(client_reference_id=f"user-{uuid.uuid4().hex[:10]}")
    fake_stripe.add_session(
        known, line_items=[f"price_other_{i:03d}" for i in range(120)] + ["price_e2e_month"]
    )
    async with running_stack(
        emulator,
        clean_database_url,
        monkeypatch,
        stripe_api_key=fake_stripe.api_key,
        stripe_api_base=fake_stripe.url,
    ) as stack:
        _, first = await stack.deliver(se.event(se.CHECKOUT_COMPLETED, unknown))
        _, second = await stack.deliver(se.event(se.CHECKOUT_COMPLETED, known))
        body = await stack.wait_for(first["purchase"], lambda b: _reason(b) == "UnknownPrice", within=10)
        await stack.wait_for_phase(second["purchase"], "Ready", within=10)
        assert len(fake_stripe.calls(f"/v1/checkout/sessions/{unknown['id']}/line_items")) == 2
        stalled = next(c for c in body["status"]["conditions"] if c["type"] == "Stalled")
        assert stalled["status"] == "True"
        assert "price_unknown_149" in body["status"]["lastError"]["message"]  # the second page was read
        assert await stack.rows(unknown["id"]) == []
        rows = await stack.rows(known["id"])
        assert len(rows) == 1 and rows[0]["pass_id"] == "month-pass"


async def _wrong_key_purchase(
    emulator: EmulatedCluster,
    db_url: str,
    monkeypatch: pytest.MonkeyPatch,
    fake: FakeStripe,
    wrong_key: str,
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    session = se.paid_session(client_reference_id=f"user-{uuid.uuid4().hex[:10]}")
    fake.add_session(session, line_items=["price_e2e_day"])
    async with running_stack(
        emulator, db_url, monkeypatch, stripe_api_key=wrong_key, stripe_api_base=fake.url
    ) as stack:
        _, answer = await stack.deliver(se.event(se.CHECKOUT_COMPLETED, session))
        name = answer["purchase"]
        body = await stack.wait_for(name, lambda b: _reason(b) == "StripeAuthFailed", within=10)
        return body, await stack.purchases.list_events(name)


async def test_wrong_stripe_key_is_stalled_and_never_quoted(
    emulator: EmulatedCluster,
    clean_database_url: str,
    monkeypatch: pytest.MonkeyPatch,
    fake_stripe: FakeStripe,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO)  # the controller's default level
    wrong_key = secret_key()
    body, events = await _wrong_key_purchase(
        emulator, clean_database_url, monkeypatch, fake_stripe, wrong_key
    )
    # What holds: Stalled with an actionable reason; status and Events never quote the key.
    stalled = next(c for c in body["status"]["conditions"] if c["type"] == "Stalled")
    assert stalled["status"] == "True"
    for text in (str(body), str(events)):
        assert redacted(wrong_key) not in text and wrong_key[-4:] not in text
    assert wrong_key not in caplog.text
    # The defect: the stripe library's INFO log quotes Stripe's message with the key's tail.
    assert redacted(wrong_key) not in caplog.text


# --- CLI --------------------------------------------------------------------------------------------


async def cli(
    *args: str,
    kubeconfig: str | None,
    database_url: str | None = None,
    program: str = PASSOPS,
) -> tuple[int, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("PASSOPS_DATABASE_URL", "DATABASE_URL")}
    env["COLUMNS"] = "200"
    env.pop("KUBECONFIG", None)
    if kubeconfig is not None:
        env["KUBECONFIG"] = kubeconfig
    if database_url:
        env["PASSOPS_DATABASE_URL"] = database_url
    process = await asyncio.create_subprocess_exec(
        program, *args, env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT
    )
    try:
        out, _ = await asyncio.wait_for(process.communicate(), 30)
    except TimeoutError:
        process.kill()
        await process.wait()
        raise
    return int(process.returncode or 0), " ".join(out.decode(errors="replace").split())


def one_clear_sentence(code: int, out: str) -> None:
    assert code != 0, out
    assert "Traceback" not in out, out[:2000]
    assert "error:" in out, out[:2000]


@pytest.fixture
async def migrated(clean_database_url: str) -> str:
    return clean_database_url


@pytest.mark.parametrize(
    "args",
    [("--pass", "", "--price", "price_x"), ("--pass", "p", "--price", ""), ("--pass", "  ", "--price", " ")],
)
async def test_catalog_add_refuses_empty_pass_or_price(
    emulator: EmulatedCluster, migrated: str, args: tuple[str, ...]
) -> None:
    code, out = await cli("catalog", "add", *args, kubeconfig=emulator.kubeconfig, database_url=migrated)
    assert code != 0, out


async def test_catalog_add_refuses_a_non_price_id(emulator: EmulatedCluster, migrated: str) -> None:
    code, out = await cli(
        "catalog", "add", "--pass", "p", "--price", "prod_NotAPrice", kubeconfig=None, database_url=migrated
    )
    assert code == 2 and "price_" in out, out


async def test_catalog_add_days_over_the_column_is_one_sentence(
    emulator: EmulatedCluster, migrated: str
) -> None:
    code, out = await cli(
        "catalog",
        "add",
        "--pass",
        "p",
        "--price",
        "price_big",
        "--days",
        "99999999999",
        kubeconfig=None,
        database_url=migrated,
    )
    # Refused by the option's own range (100 years), before any database write.
    assert code == 2 and "Traceback" not in out and "Invalid value for '--days'" in out, out[:2000]


async def test_catalog_add_refuses_days_no_date_can_hold(emulator: EmulatedCluster, migrated: str) -> None:
    code, out = await cli(
        "catalog",
        "add",
        "--pass",
        "p",
        "--price",
        "price_long",
        "--days",
        "10000000",
        kubeconfig=None,
        database_url=migrated,
    )
    assert code != 0, out


async def test_catalog_days_zero_is_refused_and_tenants_are_separate(
    emulator: EmulatedCluster, migrated: str
) -> None:
    code, out = await cli(
        "catalog",
        "add",
        "--pass",
        "p",
        "--price",
        "price_z",
        "--days",
        "0",
        kubeconfig=None,
        database_url=migrated,
    )
    assert code == 2, out
    code, out = await cli(
        "catalog",
        "add",
        "--pass",
        "other-pass",
        "--price",
        "price_t",
        "--tenant",
        "other",
        kubeconfig=None,
        database_url=migrated,
    )
    assert code == 0 and "tenant other" in out, out
    code, out = await cli(
        "catalog",
        "add",
        "--pass",
        "again",
        "--price",
        "price_t",
        "--tenant",
        "other",
        kubeconfig=None,
        database_url=migrated,
    )
    assert code == 0 and "updated (was pass other-pass)" in out, out
    code, out = await cli("catalog", "list", "--tenant", "default", kubeconfig=None, database_url=migrated)
    assert code == 0 and "price_t" not in out, out
    code, out = await cli("catalog", "list", "--tenant", "other", kubeconfig=None, database_url=migrated)
    assert code == 0 and "price_t" in out and "again" in out, out


@pytest.mark.parametrize(
    "url",
    [
        f"postgresql://u:{SECRET_PW}@127.0.0.1:9/x",
        f"postgresql+psycopg://u:{SECRET_PW}%40x@127.0.0.1:9/x?connect_timeout=2",
    ],
)
async def test_dead_database_errors_never_show_the_password(emulator: EmulatedCluster, url: str) -> None:
    for args in (("catalog", "list"), ("catalog", "add", "--pass", "p", "--price", "price_p"), ("migrate",)):
        code, out = await cli(*args, kubeconfig=emulator.kubeconfig, database_url=url)
        one_clear_sentence(code, out)
        assert SECRET_PW not in out
        assert "cannot reach the database" in out or "migration failed" in out


@pytest.mark.parametrize(
    "url",
    [f"postgresql://u:{SECRET_PW}@127.0.0.1:notaport/x", f"mysql://u:{SECRET_PW}@127.0.0.1:9/x", "garbage"],
)
async def test_malformed_database_url_is_one_sentence(emulator: EmulatedCluster, url: str) -> None:
    code, out = await cli("catalog", "list", kubeconfig=emulator.kubeconfig, database_url=url)
    one_clear_sentence(code, out)
    assert SECRET_PW not in out


@pytest.mark.parametrize("content", [":::garbage: [", "", None])
async def test_garbage_kubeconfig_is_one_sentence(tmp_path: Path, content: str | None) -> None:
    path = tmp_path / "kubeconfig"
    if content is None:
        path.mkdir()
    else:
        path.write_text(content)
    code, out = await cli("status", "--all", kubeconfig=str(path))
    one_clear_sentence(code, out)


async def test_kubeconfig_list_with_a_missing_first_file(emulator: EmulatedCluster, tmp_path: Path) -> None:
    code, out = await cli(
        "status", "--all", kubeconfig=f"{tmp_path / 'missing'}{os.pathsep}{emulator.kubeconfig}"
    )
    assert code == 0, out


async def test_kubeconfig_list_with_the_real_file_first(emulator: EmulatedCluster, tmp_path: Path) -> None:
    code, out = await cli(
        "status", "--all", kubeconfig=f"{emulator.kubeconfig}{os.pathsep}{tmp_path / 'missing'}"
    )
    assert code == 0 and "no purchases match --all" in out, out


async def test_closed_port_kubeconfig_is_one_sentence_quickly(
    emulator: EmulatedCluster, tmp_path: Path
) -> None:
    text = await asyncio.to_thread(Path(emulator.kubeconfig).read_text)
    dead = tmp_path / "kubeconfig"
    await asyncio.to_thread(dead.write_text, text.replace(emulator.url, "http://127.0.0.1:9"))
    started = time.monotonic()
    for args in (("status", "--all"), ("resync", "--stalled", "--wait"), ("status", "x")):
        code, out = await cli(*args, kubeconfig=str(dead))
        one_clear_sentence(code, out)
        assert "cannot reach the Kubernetes API" in out
    assert time.monotonic() - started < 20


@pytest.mark.parametrize("command", ["status", "resync"])
@pytest.mark.parametrize("name", [".", ""])
async def test_names_that_are_path_segments_are_refused(
    emulator: EmulatedCluster, purchases: PurchaseClient, command: str, name: str
) -> None:
    await purchases.create(_purchase_body(se.checkout_session_id()))
    code, out = await cli(command, "--", name, kubeconfig=emulator.kubeconfig)
    one_clear_sentence(code, out)


@pytest.mark.parametrize("name", ["../x", "a/b", "\u00c4\u00d6 b", "a" * 300])
async def test_odd_names_are_not_found(emulator: EmulatedCluster, name: str) -> None:
    code, out = await cli("status", "--", name, kubeconfig=emulator.kubeconfig)
    one_clear_sentence(code, out)
    assert "no PassPurchase" in out or "is not a PassPurchase name" in out


@pytest.mark.parametrize("selector", ["passops.dev/phase='Ready'", "passops.dev/phase=R\u00e9ady", 'a"b=c'])
async def test_bad_selectors_are_one_sentence(emulator: EmulatedCluster, selector: str) -> None:
    code, out = await cli("status", "-l", selector, kubeconfig=emulator.kubeconfig)
    one_clear_sentence(code, out)
    assert "invalid label selector" in out


@pytest.mark.parametrize("value", ["-5", "nan"])
async def test_resync_refuses_a_negative_or_nan_timeout(
    emulator: EmulatedCluster, purchases: PurchaseClient, value: str
) -> None:
    body = await purchases.create(_purchase_body(se.checkout_session_id()))
    code, out = await cli(
        "resync", body["metadata"]["name"], "--wait", "--timeout", value, kubeconfig=emulator.kubeconfig
    )
    assert code == 2, out


def _purchase_body(session_id: str, *, failed: bool = False) -> dict[str, Any]:
    return {
        "apiVersion": "passops.dev/v1alpha1",
        "kind": "PassPurchase",
        "metadata": {
            "name": purchase_name(session_id),
            "labels": {
                "passops.dev/tenant": "default",
                **({"passops.dev/phase": "Failed"} if failed else {}),
            },
        },
        "spec": {
            "checkoutSessionId": session_id,
            "tenant": "default",
            "paymentStatus": "paid",
            "source": "manual",
        },
    }


async def test_status_all_of_300_purchases_is_fast(
    emulator: EmulatedCluster, purchases: PurchaseClient, migrated: str
) -> None:
    ids = [se.checkout_session_id() for _ in range(300)]
    for chunk in range(0, 300, 50):
        await asyncio.gather(*(purchases.create(_purchase_body(i)) for i in ids[chunk : chunk + 50]))
    started = time.monotonic()
    code, out = await cli("status", "--all", kubeconfig=emulator.kubeconfig, database_url=migrated)
    elapsed = time.monotonic() - started
    assert code == 0, out[:2000]
    assert out.count("checkout session") == 300
    assert out.count("database row none") == 300
    assert elapsed < 8, f"status --all of 300 took {elapsed:.1f}s"


async def test_resync_wait_timeout_zero_reports_each_and_exits_1(
    emulator: EmulatedCluster, purchases: PurchaseClient
) -> None:
    names = [
        (await purchases.create(_purchase_body(se.checkout_session_id(), failed=True)))["metadata"]["name"]
        for _ in range(2)
    ]
    code, out = await cli("resync", "--failed", "--wait", "--timeout", "0", kubeconfig=emulator.kubeconfig)
    assert code == 1, out
    for name in names:
        assert f"resync requested: {name}" in out and f"{name}: not handled within 0s" in out
        annotations = (await purchases.get(name))["metadata"]["annotations"]
        assert annotations["passops.dev/resync-requested-at"]


async def test_stalled_and_failed_together_select_their_intersection(
    emulator: EmulatedCluster, purchases: PurchaseClient
) -> None:
    failed = await purchases.create(_purchase_body(se.checkout_session_id(), failed=True))
    other = await purchases.create(_purchase_body(se.checkout_session_id()))
    code, out = await cli("status", "--stalled", "--failed", kubeconfig=emulator.kubeconfig)
    assert code == 0 and "no purchases match --stalled --failed" in out, out
    code, out = await cli("status", "--failed", kubeconfig=emulator.kubeconfig)
    assert failed["metadata"]["name"] in out and other["metadata"]["name"] not in out
    code, out = await cli("status", "x", "--all", kubeconfig=emulator.kubeconfig)
    one_clear_sentence(code, out)


async def test_kubectl_plugin_name_in_usage(emulator: EmulatedCluster) -> None:
    code, out = await cli("--help", kubeconfig=emulator.kubeconfig, program=KUBECTL_PASSOPS)
    assert code == 0 and "Usage: kubectl passops" in out, out
    code, out = await cli("status", kubeconfig=emulator.kubeconfig, program=KUBECTL_PASSOPS)
    one_clear_sentence(code, out)
