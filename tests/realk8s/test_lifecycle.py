"""What only a long-running deployment shows: restarts, the `wait` user policy, retention.

Each test gets its own namespace, database and passops processes, so it can kill or tune them.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from controller.db import create_engine, upgrade
from passops.kube import purchase_client
from passops.testing import stripe_events as se
from passops.testing.postgres import create_database, stoppable_postgres
from passops.testing.realk8s import RealCluster
from tests.e2e.scenarios import COMPLETED, FAILED, _accepted, _conditions, _user
from tests.e2e.stack import Stack
from tests.realk8s.deployment import Deployed, deploy, fresh_database

pytestmark = pytest.mark.realk8s

# Slows every subscription write down, so that a kill lands in the middle of reconciliations.
SLOW_WRITES = """
CREATE FUNCTION passops_test_slow() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN PERFORM pg_sleep(0.25); RETURN NEW; END $$;
CREATE TRIGGER passops_test_slow BEFORE INSERT OR UPDATE ON subscriptions
FOR EACH ROW EXECUTE FUNCTION passops_test_slow();
"""


@pytest.fixture
def database(database_url: str) -> Iterator[str]:
    with fresh_database(database_url) as url:
        yield url


@contextlib.asynccontextmanager
async def deployed_stack(
    cluster: RealCluster, database: str, logs: Path, **settings: str
) -> AsyncIterator[tuple[Deployed, Stack]]:
    namespace = f"passops-{uuid.uuid4().hex[:8]}"
    with deploy(cluster, database, logs, namespace=namespace, **settings) as deployed:
        engine = create_engine(database)
        try:
            async with purchase_client(namespace, str(cluster.kubeconfig)) as purchases:
                stack = Stack(deployed.gateway_url, purchases, engine, deployed.secret)
                await stack.seed_catalog()
                yield deployed, stack
        finally:
            await engine.dispose()


async def test_killing_the_controller_mid_reconcile_loses_nothing_and_writes_nothing_twice(
    real_cluster: RealCluster, database: str, tmp_path: Path
) -> None:
    """SIGKILL while subscription writes are in flight, then a restart: every purchase ends Ready
    with exactly one row, and no purchase said Ready without its row."""
    async with deployed_stack(real_cluster, database, tmp_path, PASSOPS_WORKERS="4") as (deployed, stack):
        await stack.execute(SLOW_WRITES)
        sessions = [
            se.paid_session(client_reference_id=_user(), metadata={"pass_id": "day-pass"}) for _ in range(12)
        ]
        names = await asyncio.gather(*(_accepted(stack, se.event(COMPLETED, s)) for s in sessions))

        async def rows() -> int:
            return len([row for s in sessions for row in await stack.rows(s["id"])])

        async def some_written() -> None:
            while await rows() < 2:  # noqa: ASYNC110 - the database has no event to wait on
                await asyncio.sleep(0.05)

        await asyncio.wait_for(some_written(), 30)
        written_before_kill = await rows()
        assert 0 < written_before_kill < len(sessions), "the kill must land mid-way"
        assert deployed.processes["controller"].stop(signal.SIGKILL) == -signal.SIGKILL

        for name, session in zip(names, sessions, strict=True):
            body = await stack.purchases.get(name)
            if (body.get("status") or {}).get("phase") == "Ready":
                assert len(await stack.rows(session["id"])) == 1, f"{name} said Ready without its row"

        deployed.start_controller()
        for name in names:
            await stack.wait_for_phase(name, "Ready", within=60)
        for session in sessions:
            assert len(await stack.rows(session["id"])) == 1
        mine = [p for p in await stack.purchases.list() if p["metadata"]["name"] in names]
        assert len(mine) == len(sessions)


async def test_wait_policy_becomes_ready_within_one_backoff_step_after_the_app_creates_the_user(
    real_cluster: RealCluster, database: str, tmp_path: Path
) -> None:
    """policy `wait`: UserResolved False (UserNotFound) while the app has no such user; once the app
    creates it (5 s later), Ready within one backoff step (cap 2 s)."""
    async with deployed_stack(
        real_cluster,
        database,
        tmp_path,
        PASSOPS_USER_POLICY="wait",
        PASSOPS_BACKOFF_BASE="0.5s",
        PASSOPS_BACKOFF_CAP="2s",
    ) as (_, stack):
        reference = f"app-user-{uuid.uuid4().hex[:8]}"
        session = se.paid_session(client_reference_id=reference, metadata={"pass_id": "day-pass"})
        name = await _accepted(stack, se.event(COMPLETED, session))
        body = await stack.wait_for_phase(name, "Pending")
        user = _conditions(body)["UserResolved"]
        assert (user["status"], user["reason"]) == ("False", "UserNotFound")
        assert reference in user["message"]
        assert body["status"]["nextAttemptAt"]

        await asyncio.sleep(5)
        assert (await stack.purchases.get(name))["status"]["phase"] == "Pending"
        assert await stack.rows(session["id"]) == []
        await stack.execute("INSERT INTO users (tenant, reference) VALUES ('default', :ref)", ref=reference)
        created = time.monotonic()
        await stack.wait_for_phase(name, "Ready", within=10)
        # One backoff step at the cap (2 s, jitter 20 %) plus the time to see and write the result.
        assert time.monotonic() - created < 2.4 + 1.5


async def test_ready_purchases_leave_the_cluster_after_the_retention_but_failed_ones_stay(
    real_cluster: RealCluster, database: str, tmp_path: Path
) -> None:
    """PASSOPS_RETENTION: a Ready purchase is deleted from the cluster once older than it, its row
    stays in the database; a Failed purchase stays until a person acts."""
    async with deployed_stack(real_cluster, database, tmp_path, PASSOPS_RETENTION="3s") as (_, stack):
        ready = se.paid_session(client_reference_id=_user(), metadata={"pass_id": "day-pass"})
        failed = se.async_unpaid_session(client_reference_id=_user(), metadata={"pass_id": "day-pass"})
        ready_name = await _accepted(stack, se.event(COMPLETED, ready))
        failed_name = await _accepted(stack, se.event(COMPLETED, failed))
        await _accepted(stack, se.event(FAILED, failed))
        await stack.wait_for_phase(ready_name, "Ready")
        await stack.wait_for_phase(failed_name, "Failed")

        deadline = time.monotonic() + 15
        while await stack.purchases.find(ready_name) is not None:
            assert time.monotonic() < deadline, "the Ready purchase was not deleted after the retention"
            await asyncio.sleep(0.2)
        assert len(await stack.rows(ready["id"])) == 1
        await asyncio.sleep(3.5)
        assert (await stack.purchases.get(failed_name))["status"]["phase"] == "Failed"


async def test_a_database_outage_shows_in_kubectl_then_heals_with_one_row(
    real_cluster: RealCluster, tmp_path: Path
) -> None:
    """PostgreSQL down: `kubectl get pp -o wide` shows DatabaseUnavailable and the next retry,
    attempts grow with backoff, Stalled=True after PASSOPS_STALLED_AFTER while retries go on; back
    up: Ready with exactly one row."""
    with stoppable_postgres() as server:
        database = await asyncio.to_thread(_migrated, server.url)
        async with deployed_stack(
            real_cluster,
            database,
            tmp_path,
            PASSOPS_BACKOFF_BASE="0.5s",
            PASSOPS_BACKOFF_CAP="2s",
            PASSOPS_STALLED_AFTER="4s",
        ) as (deployed, stack):
            await asyncio.to_thread(server.stop)
            try:
                session = se.paid_session(client_reference_id=_user(), metadata={"pass_id": "day-pass"})
                name = await _accepted(stack, se.event(COMPLETED, session))  # the gateway needs no database
                body = await stack.wait_for(name, lambda b: (b.get("status") or {}).get("attempts", 0) >= 3)
                assert body["status"]["phase"] == "Reconciling"
                assert body["status"]["lastError"]["reason"] == "DatabaseUnavailable"
                assert body["status"]["nextAttemptAt"]
                wide = await asyncio.to_thread(
                    real_cluster.kubectl, "get", "pp", name, "-n", deployed.namespace, "-o", "wide"
                )
                assert "DatabaseUnavailable" in wide.stdout
                stalled = await stack.wait_for(
                    name, lambda b: _conditions(b).get("Stalled", {}).get("status") == "True", within=15
                )
                assert _conditions(stalled)["Stalled"]["reason"] == "DatabaseUnavailable"
                assert stalled["status"]["nextAttemptAt"]  # still retrying
            finally:
                await asyncio.to_thread(server.start)
            ready = await stack.wait_for_phase(name, "Ready", within=30)
            assert _conditions(ready)["Stalled"]["status"] == "False"
            assert len(await stack.rows(session["id"])) == 1


def _migrated(server_url: str) -> str:
    url = create_database(server_url, f"outage_{uuid.uuid4().hex[:8]}")
    upgrade(url)
    return url
