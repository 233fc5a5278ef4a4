"""Errors of the database layer, and the one place that decides which driver errors are transient.

- ``DatabaseUnavailable``: the database could not answer now (connection refused or lost, timeout,
  server shutting down, too many connections, serialization failure or deadlock). Retry with backoff.
- ``LedgerConflict`` and subclasses: the data contradicts a constraint in a way retrying will not fix
  (a person has to look). Everything else (SQL errors, bugs) propagates unchanged.

Messages never contain the password of the database URL: ``translate_errors`` scrubs it.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import psycopg
import sqlalchemy.exc
from sqlalchemy.engine import URL, make_url

# SQLSTATE classes worth a retry: connection exception, transaction rollback (serialization failure,
# deadlock), insufficient resources (too many connections), operator intervention (shutdown, query
# cancelled by statement_timeout), system error.
_TRANSIENT_SQLSTATE_CLASSES = frozenset({"08", "40", "53", "57", "58"})
_TRANSIENT_SQLSTATES = frozenset({"55P03"})  # lock_not_available


class DatabaseUnavailable(Exception):
    """The database is unreachable or asked us to retry; transient by definition."""

    def __init__(self, message: str, *, sqlstate: str | None = None) -> None:
        super().__init__(message)
        self.sqlstate = sqlstate


class LedgerConflict(Exception):
    """A write contradicts existing data (a unique or foreign key constraint); not transient."""


class SubscriptionConflict(LedgerConflict):
    """Another Checkout Session's row already holds this Stripe subscription id."""


class UnknownUser(LedgerConflict):
    """The user id given for a subscription does not exist (deleted since it was resolved)."""


def _driver_error(exc: BaseException) -> BaseException:
    return exc.orig if isinstance(exc, sqlalchemy.exc.DBAPIError) and exc.orig is not None else exc


def sqlstate_of(exc: BaseException) -> str | None:
    driver = _driver_error(exc)
    return driver.sqlstate if isinstance(driver, psycopg.Error) else None


def is_transient(exc: BaseException) -> bool:
    """True for errors a retry may cure; programming and data errors are never transient."""
    if isinstance(exc, sqlalchemy.exc.TimeoutError | TimeoutError | ConnectionError):
        return True  # pool checkout timeout, or a socket-level failure
    if isinstance(exc, sqlalchemy.exc.DBAPIError) and exc.connection_invalidated:
        return True
    driver = _driver_error(exc)
    if not isinstance(driver, psycopg.Error):
        return False
    if driver.sqlstate is not None:
        return driver.sqlstate[:2] in _TRANSIENT_SQLSTATE_CLASSES or driver.sqlstate in _TRANSIENT_SQLSTATES
    # No SQLSTATE: the failure happened before or outside the server's answer (refused, timed out,
    # connection closed).
    return isinstance(driver, psycopg.OperationalError | psycopg.InterfaceError)


def secrets_of(url: str | URL) -> tuple[str, ...]:
    """The strings of a URL that must never be shown: its password, also when given as a query arg."""
    try:
        parsed = make_url(url) if isinstance(url, str) else url
    except sqlalchemy.exc.ArgumentError:
        return ()
    found = [parsed.password] if parsed.password else []
    query_password = parsed.query.get("password")
    if isinstance(query_password, str):
        found.append(query_password)
    elif query_password:
        found.extend(query_password)
    return tuple(str(s) for s in found if s)


def safe_url(url: str | URL) -> str:
    """The URL for messages and logs: no password, neither in the userinfo nor in the query."""
    try:
        parsed = make_url(url) if isinstance(url, str) else url
    except sqlalchemy.exc.ArgumentError:
        return "<unparsable database URL>"
    return redact(parsed.render_as_string(hide_password=True), secrets_of(parsed))


def redact(text: str, secrets: tuple[str, ...]) -> str:
    for secret in secrets:
        text = text.replace(secret, "***")
    return text


def describe(exc: BaseException) -> str:
    """The driver's own words (not SQLAlchemy's wrapper with SQL and parameters), on one line."""
    driver = _driver_error(exc)
    text = " ".join(str(driver).split()) or type(driver).__name__
    return f"{type(driver).__name__}: {text}"


@contextmanager
def translate_errors(url: str | URL) -> Iterator[None]:
    """Turn transient driver errors into ``DatabaseUnavailable`` (with the URL's password scrubbed).

    The original exception is not chained (``from None``): its text, or SQLAlchemy's wrapper around
    it, could echo connection parameters into logs. Its description is kept in the message.
    """
    try:
        yield
    except DatabaseUnavailable:
        raise
    except Exception as exc:
        if not is_transient(exc):
            raise
        secrets = secrets_of(url)
        message = redact(f"database unavailable ({safe_url(url)}): {describe(exc)}", secrets)
        raise DatabaseUnavailable(message, sqlstate=sqlstate_of(exc)) from None
