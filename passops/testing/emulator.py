"""An in-process Kubernetes API for `passops demo` and the tests, on kmock's `KubernetesEmulator`.

    async with run_emulator(crd_paths=["crds/passpurchase.yaml"]) as cluster:
        async with purchase_client(cluster.namespace, cluster.kubeconfig) as purchases: ...

Real clients (kopf, kubernetes_asyncio, kubectl) talk to it over HTTP on 127.0.0.1 through the
kubeconfig it writes. It emulates what the product relies on: resourceVersion (one global counter),
uid, creationTimestamp, generation (spec changes only), the status subresource, optimistic
concurrency (409 Conflict / AlreadyExists), merge and JSON patches, structural-schema pruning and
validation (422 Invalid; `fieldValidation`), finalizers, label/field selectors, watches resumable
from a resourceVersion (410 after `compact()`), Events, CRDs created through the API, Table output
for kubectl's printer columns, and switches to simulate an outage.

Not emulated: authentication and RBAC, admission webhooks, CEL rules, server-side apply, strategic
merge of lists (a merge patch instead), protobuf bodies (kubectl's `create namespace`), garbage
collection by ownerReferences, CRD version conversion (all versions share one stored object).
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import AsyncIterator, Iterable, Iterator
from pathlib import Path
from typing import Any

import kmock
import yaml

from passops.testing.emulator_errors import ApiError
from passops.testing.emulator_resources import CRDS, EVENTS, NAMESPACES
from passops.testing.emulator_server import Fault, KubeEmulator
from passops.testing.emulator_store import Body

__all__ = ["EmulatedCluster", "KubeEmulator", "load_crds", "run_emulator"]

_CONTEXT = "passops-emulator"


def load_crds(path: str | os.PathLike[str]) -> list[Body]:
    """The CustomResourceDefinitions in a YAML file (several documents allowed) or a directory."""
    path = Path(path)
    files = sorted(path.glob("*.yaml")) + sorted(path.glob("*.yml")) if path.is_dir() else [path]
    crds: list[Body] = []
    for file in files:
        with file.open(encoding="utf-8") as stream:
            crds += [
                d for d in yaml.safe_load_all(stream) if d and d.get("kind") == "CustomResourceDefinition"
            ]
    return crds


def _kubeconfig(url: str, namespace: str) -> dict[str, Any]:
    # Plain http with a dummy token: clients that insist on some credentials get one; nobody checks it.
    return {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": _CONTEXT, "cluster": {"server": url}}],
        "users": [{"name": _CONTEXT, "user": {"token": "emulator"}}],
        "contexts": [
            {"name": _CONTEXT, "context": {"cluster": _CONTEXT, "user": _CONTEXT, "namespace": namespace}}
        ],
        "current-context": _CONTEXT,
    }


class EmulatedCluster:
    """A running emulator: where it listens, what it stores, and switches to break it."""

    def __init__(self, handler: KubeEmulator, url: str, kubeconfig: str, namespace: str) -> None:
        self.handler = handler  # the kmock handler: `handler.requests`, kmock's DSL, `handler.objects`
        self.url = url
        self.kubeconfig = kubeconfig
        self.namespace = namespace

    @property
    def resource_version(self) -> str:
        return str(self.handler.store.rv)

    @property
    def failures(self) -> list[BaseException]:
        """Unexpected exceptions inside the emulator (not API errors); tests may assert it is empty."""
        return self.handler.failures

    def objects(self, plural: str, namespace: str | None = None) -> list[Body]:
        """Current (not deleted) objects of a resource, e.g. `objects("passpurchases")`, as stored."""
        store = self.handler.store
        return store.current(store.find_type(plural), namespace)

    def get(self, plural: str, name: str, namespace: str | None = None) -> Body | None:
        """One stored object; the namespace defaults to the cluster's for namespaced resources."""
        store = self.handler.store
        rt = store.find_type(plural)
        try:
            return store.get(rt, (namespace or self.namespace) if rt.namespaced else None, name)
        except ApiError:
            return None

    def events(
        self, *, name: str | None = None, reason: str | None = None, namespace: str | None = None
    ) -> list[Body]:
        """Kubernetes Events posted so far (by kopf.event, kopf itself...), oldest first."""
        found = [
            event
            for event in self.handler.store.current(EVENTS, namespace)
            if (name is None or (event.get("involvedObject") or {}).get("name") == name)
            and (reason is None or event.get("reason") == reason)
        ]
        return sorted(found, key=lambda e: int(e["metadata"]["resourceVersion"]))

    async def fail_requests(
        self,
        status: int = 503,
        *,
        methods: Iterable[str] | None = None,
        path_contains: str | None = None,
        times: int | None = None,
        message: str | None = None,
    ) -> None:
        """Answer matching requests with this HTTP status (a Kubernetes Status) until `heal()`.

        Open watch streams are closed, as when an apiserver goes away; `times` limits the failures.
        """
        methods_set = None if methods is None else frozenset(m.upper() for m in methods)
        self.handler.fault = Fault(status, methods_set, path_contains, times, message)
        if path_contains is None and (methods_set is None or "GET" in methods_set):
            self.handler.store.close_watches()

    async def drop_connections(self) -> None:
        """Close every connection without an answer (clients see a connection error) until `heal()`."""
        self.handler.dropping = True
        self.handler.store.close_watches()

    async def slow_down(self, seconds: float) -> None:
        """Delay every answer by this many seconds (client timeouts, slow apiserver)."""
        self.handler.latency = seconds

    async def heal(self) -> None:
        """End every simulated failure."""
        self.handler.fault = None
        self.handler.dropping = False
        self.handler.latency = 0.0

    async def compact(self) -> None:
        """Forget the change history (etcd compaction): resuming a watch from an older version gets 410."""
        self.handler.store.compact()


@contextlib.contextmanager
def _kubeconfig_file(url: str, namespace: str) -> Iterator[str]:
    with tempfile.TemporaryDirectory(prefix="passops-emulator-") as tmp:
        path = Path(tmp) / "kubeconfig"
        path.write_text(yaml.safe_dump(_kubeconfig(url, namespace)), encoding="utf-8")
        yield str(path)


@contextlib.asynccontextmanager
async def run_emulator(
    crd_paths: Iterable[str | os.PathLike[str]] = (),
    namespace: str = "default",
    *,
    namespaces: Iterable[str] = (),
    host: str = "127.0.0.1",
    port: int | None = None,
) -> AsyncIterator[EmulatedCluster]:
    """Start the emulator with these CRDs installed (Established) and namespaces created."""
    handler = KubeEmulator()
    store = handler.store
    for name in dict.fromkeys([namespace, *namespaces]):
        store.create(NAMESPACES, None, {"metadata": {"name": name}})
    for path in crd_paths:
        for crd in load_crds(path):
            store.create(CRDS, None, crd)
    async with handler, kmock.Server(handler, host=host, port=port) as server:
        url = str(server.url).rstrip("/")
        try:
            with _kubeconfig_file(url, namespace) as kubeconfig:
                yield EmulatedCluster(handler, url, kubeconfig, namespace)
        finally:
            # End the streams first: the HTTP server waits for running handlers when it stops.
            handler.closing = True
            store.close_watches()
