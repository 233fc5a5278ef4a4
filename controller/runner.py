"""The controller's engine: a cache fed by the watch, a work queue, workers that reconcile.

It follows controller-runtime's model: watch events only schedule keys; a worker always reconciles
the latest known state of the object, one worker per key at a time, and requeues with backoff.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Awaitable, Callable, Mapping
from datetime import UTC, datetime
from typing import Any, Protocol

from controller import status as status_plan
from controller.backoff import retry_delay
from controller.conditions import ALL_TYPES, READY, RECONCILING, STALLED, Condition
from controller.conditions import Status as S
from controller.events import Event, transition_events
from controller.metrics import ControllerMetrics
from controller.outcome import ErrorInfo, Outcome, Requeue, Result
from controller.purchase import PurchaseView
from controller.reconcile import Reconciler
from controller.triggers import visit_in
from controller.workqueue import QueueClosed, WorkQueue
from passops.config import Settings
from passops.kube import KubeError, NotFound, PurchaseClient
from passops.resource import LABEL_CUSTOMER, LABEL_PHASE, LABEL_TENANT, Phase, label_value

logger = logging.getLogger("passops.controller")

EventSink = Callable[[Mapping[str, Any], Event], Awaitable[None]]


class Clock(Protocol):
    def __call__(self) -> datetime: ...


def _utcnow() -> datetime:
    return datetime.now(UTC)


def _slim(body: Mapping[str, Any]) -> Mapping[str, Any]:
    """The object without metadata.managedFields: half of its size, and nothing reconciling reads."""
    meta = body.get("metadata")
    if not isinstance(meta, Mapping) or "managedFields" not in meta:
        return body
    return {**body, "metadata": {k: v for k, v in meta.items() if k != "managedFields"}}


def _newer(candidate: Mapping[str, Any], current: Mapping[str, Any] | None) -> bool:
    """Whether ``candidate`` is a later version than ``current`` (watch events can lag our writes)."""
    if current is None:
        return True
    new_rv = str((candidate.get("metadata") or {}).get("resourceVersion") or "")
    old_rv = str((current.get("metadata") or {}).get("resourceVersion") or "")
    if new_rv.isdigit() and old_rv.isdigit():  # opaque by contract, but etcd revisions in practice
        return int(new_rv) >= int(old_rv)
    return True


class Controller:
    def __init__(
        self,
        purchases: PurchaseClient,
        reconciler: Reconciler,
        settings: Settings,
        metrics: ControllerMetrics,
        emit: EventSink,
        *,
        clock: Clock = _utcnow,
        rng: random.Random | None = None,
    ) -> None:
        self.purchases = purchases
        self.reconciler = reconciler
        self.settings = settings
        self.metrics = metrics
        self.emit = emit
        self.clock = clock
        self.rng = rng
        self.queue: WorkQueue[str] = WorkQueue()
        self.cache: dict[str, Mapping[str, Any]] = {}
        self._write_failures: dict[str, int] = {}

    # --- fed by the watch ---
    def observe(self, body: Mapping[str, Any], *, deleted: bool = False) -> None:
        # The cache and the queue are the event loop's: raises RuntimeError if called from a thread.
        asyncio.get_running_loop()
        name = str((body.get("metadata") or {}).get("name") or "")
        if not name:
            return
        if deleted:
            self.cache.pop(name, None)
            self.queue.forget(name)
            self._write_failures.pop(name, None)
            return
        if not _newer(body, self.cache.get(name)):
            return
        first_sight = name not in self.cache
        self.cache[name] = body = _slim(body)
        delay = visit_in(
            PurchaseView.from_body(body),
            self.clock(),
            retention=self.settings.retention,
            sync_period=self.settings.sync_period,
            first_sight=first_sight,
        )
        if delay is not None:
            self.queue.add(name, delay)

    def views(self) -> list[PurchaseView]:
        return [PurchaseView.from_body(body) for body in list(self.cache.values())]

    # --- workers ---
    async def run_workers(self, count: int) -> None:
        await asyncio.gather(*(self._worker() for _ in range(max(1, count))))

    async def _worker(self) -> None:
        while True:
            try:
                name = await self.queue.get()
            except QueueClosed:
                return
            try:
                await self.process(name)
            except Exception:  # a bug must not kill the worker: log it and retry the key later
                logger.exception("unexpected error while processing %s", name)
                self.queue.add(name, self._api_backoff(name))
            finally:
                self.queue.done(name)

    async def process(self, name: str) -> None:
        body = self.cache.get(name)
        if body is None:
            return
        purchase = PurchaseView.from_body(body)
        now = self.clock()
        if self._expired(purchase, now):
            await self._delete_expired(purchase)
            return

        started = time.perf_counter()
        try:
            outcome = await self.reconciler.reconcile(purchase)
        except Exception as exc:  # unexpected: retried like a transient error, visible in status
            logger.exception("reconcile of %s failed unexpectedly", name)
            outcome = _internal_error(exc)
        plan = status_plan.plan(purchase, outcome, now, self.settings, self.rng)

        try:
            updated = await self.purchases.patch_status(name, plan.status)
            labels = self._label_changes(purchase, plan.status["phase"])
            if labels:
                updated = await self.purchases.patch(name, {"metadata": {"labels": labels}})
        except NotFound:
            self.observe(body, deleted=True)
            return
        except KubeError as exc:
            # The outcome cannot be recorded; the database side is idempotent, so simply redo it later.
            delay = self._api_backoff(name)
            logger.warning("could not write the status of %s (%s); retrying in %.1fs", name, exc, delay)
            self.metrics.observe(
                outcome.result, time.perf_counter() - started, requeue_after=delay, error=True
            )
            self.queue.add(name, delay)
            return
        self._write_failures.pop(name, None)
        elapsed = time.perf_counter() - started
        if _newer(updated, self.cache.get(name)):
            self.cache[name] = _slim(updated)

        for event in transition_events(purchase, plan):
            await self._emit(updated, event)
        self._log(purchase, plan)
        self.metrics.observe(plan.outcome.result, elapsed, requeue_after=plan.requeue_after, error=False)
        if plan.outcome.result is Result.READY and purchase.phase != Phase.READY and purchase.created_at:
            self.metrics.time_to_ready.observe(max(0.0, (now - purchase.created_at).total_seconds()))
        if plan.requeue_after is not None:
            self.queue.add(name, plan.requeue_after)

    def _label_changes(self, purchase: PurchaseView, phase: str) -> dict[str, str | None]:
        """Labels that selectors rely on, kept current (a person may have fixed the spec by hand)."""
        desired = {
            LABEL_PHASE: phase,
            LABEL_TENANT: label_value(purchase.tenant or self.settings.default_tenant),
            LABEL_CUSTOMER: label_value(purchase.stripe_customer_id),
        }
        return {
            key: value
            for key, value in desired.items()
            if purchase.labels.get(key) != value and not (value is None and key not in purchase.labels)
        }

    async def _emit(self, body: Mapping[str, Any], event: Event) -> None:
        # Events are for people; losing one must never fail or delay the reconciliation itself.
        try:
            await self.emit(body, event)
        except Exception as exc:
            logger.warning(
                "could not post Event %s for %s: %s", event.reason, body.get("metadata", {}).get("name"), exc
            )

    def _expired(self, purchase: PurchaseView, now: datetime) -> bool:
        if self.settings.retention <= 0 or purchase.phase != Phase.READY or purchase.ready_at is None:
            return False
        if purchase.paused or purchase.resync_pending or purchase.observed_generation != purchase.generation:
            return False
        return (now - purchase.ready_at).total_seconds() >= self.settings.retention

    async def _delete_expired(self, purchase: PurchaseView) -> None:
        try:
            await self.purchases.delete(purchase.name)
        except NotFound:
            pass
        except KubeError as exc:
            logger.warning("could not delete expired purchase %s: %s", purchase.name, exc)
            self.queue.add(purchase.name, self._api_backoff(purchase.name))
            return
        logger.info(
            "deleted %s: Ready for longer than the retention; its row stays in the database", purchase.name
        )

    def _api_backoff(self, name: str) -> float:
        attempt = self._write_failures.get(name, 0) + 1
        self._write_failures[name] = attempt
        return retry_delay(attempt, self.settings.backoff, self.rng)

    def _log(self, purchase: PurchaseView, plan: status_plan.Plan) -> None:
        outcome = plan.outcome
        if outcome.error is not None:
            logger.info(
                "%s: %s (%s: %s), next attempt in %s",
                purchase.name,
                outcome.phase.value,
                outcome.error.reason,
                outcome.error.message,
                f"{plan.requeue_after:.1f}s" if plan.requeue_after is not None else "never",
            )
        else:
            logger.info("%s: %s", purchase.name, outcome.phase.value)

    def stop(self) -> None:
        self.queue.close()


def _internal_error(exc: Exception) -> Outcome:
    message = f"internal error {type(exc).__name__}; see the controller log"
    conditions = {
        READY: Condition(READY, S.FALSE, "InternalError", message),
        RECONCILING: Condition(RECONCILING, S.TRUE, "InternalError", "retrying with backoff"),
        STALLED: Condition(STALLED, S.FALSE, "InternalError", "retrying with backoff"),
    }
    return Outcome(
        phase=Phase.RECONCILING,
        result=Result.RETRY,
        requeue=Requeue.BACKOFF,
        error=ErrorInfo("InternalError", message),
        conditions=tuple(
            conditions.get(t) or Condition(t, S.UNKNOWN, "InternalError", "not evaluated") for t in ALL_TYPES
        ),
    )
