"""`passops status`: everything a support person needs about a purchase, in words."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any, Protocol

from rich.console import Console
from rich.table import Table

from passops.support.advice import advice


class SubscriptionRow(Protocol):
    id: int
    user_id: int
    pass_id: str
    status: str
    period_end: datetime | None
    source: str


def _ago(value: Any, now: datetime) -> str:
    if not isinstance(value, str) or not value:
        return "-"
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return value
    seconds = int((moment - now).total_seconds())
    when = f"in {seconds}s" if seconds >= 0 else f"{-seconds}s ago"
    if abs(seconds) >= 120:
        minutes = abs(seconds) // 60
        when = f"in {minutes} min" if seconds >= 0 else f"{minutes} min ago"
    return f"{value} ({when})"


def render(
    console: Console,
    body: Mapping[str, Any],
    row: SubscriptionRow | str | None,
    now: datetime | None = None,
) -> None:
    """``row``: the database row, None when there is none, or a sentence why it is unknown."""
    now = now or datetime.now(UTC)
    meta: Mapping[str, Any] = body.get("metadata") or {}
    spec: Mapping[str, Any] = body.get("spec") or {}
    status: Mapping[str, Any] = body.get("status") or {}
    customer: Mapping[str, Any] = spec.get("customer") or {}
    pass_: Mapping[str, Any] = spec.get("pass") or {}

    table = Table(
        show_header=False,
        box=None,
        pad_edge=False,
        title=f"[bold]{meta.get('name')}[/]",
        title_justify="left",
    )
    table.add_column(style="dim", no_wrap=True)
    table.add_column()
    table.add_row("checkout session", str(spec.get("checkoutSessionId")))
    table.add_row(
        "customer", f"{customer.get('stripeCustomerId') or '-'} (user ref {customer.get('userId') or '-'})"
    )
    table.add_row("pass", f"pass {pass_.get('passId') or '-'}, price {pass_.get('priceId') or '-'}")
    table.add_row(
        "payment",
        f"{spec.get('paymentStatus') or '-'} ({spec.get('mode') or '-'}, source {spec.get('source') or '-'})",
    )
    table.add_row("phase", f"[bold]{status.get('phase') or 'not reconciled yet'}[/]")
    for condition in status.get("conditions") or ():
        mark = {"True": "[green]True[/]", "False": "[red]False[/]"}.get(
            str(condition.get("status")), "Unknown"
        )
        table.add_row(
            f"  {condition.get('type')}", f"{mark} {condition.get('reason')}: {condition.get('message')}"
        )
    error = status.get("lastError") or {}
    if error:
        since = f", failing since {error.get('since')}" if error.get("since") else ""
        table.add_row("last error", f"{error.get('reason')}: {error.get('message')}{since}")
    table.add_row("attempts", f"{status.get('attempts', 0)}, last {_ago(status.get('lastAttemptAt'), now)}")
    table.add_row("next attempt", _ago(status.get("nextAttemptAt"), now))
    if isinstance(row, str):
        table.add_row("database row", f"[yellow]unknown[/]: {row}")
    elif row is None:
        table.add_row("database row", "none")
    else:
        until = row.period_end.strftime("%Y-%m-%d") if row.period_end else "no end"
        table.add_row(
            "database row",
            f"subscription {row.id}: user {row.user_id}, pass {row.pass_id}, {row.status} until {until}",
        )
    table.add_row("[bold]what to do[/]", f"[bold]{advice(body)}[/]")
    console.print(table)
    console.print()
