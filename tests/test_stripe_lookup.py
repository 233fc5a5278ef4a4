"""Line-item look-ups through the real ``stripe`` library against the local fake of the Stripe API,
and end to end: a purchase whose event names neither pass nor price becomes Ready."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import pytest
import stripe
from prometheus_client import CollectorRegistry

from controller.metrics import ControllerMetrics
from controller.reconcile import PermanentError, TransientError
from controller.stripe_lookup import StripeLineItems, StripeRateLimited
from passops.testing import stripe_events as se
from passops.testing.emulator import EmulatedCluster
from passops.testing.fake_stripe import FakeStripe, redacted, run_fake_stripe, secret_key
from tests.fixtures.stack import running_stack


def errors_counted(registry: CollectorRegistry) -> float:
    return registry.get_sample_value("passops_stripe_api_errors_total") or 0.0


@pytest.fixture
def registry() -> CollectorRegistry:
    return CollectorRegistry()


@pytest.fixture
def metrics(registry: CollectorRegistry) -> ControllerMetrics:
    return ControllerMetrics(registry)


@pytest.fixture
async def lookup(fake_stripe: FakeStripe, metrics: ControllerMetrics) -> AsyncIterator[StripeLineItems]:
    items = StripeLineItems(fake_stripe.api_key, fake_stripe.url, timeout=2.0, metrics=metrics)
    yield items
    await items.close()


def session_with(fake: FakeStripe, prices: list[str]) -> str:
    return str(fake.add_session(se.paid_session(), line_items=prices)["id"])


async def test_every_price_id_across_three_pages(fake_stripe: FakeStripe, lookup: StripeLineItems) -> None:
    prices = [f"price_{i:03d}" for i in range(250)]  # pages of 100: 100 + 100 + 50
    session_id = session_with(fake_stripe, prices)

    assert await lookup.price_ids(session_id) == prices

    calls = fake_stripe.calls(f"/v1/checkout/sessions/{session_id}/line_items")
    assert len(calls) == 3
    assert [c.query.get("limit") for c in calls] == ["100"] * 3
    assert "starting_after" not in calls[0].query and all("starting_after" in c.query for c in calls[1:])
    assert {c.stripe_version for c in calls} == {stripe.api_version}  # the pinned API version
    assert {c.api_key for c in calls} == {fake_stripe.api_key}


async def test_a_price_in_several_line_items_is_listed_once(
    fake_stripe: FakeStripe, lookup: StripeLineItems
) -> None:
    session_id = session_with(fake_stripe, ["price_a", "price_b", "price_a"])
    assert await lookup.price_ids(session_id) == ["price_a", "price_b"]


async def test_a_session_without_line_items_has_no_prices(
    fake_stripe: FakeStripe, lookup: StripeLineItems
) -> None:
    assert await lookup.price_ids(session_with(fake_stripe, [])) == []


async def test_server_error_is_transient_then_the_retry_succeeds(
    fake_stripe: FakeStripe, lookup: StripeLineItems, registry: CollectorRegistry
) -> None:
    session_id = session_with(fake_stripe, ["price_day"])
    fake_stripe.fail_next(1, status=500)

    with pytest.raises(TransientError) as caught:
        await lookup.price_ids(session_id)
    assert caught.value.reason == "StripeUnavailable"
    assert "HTTP 500" in caught.value.message
    assert errors_counted(registry) == 1
    # No retry inside the library: the controller's backoff owns retrying.
    assert len(fake_stripe.calls()) == 1

    assert await lookup.price_ids(session_id) == ["price_day"]
    assert errors_counted(registry) == 1


async def test_rate_limit_is_transient_with_stripes_retry_after(
    fake_stripe: FakeStripe, lookup: StripeLineItems, registry: CollectorRegistry
) -> None:
    session_id = session_with(fake_stripe, ["price_day"])
    fake_stripe.rate_limit_next(1, retry_after=2)

    with pytest.raises(TransientError) as caught:
        await lookup.price_ids(session_id)
    assert isinstance(caught.value, StripeRateLimited)
    assert caught.value.reason == "StripeUnavailable"
    assert caught.value.retry_after == 2.0
    assert "retry after 2s" in caught.value.message
    assert errors_counted(registry) == 1
    assert await lookup.price_ids(session_id) == ["price_day"]


async def test_rejected_key_is_permanent_and_never_quoted(fake_stripe: FakeStripe) -> None:
    session_id = session_with(fake_stripe, ["price_day"])
    wrong_key = secret_key()
    items = StripeLineItems(wrong_key, fake_stripe.url)
    try:
        with pytest.raises(PermanentError) as caught:
            await items.price_ids(session_id)
    finally:
        await items.close()

    assert fake_stripe.requests[-1].status == 401
    error = caught.value
    assert error.reason == "StripeAuthFailed"
    for text in (error.message, str(error), repr(error)):
        assert wrong_key not in text and redacted(wrong_key) not in text and wrong_key[-4:] not in text
    # Chaining would carry the Stripe error (and its response) into tracebacks: suppressed.
    assert error.__cause__ is None and error.__suppress_context__


async def test_unknown_session_is_permanent(lookup: StripeLineItems) -> None:
    with pytest.raises(PermanentError) as caught:
        await lookup.price_ids("cs_test_a1unknown")
    assert caught.value.reason == "StripeSessionNotFound"
    assert "cs_test_a1unknown" in caught.value.message


async def test_a_slow_stripe_times_out_as_transient(
    fake_stripe: FakeStripe, metrics: ControllerMetrics, registry: CollectorRegistry
) -> None:
    session_id = session_with(fake_stripe, ["price_day"])
    fake_stripe.delay(5)
    items = StripeLineItems(fake_stripe.api_key, fake_stripe.url, timeout=0.3, metrics=metrics)
    try:
        with pytest.raises(TransientError) as caught:
            await items.price_ids(session_id)
    finally:
        await items.close()
    assert caught.value.reason == "StripeUnavailable"
    assert "did not answer in time" in caught.value.message
    assert errors_counted(registry) == 1


async def test_unreachable_stripe_is_transient() -> None:
    async with run_fake_stripe() as fake:
        key, url = fake.api_key, fake.url
    items = StripeLineItems(key, url)  # nothing listens there any more
    try:
        with pytest.raises(TransientError) as caught:
            await items.price_ids("cs_test_a1whatever")
    finally:
        await items.close()
    assert caught.value.reason == "StripeUnavailable"
    assert key not in caught.value.message


async def test_purchase_without_pass_or_price_becomes_ready_from_its_line_items(
    emulator: EmulatedCluster,
    clean_database_url: str,
    monkeypatch: pytest.MonkeyPatch,
    fake_stripe: FakeStripe,
) -> None:
    # Checkout events carry no line items: only the Stripe API can say which price was bought.
    session = se.paid_session(client_reference_id=f"user-{uuid.uuid4().hex[:10]}")
    assert not session["metadata"]
    fake_stripe.add_session(session, line_items=["price_e2e_month"])

    async with running_stack(
        emulator,
        clean_database_url,
        monkeypatch,
        stripe_api_key=fake_stripe.api_key,
        stripe_api_base=fake_stripe.url,
    ) as stack:
        status, answer = await stack.deliver(se.event(se.CHECKOUT_COMPLETED, session))
        assert (status, answer["outcome"]) == (200, "accepted")
        body = await stack.wait_for_phase(answer["purchase"], "Ready")
        rows = await stack.rows(session["id"])

    assert len(rows) == 1 and rows[0]["pass_id"] == "month-pass"
    assert body["status"]["subscriptionId"] == rows[0]["id"]
    assert fake_stripe.calls(f"/v1/checkout/sessions/{session['id']}/line_items")
