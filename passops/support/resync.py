"""Force a resync: set the annotation the controller echoes once it has handled it."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from datetime import UTC, datetime

from passops.kube import Body, NotFound, PurchaseClient
from passops.resource import ANNOTATION_RESYNC


def resync_value(now: datetime | None = None) -> str:
    # Microseconds: two resyncs in one second must still be two different requests.
    return (now or datetime.now(UTC)).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


async def request(purchases: PurchaseClient, names: Sequence[str], value: str) -> None:
    for name in names:
        await purchases.patch(name, {"metadata": {"annotations": {ANNOTATION_RESYNC: value}}})


async def wait_handled(
    purchases: PurchaseClient, names: Sequence[str], value: str, *, within: float, poll: float = 0.25
) -> dict[str, Body | None]:
    """Each purchase once its status echoes ``value`` (None: not handled in time or deleted)."""
    deadline = time.monotonic() + within
    pending = set(names)
    done: dict[str, Body | None] = {}
    while pending and time.monotonic() < deadline:
        for name in sorted(pending):
            try:
                body = await purchases.get(name)
            except NotFound:
                done[name] = None
                pending.discard(name)
                continue
            if (body.get("status") or {}).get("lastHandledResyncAt") == value:
                done[name] = body
                pending.discard(name)
        if pending:
            await asyncio.sleep(poll)
    for name in pending:
        done[name] = None
    return done
