"""PassPurchase bodies built from Stripe Checkout Sessions the way the gateway writes them, and visits.

- ``purchase_body(session, *events)``: the object as the API would hold it after the gateway stored
  the given deliveries (``checkout.session.completed`` by default): metadata (name, namespace,
  generation, resourceVersion, creationTimestamp, annotations), ``spec_from_session`` facts merged
  with ``merge_spec`` exactly as the gateway merges later deliveries, and ``spec.events``.
- ``deliver(body, event_type, session)``: a later delivery merged into the spec (a spec change bumps
  ``metadata.generation`` as the API server does).
- ``apply_status(body, patch)``: a JSON merge patch onto ``status`` (``None`` removes a field), as the
  status subresource applies the controller's patch.
- ``visit(reconciler, body, now, settings)``: one reconciliation as the runner does it (reconcile,
  plan, Events), returning the body after the status patch, to simulate successive visits.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from controller.events import Event, transition_events
from controller.outcome import Outcome
from controller.purchase import PurchaseView, format_time
from controller.reconcile import Reconciler
from controller.status import Plan, plan
from passops.config import Settings
from passops.resource import ANNOTATION_PAUSED, ANNOTATION_RESYNC, purchase_name
from passops.testing import stripe_events
from webhook_gateway.checkout import CHECKOUT_COMPLETED, facts_from_event
from webhook_gateway.merge import merge_spec

Body = dict[str, Any]

DEFAULT_TENANT = "default"
NAMESPACE = "passops"
CREATED_AT = datetime(2026, 12, 3, 12, 0, 0, tzinfo=UTC)


def gateway_spec(event_type: str, session: Mapping[str, Any]) -> dict[str, Any]:
    """The spec facts the gateway derives from one delivery of ``event_type`` carrying ``session``."""
    facts = facts_from_event(stripe_events.event(event_type, session), default_tenant=DEFAULT_TENANT)
    assert facts is not None, f"the gateway ignores {event_type}"
    return facts.spec


def purchase_body(
    session: Mapping[str, Any],
    *event_types: str,
    annotations: Mapping[str, str] | None = None,
    created_at: datetime = CREATED_AT,
) -> Body:
    """The PassPurchase after the gateway stored deliveries of ``event_types`` (default: completed)."""
    spec: dict[str, Any] = {}
    for event_type in event_types or (CHECKOUT_COMPLETED,):
        spec = merge_spec(spec, gateway_spec(event_type, session))
    return {
        "apiVersion": "passops.dev/v1alpha1",
        "kind": "PassPurchase",
        "metadata": {
            "name": purchase_name(str(session["id"])),
            "namespace": NAMESPACE,
            "generation": 1,
            "resourceVersion": "1",
            "creationTimestamp": format_time(created_at),
            "annotations": dict(annotations or {}),
        },
        "spec": spec,
        "status": {},
    }


def _bump(body: Body, *, generation: bool) -> None:
    meta = body["metadata"]
    meta["resourceVersion"] = str(int(meta.get("resourceVersion") or 0) + 1)
    if generation:
        meta["generation"] = int(meta.get("generation") or 0) + 1


def deliver(body: Body, event_type: str, session: Mapping[str, Any]) -> Body:
    """``body`` after a later delivery of ``event_type`` was merged into its spec by the gateway."""
    updated = copy.deepcopy(body)
    updated["spec"] = merge_spec(body["spec"], gateway_spec(event_type, session))
    _bump(updated, generation=updated["spec"] != body["spec"])
    return updated


def annotate(body: Body, **changes: str | None) -> Body:
    """``body`` with annotations set (``None`` removes); keys: ``paused``, ``resync``."""
    keys = {"paused": ANNOTATION_PAUSED, "resync": ANNOTATION_RESYNC}
    updated = copy.deepcopy(body)
    annotations: dict[str, str] = updated["metadata"].setdefault("annotations", {})
    for short, value in changes.items():
        if value is None:
            annotations.pop(keys[short], None)
        else:
            annotations[keys[short]] = value
    _bump(updated, generation=False)  # metadata changes do not bump the generation
    return updated


def _merge_patch(target: Mapping[str, Any], patch: Mapping[str, Any]) -> dict[str, Any]:
    merged = copy.deepcopy(dict(target))
    for key, value in patch.items():
        if value is None:
            merged.pop(key, None)
        elif isinstance(value, Mapping) and isinstance(merged.get(key), Mapping):
            merged[key] = _merge_patch(merged[key], value)
        else:
            merged[key] = copy.deepcopy(value)
    return merged


def apply_status(body: Body, patch: Mapping[str, Any]) -> Body:
    """``body`` after the status subresource applied the JSON merge patch ``patch``."""
    updated = copy.deepcopy(body)
    updated["status"] = _merge_patch(body.get("status") or {}, patch)
    _bump(updated, generation=False)
    return updated


@dataclass(frozen=True)
class Visit:
    before: PurchaseView
    outcome: Outcome  # as the reconciler concluded, before escalation
    plan: Plan
    events: list[Event]
    body: Body  # after the status patch

    @property
    def status(self) -> dict[str, Any]:
        return self.plan.status

    def condition(self, type_: str) -> dict[str, Any]:
        found: list[dict[str, Any]] = [c for c in self.plan.status["conditions"] if c["type"] == type_]
        assert len(found) == 1, f"condition {type_} missing or repeated"
        return found[0]


async def visit(reconciler: Reconciler, body: Body, now: datetime, settings: Settings) -> Visit:
    """One reconciliation of ``body`` at ``now``, as the controller's runner performs it."""
    purchase = PurchaseView.from_body(body)
    outcome = await reconciler.reconcile(purchase)
    planned = plan(purchase, outcome, now, settings)
    return Visit(
        before=purchase,
        outcome=outcome,
        plan=planned,
        events=transition_events(purchase, planned),
        body=apply_status(body, planned.status),
    )
