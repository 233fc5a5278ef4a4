"""The demo's tables and its verdict."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from rich.console import Console
from rich.table import Table

from controller.db import SubscriptionRecord
from passops.demo.scenarios import Scenario


@dataclass
class ScenarioResult:
    scenario: Scenario
    name: str
    phase: str | None
    seconds: float
    problems: list[str]


def purchases_table(console: Console, objects: Sequence[dict[str, Any]]) -> None:
    table = Table(title="PassPurchases (as `kubectl get pp -o wide` shows them)")
    for column in ("NAME", "TENANT", "CUSTOMER", "PASS", "PHASE", "ATTEMPTS", "REASON", "SUBSCRIPTION"):
        table.add_column(column)
    for obj in sorted(objects, key=lambda o: o["metadata"]["name"]):
        spec, status = obj.get("spec") or {}, obj.get("status") or {}
        ready: dict[str, Any] = next(
            (c for c in status.get("conditions") or [] if c.get("type") == "Ready"), {}
        )
        table.add_row(
            obj["metadata"]["name"],
            spec.get("tenant") or "",
            (spec.get("customer") or {}).get("stripeCustomerId") or "",
            status.get("passId") or "",
            status.get("phase") or "",
            str(status.get("attempts", 0)),
            ready.get("reason") or "",
            str(status.get("subscriptionId") or ""),
        )
    console.print(table)


def rows_table(console: Console, rows: Sequence[SubscriptionRecord]) -> None:
    table = Table(title="subscriptions (PostgreSQL)")
    for column in ("ID", "CHECKOUT SESSION", "USER", "PASS", "STATUS", "PERIOD END", "SOURCE"):
        table.add_column(column)
    for row in rows:
        table.add_row(
            str(row.id),
            row.checkout_session_id,
            str(row.user_id),
            row.pass_id,
            row.status,
            row.period_end.strftime("%Y-%m-%d") if row.period_end else "-",
            row.source,
        )
    console.print(table)


def verdict(
    console: Console,
    scenarios: Sequence[Scenario],
    results: Sequence[ScenarioResult],
    objects: Sequence[dict[str, Any]],
    rows: Sequence[SubscriptionRecord],
) -> bool:
    problems = [f"{r.scenario.title}: {p}" for r in results for p in r.problems]
    sessions = {s.session_id for s in scenarios}
    if len(objects) != len(sessions):
        problems.append(f"{len(objects)} PassPurchases for {len(sessions)} Checkout Sessions")
    per_session = Counter(row.checkout_session_id for row in rows)
    for scenario in scenarios:
        count = per_session.get(scenario.session_id, 0)
        if count != (1 if scenario.row_expected else 0):
            problems.append(f"{scenario.title}: {count} subscription rows")
    if problems:
        console.print("[bold red]demo FAILED[/]")
        for problem in dict.fromkeys(problems):
            console.print(f"  - {problem}")
        return False
    paid = sum(1 for s in {s.session_id: s for s in scenarios}.values() if s.row_expected)
    console.print(
        f"[bold green]demo OK[/]: {len(sessions)} purchases in their expected phases, "
        f"one subscription row per paid purchase ({paid})"
    )
    return True
