"""The gateway end to end: signed deliveries over HTTP, stored on the Kubernetes API emulator
(resourceVersion conflicts, status subresource, schema validation and pruning, outages)."""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer

from passops.config import Settings
from passops.kube import PurchaseClient
from passops.resource import LABEL_CUSTOMER, LABEL_PHASE, LABEL_TENANT, PLURAL, purchase_name
from passops.testing import stripe_events as se
from passops.testing.emulator import EmulatedCluster
from tests.fixtures.stripe import SignDelivery
from webhook_gateway import create_app

TOKEN = "e2e-token"
URL = "/webhooks/stripe"

Client = TestClient[Any, Any]


@pytest.fixture
async def gateway(
    purchases: PurchaseClient, webhook_secret: str, second_webhook_secret: str
) -> AsyncIterator[Client]:
    settings = Settings(stripe_webhook_secrets=(webhook_secret, second_webhook_secret), api_token=TOKEN)
    app = create_app(settings, purchases, store_timeout=5.0)
    async with TestClient(TestServer(app)) as client:
        yield client


async def deliver(gateway: Client, delivery: tuple[bytes, dict[str, str]]) -> tuple[int, Any]:
    response = await gateway.post(URL, data=delivery[0], headers=delivery[1])
    return response.status, await response.json()


def stored(emulator: EmulatedCluster, session_id: str) -> dict[str, Any]:
    obj = emulator.get(PLURAL, purchase_name(session_id))
    assert obj is not None, "the purchase was not stored"
    return obj


@pytest.mark.parametrize(
    "session",
    [
        se.paid_session(client_reference_id="u-1", metadata={"price_id": "price_1", "pass_id": "gold"}),
        se.async_unpaid_session(method="us_bank_account"),
        se.free_session(),
        se.subscription_session(),
        se.paid_session(customer=None, email=None),
    ],
    ids=["paid", "ach-unpaid", "free", "subscription", "guest"],
)
async def test_accepted_delivery_is_stored_as_sent_through_schema_validation(
    gateway: Client, emulator: EmulatedCluster, sign_delivery: SignDelivery, session: dict[str, Any]
) -> None:
    event = se.event(se.CHECKOUT_COMPLETED, session)
    status, answer = await deliver(gateway, sign_delivery(event))
    assert (status, answer) == (200, {"outcome": "accepted", "purchase": purchase_name(session["id"])})
    obj = stored(emulator, session["id"])
    # Nothing pruned: every field written is declared by the CRD.
    assert obj["spec"]["checkoutSessionId"] == session["id"]
    assert obj["spec"]["events"][0]["id"] == event["id"]
    assert obj["spec"]["source"] == "webhook"
    assert obj["metadata"]["labels"][LABEL_TENANT] == "default"
    assert LABEL_PHASE not in obj["metadata"]["labels"]
    assert not obj.get("status")
    if session["customer"]:
        assert obj["metadata"]["labels"][LABEL_CUSTOMER] == session["customer"]


async def test_redelivery_answers_duplicate_and_changes_nothing(
    gateway: Client, emulator: EmulatedCluster, sign_delivery: SignDelivery
) -> None:
    session = se.paid_session()
    event = se.event(se.CHECKOUT_COMPLETED, session)
    assert (await deliver(gateway, sign_delivery(event)))[1]["outcome"] == "accepted"
    version = stored(emulator, session["id"])["metadata"]["resourceVersion"]
    status, answer = await deliver(gateway, sign_delivery(event))  # re-signed later, as Stripe does
    assert (status, answer["outcome"]) == (200, "duplicate")
    assert stored(emulator, session["id"])["metadata"]["resourceVersion"] == version


async def test_twenty_concurrent_mixed_deliveries_make_one_complete_resource(
    gateway: Client, emulator: EmulatedCluster, sign_delivery: SignDelivery
) -> None:
    """completed (unpaid), async_payment_succeeded and redeliveries of both, all at once."""
    session = se.async_unpaid_session()
    completed = [se.event(se.CHECKOUT_COMPLETED, session, created=1_800_000_000 + n) for n in range(4)]
    succeeded = [
        se.event(se.ASYNC_PAYMENT_SUCCEEDED, {**session, "payment_status": "paid"}, created=1_800_000_100 + n)
        for n in range(4)
    ]
    distinct = completed + succeeded
    deliveries = distinct + [random.choice(distinct) for _ in range(20 - len(distinct))]
    random.shuffle(deliveries)
    answers = await asyncio.gather(*(deliver(gateway, sign_delivery(e)) for e in deliveries))
    assert [status for status, _ in answers] == [200] * 20, answers
    assert {answer["outcome"] for _, answer in answers} <= {"accepted", "duplicate"}
    objects = emulator.objects(PLURAL)
    assert len(objects) == 1
    spec = objects[0]["spec"]
    assert {e["id"] for e in spec["events"]} == {e["id"] for e in distinct}
    assert [e["created"] for e in spec["events"]] == sorted(e["created"] for e in spec["events"])
    assert spec["paymentStatus"] == "paid"


async def test_late_completed_unpaid_after_async_payment_succeeded_keeps_paid(
    gateway: Client, emulator: EmulatedCluster, sign_delivery: SignDelivery
) -> None:
    session = se.async_unpaid_session()
    await deliver(
        gateway, sign_delivery(se.event(se.ASYNC_PAYMENT_SUCCEEDED, {**session, "payment_status": "paid"}))
    )
    status, answer = await deliver(gateway, sign_delivery(se.event(se.CHECKOUT_COMPLETED, session)))
    assert (status, answer["outcome"]) == (200, "accepted")
    spec = stored(emulator, session["id"])["spec"]
    assert spec["paymentStatus"] == "paid"
    assert len(spec["events"]) == 2


async def test_async_payment_failed_is_recorded_for_the_controller(
    gateway: Client, emulator: EmulatedCluster, sign_delivery: SignDelivery
) -> None:
    session = se.async_unpaid_session()
    await deliver(gateway, sign_delivery(se.event(se.CHECKOUT_COMPLETED, session)))
    status, _ = await deliver(gateway, sign_delivery(se.event(se.ASYNC_PAYMENT_FAILED, session)))
    assert status == 200
    spec = stored(emulator, session["id"])["spec"]
    assert [e["type"] for e in spec["events"]][-1] == se.ASYNC_PAYMENT_FAILED
    assert spec["paymentStatus"] == "unpaid"


async def test_merge_keeps_the_controllers_status_and_phase_label(
    gateway: Client, emulator: EmulatedCluster, purchases: PurchaseClient, sign_delivery: SignDelivery
) -> None:
    session = se.async_unpaid_session()
    name = purchase_name(session["id"])
    await deliver(gateway, sign_delivery(se.event(se.CHECKOUT_COMPLETED, session)))
    await purchases.patch(name, {"metadata": {"labels": {LABEL_PHASE: "AwaitingPayment"}}})
    await purchases.patch_status(name, {"phase": "AwaitingPayment", "attempts": 1})
    status, _ = await deliver(gateway, sign_delivery(se.event(se.ASYNC_PAYMENT_SUCCEEDED, session)))
    assert status == 200
    obj = stored(emulator, session["id"])
    assert obj["spec"]["paymentStatus"] == "paid"
    assert obj["metadata"]["labels"][LABEL_PHASE] == "AwaitingPayment"
    assert obj["status"]["phase"] == "AwaitingPayment"


async def test_api_down_answers_503_then_after_heal_the_redelivery_is_stored(
    gateway: Client, emulator: EmulatedCluster, sign_delivery: SignDelivery
) -> None:
    session = se.paid_session()
    delivery = sign_delivery(se.event(se.CHECKOUT_COMPLETED, session))
    await emulator.fail_requests(503)
    status, answer = await deliver(gateway, delivery)
    assert (status, answer["error"]["type"]) == (503, "unavailable")
    await emulator.heal()
    assert not emulator.objects(PLURAL)
    status, answer = await deliver(gateway, delivery)
    assert (status, answer["outcome"]) == (200, "accepted")
    assert stored(emulator, session["id"])["spec"]["paymentStatus"] == "paid"


async def test_api_refusing_connections_answers_503(
    gateway: Client, emulator: EmulatedCluster, sign_delivery: SignDelivery
) -> None:
    await emulator.drop_connections()
    status, answer = await deliver(gateway, sign_delivery(se.event(se.CHECKOUT_COMPLETED, se.paid_session())))
    assert (status, answer["error"]["type"]) == (503, "unavailable")


async def test_api_too_slow_answers_503_before_stripe_gives_up(
    purchases: PurchaseClient, emulator: EmulatedCluster, webhook_secret: str
) -> None:
    app = create_app(Settings(stripe_webhook_secrets=(webhook_secret,)), purchases, store_timeout=0.5)
    await emulator.slow_down(2.0)
    async with TestClient(TestServer(app)) as client:
        event = se.event(se.CHECKOUT_COMPLETED, se.paid_session())
        status, answer = await deliver(client, se.signed_delivery(event, webhook_secret))
    assert (status, answer["error"]["type"]) == (503, "unavailable")


async def test_merge_conflicts_answered_with_a_write_refusal_are_503(
    gateway: Client, emulator: EmulatedCluster, sign_delivery: SignDelivery
) -> None:
    """Writes refused (PUT answers 500) while reads work: still never a false 'accepted'."""
    session = se.async_unpaid_session()
    await deliver(gateway, sign_delivery(se.event(se.CHECKOUT_COMPLETED, session)))
    await emulator.fail_requests(500, methods=["PUT", "POST"])
    status, _ = await deliver(gateway, sign_delivery(se.event(se.ASYNC_PAYMENT_SUCCEEDED, session)))
    assert status == 503
    assert stored(emulator, session["id"])["spec"]["paymentStatus"] == "unpaid"


async def test_readyz_follows_the_api_and_the_crd(gateway: Client, emulator: EmulatedCluster) -> None:
    assert (await gateway.get("/readyz")).status == 200
    await emulator.fail_requests(503)
    assert (await gateway.get("/readyz")).status == 503
    assert (await gateway.get("/healthz")).status == 200
    await emulator.heal()
    assert (await gateway.get("/readyz")).status == 200


async def test_purchase_api_reports_the_controllers_status(
    gateway: Client, purchases: PurchaseClient, sign_delivery: SignDelivery
) -> None:
    session = se.subscription_session()
    name = purchase_name(session["id"])
    auth = {"Authorization": f"Bearer {TOKEN}"}
    await deliver(gateway, sign_delivery(se.event(se.CHECKOUT_COMPLETED, session)))
    answer = await (await gateway.get(f"/v1/purchases/{session['id']}", headers=auth)).json()
    assert (answer["name"], answer["phase"], answer["ready"]) == (name, "Pending", False)
    await purchases.patch_status(
        name,
        {
            "phase": "Ready",
            "subscriptionId": 7,
            "conditions": [
                {
                    "type": "Ready",
                    "status": "True",
                    "reason": "SubscriptionActive",
                    "message": "subscription row 7 exists",
                    "lastTransitionTime": "2026-12-01T10:00:00Z",
                }
            ],
        },
    )
    response = await gateway.get(f"/v1/purchases/{session['id']}", headers=auth)
    assert response.status == 200
    assert await response.json() == {
        "checkoutSessionId": session["id"],
        "name": name,
        "phase": "Ready",
        "ready": True,
        "reason": "SubscriptionActive",
        "subscriptionId": 7,
    }
    assert (await gateway.get(f"/v1/purchases/{session['id']}x", headers=auth)).status == 404
    assert (await gateway.get(f"/v1/purchases/{session['id']}")).status == 401
