"""Retry delays: exponential with jitter, capped (kopf's own retry delay is fixed, so we compute it)."""

from __future__ import annotations

import random

from passops.config import Backoff


def retry_delay(attempt: int, policy: Backoff, rng: random.Random | None = None) -> float:
    """The delay before retry number ``attempt`` (1 = after the first failure).

    Jitter spreads retries of many purchases that failed together (a database outage) so that they
    do not all hit the recovered database in the same second.
    """
    if attempt < 1:
        return 0.0
    # Cap the exponent first: 2**attempt overflows floats after ~1000 attempts of a long outage.
    exponent = min(attempt - 1, 62)
    raw = min(policy.cap, policy.base * (2.0**exponent))
    spread = raw * policy.jitter
    jittered = raw + (rng or random).uniform(-spread, spread)
    return max(0.0, min(policy.cap, jittered))
