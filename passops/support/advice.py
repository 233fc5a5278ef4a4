"""One plain sentence on what a person should do about a purchase, from its status alone."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from passops.resource import ANNOTATION_PAUSED


def _condition(status: Mapping[str, Any], type_: str) -> Mapping[str, Any]:
    for condition in status.get("conditions") or ():
        if isinstance(condition, Mapping) and condition.get("type") == type_:
            return condition
    return {}


def advice(body: Mapping[str, Any]) -> str:
    name = str((body.get("metadata") or {}).get("name") or "NAME")
    spec: Mapping[str, Any] = body.get("spec") or {}
    status: Mapping[str, Any] = body.get("status") or {}
    phase = status.get("phase")
    ready = _condition(status, "Ready")
    stalled = _condition(status, "Stalled").get("status") == "True"
    reason = str((status.get("lastError") or {}).get("reason") or ready.get("reason") or "")
    next_at = status.get("nextAttemptAt")
    retrying = f" passops retries on its own (next attempt {next_at});" if next_at else ""
    resync = f"`passops resync {name}` retries at once"
    tenant = spec.get("tenant") or "default"
    price = (spec.get("pass") or {}).get("priceId") or "PRICE"

    if not status:
        return "Not reconciled yet: check that `passops controller` is running (its logs and metrics)."
    if phase == "Ready":
        return f"Nothing to do: the customer has the pass (subscription {status.get('subscriptionId')})."
    if phase == "Paused":
        return (
            "Paused on purpose; to resume, remove the annotation: "
            f"`kubectl annotate pp {name} {ANNOTATION_PAUSED}-`."
        )
    if phase == "AwaitingPayment":
        return (
            "Nothing to do yet: the bank payment (SEPA, ACH, Boleto...) has not settled; the pass is granted "
            "when Stripe reports async_payment_succeeded (this can take days)."
        )
    if phase == "Failed":
        return (
            "The customer's payment failed, so no pass is granted; the customer must pay again "
            "(a new checkout)."
        )
    if reason == "UnknownPrice":
        return (
            f"Add the price to the pass catalog: `passops catalog add --tenant {tenant} --pass PASS_ID "
            f"--price {price} --days N`, then `passops resync {name}`."
        )
    if reason == "UserNotFound":
        return (
            "The app has not created this user yet (policy 'wait');"
            f"{retrying} if the user should exist, check the app's sign-up, then {resync}."
        )
    if reason == "NoUserIdentity":
        return (
            "The checkout carries no client_reference_id, customer or email: find the customer in Stripe "
            "and set spec.customer on this purchase (kubectl edit), then resync it."
        )
    if reason == "DatabaseUnavailable":
        return (
            f"The database is unreachable:{retrying} check PostgreSQL and PASSOPS_DATABASE_URL; "
            f"then {resync}."
        )
    if reason == "StripeUnavailable":
        return (
            f"The Stripe API is unreachable or rate-limiting:{retrying} if it lasts, check it; then {resync}."
        )
    if reason == "StripeAuthFailed":
        return "The Stripe API key is rejected: fix PASSOPS_STRIPE_API_KEY of the controller, then resync."
    if reason in ("SubscriptionConflict", "DatabaseConflict"):
        return (
            "Another purchase's row already holds this Stripe subscription: compare the two rows in the "
            f"subscriptions table, fix the wrong one, then {resync}."
        )
    if stalled:
        return f"Stalled ({reason}): read the last error, fix its cause, then {resync}."
    if next_at:
        return f"Retrying ({reason or 'in progress'}):{retrying.rstrip(';')}; nothing to do unless it lasts."
    return (
        f"In progress ({reason or phase}); if it does not move, check the controller's logs, then {resync}."
    )
