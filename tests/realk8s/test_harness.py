"""The PassPurchase CRD on a real kube-apiserver, and the harness that starts it.

What kmock cannot prove: the structural schema keeps every field we declare and prunes the rest,
status is written only through /status, generation moves only with spec, and kubectl prints the
columns the contract promises.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import yaml

from passops.testing import realk8s
from passops.testing.realk8s import Binaries, RealCluster, SkipReason

pytestmark = pytest.mark.realk8s

CRD_FILE = Path(__file__).resolve().parents[2] / "crds" / "passpurchase.yaml"
API = "passops.dev/v1alpha1"


def _schema() -> dict[str, Any]:
    crd = yaml.safe_load(CRD_FILE.read_text())
    (version,) = crd["spec"]["versions"]
    return dict(version["schema"]["openAPIV3Schema"])


def _sample(schema: dict[str, Any], path: str) -> Any:
    """A value for every property the schema declares, recursively; distinct per field."""
    if "enum" in schema:
        return schema["enum"][-1]
    kind = schema.get("type")
    if kind == "object":
        return {key: _sample(sub, f"{path}.{key}") for key, sub in schema.get("properties", {}).items()}
    if kind == "array":
        return [_sample(schema["items"], f"{path}[0]")]
    if kind == "string":
        return "2025-05-20T12:34:56Z" if schema.get("format") == "date-time" else f"v{path}"
    if kind == "integer":
        return 1_000_000_000_000 + sum(map(ord, path))  # beyond int32: int64 survives
    if kind == "boolean":
        return True
    raise AssertionError(f"no sample for {path}: {schema}")


def _leaves(value: Any) -> int:
    if isinstance(value, dict):
        return sum(_leaves(v) for v in value.values())
    if isinstance(value, list):
        return sum(_leaves(v) for v in value)
    return 1


def _create(cluster: RealCluster, name: str, spec: dict[str, Any], **extra: Any) -> dict[str, Any]:
    body = {"apiVersion": API, "kind": "PassPurchase", "metadata": {"name": name}, "spec": spec, **extra}
    # --validate=false: kubectl would refuse unknown fields client-side once it has fetched the
    # schema (order-dependent); these tests are about what the server prunes.
    args = ("create", "-n", cluster.namespace, "--validate=false", "-o", "json", "-f", "-")
    out = cluster.kubectl(*args, input=json.dumps(body))
    return dict(json.loads(out.stdout))


def _patch(cluster: RealCluster, name: str, patch: dict[str, Any], *, status: bool = False) -> dict[str, Any]:
    args = ["patch", "pp", name, "-n", cluster.namespace, "--type=merge", "-o", "json"]
    args += ["-p", json.dumps(patch)]
    if status:
        args.append("--subresource=status")
    return dict(json.loads(cluster.kubectl(*args).stdout))


def _get(cluster: RealCluster, name: str) -> dict[str, Any]:
    return dict(json.loads(cluster.kubectl("get", "pp", name, "-n", cluster.namespace, "-o", "json").stdout))


# --- the CRD on the real API ---------------------------------------------------------------------


def test_crd_is_established_with_contract_names(real_cluster: RealCluster) -> None:
    crd = json.loads(real_cluster.kubectl("get", "crd", "passpurchases.passops.dev", "-o", "json").stdout)
    conditions = {c["type"]: c["status"] for c in crd["status"]["conditions"]}
    assert conditions["Established"] == "True"
    assert conditions["NamesAccepted"] == "True"
    names = crd["status"]["acceptedNames"]
    assert (names["kind"], names["shortNames"], names["categories"]) == ("PassPurchase", ["pp"], ["passops"])
    # The category and short name resolve through discovery, as support staff type them.
    real_cluster.kubectl("get", "passops", "-n", real_cluster.namespace)
    real_cluster.kubectl("get", "pp", "-n", real_cluster.namespace)


def test_every_declared_field_survives_and_unknown_fields_are_pruned(real_cluster: RealCluster) -> None:
    schema = _schema()["properties"]
    spec = _sample(schema["spec"], "spec")
    status = _sample(schema["status"], "status")
    assert _leaves(spec) >= 18 and _leaves(status) >= 18  # the walk really covered the schema

    def with_unknown(value: dict[str, Any]) -> dict[str, Any]:
        doped: dict[str, Any] = json.loads(json.dumps(value))
        doped["unknownTopLevel"] = "x"
        for sub in doped.values():
            if isinstance(sub, dict):
                sub["unknownNested"] = "x"
            if isinstance(sub, list):
                sub[0]["unknownInItem"] = "x"
        return doped

    created = _create(real_cluster, "all-fields", with_unknown(spec), status=status)
    assert created["spec"] == spec
    assert "status" not in created, "status on create must be dropped (status subresource)"

    written = _patch(real_cluster, "all-fields", {"status": with_unknown(status)}, status=True)
    assert written["status"] == status

    stored = _get(real_cluster, "all-fields")
    assert stored["spec"] == spec
    assert stored["status"] == status
    assert stored["metadata"]["generation"] == 1


def test_empty_strings_are_strings_not_null(real_cluster: RealCluster) -> None:
    """A Go >= 1.16 build of 1.20 without the build script's fix 5 rejects "" as null."""
    created = _create(real_cluster, "empty-strings", {"checkoutSessionId": "cs_test_empty", "tenant": ""})
    assert created["spec"]["tenant"] == ""
    written = _patch(
        real_cluster, "empty-strings", {"status": {"lastError": {"reason": "X", "message": ""}}}, status=True
    )
    assert written["status"]["lastError"] == {"reason": "X", "message": ""}


def test_status_only_through_subresource(real_cluster: RealCluster) -> None:
    _create(real_cluster, "status-main", {"checkoutSessionId": "cs_test_status"})
    after = _patch(real_cluster, "status-main", {"status": {"phase": "Ready"}})  # main resource
    assert "status" not in after


def test_generation_moves_with_spec_only(real_cluster: RealCluster) -> None:
    created = _create(real_cluster, "generation", {"checkoutSessionId": "cs_test_gen", "tenant": "a"})
    assert created["metadata"]["generation"] == 1

    status = _patch(
        real_cluster,
        "generation",
        {"status": {"phase": "Reconciling", "observedGeneration": 1, "attempts": 1}},
        status=True,
    )
    assert status["metadata"]["generation"] == 1
    annotated = _patch(
        real_cluster,
        "generation",
        {"metadata": {"annotations": {"passops.dev/resync-requested-at": "2025-05-20T00:00:00Z"}}},
    )
    assert annotated["metadata"]["generation"] == 1

    changed = _patch(real_cluster, "generation", {"spec": {"tenant": "b"}})
    assert changed["metadata"]["generation"] == 2
    assert changed["status"]["observedGeneration"] == 1  # now visibly behind: the controller's cue


def _table(text: str) -> tuple[list[str], list[str]]:
    header, row = text.strip().splitlines()
    return header.split(), row.split()


def test_kubectl_printer_columns(real_cluster: RealCluster) -> None:
    _create(
        real_cluster,
        "columns",
        {
            "checkoutSessionId": "cs_test_columns",
            "tenant": "acme",
            "customer": {"stripeCustomerId": "cus_Columns1"},
            "pass": {"priceId": "price_1"},
        },
    )
    _patch(
        real_cluster,
        "columns",
        {
            "status": {
                "passId": "gold",  # PASS is the pass granted: known from the catalog, not the session
                "phase": "Reconciling",
                "attempts": 3,
                "subscriptionId": 4242,
                "nextAttemptAt": "2030-01-02T03:04:05Z",
                "conditions": [
                    {
                        "type": "Ready",
                        "status": "False",
                        "reason": "UserNotFound",
                        "message": "waiting for user",
                        "lastTransitionTime": "2025-05-20T00:00:00Z",
                    },
                    {
                        "type": "Stalled",
                        "status": "False",
                        "reason": "Retrying",
                        "message": "",
                        "lastTransitionTime": "2025-05-20T00:00:00Z",
                    },
                ],
            }
        },
        status=True,
    )
    ns = real_cluster.namespace

    header, row = _table(real_cluster.kubectl("get", "pp", "columns", "-n", ns).stdout)
    assert header == ["NAME", "TENANT", "CUSTOMER", "PASS", "PHASE", "ATTEMPTS", "AGE"]
    assert row[:6] == ["columns", "acme", "cus_Columns1", "gold", "Reconciling", "3"]
    assert row[6][-1] in "smhd"

    header, row = _table(real_cluster.kubectl("get", "pp", "columns", "-n", ns, "-o", "wide").stdout)
    assert header == [
        "NAME",
        "TENANT",
        "CUSTOMER",
        "PASS",
        "PHASE",
        "ATTEMPTS",
        "AGE",
        "REASON",
        "SUBSCRIPTION",
        "NEXT-RETRY",
    ]
    assert row[:6] == ["columns", "acme", "cus_Columns1", "gold", "Reconciling", "3"]
    assert row[7:] == ["UserNotFound", "4242", "2030-01-02T03:04:05Z"]


def test_kubectl_wait_for_ready_condition(real_cluster: RealCluster) -> None:
    _create(real_cluster, "waitable", {"checkoutSessionId": "cs_test_wait"})
    _patch(
        real_cluster,
        "waitable",
        {
            "status": {
                "phase": "Ready",
                "conditions": [
                    {
                        "type": "Ready",
                        "status": "True",
                        "reason": "SubscriptionCreated",
                        "message": "",
                        "lastTransitionTime": "2025-05-20T00:00:00Z",
                    }
                ],
            }
        },
        status=True,
    )
    real_cluster.kubectl(
        "wait", "--for=condition=Ready", "--timeout=10s", "pp/waitable", "-n", real_cluster.namespace
    )


# --- the harness itself --------------------------------------------------------------------------


def test_token_stays_secret(real_cluster: RealCluster) -> None:
    assert real_cluster.token is None or real_cluster.token not in repr(real_cluster)
    if real_cluster.external:
        return
    assert real_cluster.token
    assert real_cluster.kubeconfig.stat().st_mode & 0o077 == 0
    for name in ("apiserver", "etcd"):
        assert real_cluster.token not in real_cluster.log_tail(name, 100_000)


def test_skip_reasons_are_explicit(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(realk8s.ENV_ASSETS, str(tmp_path))
    reason = realk8s.locate_or_build(build=True)
    assert isinstance(reason, SkipReason)
    assert str(tmp_path) in reason and "kube-apiserver" in reason

    monkeypatch.delenv(realk8s.ENV_ASSETS)
    monkeypatch.setenv(realk8s.ENV_CACHE, str(tmp_path / "empty-cache"))
    reason = realk8s.locate_or_build(build=False)
    assert isinstance(reason, SkipReason)
    assert "scripts/build-kube-apiserver.sh" in reason


def _local_binaries() -> Binaries:
    if os.environ.get(realk8s.ENV_KUBECONFIG):
        pytest.skip("external cluster: the harness starts nothing")
    found = realk8s.locate_or_build(build=False)
    if isinstance(found, SkipReason):
        pytest.skip(found)
    return found


def _gone(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        return True
    return state == "Z"  # a zombie nobody reaped yet is dead too


def _wait_gone(pids: list[int], timeout: float = 15.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if all(_gone(p) for p in pids):
            return True
        time.sleep(0.1)
    return False


def test_second_cluster_starts_and_stops_clean(real_cluster: RealCluster) -> None:
    binaries = _local_binaries()
    with realk8s.local_cluster(binaries) as other:
        assert other.server != real_cluster.server
        assert other.workdir is not None
        workdir = other.workdir
        pids = [
            int(p)
            for p in subprocess.run(
                ["pgrep", "-f", str(workdir)], capture_output=True, text=True
            ).stdout.split()
        ]
        assert len(pids) == 2, pids  # etcd + kube-apiserver
        other.kubectl("get", "crd", "passpurchases.passops.dev")
    assert _wait_gone(pids)
    assert not workdir.exists()


_ORPHAN_CHILD = """
import sys, time
from passops.testing import realk8s
with realk8s.local_cluster(realk8s.locate_or_build(build=False), crds=None) as c:
    print(c.workdir, flush=True)
    time.sleep(600)
"""


def test_no_orphans_when_the_test_process_is_killed(real_cluster: RealCluster) -> None:
    """SIGKILL leaves no finally to run: PR_SET_PDEATHSIG must take the servers down."""
    _local_binaries()
    child = subprocess.Popen([sys.executable, "-c", _ORPHAN_CHILD], stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout is not None
        workdir = child.stdout.readline().strip()
        assert workdir, "child did not start a cluster"
        pids = [
            int(p)
            for p in subprocess.run(["pgrep", "-f", workdir], capture_output=True, text=True).stdout.split()
        ]
        assert len(pids) == 2, pids
        child.send_signal(signal.SIGKILL)
        child.wait(10)
        assert _wait_gone(pids), "etcd/kube-apiserver outlived their parent"
    finally:
        if child.poll() is None:
            child.kill()
        if "workdir" in locals() and workdir.startswith("/"):
            subprocess.run(["rm", "-rf", workdir], check=False)
