"""Running the gateway: serve() listens until cancelled, and refuses to start without a secret."""

from __future__ import annotations

import asyncio

import aiohttp
import pytest

from passops.config import Settings
from tests.test_gateway_store import FakePurchases
from webhook_gateway import ConfigurationError, serve
from webhook_gateway.server import start


async def test_start_listens_and_close_stops(webhook_secret: str) -> None:
    gateway = await start(
        Settings(stripe_webhook_secrets=(webhook_secret,)), FakePurchases().client(), "127.0.0.1", 0
    )
    try:
        async with aiohttp.ClientSession() as http, http.get(f"http://127.0.0.1:{gateway.port}/healthz") as r:
            assert r.status == 200
    finally:
        await gateway.close()
    with pytest.raises(aiohttp.ClientConnectionError):
        async with aiohttp.ClientSession() as http, http.get(f"http://127.0.0.1:{gateway.port}/healthz"):
            pass


async def test_serve_runs_until_cancelled(webhook_secret: str, unused_tcp_port: int) -> None:
    settings = Settings(stripe_webhook_secrets=(webhook_secret,))
    task = asyncio.create_task(serve(settings, FakePurchases().client(), "127.0.0.1", unused_tcp_port))
    url = f"http://127.0.0.1:{unused_tcp_port}/healthz"
    async with aiohttp.ClientSession() as http:
        for _ in range(100):
            try:
                async with http.get(url) as r:
                    assert r.status == 200
                    break
            except aiohttp.ClientConnectionError:
                await asyncio.sleep(0.02)
        else:
            pytest.fail("the gateway never listened")
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


async def test_serve_without_secret_refuses_to_start() -> None:
    with pytest.raises(ConfigurationError):
        await serve(Settings(), FakePurchases().client(), "127.0.0.1", 0)
