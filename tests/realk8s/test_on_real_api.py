"""passops on a real kube-apiserver: the gateway and the controller run as real processes.

The same scenarios as on the emulator (tests/e2e/scenarios.py), plus what only a real API shows:
`kubectl wait`, the printer columns filled by the controller, status only through /status.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from controller.db import create_engine
from passops.kube import purchase_client
from passops.testing import stripe_events as se
from passops.testing.realk8s import RealCluster
from tests.e2e.scenarios import COMPLETED, SCENARIOS, Scenario, _accepted, _user
from tests.e2e.stack import Stack
from tests.realk8s.deployment import Deployed, deploy, fresh_database

pytestmark = pytest.mark.realk8s


@pytest.fixture(scope="module")
def deployed(
    real_cluster: RealCluster, database_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Deployed]:
    logs = tmp_path_factory.mktemp("passops-logs")
    with fresh_database(database_url) as url, deploy(real_cluster, url, logs) as deployment:
        yield deployment
        for process in deployment.processes.values():
            assert process.alive(), f"{process.name} died:\n{process.tail()}"


@pytest.fixture
async def stack(deployed: Deployed) -> AsyncIterator[Stack]:
    engine = create_engine(deployed.database_url)
    try:
        async with purchase_client(deployed.namespace, str(deployed.cluster.kubeconfig)) as purchases:
            running = Stack(deployed.gateway_url, purchases, engine, deployed.secret)
            await running.seed_catalog()
            yield running
    finally:
        await engine.dispose()


@pytest.fixture(autouse=True)
def _logs_on_failure(request: pytest.FixtureRequest) -> Iterator[None]:
    yield
    report = getattr(request.node, "rep_call", None)
    deployment = request.node.funcargs.get("deployed") if hasattr(request.node, "funcargs") else None
    if report is not None and report.failed and isinstance(deployment, Deployed):
        for process in deployment.processes.values():
            print(f"--- {process.name} log ---\n{process.tail(80)}")


def _columns(header: str, line: str) -> dict[str, str]:
    """kubectl's table as {column: value}, cut at the header's column starts (values may be empty)."""
    starts = [i for i, ch in enumerate(header) if ch != " " and (i == 0 or header[i - 1] == " ")]
    bounds = [*starts[1:], None]
    return {header[a:b].strip(): line[a:b].strip() for a, b in zip(starts, bounds, strict=True)}


@pytest.mark.parametrize("scenario", SCENARIOS, ids=[s.__name__ for s in SCENARIOS])
async def test_scenario(stack: Stack, deployed: Deployed, scenario: Scenario) -> None:
    await scenario(stack)


async def test_kubectl_wait_for_ready_and_the_columns_the_controller_fills(
    stack: Stack, deployed: Deployed
) -> None:
    """`kubectl wait --for=condition=Ready pp/NAME` succeeds after one signed delivery; `kubectl get pp`
    shows the phase, attempts and (wide) the Ready reason and the subscription row id."""
    session = se.paid_session(client_reference_id=_user(), metadata={"pass_id": "month-pass"})
    name = await _accepted(stack, se.event(COMPLETED, session))
    cluster = deployed.cluster
    waited = await asyncio.to_thread(
        cluster.kubectl,
        "wait",
        "--for=condition=Ready",
        f"pp/{name}",
        "-n",
        cluster.namespace,
        "--timeout=60s",
    )
    assert "condition met" in waited.stdout

    rows = await stack.rows(session["id"])
    assert len(rows) == 1
    plain = (await asyncio.to_thread(cluster.kubectl, "get", "pp", name, "-n", cluster.namespace)).stdout
    header, line = plain.splitlines()[:2]
    assert header.split() == ["NAME", "TENANT", "CUSTOMER", "PASS", "PHASE", "ATTEMPTS", "AGE"]
    assert line.split()[:6] == [name, "default", session["customer"], "month-pass", "Ready", "0"]
    wide = (
        await asyncio.to_thread(cluster.kubectl, "get", "pp", name, "-n", cluster.namespace, "-o", "wide")
    ).stdout
    columns = _columns(*wide.splitlines()[:2])
    assert list(columns)[-3:] == ["REASON", "SUBSCRIPTION", "NEXT-RETRY"]
    assert columns["REASON"] == "SubscriptionActive"
    assert columns["SUBSCRIPTION"] == str(rows[0]["id"])
    assert columns["NEXT-RETRY"] in ("", "<none>")  # Ready: no retry scheduled
    by_label = await asyncio.to_thread(
        cluster.kubectl, "get", "pp", "-n", cluster.namespace, "-l", "passops.dev/phase=Ready", "-o", "name"
    )
    assert f"passpurchase.passops.dev/{name}" in by_label.stdout.split()


async def test_status_is_written_only_through_the_status_subresource(
    stack: Stack, deployed: Deployed
) -> None:
    """A status written through the main resource is ignored by the API; the controller's lands."""
    session = se.paid_session(client_reference_id=_user(), metadata={"pass_id": "day-pass"})
    name = await _accepted(stack, se.event(COMPLETED, session))
    body = await stack.wait_for_phase(name, "Ready")
    await stack.purchases.patch(name, {"status": {"phase": "Failed"}})  # main resource: dropped
    after = await stack.purchases.get(name)
    assert after["status"]["phase"] == "Ready"
    assert after["metadata"]["generation"] == body["metadata"]["generation"]


def test_logs_have_no_secrets(deployed: Deployed) -> None:
    """Neither process ever prints the webhook secret or the database URL's credentials."""
    for process in deployed.processes.values():
        text = Path(process.log).read_text(errors="replace")
        assert deployed.secret not in text
        assert deployed.database_url not in text
