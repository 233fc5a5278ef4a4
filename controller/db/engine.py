"""The AsyncEngine the controller uses: psycopg 3 async, a small pre-pinged pool, fast failure.

``create_engine(url) -> AsyncEngine`` accepts plain ``postgresql://`` URLs too. The caller owns the
engine and calls ``await engine.dispose()`` when done.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from passops.config import normalize_database_url

DEFAULT_CONNECT_TIMEOUT = 5
APPLICATION_NAME = "passops"


def engine_options(url: str, *, connect_timeout: int = DEFAULT_CONNECT_TIMEOUT) -> dict[str, Any]:
    """Connection arguments shared by the async engine and the (sync) migration engine."""
    connect_args: dict[str, Any] = {}
    query = make_url(url).query
    # A dead or black-holed database must fail within seconds, not hang a reconcile for minutes;
    # an explicit ``?connect_timeout=`` in the URL still wins.
    if "connect_timeout" not in query:
        connect_args["connect_timeout"] = connect_timeout
    if "application_name" not in query:
        connect_args["application_name"] = APPLICATION_NAME  # so DBAs see us in pg_stat_activity
    return {"connect_args": connect_args}


def create_engine(
    url: str,
    *,
    pool_size: int = 5,
    max_overflow: int = 5,
    pool_timeout: float = 10.0,
    connect_timeout: int = DEFAULT_CONNECT_TIMEOUT,
) -> AsyncEngine:
    """An AsyncEngine on ``postgresql+psycopg://`` (plain ``postgresql://`` is converted)."""
    url = normalize_database_url(url)
    return create_async_engine(
        url,
        pool_pre_ping=True,  # a connection dropped by a failover or idle timeout is replaced, not used
        pool_size=pool_size,
        max_overflow=max_overflow,
        pool_timeout=pool_timeout,
        pool_recycle=1800,
        **engine_options(url, connect_timeout=connect_timeout),
    )
