"""The controller's plain building blocks: backoff, work queue, status planning, triggers."""

from __future__ import annotations

import asyncio
import dataclasses
import random
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from controller.backoff import retry_delay
from controller.conditions import ALL_TYPES, Condition, Status, render
from controller.outcome import ErrorInfo, Outcome, Requeue, Result
from controller.purchase import PurchaseView, format_time
from controller.status import plan
from controller.triggers import visit_in
from controller.workqueue import WorkQueue
from passops.config import Backoff, Settings, parse_duration
from passops.resource import ANNOTATION_PAUSED, ANNOTATION_RESYNC, Phase, purchase_name

NOW = datetime(2026, 12, 3, 12, 0, 0, tzinfo=UTC)


def body(status: dict[str, Any] | None = None, generation: int = 1, **annotations: str) -> dict[str, Any]:
    return {
        "metadata": {
            "name": "cs-test-1-abcdef12",
            "namespace": "default",
            "generation": generation,
            "resourceVersion": "7",
            "creationTimestamp": format_time(NOW - timedelta(minutes=1)),
            "annotations": annotations,
        },
        "spec": {"checkoutSessionId": "cs_test_1", "paymentStatus": "paid"},
        "status": status or {},
    }


def failing(reason: str = "DatabaseUnavailable") -> Outcome:
    conditions = tuple(Condition(t, Status.FALSE, reason, "down") for t in ALL_TYPES)
    return Outcome(
        phase=Phase.RECONCILING,
        result=Result.RETRY,
        requeue=Requeue.BACKOFF,
        error=ErrorInfo(reason, "database unreachable"),
        conditions=conditions,
    )


def test_purchase_name_is_stable_lowercase_and_keeps_case_distinct_ids_apart() -> None:
    assert purchase_name("cs_test_a1B2") == purchase_name("cs_test_a1B2")
    assert purchase_name("cs_test_a1B2").startswith("cs-test-a1b2-")
    assert purchase_name("cs_test_a1B2") != purchase_name("cs_test_a1b2")


@pytest.mark.parametrize("attempt", range(1, 40))
def test_backoff_grows_exponentially_within_jitter_and_never_exceeds_the_cap(attempt: int) -> None:
    policy = Backoff(base=1.0, cap=300.0, jitter=0.2)
    delay = retry_delay(attempt, policy, random.Random(attempt))
    nominal = min(300.0, 2.0 ** (attempt - 1))
    assert nominal * 0.8 <= delay <= min(300.0, nominal * 1.2)


def test_backoff_of_a_very_long_outage_stays_at_the_cap() -> None:
    assert retry_delay(100_000, Backoff(base=1.0, cap=60.0, jitter=0.0)) == 60.0


def test_conditions_keep_transition_time_while_status_is_unchanged() -> None:
    first = render(
        [Condition(t, Status.FALSE, "A", "m") for t in ALL_TYPES],
        now="2026-01-01T00:00:00Z",
        generation=1,
        previous=[],
    )
    second = render(
        [Condition(t, Status.FALSE if t != "Ready" else Status.TRUE, "B", "m") for t in ALL_TYPES],
        now="2026-01-01T00:05:00Z",
        generation=2,
        previous=first,
    )
    by = {c["type"]: c for c in second}
    assert by["Ready"]["lastTransitionTime"] == "2026-01-01T00:05:00Z"
    assert by["Stalled"]["lastTransitionTime"] == "2026-01-01T00:00:00Z"
    assert all(c["observedGeneration"] == 2 for c in second)


def test_plan_counts_attempts_and_schedules_backoff_then_success_clears_them() -> None:
    settings = Settings(backoff=Backoff(base=2.0, cap=60.0, jitter=0.0))
    view = PurchaseView.from_body(body({"attempts": 2, "phase": "Reconciling"}))
    p = plan(view, failing(), NOW, settings)
    assert p.status["attempts"] == 3
    assert p.requeue_after == 8.0
    assert p.status["nextAttemptAt"] == format_time(NOW + timedelta(seconds=8))
    assert p.status["lastError"]["reason"] == "DatabaseUnavailable"
    assert p.status["observedGeneration"] == 1

    ok = Outcome(
        phase=Phase.READY,
        result=Result.READY,
        conditions=tuple(Condition(t, Status.TRUE, "Ok", "ok") for t in ALL_TYPES),
        subscription_id=5,
    )
    done = plan(PurchaseView.from_body(body(p.status)), ok, NOW, settings)
    assert done.status["attempts"] == 0
    assert done.status["lastError"] is None and done.status["nextAttemptAt"] is None
    assert done.status["readyAt"] == format_time(NOW)
    assert done.status["subscriptionId"] == 5


def test_failing_longer_than_stalled_after_sets_stalled_but_keeps_retrying() -> None:
    settings = Settings(stalled_after=600, backoff=Backoff(base=1, cap=300, jitter=0))
    since = format_time(NOW - timedelta(minutes=11))
    view = PurchaseView.from_body(
        body({"attempts": 9, "lastError": {"reason": "DatabaseUnavailable", "message": "x", "since": since}})
    )
    p = plan(view, failing(), NOW, settings)
    stalled = next(c for c in p.status["conditions"] if c["type"] == "Stalled")
    assert stalled["status"] == "True" and stalled["reason"] == "DatabaseUnavailable"
    assert p.outcome.result is Result.STALLED
    assert p.requeue_after == 300.0  # attempt 10: 2**9 s, capped
    assert p.status["lastError"]["since"] == since


def test_a_resync_resets_the_backoff_and_is_echoed() -> None:
    settings = Settings(backoff=Backoff(base=1, cap=300, jitter=0))
    view = PurchaseView.from_body(body({"attempts": 7}, **{ANNOTATION_RESYNC: "now-1"}))
    p = plan(view, failing(), NOW, settings)
    assert p.status["attempts"] == 1 and p.requeue_after == 1.0
    assert p.status["lastHandledResyncAt"] == "now-1"


def test_triggers_ignore_our_own_status_writes_but_see_spec_resync_and_pause() -> None:
    current = {"phase": "Ready", "observedGeneration": 1, "readyAt": format_time(NOW)}
    assert visit_in(PurchaseView.from_body(body(current)), NOW, retention=0) is None
    assert visit_in(PurchaseView.from_body(body(current, generation=2)), NOW, retention=0) == 0.0
    resync = body(current, **{ANNOTATION_RESYNC: "x"})
    assert visit_in(PurchaseView.from_body(resync), NOW, retention=0) == 0.0
    paused = body(current, **{ANNOTATION_PAUSED: "true"})
    assert visit_in(PurchaseView.from_body(paused), NOW, retention=0) == 0.0
    not_exactly = body(current, **{ANNOTATION_PAUSED: "yes"})
    assert visit_in(PurchaseView.from_body(not_exactly), NOW, retention=0) is None
    assert visit_in(PurchaseView.from_body(body(current)), NOW, retention=3600) == 3600.0
    # A Ready purchase is re-checked every sync_period (drift), or at the retention if sooner.
    assert visit_in(PurchaseView.from_body(body(current)), NOW, retention=7200, sync_period=600) == 600.0
    assert visit_in(PurchaseView.from_body(body(current)), NOW, retention=300, sync_period=600) == 300.0
    # On the controller's start every Ready purchase is checked at once; a retry keeps its time.
    ready = PurchaseView.from_body(body(current))
    assert visit_in(ready, NOW, retention=7200, sync_period=600, first_sight=True) == 0.0
    retrying = {
        "phase": "Reconciling",
        "observedGeneration": 1,
        "nextAttemptAt": format_time(NOW + timedelta(seconds=30)),
    }
    assert visit_in(PurchaseView.from_body(body(retrying)), NOW, retention=0) == 30.0
    assert visit_in(PurchaseView.from_body(body(retrying)), NOW, retention=0, first_sight=True) == 30.0


async def test_workqueue_hands_a_key_to_one_worker_and_reruns_it_if_added_meanwhile() -> None:
    queue: WorkQueue[str] = WorkQueue()
    queue.add("a")
    queue.add("a")
    key = await asyncio.wait_for(queue.get(), 1)
    assert key == "a" and len(queue) == 1
    queue.add("a")  # changed while being processed
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(queue.get(), 0.05)
    queue.done("a")
    assert await asyncio.wait_for(queue.get(), 1) == "a"


async def test_workqueue_serves_the_earliest_requested_time() -> None:
    queue: WorkQueue[str] = WorkQueue()
    queue.add("slow", delay=10)
    queue.add("soon", delay=0.05)
    queue.add("slow", delay=0.1)  # an earlier request wins over the later one
    assert await asyncio.wait_for(queue.get(), 1) == "soon"
    assert await asyncio.wait_for(queue.get(), 1) == "slow"


def test_a_dependency_asking_to_wait_longer_than_the_backoff_is_respected() -> None:
    """Stripe's 429 Retry-After: 30 s beats a 1 s backoff step; a shorter one does not shorten it."""
    settings = Settings(backoff=Backoff(base=1.0, cap=60.0, jitter=0.0))
    view = PurchaseView.from_body(body({"attempts": 0}))
    slow = dataclasses.replace(failing("StripeUnavailable"), retry_after=30.0)
    assert plan(view, slow, NOW, settings).requeue_after == 30.0
    quick = dataclasses.replace(failing("StripeUnavailable"), retry_after=0.1)
    assert plan(view, quick, NOW, settings).requeue_after == 1.0


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("90", 90.0), ("90s", 90.0), ("15m", 900.0), ("2h", 7200.0), ("7d", 604800.0), ("0", 0.0)],
)
def test_durations_accept_units(text: str, seconds: float) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "soon", "-5s", "5 weeks", "nan"])
def test_bad_durations_are_refused_with_an_example(text: str) -> None:
    with pytest.raises(ValueError, match=r"duration"):
        parse_duration(text)
