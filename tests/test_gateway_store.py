"""Create-or-merge on the Kubernetes API (unit level, on an in-memory stand-in with the API's
name-uniqueness and resourceVersion semantics; the end-to-end tests run on the emulator)."""

from __future__ import annotations

import asyncio
import copy
from typing import Any, cast

import pytest

from passops.kube import AlreadyExists, Conflict, NotFound, PurchaseClient, Unavailable
from passops.resource import LABEL_PHASE
from passops.testing import stripe_events as se
from webhook_gateway.checkout import PurchaseFacts, facts_from_event
from webhook_gateway.store import Outcome, store_purchase


class FakePurchases:
    """Just enough of PurchaseClient: create/get/find/replace with optimistic concurrency."""

    def __init__(self) -> None:
        self.objects: dict[str, dict[str, Any]] = {}
        self.version = 0
        self.down = False
        self.established = True
        self.conflicts_to_inject = 0
        self.calls: list[str] = []

    def _check(self, what: str) -> None:
        self.calls.append(what)
        if self.down:
            raise Unavailable(f"{what}: connection refused")

    async def create(self, body: dict[str, Any]) -> dict[str, Any]:
        self._check("create")
        await asyncio.sleep(0)
        name = body["metadata"]["name"]
        if name in self.objects:
            raise AlreadyExists(name, status=409)
        self.version += 1
        stored = copy.deepcopy(body)
        stored["metadata"]["resourceVersion"] = str(self.version)
        self.objects[name] = stored
        return copy.deepcopy(stored)

    async def get(self, name: str) -> dict[str, Any]:
        self._check("get")
        await asyncio.sleep(0)
        if name not in self.objects:
            raise NotFound(name, status=404)
        return copy.deepcopy(self.objects[name])

    async def find(self, name: str) -> dict[str, Any] | None:
        try:
            return await self.get(name)
        except NotFound:
            return None

    async def replace(self, body: dict[str, Any]) -> dict[str, Any]:
        self._check("replace")
        await asyncio.sleep(0)
        name = body["metadata"]["name"]
        if name not in self.objects:
            raise NotFound(name, status=404)
        if self.conflicts_to_inject:
            self.conflicts_to_inject -= 1
            raise Conflict(name, status=409)
        if body["metadata"].get("resourceVersion") != self.objects[name]["metadata"]["resourceVersion"]:
            raise Conflict(name, status=409)
        self.version += 1
        stored = copy.deepcopy(body)
        stored["status"] = self.objects[name].get("status")  # the status subresource is separate
        stored["metadata"]["resourceVersion"] = str(self.version)
        self.objects[name] = stored
        return copy.deepcopy(stored)

    async def crd_established(self) -> bool:
        self._check("crd")
        return self.established

    def client(self) -> PurchaseClient:
        return cast(PurchaseClient, self)


def facts(event: dict[str, Any]) -> PurchaseFacts:
    result = facts_from_event(event, default_tenant="default")
    assert result is not None
    return result


async def test_first_delivery_creates_with_labels() -> None:
    api = FakePurchases()
    delivery = facts(se.event(se.CHECKOUT_COMPLETED, se.paid_session()))
    stored = await store_purchase(api.client(), delivery)
    assert (stored.outcome, stored.written) == (Outcome.ACCEPTED, True)
    obj = api.objects[delivery.name]
    assert obj["spec"] == delivery.spec
    assert obj["metadata"]["labels"] == delivery.labels
    assert "status" not in obj


async def test_redelivery_is_a_duplicate_and_writes_nothing() -> None:
    api = FakePurchases()
    delivery = facts(se.event(se.CHECKOUT_COMPLETED, se.paid_session()))
    await store_purchase(api.client(), delivery)
    version = api.version
    stored = await store_purchase(api.client(), delivery)
    assert (stored.outcome, stored.written) == (Outcome.DUPLICATE, False)
    assert api.version == version


async def test_new_event_of_the_same_session_is_merged() -> None:
    api = FakePurchases()
    session = se.async_unpaid_session()
    await store_purchase(api.client(), facts(se.event(se.CHECKOUT_COMPLETED, session)))
    second = facts(se.event(se.ASYNC_PAYMENT_SUCCEEDED, {**session, "payment_status": "paid"}))
    stored = await store_purchase(api.client(), second)
    assert stored.outcome == Outcome.ACCEPTED
    spec = api.objects[second.name]["spec"]
    assert spec["paymentStatus"] == "paid"
    assert len(spec["events"]) == 2


async def test_merge_keeps_the_controllers_phase_label_and_status() -> None:
    api = FakePurchases()
    session = se.async_unpaid_session()
    first = facts(se.event(se.CHECKOUT_COMPLETED, session))
    await store_purchase(api.client(), first)
    api.objects[first.name]["metadata"]["labels"][LABEL_PHASE] = "AwaitingPayment"
    api.objects[first.name]["status"] = {"phase": "AwaitingPayment"}
    await store_purchase(api.client(), facts(se.event(se.ASYNC_PAYMENT_SUCCEEDED, session)))
    obj = api.objects[first.name]
    assert obj["metadata"]["labels"][LABEL_PHASE] == "AwaitingPayment"
    assert obj["status"] == {"phase": "AwaitingPayment"}


async def test_conflict_is_retried_with_a_fresh_read() -> None:
    api = FakePurchases()
    session = se.async_unpaid_session()
    await store_purchase(api.client(), facts(se.event(se.CHECKOUT_COMPLETED, session)))
    api.conflicts_to_inject = 3
    stored = await store_purchase(api.client(), facts(se.event(se.ASYNC_PAYMENT_SUCCEEDED, session)))
    assert stored.outcome == Outcome.ACCEPTED
    assert api.calls.count("replace") == 4


async def test_endless_conflicts_give_up_as_unavailable() -> None:
    api = FakePurchases()
    session = se.async_unpaid_session()
    await store_purchase(api.client(), facts(se.event(se.CHECKOUT_COMPLETED, session)))
    api.conflicts_to_inject = 1000
    with pytest.raises(Unavailable, match="conflicting"):
        await store_purchase(api.client(), facts(se.event(se.ASYNC_PAYMENT_SUCCEEDED, session)), attempts=3)


async def test_deleted_between_create_and_read_is_created_again() -> None:
    api = FakePurchases()
    delivery = facts(se.event(se.CHECKOUT_COMPLETED, se.paid_session()))
    await store_purchase(api.client(), delivery)
    real_get = api.get

    async def get_after_delete(name: str) -> dict[str, Any]:
        api.objects.pop(name, None)
        api.get = real_get  # type: ignore[method-assign]
        return await real_get(name)

    api.get = get_after_delete  # type: ignore[method-assign]
    stored = await store_purchase(api.client(), delivery)
    assert stored.outcome == Outcome.ACCEPTED
    assert delivery.name in api.objects


async def test_api_down_raises_unavailable() -> None:
    api = FakePurchases()
    api.down = True
    with pytest.raises(Unavailable):
        await store_purchase(api.client(), facts(se.event(se.CHECKOUT_COMPLETED, se.paid_session())))


async def test_concurrent_deliveries_make_one_object_and_lose_nothing() -> None:
    api = FakePurchases()
    session = se.async_unpaid_session()
    paid = {**session, "payment_status": "paid"}
    events = [se.event(se.CHECKOUT_COMPLETED, session, created=1_800_000_000 + n) for n in range(6)]
    events += [se.event(se.ASYNC_PAYMENT_SUCCEEDED, paid, created=1_800_000_100 + n) for n in range(4)]
    deliveries = [facts(e) for e in events * 2]  # every event twice: redeliveries race too
    results = await asyncio.gather(*(store_purchase(api.client(), d) for d in deliveries))
    assert len(api.objects) == 1
    (obj,) = api.objects.values()
    assert {e["id"] for e in obj["spec"]["events"]} == {e["id"] for e in events}
    assert obj["spec"]["paymentStatus"] == "paid"
    assert {r.outcome for r in results} <= {Outcome.ACCEPTED, Outcome.DUPLICATE}
