"""The passops controller: a kopf operator that reconciles each ``PassPurchase`` into one database row.

``controller.db`` is its database layer (SQLAlchemy 2 on psycopg 3, Alembic migrations in
``controller.migrations``); the other modules hold the reconciliation logic.
"""
