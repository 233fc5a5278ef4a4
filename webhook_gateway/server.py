"""Running the gateway: ``serve`` until cancelled (``passops gateway`` wires the CLI to it)."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from aiohttp import web

from passops.config import Settings
from passops.kube import PurchaseClient
from webhook_gateway.app import create_app

log = logging.getLogger("webhook_gateway")


class RunningGateway:
    """A started gateway; ``port`` is the bound one (useful with port 0)."""

    def __init__(self, runner: web.AppRunner, site: web.TCPSite) -> None:
        self._runner = runner
        self._site = site

    @property
    def port(self) -> int:
        server = self._site._server  # aiohttp exposes the bound sockets only there
        sockets = getattr(server, "sockets", None) or []
        return int(sockets[0].getsockname()[1]) if sockets else 0

    async def close(self) -> None:
        await self._runner.cleanup()


async def start(
    settings: Settings,
    purchases: PurchaseClient,
    host: str = "0.0.0.0",
    port: int | None = None,
    **app_kwargs: Any,
) -> RunningGateway:
    """Start serving in the background; ConfigurationError when the gateway must not run."""
    app = create_app(settings, purchases, **app_kwargs)
    runner = web.AppRunner(app, access_log=None)  # access logs would carry nothing we need
    await runner.setup()
    site = web.TCPSite(runner, host, settings.gateway_port if port is None else port)
    try:
        await site.start()
    except BaseException:
        await runner.cleanup()
        raise
    gateway = RunningGateway(runner, site)
    log.info("gateway listening on %s:%d", host, gateway.port)
    return gateway


async def serve(
    settings: Settings,
    purchases: PurchaseClient,
    host: str = "0.0.0.0",
    port: int | None = None,
    **app_kwargs: Any,
) -> None:
    """Serve until cancelled, then stop accepting and close (port defaults to settings.gateway_port)."""
    gateway = await start(settings, purchases, host, port, **app_kwargs)
    try:
        await asyncio.Event().wait()
    finally:
        await gateway.close()


async def run_gateway(settings: Settings, host: str = "0.0.0.0", port: int | None = None) -> None:
    """``passops gateway``: connect to Kubernetes the standard way and serve until interrupted."""
    from passops.kube import purchase_client

    async with purchase_client(settings.namespace) as purchases:
        await serve(settings, purchases, host, port)
