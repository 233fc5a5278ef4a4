"""The chart's RBAC on a real kube-apiserver (authorization mode RBAC), without kind or Docker.

The chart's ServiceAccounts, Roles and bindings are applied to the realk8s tier's apiserver (rendered
by helm when it is there, else from the templates, see tests/test_chart_render.py); `passops gateway`
and `passops controller` then run as real processes authenticated with those ServiceAccounts' tokens,
and a signed delivery must end Ready with no request refused. This is what the pods of a Helm
release are allowed to do, checked by the real authorizer, and kopf's needs included.
"""

from __future__ import annotations

import subprocess
import time
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import sqlalchemy
import yaml

from passops.resource import purchase_name
from passops.testing import stripe_events as se
from passops.testing.postgres import create_database, drop_database
from passops.testing.realk8s import RealCluster
from tests.realk8s.processes import PASSOPS, Process, free_port, passops_process, wait_http_ok
from tests.test_chart_render import (
    COMPONENT_SOURCES,
    Doc,
    Permission,
    granted_permissions,
    rbac_manifests,
    required_permissions,
)

pytestmark = pytest.mark.realk8s

RELEASE = "rbac"
REFUSED = ("forbidden", "403", "not enough permissions")


@dataclass
class ChartAccounts:
    namespace: str
    manifests: list[Doc]
    kubeconfigs: dict[str, Path]

    def account(self, component: str) -> str:
        return f"system:serviceaccount:{self.namespace}:{RELEASE}-passops-{component}"


def _token_kubeconfig(cluster: RealCluster, token: str, path: Path, namespace: str) -> Path:
    admin = yaml.safe_load(cluster.kubeconfig.read_text())
    entry = admin["clusters"][0]
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [entry],
        "users": [{"name": "sa", "user": {"token": token}}],
        "contexts": [
            {"name": "sa", "context": {"cluster": entry["name"], "user": "sa", "namespace": namespace}}
        ],
        "current-context": "sa",
    }
    path.write_text(yaml.safe_dump(config))
    path.chmod(0o600)
    return path


@pytest.fixture(scope="module")
def chart_accounts(
    real_cluster: RealCluster, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ChartAccounts]:
    namespace = real_cluster.namespace
    manifests = rbac_manifests(namespace, RELEASE)
    text = yaml.safe_dump_all(manifests)
    real_cluster.kubectl("apply", "-f", "-", input=text)
    workdir = tmp_path_factory.mktemp("chart-rbac")
    kubeconfigs = {}
    try:
        for component in COMPONENT_SOURCES:
            # TokenRequest: what the kubelet mounts into the pod of that ServiceAccount.
            token = real_cluster.kubectl(
                "create", "token", f"{RELEASE}-passops-{component}", "-n", namespace, "--duration=1h"
            ).stdout.strip()
            kubeconfigs[component] = _token_kubeconfig(
                real_cluster, token, workdir / f"{component}.kubeconfig", namespace
            )
        yield ChartAccounts(namespace, manifests, kubeconfigs)
    finally:
        real_cluster.kubectl("delete", "--ignore-not-found", "-f", "-", input=text, check=False)


def _can(cluster: RealCluster, account: str, namespace: str, permission: Permission) -> bool:
    group, resource, verb = permission
    name, _, subresource = resource.partition("/")
    target = f"{name}.{group}" if group else name
    args = ["auth", "can-i", verb, target, "-n", namespace, f"--as={account}"]
    if subresource:
        args.append(f"--subresource={subresource}")
    answer = cluster.kubectl(*args, check=False)
    assert answer.stdout.strip() in ("yes", "no"), answer.stderr
    return answer.stdout.strip() == "yes"


@pytest.mark.parametrize("component", sorted(COMPONENT_SOURCES))
def test_the_authorizer_grants_what_the_component_calls(
    real_cluster: RealCluster, chart_accounts: ChartAccounts, component: str
) -> None:
    account = chart_accounts.account(component)
    refused = {
        p
        for p in required_permissions(component)
        if not _can(real_cluster, account, chart_accounts.namespace, p)
    }
    assert not refused, f"the {component}'s ServiceAccount is refused {sorted(refused)}"
    # And nothing beyond what the chart says (the authorizer agrees with our reading of it).
    for permission in {
        ("passops.dev", "passpurchases", "delete"),
        ("passops.dev", "passpurchases/status", "patch"),
        ("", "secrets", "get"),
        ("", "pods", "list"),
    }:
        expected = permission in granted_permissions(chart_accounts.manifests, component)
        assert _can(real_cluster, account, chart_accounts.namespace, permission) == expected, permission


@pytest.fixture(scope="module")
def chart_database(database_url: str) -> Iterator[str]:
    name = f"passops_chart_rbac_{uuid.uuid4().hex[:8]}"
    url = create_database(database_url, name)
    # As the chart's pre-install hook does.
    migrated = subprocess.run(
        [PASSOPS, "migrate"], env={"PASSOPS_DATABASE_URL": url, "PATH": "/usr/bin:/bin"}, capture_output=True,
        text=True, timeout=120, check=False,
    )  # fmt: skip
    assert migrated.returncode == 0, migrated.stderr
    engine = sqlalchemy.create_engine(url)
    with engine.begin() as connection:
        connection.execute(
            sqlalchemy.text(
                "INSERT INTO pass_catalog (tenant, pass_id, stripe_price_id, name, duration_days) "
                "VALUES ('default', 'day-pass', 'price_chart_day', 'Day pass', 1)"
            )
        )
    engine.dispose()
    yield url
    drop_database(database_url, name)


@pytest.fixture
def created_purchases(real_cluster: RealCluster) -> Iterator[list[tuple[str, str]]]:
    """(namespace, name) of the purchases a test made: the apiserver is shared with the other realk8s
    tests, so none is left behind."""
    created: list[tuple[str, str]] = []
    yield created
    for namespace, name in created:
        real_cluster.kubectl(
            "delete", "pp", name, "-n", namespace, "--ignore-not-found", "--wait=false", check=False
        )


def _refusals(process: Process) -> list[str]:
    text = process.log.read_text(errors="replace") if process.log.exists() else ""
    return [line for line in text.splitlines() if any(word in line.lower() for word in REFUSED)]


def test_components_run_with_the_chart_accounts(
    real_cluster: RealCluster,
    chart_accounts: ChartAccounts,
    chart_database: str,
    created_purchases: list[tuple[str, str]],
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    logs = tmp_path_factory.mktemp("chart-rbac-logs")
    secret, gateway_port, metrics_port = se.webhook_secret(), free_port(), free_port()
    common = {"PASSOPS_NAMESPACE": chart_accounts.namespace}
    gateway_env = {
        **common,
        "KUBECONFIG": str(chart_accounts.kubeconfigs["gateway"]),
        "PASSOPS_STRIPE_WEBHOOK_SECRETS": secret,
        "PASSOPS_GATEWAY_PORT": str(gateway_port),
    }
    controller_env = {
        **common,
        "KUBECONFIG": str(chart_accounts.kubeconfigs["controller"]),
        "PASSOPS_DATABASE_URL": chart_database,
        "PASSOPS_METRICS_PORT": str(metrics_port),
    }
    with (
        passops_process("gateway", gateway_env, logs) as gateway,
        passops_process("controller", controller_env, logs) as controller,
    ):
        # /readyz reads the CRD: the ClusterRole's `get`.
        wait_http_ok(f"http://127.0.0.1:{gateway_port}/readyz", gateway)
        wait_http_ok(f"http://127.0.0.1:{metrics_port}/metrics", controller)

        session = se.paid_session(
            client_reference_id=f"user-{uuid.uuid4().hex[:8]}", metadata={"pass_id": "day-pass"}
        )
        body, headers = se.signed_delivery(se.event(se.CHECKOUT_COMPLETED, session), secret)
        request = urllib.request.Request(
            f"http://127.0.0.1:{gateway_port}/webhooks/stripe", data=body, headers=headers, method="POST"
        )
        with urllib.request.urlopen(request, timeout=30) as response:
            assert response.status == 200

        name = purchase_name(session["id"])
        created_purchases.append((chart_accounts.namespace, name))
        waited = real_cluster.kubectl(
            "wait", "-n", chart_accounts.namespace, "--for=condition=Ready", f"pp/{name}", "--timeout=60s",
            check=False, timeout=90,
        )  # fmt: skip
        assert waited.returncode == 0, f"{waited.stderr}\n{controller.tail()}"
        # The controller's Event about it (events: create).
        deadline = time.monotonic() + 15
        while name not in real_cluster.kubectl("get", "events", "-n", chart_accounts.namespace).stdout:
            assert time.monotonic() < deadline, f"no Event about {name}\n{controller.tail()}"
            time.sleep(0.5)
        # kopf retries a refused request for about a minute before it degrades: none may be refused.
        assert not _refusals(gateway), "\n".join(_refusals(gateway))
        assert not _refusals(controller), "\n".join(_refusals(controller))
