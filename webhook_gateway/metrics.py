"""The gateway's Prometheus metrics (names are part of the contract: dashboards and alerts use them)."""

from __future__ import annotations

from typing import Final

from prometheus_client import Counter, Histogram

from webhook_gateway.store import Outcome

REQUESTS: Final = Counter(
    "passops_webhook_requests",
    "Stripe webhook deliveries received, by outcome.",
    ["outcome"],
)
DURATION: Final = Histogram(
    "passops_webhook_request_duration_seconds",
    "Time to verify, store and answer one Stripe webhook delivery.",
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0),
)

# Every outcome exists from the start, so that dashboards and rate() alerts see zeros, not gaps.
for _outcome in Outcome:
    REQUESTS.labels(outcome=_outcome.value)


def observe(outcome: Outcome, seconds: float) -> None:
    REQUESTS.labels(outcome=outcome.value).inc()
    DURATION.observe(seconds)
