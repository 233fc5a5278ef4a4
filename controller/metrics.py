"""Prometheus metrics of the controller: passops' own names and controller-runtime's standard ones.

Gauges about the whole population (purchases by phase, the oldest unready one) are computed at
scrape time from the controller's cache, so they are never stale and cost nothing between scrapes.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from datetime import UTC, datetime

from prometheus_client import REGISTRY, CollectorRegistry, Counter, Histogram
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from controller.outcome import Result
from controller.purchase import PurchaseView
from passops.resource import Phase

CONTROLLER = "passpurchase"
_LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)
_TTR_BUCKETS = (0.5, 1, 2, 5, 10, 30, 60, 120, 300, 900, 3600, 4 * 3600, 86400)


class ControllerMetrics:
    def __init__(self, registry: CollectorRegistry = REGISTRY) -> None:
        self.reconcile_total = Counter(
            "passops_reconcile_total",
            "Reconciliations of PassPurchases by result.",
            ["result"],
            registry=registry,
        )
        self.reconcile_duration = Histogram(
            "passops_reconcile_duration_seconds",
            "Time spent in one reconciliation.",
            buckets=_LATENCY_BUCKETS,
            registry=registry,
        )
        self.time_to_ready = Histogram(
            "passops_purchase_time_to_ready_seconds",
            "From the purchase's creation in the cluster to its subscription row existing.",
            buckets=_TTR_BUCKETS,
            registry=registry,
        )
        self.stripe_api_errors = Counter(
            "passops_stripe_api_errors_total", "Failed calls to the Stripe API.", registry=registry
        )
        self.db_errors = Counter("passops_db_errors_total", "Failed database operations.", registry=registry)
        # controller-runtime's names, so existing controller dashboards and alerts work unchanged.
        self.cr_reconcile_total = Counter(
            "controller_runtime_reconcile_total",
            "Total number of reconciliations per controller.",
            ["controller", "result"],
            registry=registry,
        )
        self.cr_reconcile_errors = Counter(
            "controller_runtime_reconcile_errors_total",
            "Total number of reconciliation errors per controller.",
            ["controller"],
            registry=registry,
        )
        self.cr_reconcile_time = Histogram(
            "controller_runtime_reconcile_time_seconds",
            "Length of time per reconciliation per controller.",
            ["controller"],
            buckets=_LATENCY_BUCKETS,
            registry=registry,
        )
        for result in Result:
            self.reconcile_total.labels(result=result.value)
        for cr_result in ("success", "error", "requeue", "requeue_after"):
            self.cr_reconcile_total.labels(controller=CONTROLLER, result=cr_result)
        self.cr_reconcile_errors.labels(controller=CONTROLLER)

    def observe(self, result: Result, seconds: float, *, requeue_after: float | None, error: bool) -> None:
        self.reconcile_total.labels(result=result.value).inc()
        self.reconcile_duration.observe(seconds)
        self.cr_reconcile_time.labels(controller=CONTROLLER).observe(seconds)
        if error:
            self.cr_reconcile_errors.labels(controller=CONTROLLER).inc()
            cr_result = "error"
        elif requeue_after is not None and result is not Result.READY:
            cr_result = "requeue_after"
        else:
            cr_result = "success"
        self.cr_reconcile_total.labels(controller=CONTROLLER, result=cr_result).inc()


class PopulationCollector(Collector):
    """passops_purchases{phase} and passops_oldest_unready_purchase_seconds from the cache."""

    def __init__(self, purchases: Callable[[], Iterable[PurchaseView]]) -> None:
        self._purchases = purchases

    def collect(self) -> Iterator[GaugeMetricFamily]:
        now = datetime.now(UTC)
        counts = {phase.value: 0 for phase in Phase}
        oldest = 0.0
        for purchase in self._purchases():
            phase = purchase.phase or Phase.PENDING.value
            counts[phase] = counts.get(phase, 0) + 1
            if phase not in (Phase.READY, Phase.FAILED) and purchase.created_at is not None:
                oldest = max(oldest, (now - purchase.created_at).total_seconds())
        by_phase = GaugeMetricFamily("passops_purchases", "PassPurchases by phase.", labels=["phase"])
        for phase, count in sorted(counts.items()):
            by_phase.add_metric([phase], count)
        yield by_phase
        yield GaugeMetricFamily(
            "passops_oldest_unready_purchase_seconds",
            "Age of the oldest purchase that is neither Ready nor Failed (0 when none).",
            value=oldest,
        )

    def describe(self) -> Iterator[GaugeMetricFamily]:
        return iter(())
