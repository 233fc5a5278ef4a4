"""Alembic migrations, shipped inside the package so ``passops migrate`` works from an installed wheel.

Run them with ``controller.db.migrate.upgrade(url)``; there is no ``alembic.ini``.
"""
