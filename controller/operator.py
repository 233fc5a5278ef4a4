"""Run the controller: database, Kubernetes client, metrics endpoint and the kopf operator."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from typing import Any

import kopf
from prometheus_client import REGISTRY, CollectorRegistry, start_http_server

from controller.events import Event
from controller.handlers import build_registry, kopf_settings
from controller.metrics import ControllerMetrics, PopulationCollector
from controller.reconcile import Reconciler
from controller.runner import Controller
from controller.stripe_lookup import StripeLineItems
from passops.config import Settings
from passops.kube import purchase_client

logger = logging.getLogger("passops.controller")
COMPONENT = "passops-controller"


async def run_controller(
    settings: Settings,
    *,
    stop_flag: asyncio.Event | None = None,
    ready_flag: asyncio.Event | None = None,
    serve_metrics: bool = True,
    registry: CollectorRegistry = REGISTRY,
) -> None:
    from controller.ledger_adapter import open_ledger  # the database layer, imported late for the CLI

    if not settings.database_url:
        raise ValueError("no database: set PASSOPS_DATABASE_URL (or DATABASE_URL)")
    metrics = ControllerMetrics(registry)
    async with (
        open_ledger(settings.database_url, metrics) as ledger,
        purchase_client(settings.namespace) as purchases,
    ):
        line_items = (
            StripeLineItems(settings.stripe_api_key, settings.stripe_api_base, metrics=metrics)
            if settings.stripe_api_key
            else None
        )
        reconciler = Reconciler(
            ledger=ledger,
            user_policy=settings.user_policy,
            default_tenant=settings.default_tenant,
            line_items=line_items,
        )

        async def post_event(body: Mapping[str, Any], event: Event) -> None:
            await purchases.post_event(
                body, type=event.type, reason=event.reason, message=event.message, component=COMPONENT
            )

        controller = Controller(purchases, reconciler, settings, metrics, post_event)
        registry.register(PopulationCollector(controller.views))
        if serve_metrics:
            start_http_server(settings.metrics_port, registry=registry)
            logger.info("metrics on :%d/metrics", settings.metrics_port)
        try:
            await kopf.operator(
                registry=build_registry(controller, settings.workers),
                settings=kopf_settings(),
                namespaces=[settings.namespace],
                standalone=True,
                stop_flag=stop_flag,
                ready_flag=ready_flag,
            )
        finally:
            controller.stop()
            if line_items is not None:
                await line_items.close()
