"""The controller's database layer: SQLAlchemy 2 on psycopg 3 (async), Alembic migrations, PostgreSQL.

- ``controller.db.engine.create_engine(url) -> AsyncEngine``
- ``controller.db.migrate.upgrade(url) -> str | None``, ``current_revision(url)``, ``head_revision()``
- ``controller.db.ledger.Ledger``: user and pass resolution, the idempotent subscription upsert, listings
- ``controller.db.records``: the values the ledger takes and returns
- ``controller.db.errors``: ``DatabaseUnavailable`` (transient) and ``LedgerConflict`` (needs a person)
- ``controller.db.models``: the ORM mapping of ``users``, ``pass_catalog``, ``subscriptions``
"""

from controller.db.engine import create_engine
from controller.db.errors import (
    DatabaseUnavailable,
    LedgerConflict,
    SubscriptionConflict,
    UnknownUser,
)
from controller.db.ledger import Ledger
from controller.db.migrate import current_revision, head_revision, upgrade
from controller.db.records import (
    CatalogEntry,
    MatchedBy,
    Source,
    SubscriptionFacts,
    SubscriptionRecord,
    UpsertOutcome,
    UpsertResult,
    UserMatch,
)

__all__ = [
    "CatalogEntry",
    "DatabaseUnavailable",
    "Ledger",
    "LedgerConflict",
    "MatchedBy",
    "Source",
    "SubscriptionConflict",
    "SubscriptionFacts",
    "SubscriptionRecord",
    "UnknownUser",
    "UpsertOutcome",
    "UpsertResult",
    "UserMatch",
    "create_engine",
    "current_revision",
    "head_revision",
    "upgrade",
]
