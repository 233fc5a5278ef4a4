"""The e2e scenarios with kopf running for real against the in-process Kubernetes API emulator."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
from collections.abc import AsyncIterator

import pytest
from prometheus_client import CollectorRegistry

from controller.db import create_engine
from controller.operator import run_controller
from passops.config import Backoff, Settings
from passops.kube import purchase_client
from passops.testing import stripe_events as se
from passops.testing.emulator import EmulatedCluster
from tests.e2e.scenarios import SCENARIOS, Scenario
from tests.e2e.stack import Stack
from webhook_gateway import server


@contextlib.asynccontextmanager
async def running_stack(
    emulator: EmulatedCluster, db_url: str, monkeypatch: pytest.MonkeyPatch, **overrides: object
) -> AsyncIterator[Stack]:
    monkeypatch.setenv("KUBECONFIG", emulator.kubeconfig)
    secret = se.webhook_secret()
    settings = Settings(
        namespace=emulator.namespace,
        database_url=db_url,
        stripe_webhook_secrets=(secret,),
        backoff=Backoff(base=0.2, cap=2.0, jitter=0.1),
    )
    # e.g. user_policy, stripe_api_key, or another database_url for the controller alone
    settings = dataclasses.replace(settings, **overrides)  # type: ignore[arg-type]
    engine = create_engine(db_url)
    stop, ready = asyncio.Event(), asyncio.Event()
    registry = CollectorRegistry()
    operator = asyncio.create_task(
        run_controller(settings, stop_flag=stop, ready_flag=ready, serve_metrics=False, registry=registry)
    )
    try:
        async with purchase_client(emulator.namespace, emulator.kubeconfig) as purchases:
            gateway = await server.start(settings, purchases, host="127.0.0.1", port=0)
            try:
                await asyncio.wait_for(ready.wait(), 20)
                stack = Stack(f"http://127.0.0.1:{gateway.port}", purchases, engine, secret)
                stack.extra["registry"] = registry
                await stack.seed_catalog()
                yield stack
            finally:
                await gateway.close()
    finally:
        stop.set()
        with contextlib.suppress(asyncio.CancelledError, TimeoutError):
            await asyncio.wait_for(operator, 10)
        await engine.dispose()


@pytest.fixture
async def stack(
    emulator: EmulatedCluster, clean_database_url: str, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[Stack]:
    async with running_stack(emulator, clean_database_url, monkeypatch) as running:
        yield running


@pytest.mark.parametrize("scenario", SCENARIOS, ids=[s.__name__ for s in SCENARIOS])
async def test_scenario(stack: Stack, scenario: Scenario) -> None:
    await scenario(stack)
