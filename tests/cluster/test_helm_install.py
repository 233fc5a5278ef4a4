"""passops as users install it: the Docker image, the Helm chart, a kind cluster, a real PostgreSQL.

Opt-in (it creates a cluster and builds an image): set PASSOPS_TEST_KIND=1 on a machine with `kind`,
`helm`, `kubectl`, `docker` and a running Docker engine. Otherwise every test skips and says which of
these is missing.

Knobs:
- PASSOPS_KIND_CLUSTER: use this existing kind cluster (not deleted afterwards) instead of a new one.
- PASSOPS_KEEP_KIND=1: keep the cluster this suite created (for debugging).
- PASSOPS_TEST_IMAGE: the image name:tag to build and load (default passops:cluster-test).
- PASSOPS_TEST_POSTGRES_IMAGE: the PostgreSQL image (default the one in tests/cluster/postgres.yaml).
- PASSOPS_HELM: the helm binary when not on PATH.
"""

from __future__ import annotations

import json
import os
import re
import select
import shutil
import subprocess
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from passops.resource import purchase_name
from passops.testing import stripe_events as se

pytestmark = [pytest.mark.cluster, pytest.mark.timeout(1800)]

REPO = Path(__file__).resolve().parents[2]
CHART = REPO / "charts" / "passops"
POSTGRES_MANIFEST = Path(__file__).with_name("postgres.yaml")
NAMESPACE = "passops-e2e"
RELEASE = "passops"
SECRET_NAME = "passops-credentials"
DATABASE_URL = f"postgresql://passops:passops-test@postgres.{NAMESPACE}.svc.cluster.local:5432/passops"
CATALOG = (("day-pass", "price_cluster_day", 1), ("month-pass", "price_cluster_month", 30))


def _helm() -> str | None:
    return os.environ.get("PASSOPS_HELM") or shutil.which("helm")


def missing_requirements() -> list[str]:
    """Everything that keeps this suite from running here, each said plainly."""
    missing: list[str] = []
    if not os.environ.get("PASSOPS_TEST_KIND"):
        missing.append("PASSOPS_TEST_KIND is not set (set PASSOPS_TEST_KIND=1 to run the kind + helm suite)")
    for tool, path in (
        ("kind", shutil.which("kind")),
        ("helm", _helm()),
        ("kubectl", shutil.which("kubectl")),
        ("docker", shutil.which("docker")),
    ):
        if path is None:
            missing.append(f"no `{tool}` binary on PATH")
    if shutil.which("docker"):
        try:
            info = subprocess.run(
                ["docker", "info", "--format", "{{.ServerVersion}}"],
                capture_output=True,
                text=True,
                timeout=20,
                check=False,
            )
        except subprocess.TimeoutExpired:
            missing.append("no Docker engine: `docker info` timed out")
        else:
            if info.returncode != 0 or not info.stdout.strip():
                reason = (info.stderr.strip().splitlines() or ["no server version"])[-1]
                missing.append(f"no Docker engine reachable (`docker info`: {reason})")
    return missing


def run(
    args: list[str],
    *,
    env: Mapping[str, str] | None = None,
    input: str | None = None,
    timeout: float = 300,
    check: bool = True,
) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        args,
        env={**os.environ, **(env or {})},
        input=input,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    if check and result.returncode != 0:
        raise AssertionError(
            f"`{' '.join(args)}` exited {result.returncode}\n{result.stdout[-4000:]}\n{result.stderr[-4000:]}"
        )
    return result


@dataclass
class Cluster:
    name: str
    kubeconfig: Path

    @property
    def env(self) -> dict[str, str]:
        return {"KUBECONFIG": str(self.kubeconfig)}

    def kubectl(self, *args: str, input: str | None = None, timeout: float = 300, check: bool = True) -> str:
        return run(["kubectl", *args], env=self.env, input=input, timeout=timeout, check=check).stdout

    def helm(self, *args: str, timeout: float = 900) -> str:
        helm = _helm()
        assert helm is not None
        return run([helm, *args, "--kubeconfig", str(self.kubeconfig)], timeout=timeout).stdout

    def psql(self, sql: str) -> str:
        return self.kubectl(
            "exec", "-n", NAMESPACE, "deploy/postgres", "--",
            "psql", "-U", "passops", "-d", "passops", "-v", "ON_ERROR_STOP=1", "-tAc", sql,
        ).strip()  # fmt: skip

    def get_json(self, *args: str) -> Any:
        return json.loads(self.kubectl("get", "-n", NAMESPACE, "-o", "json", *args))

    @contextmanager
    def port_forward(self, target: str, port: int, timeout: float = 60) -> Iterator[str]:
        """`kubectl port-forward` to a local port chosen by kubectl; yields http://127.0.0.1:PORT."""
        process = subprocess.Popen(
            ["kubectl", "port-forward", "-n", NAMESPACE, "--address", "127.0.0.1", target, f":{port}"],
            env={**os.environ, **self.env},
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        try:
            assert process.stdout is not None
            deadline = time.monotonic() + timeout
            seen: list[str] = []
            while True:
                remaining = deadline - time.monotonic()
                if remaining <= 0 or process.poll() is not None:
                    raise AssertionError(f"port-forward to {target} did not start: {''.join(seen)}")
                ready, _, _ = select.select([process.stdout], [], [], remaining)
                if not ready:
                    continue
                line = process.stdout.readline()
                seen.append(line)
                match = re.search(r"Forwarding from 127\.0\.0\.1:(\d+)", line)
                if match:
                    yield f"http://127.0.0.1:{match.group(1)}"
                    return
        finally:
            process.terminate()
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def http(
    method: str, url: str, body: bytes | None = None, headers: Mapping[str, str] | None = None
) -> tuple[int, bytes]:
    request = urllib.request.Request(url, data=body, headers=dict(headers or {}), method=method)
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()


# ---------------------------------------------------------------------------------------------
# Fixtures: cluster -> image -> database -> release (one of each for the module)


@pytest.fixture(scope="module")
def requirements() -> None:
    missing = missing_requirements()
    if missing:
        pytest.skip("full-cluster suite: " + "; ".join(missing))


@pytest.fixture(scope="module")
def cluster(requirements: None, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    kubeconfig = tmp_path_factory.mktemp("kind") / "kubeconfig"
    existing = os.environ.get("PASSOPS_KIND_CLUSTER")
    name = existing or f"passops-test-{uuid.uuid4().hex[:6]}"
    if existing:
        kubeconfig.write_text(run(["kind", "get", "kubeconfig", "--name", name]).stdout)
    else:
        run(["kind", "create", "cluster", "--name", name, "--kubeconfig", str(kubeconfig), "--wait", "180s"],
            timeout=600)  # fmt: skip
    try:
        yield Cluster(name, kubeconfig)
    finally:
        if not existing and not os.environ.get("PASSOPS_KEEP_KIND"):
            run(["kind", "delete", "cluster", "--name", name], timeout=300, check=False)


@pytest.fixture(scope="module")
def image(cluster: Cluster) -> str:
    tag = os.environ.get("PASSOPS_TEST_IMAGE", "passops:cluster-test")
    run(["docker", "build", "--tag", tag, str(REPO)], env={"DOCKER_BUILDKIT": "1"}, timeout=1200)
    run(["kind", "load", "docker-image", tag, "--name", cluster.name], timeout=600)
    return tag


@pytest.fixture(scope="module")
def webhook_secret() -> str:
    return se.webhook_secret()


@pytest.fixture(scope="module")
def api_token() -> str:
    return uuid.uuid4().hex


@pytest.fixture(scope="module")
def database(cluster: Cluster, webhook_secret: str, api_token: str) -> None:
    """The namespace, a PostgreSQL in it and the Secret the chart reads (as docs/deploy.md says)."""
    cluster.kubectl("create", "namespace", NAMESPACE)
    manifests = list(yaml.safe_load_all(POSTGRES_MANIFEST.read_text()))
    postgres_image = os.environ.get("PASSOPS_TEST_POSTGRES_IMAGE")
    for manifest in manifests:
        if manifest["kind"] == "Deployment" and postgres_image:
            manifest["spec"]["template"]["spec"]["containers"][0]["image"] = postgres_image
    cluster.kubectl("apply", "-n", NAMESPACE, "-f", "-", input=yaml.safe_dump_all(manifests))
    secret = {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": SECRET_NAME},
        "type": "Opaque",
        "stringData": {
            "PASSOPS_STRIPE_WEBHOOK_SECRETS": webhook_secret,
            "PASSOPS_DATABASE_URL": DATABASE_URL,
            "PASSOPS_API_TOKEN": api_token,
        },
    }
    # Through stdin, so that no credential shows on a command line.
    cluster.kubectl("apply", "-n", NAMESPACE, "-f", "-", input=json.dumps(secret))
    cluster.kubectl("rollout", "status", "-n", NAMESPACE, "deploy/postgres", "--timeout=300s", timeout=330)


def _install_args(image: str) -> list[str]:
    repository, _, tag = image.rpartition(":")
    return [
        str(CHART),
        "--namespace", NAMESPACE,
        "--set", f"existingSecret={SECRET_NAME}",
        "--set", f"image.repository={repository}",
        "--set", f"image.tag={tag}",
        "--set", "image.pullPolicy=Never",
        "--wait", "--timeout", "10m",
    ]  # fmt: skip


@pytest.fixture(scope="module")
def release(
    cluster: Cluster, image: str, database: None, request: pytest.FixtureRequest
) -> Iterator[Cluster]:
    cluster.helm("install", RELEASE, *_install_args(image))
    for pass_id, price_id, days in CATALOG:
        cluster.psql(
            "INSERT INTO pass_catalog (tenant, pass_id, stripe_price_id, name, duration_days) "
            f"VALUES ('default', '{pass_id}', '{price_id}', '{pass_id}', {days}) ON CONFLICT DO NOTHING"
        )
    yield cluster
    if request.session.testsfailed:
        _print_diagnostics(cluster)


def _print_diagnostics(cluster: Cluster) -> None:
    for args in (
        ("get", "all,pp,jobs", "-n", NAMESPACE, "-o", "wide"),
        ("get", "events", "-n", NAMESPACE, "--sort-by=.lastTimestamp"),
        ("logs", "-n", NAMESPACE, f"deploy/{RELEASE}-gateway", "--tail=200"),
        ("logs", "-n", NAMESPACE, f"deploy/{RELEASE}-controller", "--tail=300"),
    ):
        print(f"$ kubectl {' '.join(args)}")
        print(cluster.kubectl(*args, check=False))


# ---------------------------------------------------------------------------------------------
# Tests


def _deliver(cluster: Cluster, payload: Mapping[str, Any], secret: str) -> tuple[int, bytes]:
    body, headers = se.signed_delivery(payload, secret)
    with cluster.port_forward(f"svc/{RELEASE}-gateway", 80) as gateway:
        return http("POST", f"{gateway}/webhooks/stripe", body, headers)


def test_release_is_installed(release: Cluster) -> None:
    crd = json.loads(release.kubectl("get", "crd", "passpurchases.passops.dev", "-o", "json"))
    assert any(c["type"] == "Established" and c["status"] == "True" for c in crd["status"]["conditions"])
    for component, replicas in (("gateway", 2), ("controller", 1)):
        deployment = release.get_json(f"deploy/{RELEASE}-{component}")
        assert deployment["status"].get("availableReplicas") == replicas, component
    # The pre-install hook migrated the database before the components started.
    assert release.psql("SELECT version_num FROM alembic_version") != ""
    with release.port_forward(f"svc/{RELEASE}-gateway", 80) as gateway:
        assert http("GET", f"{gateway}/readyz")[0] == 200
        assert http("GET", f"{gateway}/healthz")[0] == 200


def test_signed_delivery_becomes_one_ready_subscription(
    release: Cluster, webhook_secret: str, api_token: str
) -> None:
    session = se.paid_session(
        client_reference_id=f"user-{uuid.uuid4().hex[:8]}", metadata={"pass_id": "day-pass"}
    )
    delivery = se.event(se.CHECKOUT_COMPLETED, session)
    status, answer = _deliver(release, delivery, webhook_secret)
    assert status == 200, answer

    name = purchase_name(session["id"])
    release.kubectl(
        "wait", "-n", NAMESPACE, "--for=condition=Ready", f"pp/{name}", "--timeout=180s", timeout=200
    )
    purchase = release.get_json(f"pp/{name}")
    assert purchase["status"]["phase"] == "Ready"
    assert purchase["metadata"]["labels"]["passops.dev/phase"] == "Ready"
    assert name in release.kubectl("get", "pp", "-n", NAMESPACE, "-l", "passops.dev/phase=Ready")
    table = release.kubectl("get", "pp", "-n", NAMESPACE, name).splitlines()
    assert table[0].split() == ["NAME", "TENANT", "CUSTOMER", "PASS", "PHASE", "ATTEMPTS", "AGE"]
    assert table[1].split()[:5] == [name, "default", session["customer"], "day-pass", "Ready"]

    # A replay (Stripe retries, or a second endpoint) changes nothing.
    status, answer = _deliver(release, delivery, webhook_secret)
    assert status == 200, answer
    rows = release.psql(
        f"SELECT pass_id || ':' || status FROM subscriptions WHERE checkout_session_id = '{session['id']}'"
    )
    assert rows.splitlines() == ["day-pass:active"]

    with release.port_forward(f"svc/{RELEASE}-gateway", 80) as gateway:
        code, raw = http(
            "GET", f"{gateway}/v1/purchases/{session['id']}", headers={"Authorization": f"Bearer {api_token}"}
        )
    assert code == 200, raw
    view = json.loads(raw)
    assert view["phase"] == "Ready" and view["ready"] is True


def test_bad_signature_is_rejected(release: Cluster) -> None:
    delivery = se.event(se.CHECKOUT_COMPLETED, se.paid_session())
    status, answer = _deliver(release, delivery, se.webhook_secret())
    assert status == 400, answer
    assert (
        release.kubectl(
            "get", "pp", "-n", NAMESPACE, purchase_name(delivery["data"]["object"]["id"]), check=False
        )
        == ""
    )


def test_metrics_endpoints(release: Cluster) -> None:
    with release.port_forward(f"svc/{RELEASE}-controller-metrics", 9090) as controller:
        code, text = http("GET", f"{controller}/metrics")
    assert code == 200
    assert b"passops_reconcile_total" in text and b"controller_runtime_reconcile_total" in text
    with release.port_forward(f"svc/{RELEASE}-gateway", 80) as gateway:
        code, text = http("GET", f"{gateway}/metrics")
    assert code == 200 and b"passops_webhook_requests_total" in text


def test_upgrade_reruns_the_migration_and_keeps_purchases(release: Cluster, image: str) -> None:
    before = release.get_json("pp")["items"]
    release.helm("upgrade", RELEASE, *_install_args(image), "--set", "userPolicy=wait")
    history = json.loads(release.helm("history", RELEASE, "--namespace", NAMESPACE, "--output", "json"))
    assert history[-1]["status"] == "deployed" and history[-1]["revision"] >= 2
    controller = release.get_json(f"deploy/{RELEASE}-controller")
    env = {e["name"]: e.get("value") for e in controller["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert env["PASSOPS_USER_POLICY"] == "wait"
    after = {p["metadata"]["name"]: p for p in release.get_json("pp")["items"]}
    for purchase in before:
        assert purchase["metadata"]["name"] in after
