"""Start every part on embedded defaults, drive the scenarios, show the result, judge it."""

from __future__ import annotations

import asyncio
import contextlib
import os
import sys
import time
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any

import aiohttp
from prometheus_client import CollectorRegistry
from rich.console import Console

from passops.config import Settings
from passops.crd import crd_path
from passops.demo import report
from passops.demo.scenarios import CATALOG, TENANT, Scenario, build
from passops.kube import PurchaseClient, purchase_client
from passops.resource import Phase, purchase_name
from passops.support import resync

if TYPE_CHECKING:
    from controller.db import Ledger
from passops.testing import stripe_events as se

NAMESPACE = "default"
PHASE_TIMEOUT = 30.0


@contextlib.asynccontextmanager
async def _database(database_url: str | None, console: Console) -> AsyncIterator[str]:
    from passops.testing.postgres import async_postgres_url

    if database_url:
        console.print("[bold]database[/]: the one given by PASSOPS_DATABASE_URL / DATABASE_URL")
        yield database_url
        return
    started = time.perf_counter()
    async with async_postgres_url(environ={}) as url:
        console.print(
            f"[bold]database[/]: embedded PostgreSQL started in {time.perf_counter() - started:.1f}s"
        )
        yield url


async def _wait_for_phase(purchases: PurchaseClient, name: str, phase: Phase, within: float) -> str | None:
    deadline = time.monotonic() + within
    current: str | None = None
    while time.monotonic() < deadline:
        body = await purchases.find(name)
        seen = ((body or {}).get("status") or {}).get("phase")
        current = str(seen) if seen else None
        if current == phase.value:
            return current
        await asyncio.sleep(0.1)
    return current


async def _wait_for_stalled(purchases: PurchaseClient, name: str, reason: str, within: float) -> str | None:
    deadline = time.monotonic() + within
    seen: str | None = None
    while time.monotonic() < deadline:
        body = await purchases.find(name) or {}
        for condition in (body.get("status") or {}).get("conditions") or []:
            if condition.get("type") == "Stalled" and condition.get("status") == "True":
                seen = str(condition.get("reason"))
                if seen == reason:
                    return seen
        await asyncio.sleep(0.1)
    return seen


async def _deliver(http: aiohttp.ClientSession, url: str, secret: str, event: dict[str, Any]) -> str:
    body, headers = se.signed_delivery(event, secret)
    async with http.post(url, data=body, headers=headers) as response:
        answer = await response.json()
        return str(answer.get("outcome") or answer.get("error", {}).get("type") or response.status)


async def run_demo(
    database_url: str | None = None, console: Console | None = None, *, keep_running: bool = False
) -> bool:
    from controller.db import Ledger, create_engine, upgrade
    from controller.operator import run_controller
    from passops.testing.emulator import run_emulator
    from webhook_gateway import server

    # Full-width tables also when piped (CI logs): resource names are long.
    console = console or Console(width=None if sys.stdout.isatty() else 180)
    secret = se.webhook_secret()
    async with _database(database_url, console) as db_url:
        revision = await asyncio.to_thread(upgrade, db_url)
        console.print(f"[bold]schema[/]: migrated to revision {revision}")
        engine = create_engine(db_url)
        ledger = Ledger(engine)
        for pass_id, price_id, title, days in CATALOG:
            await ledger.add_catalog_entry(TENANT, pass_id, price_id, title, days)
        console.print(f"[bold]catalog[/]: {', '.join(p for p, *_ in CATALOG)} (tenant {TENANT!r})")

        async with run_emulator(crd_paths=[crd_path()], namespace=NAMESPACE) as cluster:
            os.environ["KUBECONFIG"] = cluster.kubeconfig  # kopf and kubernetes_asyncio both read it
            console.print("[bold]kubernetes[/]: in-process API emulator with the PassPurchase CRD")
            settings = Settings(namespace=NAMESPACE, database_url=db_url, stripe_webhook_secrets=(secret,))
            stop, ready = asyncio.Event(), asyncio.Event()
            operator = asyncio.create_task(
                run_controller(
                    settings,
                    stop_flag=stop,
                    ready_flag=ready,
                    serve_metrics=False,
                    registry=CollectorRegistry(),
                )
            )
            try:
                async with purchase_client(NAMESPACE) as purchases:
                    gateway = await server.start(settings, purchases, host="127.0.0.1", port=0)
                    try:
                        await asyncio.wait_for(ready.wait(), 30)
                        url = f"http://127.0.0.1:{gateway.port}/webhooks/stripe"
                        console.print(f"[bold]gateway[/]: {url}; controller running")
                        scenarios = build()
                        results = await _drive(
                            scenarios, purchases, ledger, f"http://127.0.0.1:{gateway.port}", secret, console
                        )
                        objects = await purchases.list()
                        rows = await ledger.list_subscriptions()
                        report.purchases_table(console, objects)
                        report.rows_table(console, rows)
                        ok = report.verdict(console, scenarios, results, objects, rows)
                        if keep_running:
                            _explain_keep_running(
                                console, cluster.kubeconfig, None if database_url else db_url
                            )
                            # kopf owns SIGINT/SIGTERM here: it stops the operator, and so the demo.
                            await asyncio.wait({operator})
                    finally:
                        await gateway.close()
            finally:
                stop.set()
                with contextlib.suppress(asyncio.TimeoutError, asyncio.CancelledError):
                    await asyncio.wait_for(operator, 15)
                await engine.dispose()

    return ok


def _explain_keep_running(console: Console, kubeconfig: str, database_url: str | None) -> None:
    database = (
        f"PASSOPS_DATABASE_URL='{database_url}'"
        if database_url
        else "PASSOPS_DATABASE_URL=<the one you gave>"
    )
    console.print(
        "\n[bold]The demo keeps running[/] (Ctrl-C stops it). In another shell, try the support commands:\n"
        f"  export KUBECONFIG={kubeconfig} {database}\n"
        "  .venv/bin/passops status --all\n"
        "  .venv/bin/passops catalog list\n"
        "  .venv/bin/kubectl get pp -o wide        # kubectl from the test extra (make test)\n"
    )


async def _drive(
    scenarios: list[Scenario],
    purchases: PurchaseClient,
    ledger: Ledger,
    base_url: str,
    secret: str,
    console: Console,
) -> list[report.ScenarioResult]:
    results: list[report.ScenarioResult] = []
    async with aiohttp.ClientSession() as http:
        for scenario in scenarios:
            name = purchase_name(scenario.session_id)
            problems: list[str] = []
            outcomes: list[str] = []
            for step in scenario.steps:
                outcome = await _deliver(http, f"{base_url}/webhooks/stripe", secret, step.event)
                outcomes.append(outcome)
                if outcome != step.expect_outcome:
                    problems.append(
                        f"{step.event['type']}: gateway said {outcome}, expected {step.expect_outcome}"
                    )
                if step.then_stalled is not None:
                    stalled = await _wait_for_stalled(purchases, name, step.then_stalled, PHASE_TIMEOUT)
                    if stalled != step.then_stalled:
                        problems.append(f"expected Stalled ({step.then_stalled}), saw {stalled}")
                    else:
                        outcomes.append(f"Stalled ({stalled})")
                if step.then_phase is not None:
                    seen = await _wait_for_phase(purchases, name, step.then_phase, PHASE_TIMEOUT)
                    if seen != step.then_phase.value:
                        problems.append(
                            f"after {step.event['type']}: phase {seen}, expected {step.then_phase.value}"
                        )
            if scenario.support_fix is not None:
                pass_id, price_id, days = scenario.support_fix
                # Exactly what `passops catalog add` and `passops resync` do.
                await ledger.add_catalog_entry(TENANT, pass_id, price_id, pass_id, days)
                await resync.request(purchases, [name], resync.resync_value())
                outcomes.append(f"catalog add {price_id} + resync")
            started = time.perf_counter()
            seen = await _wait_for_phase(purchases, name, scenario.final_phase, PHASE_TIMEOUT)
            if seen != scenario.final_phase.value:
                problems.append(f"phase {seen}, expected {scenario.final_phase.value}")
            elapsed = time.perf_counter() - started
            results.append(report.ScenarioResult(scenario, name, seen, elapsed, problems))
            mark = "[green]ok[/]" if not problems else "[red]FAILED[/]"
            said = ", ".join(outcomes)
            detail = "; " + "; ".join(problems) if problems else ""
            console.print(f"  {mark} {scenario.title}: gateway {said} -> {seen} in {elapsed:.2f}s{detail}")
    return results
