"""Settings from the environment (the Helm chart sets the same variables; each is also a CLI flag)."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Final

DEFAULT_STRIPE_API_BASE: Final = "https://api.stripe.com"
DEFAULT_NAMESPACE: Final = "default"


class UserPolicy(StrEnum):
    CREATE = "create"
    WAIT = "wait"


def normalize_database_url(url: str) -> str:
    """Accept plain ``postgresql://`` URLs and pin SQLAlchemy to psycopg 3 (the one driver we ship)."""
    for prefix in ("postgresql+psycopg2://", "postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix) :]
    return url


def database_url_from_env(environ: dict[str, str] | None = None) -> str | None:
    env = os.environ if environ is None else environ
    url = env.get("PASSOPS_DATABASE_URL") or env.get("DATABASE_URL")
    return normalize_database_url(url) if url else None


_UNITS = {"s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}


def parse_duration(value: str | float) -> float:
    """Seconds from ``90``, ``90s``, ``15m``, ``2h`` or ``7d``; 0 disables where that makes sense."""
    if isinstance(value, int | float):
        seconds = float(value)
    else:
        text = value.strip().lower()
        unit = _UNITS.get(text[-1:]) if text else None
        number = text[:-1] if unit is not None else text
        try:
            seconds = float(number) * (unit or 1.0)
        except ValueError:
            raise ValueError(f"not a duration: {value!r} (use e.g. 30s, 15m, 2h, 7d)") from None
    if seconds < 0 or seconds != seconds:
        raise ValueError(f"a duration must be positive: {value!r}")
    return seconds


def split_secrets(value: str | None) -> tuple[str, ...]:
    return tuple(s.strip() for s in (value or "").split(",") if s.strip())


@dataclass(frozen=True)
class Backoff:
    """Exponential backoff with jitter: base * 2**attempt, capped, then +/- jitter fraction."""

    base: float = 1.0
    cap: float = 300.0
    jitter: float = 0.2


@dataclass(frozen=True)
class Settings:
    namespace: str = DEFAULT_NAMESPACE
    database_url: str | None = None
    stripe_webhook_secrets: tuple[str, ...] = ()
    stripe_api_key: str | None = field(default=None, repr=False)
    stripe_api_base: str = DEFAULT_STRIPE_API_BASE
    user_policy: UserPolicy = UserPolicy.CREATE
    api_token: str | None = field(default=None, repr=False)
    gateway_port: int = 8080
    metrics_port: int = 9090
    default_tenant: str = "default"
    backoff: Backoff = Backoff()
    # After this long without success, transient failures also set Stalled (alerts key on it).
    stalled_after: float = 600.0
    # How often something only a person can fix (an unknown price) is re-checked.
    recheck_interval: float = 600.0
    # Ready purchases are re-checked against the database this often (a row lost after Ready, e.g.
    # deleted by hand or a restored backup, comes back without anyone asking); 0 disables.
    sync_period: float = 3600.0
    # Ready purchases older than this are deleted from the cluster (the database keeps the row).
    retention: float = 7 * 24 * 3600.0
    workers: int = 4

    def __repr__(self) -> str:  # never print secrets, even by accident in a traceback
        return (
            f"Settings(namespace={self.namespace!r}, database_url={'set' if self.database_url else None}, "
            f"webhook_secrets={len(self.stripe_webhook_secrets)}, stripe_api_key="
            f"{'set' if self.stripe_api_key else None}, stripe_api_base={self.stripe_api_base!r}, "
            f"user_policy={self.user_policy.value!r})"
        )
