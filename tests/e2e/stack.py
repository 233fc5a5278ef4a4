"""A running passops (gateway + controller + database) on some Kubernetes API, as tests drive it.

Both tiers build one: the emulator tier in-process, the real-API tier as real `passops` processes
against a real kube-apiserver. Scenarios (tests/e2e/scenarios.py) are written once against it.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import aiohttp
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from controller.db import Ledger
from passops.kube import PurchaseClient
from passops.testing import stripe_events as se

TENANT = "default"
CATALOG = (("day-pass", "price_e2e_day", 1), ("month-pass", "price_e2e_month", 30))


@dataclass
class Stack:
    gateway_url: str
    purchases: PurchaseClient
    engine: AsyncEngine
    secret: str
    # Only where the test harness can see events directly; otherwise the API is asked.
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def ledger(self) -> Ledger:
        return Ledger(self.engine)

    async def seed_catalog(self) -> None:
        for pass_id, price_id, days in CATALOG:
            await self.ledger.add_catalog_entry(TENANT, pass_id, price_id, pass_id, days)

    async def deliver(self, event: dict[str, Any], secret: str | None = None) -> tuple[int, dict[str, Any]]:
        body, headers = se.signed_delivery(event, secret or self.secret)
        async with (
            aiohttp.ClientSession() as http,
            http.post(f"{self.gateway_url}/webhooks/stripe", data=body, headers=headers) as response,
        ):
            return response.status, await response.json()

    async def wait_for(
        self, name: str, predicate: Callable[[dict[str, Any]], bool], *, within: float = 20.0
    ) -> dict[str, Any]:
        deadline = time.monotonic() + within
        last: dict[str, Any] | None = None
        while time.monotonic() < deadline:
            last = await self.purchases.find(name)
            if last is not None and predicate(last):
                return last
            await asyncio.sleep(0.05)
        raise AssertionError(f"{name} did not get there within {within}s; last seen: {last!r}")

    async def wait_for_phase(self, name: str, phase: str, *, within: float = 20.0) -> dict[str, Any]:
        return await self.wait_for(
            name, lambda b: (b.get("status") or {}).get("phase") == phase, within=within
        )

    async def rows(self, checkout_session_id: str) -> list[dict[str, Any]]:
        async with self.engine.connect() as connection:
            result = await connection.execute(
                text("SELECT * FROM subscriptions WHERE checkout_session_id = :id"),
                {"id": checkout_session_id},
            )
            return [dict(row) for row in result.mappings()]

    async def execute(self, sql: str, **params: Any) -> None:
        async with self.engine.begin() as connection:
            await connection.execute(text(sql), params)

    async def event_reasons(self, name: str) -> list[str]:
        return [str(e.get("reason")) for e in await self.purchases.list_events(name)]


StackFactory = Callable[[], Awaitable[Stack]]
