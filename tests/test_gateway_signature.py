"""Signature verification: the real stripe library over the exact bytes, against several secrets."""

from __future__ import annotations

import time

import pytest
import stripe

from passops.testing import stripe_events as se
from webhook_gateway.signature import DEFAULT_TOLERANCE, InvalidSignature, verify

BODY = se.encode(se.event(se.CHECKOUT_COMPLETED, se.paid_session()))


def test_our_signer_matches_the_stripe_library(webhook_secret: str) -> None:
    # Two independent implementations of the documented scheme must agree byte for byte.
    ts = 1_800_000_000
    expected = stripe.WebhookSignature.generate_signature_header(BODY.decode(), webhook_secret, ts)
    assert se.sign(BODY, webhook_secret, ts) == expected


def test_valid_signature_is_accepted(webhook_secret: str) -> None:
    verify(BODY, se.sign(BODY, webhook_secret), [webhook_secret])


def test_tolerance_is_stripes_default() -> None:
    assert DEFAULT_TOLERANCE == 300


def test_no_header_is_refused(webhook_secret: str) -> None:
    for header in (None, ""):
        with pytest.raises(InvalidSignature, match="missing"):
            verify(BODY, header, [webhook_secret])


@pytest.mark.parametrize("header", ["garbage", "t=notanumber,v1=abc", "v1=abc", "t=1700000000"])
def test_garbled_header_is_refused(webhook_secret: str, header: str) -> None:
    with pytest.raises(InvalidSignature, match="malformed Stripe-Signature header"):
        verify(BODY, header, [webhook_secret])


def test_wrong_secret_is_refused(webhook_secret: str) -> None:
    with pytest.raises(InvalidSignature, match="no signature matches"):
        verify(BODY, se.sign(BODY, se.webhook_secret()), [webhook_secret])


def test_tampered_body_is_refused(webhook_secret: str) -> None:
    header = se.sign(BODY, webhook_secret)
    tampered = BODY.replace(b'"amount_total": 1900', b'"amount_total": 1')
    assert tampered != BODY
    with pytest.raises(InvalidSignature, match="no signature matches"):
        verify(tampered, header, [webhook_secret])


def test_reformatted_body_is_refused(webhook_secret: str) -> None:
    """Same JSON, different bytes (re-serialised by a proxy): the signature covers the exact bytes."""
    header = se.sign(BODY, webhook_secret)
    with pytest.raises(InvalidSignature):
        verify(BODY.replace(b"\n  ", b""), header, [webhook_secret])


def test_stale_timestamp_is_refused(webhook_secret: str) -> None:
    stale = int(time.time()) - DEFAULT_TOLERANCE - 5
    with pytest.raises(InvalidSignature, match="tolerance"):
        verify(BODY, se.sign(BODY, webhook_secret, stale), [webhook_secret])


def test_stale_timestamp_is_reported_over_other_secrets_mismatch(
    webhook_secret: str, second_webhook_secret: str
) -> None:
    stale = int(time.time()) - DEFAULT_TOLERANCE - 5
    with pytest.raises(InvalidSignature, match="tolerance"):
        verify(BODY, se.sign(BODY, webhook_secret, stale), [second_webhook_secret, webhook_secret])


def test_recent_timestamp_within_tolerance_is_accepted(webhook_secret: str) -> None:
    verify(BODY, se.sign(BODY, webhook_secret, int(time.time()) - 200), [webhook_secret])


def test_rotation_either_configured_secret_verifies(webhook_secret: str, second_webhook_secret: str) -> None:
    configured = [webhook_secret, second_webhook_secret]
    verify(BODY, se.sign(BODY, webhook_secret), configured)
    verify(BODY, se.sign(BODY, second_webhook_secret), configured)


def test_rotation_header_with_two_signatures_verifies(
    webhook_secret: str, second_webhook_secret: str
) -> None:
    """While a secret rolls, Stripe sends one v1 per secret; knowing only the new one suffices."""
    header = se.sign_many(BODY, [se.webhook_secret(), second_webhook_secret])
    verify(BODY, header, [webhook_secret, second_webhook_secret])


def test_no_configured_secret_refuses_everything(webhook_secret: str) -> None:
    with pytest.raises(InvalidSignature):
        verify(BODY, se.sign(BODY, webhook_secret), [])


def test_non_utf8_body_is_refused(webhook_secret: str) -> None:
    body = b"\xff\xfe" + BODY
    with pytest.raises(InvalidSignature, match="UTF-8"):
        verify(body, se.sign(body, webhook_secret), [webhook_secret])


def test_messages_never_carry_secret_header_or_body(webhook_secret: str) -> None:
    header = se.sign(BODY, se.webhook_secret())
    with pytest.raises(InvalidSignature) as caught:
        verify(BODY, header, [webhook_secret])
    text = str(caught.value)
    assert webhook_secret not in text and header not in text and "checkout" not in text
