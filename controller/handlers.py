"""The kopf layer: a thin shell that feeds watch events to the Controller and posts its Events.

kopf provides the watch (with reconnects and re-listing), authentication and Event posting; all
decisions live in plain modules. Only `on.event` is used: kopf's change handlers keep their own
progress and retry state, which would get in the way of a force-resync during a retry storm.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any

import kopf

from controller.runner import Controller
from passops.kube import load_configuration
from passops.resource import GROUP, PLURAL, VERSION


def kopf_settings() -> kopf.OperatorSettings:
    settings = kopf.OperatorSettings()
    settings.peering.standalone = True
    # Our Events are posted by the controller itself; kopf's log lines stay in the log.
    settings.posting.enabled = False
    # kopf must not write status.kopf (pruned by the schema) nor use its default annotation prefix.
    settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(prefix=GROUP)
    settings.persistence.diffbase_storage = kopf.AnnotationsDiffBaseStorage(
        prefix=GROUP, key="last-handled-configuration"
    )
    settings.watching.server_timeout = 300
    settings.watching.client_timeout = 330
    settings.networking.request_timeout = 30
    return settings


async def connection_info() -> kopf.ConnectionInfo:
    """kopf logs in exactly as passops' own client does (kubeconfig incl. exec plugins, or in-cluster)."""
    configuration = await load_configuration()
    # The hook-aware getter refreshes exec-plugin and projected service-account tokens.
    authorization = str(await configuration.get_api_key_with_prefix("BearerToken") or "")
    scheme, _, token = authorization.partition(" ") if " " in authorization else ("Bearer", "", authorization)
    return kopf.ConnectionInfo(
        server=str(configuration.host),
        ca_path=configuration.ssl_ca_cert or None,
        insecure=not configuration.verify_ssl,
        scheme=scheme or None,
        token=token or None,
        certificate_path=configuration.cert_file or None,
        private_key_path=configuration.key_file or None,
        username=configuration.username or None,
        password=configuration.password or None,
    )


def build_registry(controller: Controller, workers: int) -> kopf.OperatorRegistry:
    registry = kopf.OperatorRegistry()
    tasks: list[asyncio.Task[None]] = []

    @kopf.on.login(registry=registry)
    async def login(**_: Any) -> kopf.ConnectionInfo:
        return await connection_info()

    @kopf.on.startup(registry=registry)
    async def start_workers(**_: Any) -> None:
        # Started from here so that the workers run in kopf's context, where kopf.event() works.
        tasks.append(asyncio.create_task(controller.run_workers(workers), name="passops-workers"))

    @kopf.on.cleanup(registry=registry)
    async def stop_workers(**_: Any) -> None:
        controller.stop()
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    # async: kopf runs plain functions in a thread pool, and the cache and work queue belong to the
    # event loop's thread.
    @kopf.on.event(GROUP, VERSION, PLURAL, registry=registry)
    async def watched(event: Mapping[str, Any], **_: Any) -> None:
        body = event.get("object")
        if isinstance(body, Mapping):
            controller.observe(body, deleted=event.get("type") == "DELETED")

    return registry
