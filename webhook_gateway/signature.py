"""Verification of the ``Stripe-Signature`` header against every configured signing secret."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Final

import stripe

# Stripe's libraries' default; like them, only timestamps in the past are checked.
DEFAULT_TOLERANCE: Final[int] = int(stripe.Webhook.DEFAULT_TOLERANCE)


class InvalidSignature(Exception):
    """The delivery is not provably from Stripe: no/garbled header, wrong secret, tampered, stale."""


def verify(
    payload: bytes, header: str | None, secrets: Sequence[str], *, tolerance: int = DEFAULT_TOLERANCE
) -> None:
    """Raise InvalidSignature unless ``header`` signs the exact ``payload`` with one of ``secrets``.

    Several secrets are accepted at once so that a secret can be rolled (Stripe then signs with
    both) and several endpoints can share a gateway. Messages never include the header or body.
    """
    if not secrets:
        raise InvalidSignature("no signing secret is configured")
    if not header:
        raise InvalidSignature("missing Stripe-Signature header")
    if not header.isascii():  # Stripe's comparison (hmac.compare_digest) raises on non-ASCII text
        raise InvalidSignature(_GARBLED)
    try:
        # The library signs the text form of the body; Stripe sends UTF-8, so this is byte-exact.
        text = payload.decode("utf-8")
    except UnicodeDecodeError:
        raise InvalidSignature("body is not UTF-8, so its signature cannot be checked") from None
    reasons: set[str] = set()
    for secret in secrets:
        try:
            stripe.WebhookSignature.verify_header(text, header, secret, tolerance)
            return
        except stripe.SignatureVerificationError as exc:
            reasons.add(_reason(str(exc.user_message or "")))
    # A stale timestamp only shows with the right secret: report it over the other secrets' mismatch.
    for reason in (_STALE, _GARBLED):
        if reason in reasons:
            raise InvalidSignature(reason)
    raise InvalidSignature(_MISMATCH)


_STALE: Final = "timestamp outside the tolerance zone"
_GARBLED: Final = "malformed Stripe-Signature header"
_MISMATCH: Final = "no signature matches"


def _reason(library_message: str) -> str:
    # Map the library's fixed messages to ours: its exception also carries header and body.
    text = library_message.lower()
    if "timestamp outside" in text:
        return _STALE
    if "unable to extract" in text or "expected scheme" in text:
        return _GARBLED
    return _MISMATCH
