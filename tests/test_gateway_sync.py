"""``POST /v1/customers/{id}/sync`` on aiohttp's test server: the real ``stripe`` library against the
local fake of the Stripe API, purchases stored on the Kubernetes API emulator."""

from __future__ import annotations

import time
from typing import Any

import pytest

from passops.resource import LABEL_CUSTOMER, PLURAL, purchase_name
from passops.testing import stripe_events as se
from passops.testing.emulator import EmulatedCluster
from passops.testing.fake_stripe import FakeStripe, redacted, secret_key
from tests.fixtures.stripe import SignDelivery
from tests.fixtures.sync_gateway import AUTH, TOKEN, Client, GatewayFactory, customer_id, recovered
from webhook_gateway.ratelimit import TokenBucket


async def sync(gateway: Client, customer: str, headers: dict[str, str] = AUTH) -> tuple[int, Any]:
    response = await gateway.post(f"/v1/customers/{customer}/sync", headers=headers)
    return response.status, await response.json()


def stored(emulator: EmulatedCluster, session_id: str) -> dict[str, Any] | None:
    return emulator.get(PLURAL, purchase_name(session_id))


async def test_sync_creates_the_purchase_whose_webhook_never_arrived(
    gateway: Client, fake_stripe: FakeStripe, emulator: EmulatedCluster
) -> None:
    customer = customer_id()
    session = fake_stripe.add_session(se.paid_session(customer=customer, metadata={"pass_id": "gold"}))
    before = recovered()

    status, answer = await sync(gateway, customer)

    assert status == 200
    assert answer == {
        "customer": customer,
        "purchases": [
            {
                "checkoutSessionId": session["id"],
                "name": purchase_name(session["id"]),
                "phase": "Pending",
                "created": True,
            }
        ],
    }
    body = stored(emulator, session["id"])
    assert body is not None
    assert body["spec"]["source"] == "sync"
    assert body["spec"]["paymentStatus"] == "paid" and body["spec"]["pass"] == {"passId": "gold"}
    assert body["metadata"]["labels"][LABEL_CUSTOMER] == customer
    assert recovered() == before + 1
    listed = fake_stripe.calls("/v1/checkout/sessions")[-1]
    assert listed.query["customer"] == customer and listed.query["status"] == "complete"
    assert int(listed.query["created[gte]"]) <= time.time() - 29 * 86400  # about the last 30 days


async def test_a_second_sync_creates_nothing(
    gateway: Client, fake_stripe: FakeStripe, emulator: EmulatedCluster
) -> None:
    customer = customer_id()
    session = fake_stripe.add_session(se.paid_session(customer=customer))
    assert (await sync(gateway, customer))[1]["purchases"][0]["created"] is True
    before = recovered()
    stored_before = stored(emulator, session["id"])

    status, answer = await sync(gateway, customer)

    assert status == 200
    assert [(p["checkoutSessionId"], p["created"]) for p in answer["purchases"]] == [(session["id"], False)]
    assert recovered() == before
    assert stored(emulator, session["id"]) == stored_before


async def test_a_purchase_the_webhook_stored_is_not_recovered_and_keeps_its_source(
    gateway: Client, fake_stripe: FakeStripe, emulator: EmulatedCluster, sign_delivery: SignDelivery
) -> None:
    customer = customer_id()
    session = fake_stripe.add_session(se.paid_session(customer=customer))
    body, headers = sign_delivery(se.event(se.CHECKOUT_COMPLETED, session))
    assert (await gateway.post("/webhooks/stripe", data=body, headers=headers)).status == 200
    before = recovered()

    status, answer = await sync(gateway, customer)

    assert status == 200 and answer["purchases"][0]["created"] is False
    assert recovered() == before
    purchase = stored(emulator, session["id"])
    assert purchase is not None and purchase["spec"]["source"] == "webhook"  # the first writer's


async def test_sync_records_a_payment_whose_success_webhook_was_lost(
    gateway: Client, fake_stripe: FakeStripe, emulator: EmulatedCluster, sign_delivery: SignDelivery
) -> None:
    customer = customer_id()
    unpaid = se.async_unpaid_session(customer=customer)
    body, headers = sign_delivery(se.event(se.CHECKOUT_COMPLETED, unpaid))
    assert (await gateway.post("/webhooks/stripe", data=body, headers=headers)).status == 200
    fake_stripe.add_session(dict(unpaid, payment_status="paid"))  # Stripe's word now

    assert (await sync(gateway, customer))[0] == 200

    purchase = stored(emulator, unpaid["id"])
    assert purchase is not None and purchase["spec"]["paymentStatus"] == "paid"


async def test_only_complete_recent_purchases_of_the_customer_are_synced(
    gateway: Client, fake_stripe: FakeStripe, emulator: EmulatedCluster
) -> None:
    customer = customer_id()
    now = int(time.time())
    unpaid = fake_stripe.add_session(se.async_unpaid_session(customer=customer, created=now - 60))
    paid = fake_stripe.add_session(se.paid_session(customer=customer, created=now - 30))
    skipped = [
        fake_stripe.add_session(
            se.checkout_session(customer=customer, status=status, payment_status="unpaid")
        )
        for status in ("open", "expired")
    ] + [
        fake_stripe.add_session(se.paid_session(customer=customer, created=now - 40 * 86400)),
        fake_stripe.add_session(se.paid_session(customer=customer_id())),
    ]

    status, answer = await sync(gateway, customer)

    assert status == 200
    assert [p["checkoutSessionId"] for p in answer["purchases"]] == [paid["id"], unpaid["id"]]  # newest first
    assert all(p["created"] for p in answer["purchases"])
    awaiting = stored(emulator, unpaid["id"])
    assert awaiting is not None and awaiting["spec"]["paymentStatus"] == "unpaid"  # the controller waits
    assert all(stored(emulator, s["id"]) is None for s in skipped)


async def test_unknown_customer_is_an_empty_list(gateway: Client, fake_stripe: FakeStripe) -> None:
    customer = customer_id()
    assert await sync(gateway, customer) == (200, {"customer": customer, "purchases": []})
    assert fake_stripe.requests[-1].status == 400  # Stripe: resource_missing, param customer


async def test_known_customer_without_sessions_is_an_empty_list(
    gateway: Client, fake_stripe: FakeStripe
) -> None:
    customer = customer_id()
    fake_stripe.add_customer(customer)
    assert await sync(gateway, customer) == (200, {"customer": customer, "purchases": []})


async def test_rate_limited_per_customer(gateway_for: GatewayFactory, fake_stripe: FakeStripe) -> None:
    gateway = await gateway_for(limiter=TokenBucket(interval=60, burst=2))
    customer, other = customer_id(), customer_id()
    fake_stripe.add_customer(customer)
    fake_stripe.add_customer(other)
    assert [(await sync(gateway, customer))[0] for _ in range(2)] == [200, 200]

    response = await gateway.post(f"/v1/customers/{customer}/sync", headers=AUTH)

    assert response.status == 429
    assert 0 < int(response.headers["Retry-After"]) <= 60
    assert (await response.json())["error"]["type"] == "rate_limited"
    assert len(fake_stripe.calls()) == 2  # refused before asking Stripe
    assert (await sync(gateway, other))[0] == 200  # another customer has its own bucket


@pytest.mark.parametrize("headers", [{}, {"Authorization": "Bearer wrong"}, {"Authorization": TOKEN}])
async def test_a_bad_token_is_refused(
    gateway: Client, fake_stripe: FakeStripe, headers: dict[str, str]
) -> None:
    response = await gateway.post(f"/v1/customers/{customer_id()}/sync", headers=headers)
    assert response.status == 401
    assert response.headers["WWW-Authenticate"] == "Bearer"
    assert (await response.json())["error"]["type"] == "unauthorized"
    assert fake_stripe.requests == []


async def test_not_configured_without_a_stripe_key(gateway_for: GatewayFactory) -> None:
    gateway = await gateway_for(api_key=None)
    status, answer = await sync(gateway, customer_id())
    assert status == 503 and answer["error"]["type"] == "not_configured"


async def test_not_a_customer_id_is_a_bad_request(gateway: Client, fake_stripe: FakeStripe) -> None:
    status, answer = await sync(gateway, "cs_test_a1notacustomer")
    assert status == 400 and answer["error"]["type"] == "invalid_customer"
    assert fake_stripe.requests == []


async def test_stripe_down_is_503(gateway: Client, fake_stripe: FakeStripe) -> None:
    fake_stripe.fail_next(1, status=502)
    response = await gateway.post(f"/v1/customers/{customer_id()}/sync", headers=AUTH)
    assert response.status == 503
    assert (await response.json())["error"]["type"] == "stripe_unavailable"
    assert response.headers["Retry-After"] == "5"


async def test_stripe_rate_limiting_the_gateway_passes_its_retry_after_on(
    gateway: Client, fake_stripe: FakeStripe
) -> None:
    fake_stripe.rate_limit_next(1, retry_after=7)
    response = await gateway.post(f"/v1/customers/{customer_id()}/sync", headers=AUTH)
    assert response.status == 503
    assert (await response.json())["error"]["type"] == "stripe_unavailable"
    assert response.headers["Retry-After"] == "7"


async def test_a_refused_stripe_key_is_503_and_never_quoted(gateway_for: GatewayFactory) -> None:
    wrong_key = secret_key()
    gateway = await gateway_for(api_key=wrong_key)
    response = await gateway.post(f"/v1/customers/{customer_id()}/sync", headers=AUTH)
    text = await response.text()
    assert response.status == 503 and '"stripe_auth_failed"' in text
    assert wrong_key not in text and redacted(wrong_key) not in text


def test_token_bucket_allows_a_burst_then_one_per_interval() -> None:
    now = [1000.0]
    bucket = TokenBucket(interval=10, burst=3, clock=lambda: now[0])
    assert [bucket.acquire("cus_a") for _ in range(3)] == [None, None, None]
    assert bucket.acquire("cus_a") == pytest.approx(10)
    assert bucket.acquire("cus_b") is None  # per key
    now[0] += 4
    assert bucket.acquire("cus_a") == pytest.approx(6)
    now[0] += 6
    assert bucket.acquire("cus_a") is None
    assert bucket.acquire("cus_a") == pytest.approx(10)
    now[0] += 1000  # refills to the burst, no further
    assert [bucket.acquire("cus_a") for _ in range(4)][-1] == pytest.approx(10)
