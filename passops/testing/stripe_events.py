"""Stripe Checkout Session objects and webhook events, shaped like Stripe's, and their signatures.

Payloads follow the API version the installed ``stripe`` library pins (``stripe.api_version``,
``2026-10-28.endive`` for stripe 16.1), exported here as ``API_VERSION``. Only the fields a Checkout
Session carries in a ``checkout.session.*`` event are built (no expansions), with the ``null``s Stripe
really sends: a free checkout has ``amount_total: 0`` and no currency or payment intent.

``sign`` implements the scheme Stripe documents for webhook signatures, written here so that the
tests do not check the library against itself: the header is ``t=<unix time>,v1=<signature>`` where
the signature is the hex HMAC-SHA256 of ``"<t>.<raw body>"`` keyed by the endpoint's secret.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
import string
import time
from collections.abc import Mapping, Sequence
from enum import Enum
from typing import Any, Final

import stripe

API_VERSION: Final[str] = str(stripe.api_version)

CHECKOUT_COMPLETED: Final = "checkout.session.completed"
ASYNC_PAYMENT_SUCCEEDED: Final = "checkout.session.async_payment_succeeded"
ASYNC_PAYMENT_FAILED: Final = "checkout.session.async_payment_failed"
CHECKOUT_EXPIRED: Final = "checkout.session.expired"

Payload = dict[str, Any]

_ALPHANUMERIC: Final = string.ascii_letters + string.digits


class _Auto(Enum):
    AUTO = "auto"


AUTO: Final = _Auto.AUTO
"""Default of the id fields of ``checkout_session``: a realistic id where Stripe would set one."""


def _random(length: int) -> str:
    return "".join(secrets.choice(_ALPHANUMERIC) for _ in range(length))


def stripe_id(prefix: str, length: int = 24) -> str:
    """A Stripe-looking id: ``stripe_id("evt")`` -> ``evt_1Qx...`` (case-sensitive alphanumerics)."""
    return f"{prefix}_{_random(length)}"


def checkout_session_id(*, livemode: bool = False) -> str:
    # Checkout Session ids are long and carry the mode: cs_test_a1... / cs_live_a1...
    return f"cs_{'live' if livemode else 'test'}_a1{_random(56)}"


def webhook_secret() -> str:
    """A fresh endpoint signing secret, shaped like the ``whsec_...`` values of the Dashboard/CLI."""
    return f"whsec_{_random(32)}"


def checkout_session(
    *,
    id: str | None = None,
    mode: str = "payment",
    payment_status: str = "paid",
    amount_total: int | None = 1900,
    currency: str | None = "eur",
    customer: str | _Auto | None = AUTO,
    email: str | None = "buyer@example.com",
    customer_email: str | None = None,
    client_reference_id: str | None = None,
    metadata: Mapping[str, str] | None = None,
    payment_method_types: Sequence[str] = ("card",),
    payment_intent: str | _Auto | None = AUTO,
    subscription: str | _Auto | None = AUTO,
    livemode: bool = False,
    created: int | None = None,
    status: str = "complete",
) -> Payload:
    """A Checkout Session as Stripe sends it in ``checkout.session.*`` events (defaults: paid by card).

    ``customer``, ``payment_intent`` and ``subscription`` get realistic ids by default (a payment
    intent in payment mode when money moves, a subscription in subscription mode); pass ``None`` to
    have them null as in a guest checkout or a free one.
    """
    created = int(time.time()) - 5 if created is None else created
    if customer is AUTO:
        customer = stripe_id("cus", 14)
    if payment_intent is AUTO:
        payment_intent = stripe_id("pi") if mode == "payment" and amount_total else None
    if subscription is AUTO:
        subscription = stripe_id("sub") if mode == "subscription" else None
    details: dict[str, Any] | None = (
        {
            "address": None,
            "business_name": None,
            "email": email,
            "individual_name": None,
            "name": "Ada Buyer",
            "phone": None,
            "tax_exempt": "none",
            "tax_ids": [],
        }
        if email is not None
        else None
    )
    return {
        "id": id or checkout_session_id(livemode=livemode),
        "object": "checkout.session",
        "adaptive_pricing": None,
        "after_expiration": None,
        "allow_promotion_codes": None,
        "amount_subtotal": amount_total,
        "amount_total": amount_total,
        "automatic_tax": {"enabled": False, "liability": None, "provider": None, "status": None},
        "billing_address_collection": None,
        "cancel_url": "https://shop.example.com/cancel",
        "client_reference_id": client_reference_id,
        "client_secret": None,
        "consent": None,
        "consent_collection": None,
        "created": created,
        "currency": currency,
        "custom_fields": [],
        "custom_text": {
            "after_submit": None,
            "shipping_address": None,
            "submit": None,
            "terms_of_service_acceptance": None,
        },
        "customer": customer,
        "customer_creation": "if_required",
        "customer_details": details,
        "customer_email": customer_email,
        "discounts": [],
        "expires_at": created + 86400,
        "invoice": stripe_id("in") if mode == "subscription" else None,
        "invoice_creation": None,
        "livemode": livemode,
        "locale": None,
        "metadata": dict(metadata or {}),
        "mode": mode,
        "payment_intent": payment_intent,
        "payment_link": None,
        "payment_method_collection": "if_required" if mode == "subscription" else None,
        "payment_method_configuration_details": None,
        "payment_method_options": {},
        "payment_method_types": list(payment_method_types),
        "payment_status": payment_status,
        "phone_number_collection": {"enabled": False},
        "recovered_from": None,
        "saved_payment_method_options": None,
        "setup_intent": None,
        "shipping_address_collection": None,
        "shipping_cost": None,
        "shipping_options": [],
        "status": status,
        "submit_type": None,
        "subscription": subscription,
        "success_url": "https://shop.example.com/success?session_id={CHECKOUT_SESSION_ID}",
        "total_details": {"amount_discount": 0, "amount_shipping": 0, "amount_tax": 0},
        "ui_mode": "hosted",
        "url": None,
    }


def paid_session(**kwargs: Any) -> Payload:
    """A one-time purchase paid by card: ``payment_status: paid`` at completion."""
    return checkout_session(**kwargs)


def async_unpaid_session(*, method: str = "sepa_debit", **kwargs: Any) -> Payload:
    """A delayed-notification payment (SEPA, ACH ``us_bank_account``, Boleto...): unpaid at completion."""
    kwargs.setdefault("payment_method_types", ("card", method))
    kwargs.setdefault("payment_status", "unpaid")
    return checkout_session(**kwargs)


def free_session(**kwargs: Any) -> Payload:
    """A 100%-off or free checkout: amount 0, no currency, no payment intent, nothing to pay."""
    kwargs.setdefault("payment_status", "no_payment_required")
    kwargs.setdefault("amount_total", 0)
    kwargs.setdefault("currency", None)
    kwargs.setdefault("payment_intent", None)
    kwargs.setdefault("payment_method_types", ())
    return checkout_session(**kwargs)


def subscription_session(**kwargs: Any) -> Payload:
    """A subscription-mode checkout: ``subscription: sub_...``, no payment intent."""
    kwargs.setdefault("mode", "subscription")
    return checkout_session(**kwargs)


def event(
    type: str,
    session: Mapping[str, Any],
    id: str | None = None,
    created: int | None = None,
    *,
    livemode: bool | None = None,
) -> Payload:
    """A v1 ("snapshot") webhook event carrying ``session`` as ``data.object``."""
    return {
        "id": id or stripe_id("evt"),
        "object": "event",
        "api_version": API_VERSION,
        "created": int(time.time()) if created is None else created,
        "data": {"object": dict(session)},
        "livemode": bool(session.get("livemode", False)) if livemode is None else livemode,
        "pending_webhooks": 1,
        "request": {"id": None, "idempotency_key": None},
        "type": type,
    }


def encode(payload: Mapping[str, Any]) -> bytes:
    """The body bytes as Stripe sends them (pretty-printed JSON, UTF-8)."""
    return json.dumps(payload, indent=2).encode()


def signature(payload: bytes, secret: str, timestamp: int) -> str:
    """The v1 signature: hex HMAC-SHA256 over ``b"<timestamp>." + payload``, keyed by the secret."""
    signed = str(timestamp).encode() + b"." + payload
    return hmac.new(secret.encode(), signed, hashlib.sha256).hexdigest()


def sign(payload: bytes, secret: str, timestamp: int | None = None) -> str:
    """The ``Stripe-Signature`` header value for ``payload`` (now, unless ``timestamp`` is given)."""
    ts = int(time.time()) if timestamp is None else timestamp
    return f"t={ts},v1={signature(payload, secret, ts)}"


def sign_many(payload: bytes, secrets_: Sequence[str], timestamp: int | None = None) -> str:
    """A header with one v1 signature per secret, as Stripe sends while an endpoint's secret rolls."""
    ts = int(time.time()) if timestamp is None else timestamp
    return ",".join([f"t={ts}", *(f"v1={signature(payload, s, ts)}" for s in secrets_)])


def signed_delivery(
    payload: Mapping[str, Any], secret: str, timestamp: int | None = None
) -> tuple[bytes, dict[str, str]]:
    """The body and headers of one delivery of ``payload`` signed with ``secret``."""
    body = encode(payload)
    return body, {
        "Content-Type": "application/json; charset=utf-8",
        "Stripe-Signature": sign(body, secret, timestamp),
        "User-Agent": "Stripe/1.0 (+https://stripe.com/docs/webhooks)",
    }
