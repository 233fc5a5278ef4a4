"""Create-or-merge of a PassPurchase on the Kubernetes API, safe under concurrent deliveries.

The name is derived from the Checkout Session id, so the API server's uniqueness of names is what
makes two concurrent deliveries land on one object; resourceVersion preconditions on replace are
what keeps a merge from overwriting a concurrent one (lost update).
"""

from __future__ import annotations

import asyncio
import copy
import random
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Final

from passops.kube import AlreadyExists, Body, Conflict, NotFound, PurchaseClient, Unavailable
from passops.resource import API_VERSION, KIND
from webhook_gateway.checkout import PurchaseFacts
from webhook_gateway.merge import event_ids, merge_labels, merge_spec

DEFAULT_ATTEMPTS: Final = 10


class Outcome(StrEnum):
    """The answer to one delivery; also the ``outcome`` label of the requests metric."""

    ACCEPTED = "accepted"
    DUPLICATE = "duplicate"
    IGNORED = "ignored"
    INVALID_SIGNATURE = "invalid_signature"
    MALFORMED = "malformed"
    TOO_LARGE = "too_large"
    UNAVAILABLE = "unavailable"


@dataclass(frozen=True)
class Stored:
    outcome: Outcome  # ACCEPTED or DUPLICATE
    name: str
    written: bool


def new_body(facts: PurchaseFacts) -> Body:
    metadata: dict[str, Any] = {"name": facts.name}
    if facts.labels:
        metadata["labels"] = dict(facts.labels)
    return {"apiVersion": API_VERSION, "kind": KIND, "metadata": metadata, "spec": copy.deepcopy(facts.spec)}


async def store_purchase(
    purchases: PurchaseClient, facts: PurchaseFacts, *, attempts: int = DEFAULT_ATTEMPTS
) -> Stored:
    """Create the purchase, or merge the facts into the existing one. Returns once it is stored.

    Raises passops.kube errors: Unavailable (also after ``attempts`` lost races), Invalid, KubeError.
    """
    for attempt in range(attempts):
        if attempt:
            # Jittered and growing, so that racers lose to each other a bounded number of times.
            await asyncio.sleep(random.uniform(0.0, 0.005 * 2 ** min(attempt, 6)))
        try:
            await purchases.create(new_body(facts))
            return Stored(Outcome.ACCEPTED, facts.name, written=True)
        except AlreadyExists:
            pass
        try:
            current = await purchases.get(facts.name)
        except NotFound:
            continue  # deleted in between: create again
        stored = await _merge_into(purchases, current, facts)
        if stored is not None:
            return stored
    raise Unavailable(f"{facts.name}: still conflicting after {attempts} attempts")


async def _merge_into(purchases: PurchaseClient, current: Body, facts: PurchaseFacts) -> Stored | None:
    """Merge and replace at the read resourceVersion; None when another writer got there first."""
    spec = current.get("spec") or {}
    metadata = current.get("metadata") or {}
    outcome = Outcome.DUPLICATE if facts.event.id in event_ids(spec) else Outcome.ACCEPTED
    merged_spec = merge_spec(spec, facts.spec)
    merged_labels = merge_labels(metadata.get("labels"), facts.labels)
    if merged_spec == spec and merged_labels == (metadata.get("labels") or {}):
        return Stored(outcome, facts.name, written=False)
    body = copy.deepcopy(current)
    body["spec"] = merged_spec
    if merged_labels:
        body["metadata"]["labels"] = merged_labels
    try:
        await purchases.replace(body)
    except (Conflict, NotFound):
        return None
    return Stored(outcome, facts.name, written=True)
