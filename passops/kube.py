"""A small typed client for PassPurchase objects on the Kubernetes API (kubernetes_asyncio underneath).

The gateway, the controller and the CLI all go through this module, so that errors are mapped to
a few exceptions with a meaning (not found, conflict, unavailable) in one place.
"""

from __future__ import annotations

import asyncio
import builtins
import json
import os
from collections.abc import AsyncIterator, Awaitable, Mapping
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar, cast

import aiohttp
from kubernetes_asyncio import client, config
from kubernetes_asyncio.client.exceptions import ApiException

from passops.resource import GROUP, PLURAL, VERSION

Body = dict[str, Any]
T = TypeVar("T")
_MERGE_PATCH = "application/merge-patch+json"


class KubeError(Exception):
    """The Kubernetes API refused or failed a request."""

    def __init__(self, message: str, *, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


class NotFound(KubeError):
    pass


class AlreadyExists(KubeError):
    pass


class Conflict(KubeError):
    """The object changed since it was read (a stale resourceVersion)."""


class Invalid(KubeError):
    """The API rejected the object as invalid (e.g. schema validation): retrying will not help."""


class Unavailable(KubeError):
    """The API could not be reached or answered with a server error: worth retrying."""


def _translate(exc: BaseException, what: str) -> KubeError:
    if isinstance(exc, ApiException):
        status = int(exc.status or 0)
        reason = ""
        try:
            payload = json.loads(exc.body or "{}")
            reason = str(payload.get("reason") or "")
            message = str(payload.get("message") or exc.reason or "")
        except (ValueError, TypeError, AttributeError):
            message = str(exc.reason or "")
        text = f"{what}: HTTP {status} {message}".strip()
        if status == 404:
            return NotFound(text, status=status)
        if status == 409 and reason == "AlreadyExists":
            return AlreadyExists(text, status=status)
        if status == 409:
            return Conflict(text, status=status)
        if status in (400, 422):
            return Invalid(text, status=status)
        if status in (401, 403):
            return KubeError(text, status=status)
        return Unavailable(text, status=status)
    return Unavailable(f"{what}: {type(exc).__name__}: {exc}".rstrip(": "))


def _kubeconfig_path(explicit: str | None) -> str:
    # Read KUBECONFIG now: kubernetes_asyncio reads it once, at import time. Like kubectl, missing
    # files in a list are skipped (the first existing one is used; no merging).
    path = explicit or os.environ.get("KUBECONFIG") or "~/.kube/config"
    candidates = [Path(p).expanduser() for p in path.split(os.pathsep) if p]
    for candidate in candidates:
        if candidate.is_file():
            return str(candidate)
    raise config.ConfigException(f"no kubeconfig at {os.pathsep.join(map(str, candidates)) or path}")


async def load_configuration(kubeconfig: str | None = None) -> client.Configuration:
    """The standard connection: in-cluster service account, else KUBECONFIG / ~/.kube/config."""
    configuration = client.Configuration()
    if kubeconfig is None and os.environ.get("KUBERNETES_SERVICE_HOST") and not os.environ.get("KUBECONFIG"):
        config.load_incluster_config(client_configuration=configuration)  # type: ignore[no-untyped-call]
    else:
        path = _kubeconfig_path(kubeconfig)
        try:
            await config.load_kube_config(config_file=path, client_configuration=configuration)
        except config.ConfigException:
            raise
        except Exception as exc:  # YAML errors, a plain string, an unreadable file...
            raise config.ConfigException(
                f"the kubeconfig at {path} is not valid ({type(exc).__name__})"
            ) from None
    return configuration


async def load_api_client(kubeconfig: str | None = None) -> client.ApiClient:
    return client.ApiClient(configuration=await load_configuration(kubeconfig))


class PurchaseClient:
    """CRUD on PassPurchase objects of one namespace."""

    def __init__(self, api_client: client.ApiClient, namespace: str, *, timeout: float = 10.0) -> None:
        self._api_client = api_client
        self._api = client.CustomObjectsApi(api_client)
        self._core = client.CoreV1Api(api_client)
        self._ext = client.ApiextensionsV1Api(api_client)
        self.namespace = namespace
        self._timeout = timeout

    async def _request(self, what: str, coro: Awaitable[T]) -> T:
        """One API call, bounded in time, its failures translated to our exceptions."""
        try:
            return await asyncio.wait_for(coro, timeout=self._timeout)
        except (ApiException, aiohttp.ClientError, OSError, TimeoutError) as exc:
            raise _translate(exc, what) from None

    async def _call(self, what: str, coro: Awaitable[Any]) -> Body:
        return cast(Body, await self._request(what, coro))

    async def get(self, name: str) -> Body:
        return await self._call(
            f"get {PLURAL}/{name}",
            self._api.get_namespaced_custom_object(GROUP, VERSION, self.namespace, PLURAL, name),
        )

    async def find(self, name: str) -> Body | None:
        try:
            return await self.get(name)
        except NotFound:
            return None

    async def list(self, label_selector: str | None = None) -> list[Body]:
        kwargs: dict[str, Any] = {"label_selector": label_selector} if label_selector else {}
        result = await self._call(
            f"list {PLURAL}",
            self._api.list_namespaced_custom_object(GROUP, VERSION, self.namespace, PLURAL, **kwargs),
        )
        return list(result.get("items") or [])

    async def create(self, body: Body) -> Body:
        return await self._call(
            f"create {PLURAL}",
            self._api.create_namespaced_custom_object(GROUP, VERSION, self.namespace, PLURAL, body),
        )

    async def replace(self, body: Body) -> Body:
        """Replace the whole object; fails with Conflict if metadata.resourceVersion is stale."""
        name = body["metadata"]["name"]
        return await self._call(
            f"replace {PLURAL}/{name}",
            self._api.replace_namespaced_custom_object(GROUP, VERSION, self.namespace, PLURAL, name, body),
        )

    async def patch(self, name: str, patch: Mapping[str, Any]) -> Body:
        """A JSON merge patch of the main resource (spec, labels, annotations; never status)."""
        return await self._call(
            f"patch {PLURAL}/{name}",
            self._api.patch_namespaced_custom_object(
                GROUP,
                VERSION,
                self.namespace,
                PLURAL,
                name,
                dict(patch),
                # The generated signature omits _content_type; without it a dict goes as a JSON patch.
                _content_type=_MERGE_PATCH,  # type: ignore[call-arg]
            ),
        )

    async def patch_status(self, name: str, status: Mapping[str, Any]) -> Body:
        """A JSON merge patch of the status subresource."""
        return await self._call(
            f"patch {PLURAL}/{name}/status",
            self._api.patch_namespaced_custom_object_status(
                GROUP,
                VERSION,
                self.namespace,
                PLURAL,
                name,
                {"status": dict(status)},
                _content_type=_MERGE_PATCH,  # type: ignore[call-arg]
            ),
        )

    async def delete(self, name: str) -> None:
        await self._call(
            f"delete {PLURAL}/{name}",
            self._api.delete_namespaced_custom_object(GROUP, VERSION, self.namespace, PLURAL, name),
        )

    async def post_event(
        self, involved: Mapping[str, Any], *, type: str, reason: str, message: str, component: str
    ) -> None:
        """Record a core/v1 Event about ``involved`` (shown by `kubectl describe` and `get events`)."""
        meta = involved.get("metadata") or {}
        now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        body = {
            "apiVersion": "v1",
            "kind": "Event",
            "metadata": {"generateName": f"{meta.get('name', 'passpurchase')}.", "namespace": self.namespace},
            "involvedObject": {
                "apiVersion": involved.get("apiVersion"),
                "kind": involved.get("kind"),
                "name": meta.get("name"),
                "namespace": self.namespace,
                "uid": meta.get("uid"),
                "resourceVersion": meta.get("resourceVersion"),
            },
            "type": type,
            "reason": reason,
            "message": message[:1024],
            "source": {"component": component},
            "reportingComponent": component,
            "firstTimestamp": now,
            "lastTimestamp": now,
            "count": 1,
        }
        # A plain dict serialises as is; the generated model class would only add a conversion step.
        await self._call("create event", self._core.create_namespaced_event(self.namespace, body))  # type: ignore[arg-type]

    async def list_events(self, name: str) -> builtins.list[Body]:
        """The core/v1 Events about one purchase, oldest first."""
        result = await self._request(
            "list events",
            self._core.list_namespaced_event(self.namespace, field_selector=f"involvedObject.name={name}"),
        )
        payload = self._api_client.sanitize_for_serialization(result)
        items = [i for i in payload.get("items") or [] if (i.get("involvedObject") or {}).get("name") == name]
        return sorted(items, key=lambda e: str(e.get("lastTimestamp") or e.get("eventTime") or ""))

    async def crd_established(self) -> bool:
        """Whether the CRD is installed and established (for readiness probes)."""
        crd = await self._request("get crd", self._ext.read_custom_resource_definition(f"{PLURAL}.{GROUP}"))
        conditions = (crd.status.conditions if crd.status else None) or []
        return any(c.type == "Established" and c.status == "True" for c in conditions)


@asynccontextmanager
async def purchase_client(
    namespace: str, kubeconfig: str | None = None, *, request_timeout: float = 10.0
) -> AsyncIterator[PurchaseClient]:
    api_client = await load_api_client(kubeconfig)
    try:
        yield PurchaseClient(api_client, namespace, timeout=request_timeout)
    finally:
        await api_client.close()
