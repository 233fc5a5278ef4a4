"""The gateway's HTTP answers, on aiohttp's test server (Kubernetes: the in-memory stand-in of
test_gateway_store; the same paths on the emulator are in test_gateway_e2e)."""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer
from prometheus_client import REGISTRY

from passops.config import Settings
from passops.resource import purchase_name
from passops.testing import stripe_events as se
from tests.fixtures.stripe import SignDelivery
from tests.test_gateway_store import FakePurchases
from webhook_gateway import ConfigurationError, create_app

TOKEN = "t0ken-for-tests"
URL = "/webhooks/stripe"


def requests_total(outcome: str) -> float:
    return REGISTRY.get_sample_value("passops_webhook_requests_total", {"outcome": outcome}) or 0.0


@pytest.fixture
def api() -> FakePurchases:
    return FakePurchases()


@pytest.fixture
def settings(webhook_secret: str, second_webhook_secret: str) -> Settings:
    return Settings(stripe_webhook_secrets=(webhook_secret, second_webhook_secret), api_token=TOKEN)


@pytest.fixture
async def client(settings: Settings, api: FakePurchases) -> AsyncIterator[TestClient[Any, Any]]:
    app = create_app(settings, api.client(), max_body_bytes=64 * 1024)
    async with TestClient(TestServer(app)) as client:
        yield client


async def post(client: TestClient[Any, Any], body: bytes, headers: dict[str, str]) -> tuple[int, Any]:
    response = await client.post(URL, data=body, headers=headers)
    return response.status, await response.json()


def test_no_secret_configured_refuses_to_start(api: FakePurchases) -> None:
    with pytest.raises(ConfigurationError, match="secret"):
        create_app(Settings(stripe_webhook_secrets=()), api.client())


async def test_signed_checkout_completed_is_accepted_and_stored(
    client: TestClient[Any, Any], api: FakePurchases, sign_delivery: SignDelivery
) -> None:
    session = se.paid_session()
    before = requests_total("accepted")
    status, answer = await post(client, *sign_delivery(se.event(se.CHECKOUT_COMPLETED, session)))
    assert (status, answer) == (200, {"outcome": "accepted", "purchase": purchase_name(session["id"])})
    assert api.objects[purchase_name(session["id"])]["spec"]["checkoutSessionId"] == session["id"]
    assert requests_total("accepted") == before + 1


async def test_redelivery_of_the_same_event_answers_duplicate(
    client: TestClient[Any, Any], sign_delivery: SignDelivery
) -> None:
    delivery = sign_delivery(se.event(se.CHECKOUT_COMPLETED, se.paid_session()))
    assert (await post(client, *delivery))[1]["outcome"] == "accepted"
    status, answer = await post(client, *delivery)
    assert (status, answer["outcome"]) == (200, "duplicate")


async def test_rotation_with_two_secrets_accepts_either(
    client: TestClient[Any, Any], sign_delivery: SignDelivery, second_webhook_secret: str
) -> None:
    for secret in (None, second_webhook_secret):
        status, _ = await post(
            client, *sign_delivery(se.event(se.CHECKOUT_COMPLETED, se.paid_session()), secret)
        )
        assert status == 200


async def test_no_signature_header_answers_400_invalid_signature(
    client: TestClient[Any, Any], sign_delivery: SignDelivery, api: FakePurchases
) -> None:
    body, headers = sign_delivery(se.event(se.CHECKOUT_COMPLETED, se.paid_session()))
    del headers["Stripe-Signature"]
    before = requests_total("invalid_signature")
    status, answer = await post(client, body, headers)
    assert status == 400
    assert answer["error"]["type"] == "invalid_signature"
    assert requests_total("invalid_signature") == before + 1
    assert not api.objects


async def test_garbled_header_answers_400_invalid_signature(
    client: TestClient[Any, Any], sign_delivery: SignDelivery
) -> None:
    body, headers = sign_delivery(se.event(se.CHECKOUT_COMPLETED, se.paid_session()))
    headers["Stripe-Signature"] = "t=yesterday,v1=zz"
    status, answer = await post(client, body, headers)
    assert (status, answer["error"]["type"]) == (400, "invalid_signature")


async def test_wrong_secret_answers_400_invalid_signature(
    client: TestClient[Any, Any], sign_delivery: SignDelivery
) -> None:
    delivery = sign_delivery(se.event(se.CHECKOUT_COMPLETED, se.paid_session()), se.webhook_secret())
    status, answer = await post(client, *delivery)
    assert (status, answer["error"]["type"]) == (400, "invalid_signature")


async def test_tampered_body_answers_400_invalid_signature(
    client: TestClient[Any, Any], sign_delivery: SignDelivery, api: FakePurchases
) -> None:
    body, headers = sign_delivery(se.event(se.CHECKOUT_COMPLETED, se.async_unpaid_session()))
    status, answer = await post(client, body.replace(b'"unpaid"', b'"paid"'), headers)
    assert (status, answer["error"]["type"]) == (400, "invalid_signature")
    assert not api.objects


async def test_stale_timestamp_answers_400_invalid_signature(
    client: TestClient[Any, Any], sign_delivery: SignDelivery
) -> None:
    delivery = sign_delivery(
        se.event(se.CHECKOUT_COMPLETED, se.paid_session()), timestamp=int(time.time()) - 301
    )
    status, answer = await post(client, *delivery)
    assert (status, answer["error"]["type"]) == (400, "invalid_signature")
    assert "tolerance" in answer["error"]["message"]


async def test_signed_malformed_json_answers_400_malformed(
    client: TestClient[Any, Any], webhook_secret: str
) -> None:
    body = b'{"id": "evt_1", "type": '
    before = requests_total("malformed")
    status, answer = await post(client, body, {"Stripe-Signature": se.sign(body, webhook_secret)})
    assert (status, answer["error"]["type"]) == (400, "malformed")
    assert requests_total("malformed") == before + 1


async def test_signed_checkout_event_without_session_answers_400_malformed(
    client: TestClient[Any, Any], sign_delivery: SignDelivery
) -> None:
    event = se.event(se.CHECKOUT_COMPLETED, se.paid_session())
    event["data"] = {}
    status, answer = await post(client, *sign_delivery(event))
    assert (status, answer["error"]["type"]) == (400, "malformed")


async def test_oversized_body_with_content_length_answers_413(
    client: TestClient[Any, Any], webhook_secret: str
) -> None:
    body = b"{" + b" " * (64 * 1024) + b"}"
    before = requests_total("too_large")
    status, answer = await post(client, body, {"Stripe-Signature": se.sign(body, webhook_secret)})
    assert (status, answer["error"]["type"]) == (413, "too_large")
    assert requests_total("too_large") == before + 1


async def test_oversized_chunked_body_without_content_length_answers_413(
    client: TestClient[Any, Any], webhook_secret: str
) -> None:
    async def chunks() -> AsyncIterator[bytes]:
        for _ in range(100):
            yield b" " * 4096

    response = await client.post(URL, data=chunks(), headers={"Stripe-Signature": "t=1,v1=00"})
    assert response.status == 413
    assert (await response.json())["error"]["type"] == "too_large"


async def test_unknown_event_type_answers_200_ignored(
    client: TestClient[Any, Any], sign_delivery: SignDelivery, api: FakePurchases
) -> None:
    before = requests_total("ignored")
    status, answer = await post(client, *sign_delivery(se.event("invoice.paid", se.paid_session())))
    assert (status, answer) == (200, {"outcome": "ignored"})
    assert requests_total("ignored") == before + 1
    assert not api.objects


async def test_setup_mode_session_answers_200_ignored(
    client: TestClient[Any, Any], sign_delivery: SignDelivery, api: FakePurchases
) -> None:
    session = se.checkout_session(mode="setup", payment_status="no_payment_required", amount_total=None)
    status, answer = await post(client, *sign_delivery(se.event(se.CHECKOUT_COMPLETED, session)))
    assert (status, answer) == (200, {"outcome": "ignored"})
    assert not api.objects


async def test_api_down_answers_503_unavailable_then_redelivery_is_stored(
    client: TestClient[Any, Any], sign_delivery: SignDelivery, api: FakePurchases
) -> None:
    delivery = sign_delivery(se.event(se.CHECKOUT_COMPLETED, se.paid_session()))
    api.down = True
    before = requests_total("unavailable")
    status, answer = await post(client, *delivery)
    assert (status, answer["error"]["type"]) == (503, "unavailable")
    assert requests_total("unavailable") == before + 1
    api.down = False
    status, answer = await post(client, *delivery)
    assert (status, answer["outcome"]) == (200, "accepted")
    assert len(api.objects) == 1


async def test_logs_carry_ids_and_never_secrets_signature_or_body(
    client: TestClient[Any, Any],
    sign_delivery: SignDelivery,
    webhook_secret: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    session = se.paid_session(customer_email="private@example.com")
    event = se.event(se.CHECKOUT_COMPLETED, session)
    body, headers = sign_delivery(event)
    caplog.set_level(logging.DEBUG)
    await post(client, body, headers)
    await post(client, body.replace(b"1900", b"1901"), headers)
    text = caplog.text
    assert event["id"] in text and session["id"] in text and "accepted" in text
    for secret in (webhook_secret, headers["Stripe-Signature"], "private@example.com", "buyer@example.com"):
        assert secret not in text


async def test_purchase_api_answers_phase_ready_reason_subscription(
    client: TestClient[Any, Any], sign_delivery: SignDelivery, api: FakePurchases
) -> None:
    session = se.subscription_session()
    await post(client, *sign_delivery(se.event(se.CHECKOUT_COMPLETED, session)))
    name = purchase_name(session["id"])
    auth = {"Authorization": f"Bearer {TOKEN}"}
    response = await client.get(f"/v1/purchases/{session['id']}", headers=auth)
    assert response.status == 200
    assert await response.json() == {
        "checkoutSessionId": session["id"],
        "name": name,
        "phase": "Pending",
        "ready": False,
        "reason": None,
        "subscriptionId": None,
    }
    api.objects[name]["status"] = {
        "phase": "Ready",
        "subscriptionId": 42,
        "conditions": [{"type": "Ready", "status": "True", "reason": "SubscriptionActive"}],
    }
    answer = await (await client.get(f"/v1/purchases/{session['id']}", headers=auth)).json()
    assert answer["phase"] == "Ready" and answer["ready"] is True
    assert (answer["reason"], answer["subscriptionId"]) == ("SubscriptionActive", 42)


@pytest.mark.parametrize("header", [None, "Bearer wrong", f"Basic {TOKEN}", TOKEN, "Bearer "])
async def test_purchase_api_without_valid_bearer_token_answers_401(
    client: TestClient[Any, Any], header: str | None
) -> None:
    headers = {"Authorization": header} if header is not None else {}
    response = await client.get("/v1/purchases/cs_test_x", headers=headers)
    assert response.status == 401
    assert (await response.json())["error"]["type"] == "unauthorized"


async def test_purchase_api_unknown_session_answers_404(client: TestClient[Any, Any]) -> None:
    response = await client.get("/v1/purchases/cs_test_nope", headers={"Authorization": f"Bearer {TOKEN}"})
    assert response.status == 404
    assert (await response.json())["error"]["type"] == "not_found"


async def test_purchase_api_without_configured_token_answers_503_never_open(
    api: FakePurchases, webhook_secret: str
) -> None:
    app = create_app(Settings(stripe_webhook_secrets=(webhook_secret,)), api.client())
    async with TestClient(TestServer(app)) as client:
        for headers in ({}, {"Authorization": "Bearer "}, {"Authorization": "Bearer None"}):
            response = await client.get("/v1/purchases/cs_test_x", headers=headers)
            assert response.status == 503
            assert (await response.json())["error"]["type"] == "not_configured"


async def test_purchase_api_kubernetes_down_answers_503(
    client: TestClient[Any, Any], api: FakePurchases
) -> None:
    api.down = True
    response = await client.get("/v1/purchases/cs_test_x", headers={"Authorization": f"Bearer {TOKEN}"})
    assert response.status == 503


async def test_healthz_and_readyz(client: TestClient[Any, Any], api: FakePurchases) -> None:
    assert (await client.get("/healthz")).status == 200
    assert (await client.get("/readyz")).status == 200
    api.established = False
    assert (await client.get("/readyz")).status == 503
    api.down = True
    assert (await client.get("/readyz")).status == 503
    assert (await client.get("/healthz")).status == 200


async def test_metrics_expose_every_outcome_and_the_duration(client: TestClient[Any, Any]) -> None:
    response = await client.get("/metrics")
    assert response.status == 200
    text = await response.text()
    for outcome in (
        "accepted",
        "duplicate",
        "ignored",
        "invalid_signature",
        "malformed",
        "too_large",
        "unavailable",
    ):
        assert f'passops_webhook_requests_total{{outcome="{outcome}"}}' in text
    assert "passops_webhook_request_duration_seconds_bucket" in text
