"""The Stripe API client both components use: aiohttp transport, one bounded attempt, no retries.

Retries belong to the callers: the controller's backoff (visible in status), or the person pressing
"Missing pass?" again.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping

import aiohttp
import stripe

# The stripe library logs every API error at INFO, quoting the tail of the API key: ours are enough.
logging.getLogger("stripe").setLevel(logging.WARNING)


def new_client(
    api_key: str, api_base: str, timeout: float
) -> tuple[stripe.StripeClient, stripe.AIOHTTPClient]:
    """A StripeClient on an aiohttp transport, and that transport (to ``close_async`` it)."""
    http = stripe.AIOHTTPClient(timeout=aiohttp.ClientTimeout(total=timeout))
    client = stripe.StripeClient(
        api_key, base_addresses={"api": api_base}, http_client=http, max_network_retries=0
    )
    return client, http


def retry_after(headers: Mapping[str, str] | None) -> float | None:
    """The Retry-After of an error response, in seconds (header names in any case)."""
    for key, value in (headers or {}).items():
        if str(key).lower() == "retry-after":
            try:
                seconds = float(value)
            except ValueError:
                return None
            return max(seconds, 0.0) if math.isfinite(seconds) else None
    return None
