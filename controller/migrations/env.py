"""Alembic environment, driven by ``controller.db.migrate`` (no alembic.ini).

``controller.db.migrate`` hands over an open connection in ``config.attributes["connection"]``;
Alembic's own CLI can still be pointed at this directory with ``PASSOPS_DATABASE_URL`` set (useful for
``alembic revision --autogenerate`` while developing).
"""

from __future__ import annotations

from alembic import context
from sqlalchemy import Connection, create_engine, text
from sqlalchemy.pool import NullPool

from controller.db.engine import engine_options
from controller.db.models import Base
from passops.config import database_url_from_env, normalize_database_url

# Arbitrary constant: one migrator at a time per database (a Helm hook and `passops migrate` may race).
MIGRATION_LOCK_KEY = 0x7061_7373_6F70_73  # "passops"

config = context.config
target_metadata = Base.metadata


def _url() -> str:
    url = config.attributes.get("url") or database_url_from_env()
    if not url:
        raise RuntimeError("no database URL: set PASSOPS_DATABASE_URL (or DATABASE_URL)")
    return normalize_database_url(str(url))


def _migrate(connection: Connection) -> None:
    context.configure(connection=connection, target_metadata=target_metadata, compare_type=True)
    with context.begin_transaction():
        # Transaction-scoped: released at commit, also if the process dies mid-migration.
        connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": MIGRATION_LOCK_KEY})
        context.run_migrations()


def run_offline() -> None:
    context.configure(url=_url(), target_metadata=target_metadata, literal_binds=True)
    with context.begin_transaction():
        context.run_migrations()


def run_online() -> None:
    connection = config.attributes.get("connection")
    if isinstance(connection, Connection):
        _migrate(connection)
        return
    url = _url()
    engine = create_engine(url, poolclass=NullPool, **engine_options(url))
    try:
        with engine.connect() as new_connection:
            _migrate(new_connection)
    finally:
        engine.dispose()


if context.is_offline_mode():
    run_offline()
else:
    run_online()
