"""The line items of a Checkout Session, from the Stripe API (the ``LineItems`` of reconciliation).

Checkout events carry no line items, so a purchase whose metadata names neither pass nor price is
resolved by asking Stripe which prices were bought. Failures map onto the reconciler's two kinds:
Stripe down, slow or rate limiting -> TransientError (the controller retries with backoff);
a rejected key or an unknown session -> PermanentError (Stalled, a person must act).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any, Final

import aiohttp
import stripe

from controller.metrics import ControllerMetrics
from controller.reconcile import PermanentError, TransientError
from passops.stripe_api import new_client, retry_after

log = logging.getLogger("passops.controller.stripe")

DEFAULT_TIMEOUT: Final = 10.0
_PAGE_SIZE: Final = 100  # Stripe's maximum: the fewest round trips


class StripeRateLimited(TransientError):
    """Stripe answered 429; ``retry_after`` is its Retry-After in seconds, when it sent one."""

    def __init__(self, message: str, retry_after: float | None) -> None:
        super().__init__("StripeUnavailable", message, retry_after=retry_after)


def translate(exc: BaseException, what: str, *, secret: str) -> TransientError | PermanentError:
    """The reconciler's error for a failed Stripe call about ``what``; ``secret`` never appears."""
    if isinstance(exc, stripe.RateLimitError):
        wait = retry_after(exc.headers)
        hint = f"; Stripe asks to retry after {wait:g}s" if wait is not None else ""
        return StripeRateLimited(_redact(f"Stripe rate-limited the request for {what}{hint}", secret), wait)
    if isinstance(exc, stripe.AuthenticationError | stripe.PermissionError):
        # Stripe's own message quotes (part of) the key: leave it out entirely.
        return PermanentError(
            "StripeAuthFailed",
            f"the Stripe API refused the configured key (HTTP {exc.http_status}) while looking up "
            f"{what}; check PASSOPS_STRIPE_API_KEY (a restricted key needs Checkout Sessions: read)",
        )
    if isinstance(exc, stripe.InvalidRequestError) and exc.http_status == 404:
        return PermanentError(
            "StripeSessionNotFound",
            f"Stripe does not know {what} (a session of another account or mode than the key's?)",
        )
    if isinstance(exc, stripe.StripeError) and exc.http_status is not None and exc.http_status < 500:
        return PermanentError(
            "StripeRequestRejected",
            _redact(f"Stripe rejected the request for {what} (HTTP {exc.http_status}): {exc}", secret),
        )
    return TransientError(
        "StripeUnavailable", _redact(f"{_why_unavailable(exc)} while looking up {what}", secret)
    )


def _why_unavailable(exc: BaseException) -> str:
    if isinstance(exc, TimeoutError) or isinstance(exc.__cause__, TimeoutError):
        return "the Stripe API did not answer in time"
    if isinstance(exc, stripe.StripeError) and exc.http_status is not None:
        return f"the Stripe API answered HTTP {exc.http_status}"
    cause = exc.__cause__ or exc
    return f"the Stripe API is unreachable ({type(cause).__name__})"


def _redact(message: str, secret: str) -> str:
    return message.replace(secret, "[redacted]") if secret else message


# What a failed call can raise: the library's errors, and aiohttp's when a body read times out or
# breaks after the headers (the library wraps only the request itself).
CALL_ERRORS: Final = (stripe.StripeError, aiohttp.ClientError, TimeoutError)


class StripeLineItems:
    """``LineItems`` on the Stripe API: every price id of a session's line items, all pages."""

    def __init__(
        self,
        api_key: str,
        api_base: str,
        *,
        timeout: float = DEFAULT_TIMEOUT,
        metrics: ControllerMetrics | None = None,
    ) -> None:
        self._api_key = api_key
        self._metrics = metrics
        self._client, self._http = new_client(api_key, api_base, timeout)
        self._used = False

    async def price_ids(self, checkout_session_id: str) -> list[str]:
        what = f"the line items of {checkout_session_id}"
        try:
            self._used = True
            first = await self._client.v1.checkout.sessions.line_items.list_async(
                checkout_session_id, params={"limit": _PAGE_SIZE}
            )
            prices = [_price_id(item) async for item in first.auto_paging_iter()]
        except CALL_ERRORS as exc:
            if self._metrics is not None:
                self._metrics.stripe_api_errors.inc()
            error = translate(exc, what, secret=self._api_key)
            log.warning("Stripe call failed: %s: %s", error.reason, error.message)
            raise error from None  # the chained Stripe error would carry the response, headers and all
        return [p for p in dict.fromkeys(prices) if p]  # in order, each once

    async def close(self) -> None:
        if self._used:  # closing an unused transport would first open a session
            await self._http.close_async()  # type: ignore[no-untyped-call]  # untyped in stripe 16


def _price_id(item: Any) -> str | None:
    data: Mapping[str, Any] = item.to_dict() if isinstance(item, stripe.StripeObject) else item
    price = data.get("price")
    if isinstance(price, Mapping):
        value = price.get("id")
        return value if isinstance(value, str) and value else None
    return price if isinstance(price, str) and price else None  # an unexpanded id
