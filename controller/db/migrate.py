"""Run the Alembic migrations programmatically (``passops migrate``, the demo, the tests).

- ``upgrade(url, revision="head") -> str | None``: migrate in one transaction, under an advisory lock
  so concurrent migrators wait for each other; idempotent. Returns the revision now current.
- ``current_revision(url) -> str | None``: the database's revision (None: never migrated).
- ``head_revision() -> str``: the newest revision shipped in this package.

Synchronous (psycopg sync): call them through ``asyncio.to_thread`` from async code. Transient
failures raise ``DatabaseUnavailable`` with the password scrubbed.
"""

from __future__ import annotations

import threading
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine, create_engine
from sqlalchemy.pool import NullPool

from controller import migrations
from controller.db.engine import engine_options
from controller.db.errors import translate_errors
from passops.config import normalize_database_url

# A filesystem path, not "controller:migrations": importlib.resources cannot resolve the latter when
# ``controller`` is seen as a namespace package (as in some editable installs).
SCRIPT_LOCATION = str(Path(migrations.__file__).parent)

# Alembic's ``context`` and ``op`` are module-level proxies: one migration per process at a time.
# Across processes, env.py's advisory lock does the same job.
_alembic_lock = threading.Lock()


def alembic_config() -> Config:
    config = Config()
    config.set_main_option("script_location", SCRIPT_LOCATION.replace("%", "%%"))  # configparser syntax
    return config


def head_revision() -> str:
    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    if head is None:  # pragma: no cover - the package always ships migrations
        raise RuntimeError("no migrations found in controller.migrations")
    return head


def _sync_engine(url: str) -> Engine:
    url = normalize_database_url(url)
    return create_engine(url, poolclass=NullPool, **engine_options(url))


def upgrade(url: str, revision: str = "head") -> str | None:
    engine = _sync_engine(url)
    try:
        with _alembic_lock, translate_errors(engine.url), engine.begin() as connection:
            config = alembic_config()
            config.attributes["connection"] = connection  # env.py migrates on it, in this transaction
            command.upgrade(config, revision)
            return MigrationContext.configure(connection).get_current_revision()
    finally:
        engine.dispose()


def current_revision(url: str) -> str | None:
    engine = _sync_engine(url)
    try:
        with translate_errors(engine.url), engine.connect() as connection:
            return MigrationContext.configure(connection).get_current_revision()
    finally:
        engine.dispose()
