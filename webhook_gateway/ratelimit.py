"""A token bucket per key (a Stripe customer): a burst of requests, then one per interval.

In memory and per replica: it protects the Stripe API quota and the cluster from a "Missing pass?"
button pressed in a loop, which does not need a shared counter; N replicas allow N times the rate.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final

DEFAULT_INTERVAL: Final = 10.0
DEFAULT_BURST: Final = 3
# Beyond this many tracked keys, full buckets (idle keys) are dropped: memory stays bounded.
_MAX_KEYS: Final = 10_000


@dataclass
class _Bucket:
    tokens: float
    updated: float


class TokenBucket:
    """``burst`` requests at once per key, refilled at one per ``interval`` seconds."""

    def __init__(
        self,
        *,
        interval: float = DEFAULT_INTERVAL,
        burst: int = DEFAULT_BURST,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if interval <= 0 or burst < 1:
            raise ValueError("interval must be positive and burst at least 1")
        self.interval = interval
        self.burst = burst
        self._clock = clock
        self._buckets: dict[str, _Bucket] = {}

    def acquire(self, key: str) -> float | None:
        """Take a token for ``key``: None when allowed, else the seconds until one is available."""
        now = self._clock()
        bucket = self._buckets.get(key)
        if bucket is None:
            if len(self._buckets) >= _MAX_KEYS:
                self._forget_idle(now)
            bucket = self._buckets[key] = _Bucket(float(self.burst), now)
        else:
            bucket.tokens = self._level(bucket, now)
            bucket.updated = now
        if bucket.tokens >= 1.0:
            bucket.tokens -= 1.0
            return None
        return (1.0 - bucket.tokens) * self.interval

    def _level(self, bucket: _Bucket, now: float) -> float:
        return min(float(self.burst), bucket.tokens + (now - bucket.updated) / self.interval)

    def _forget_idle(self, now: float) -> None:
        idle = [key for key, b in self._buckets.items() if self._level(b, now) >= self.burst]
        for key in idle:
            del self._buckets[key]
        # All busy: forget the longest-tracked tenth at once, so that this O(n) sweep runs once per
        # thousand new keys, not on every one (it runs on the event loop that serves webhooks).
        while len(self._buckets) >= _MAX_KEYS * 0.9:
            del self._buckets[next(iter(self._buckets))]
