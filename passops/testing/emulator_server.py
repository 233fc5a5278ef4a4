"""The HTTP side of the emulator: a kmock `KubernetesEmulator` whose resource paths go to `Store`.

kmock keeps serving discovery (/api, /apis, ...) and anything the emulator does not declare;
the declared resources get Kubernetes semantics: watches that resume from a resourceVersion,
selectors, status errors without tracebacks, and switches to simulate an API outage.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import aiohttp.web
import attrs
import kmock
import yaml

from passops.testing import emulator_errors as errors
from passops.testing import emulator_openapi as openapi
from passops.testing.emulator_errors import ApiError
from passops.testing.emulator_resources import BUILTINS, ResourceType
from passops.testing.emulator_selectors import SelectorError, parse_field_selector, parse_label_selector
from passops.testing.emulator_store import Body, Change, Predicate, Store, Write
from passops.testing.emulator_tables import table, wants_table

logger = logging.getLogger(__name__)

_NOT_FOUND = ApiError(404, "the server could not find the requested resource", "NotFound")
_INITIAL_EVENTS_END = "k8s.io/initial-events-end"
_LIVENESS_POLL = 2.0  # seconds between checks that a silent watch's client is still connected


@dataclass
class Fault:
    """An injected failure: which requests it hits and how many more times."""

    code: int
    methods: frozenset[str] | None = None
    path_contains: str | None = None
    remaining: int | None = None
    message: str | None = None

    def hits(self, method: str, path: str) -> bool:
        return (self.methods is None or method.upper() in self.methods) and (
            self.path_contains is None or self.path_contains in path
        )


def parse_path(path: str) -> tuple[str | None, str | None, str | None, str | None, str | None, str | None]:
    """(group, version, plural, namespace, name, subresource) of an API path.

    kmock 0.8 fails on `/api/v1/namespaces` (the cluster-wide namespace list) and reads
    `/api/v1/namespaces/NAME` as a namespace with no resource; this parser gets both right.
    """
    parts = [part for part in path.strip("/").split("/") if part]
    version: str | None
    if len(parts) >= 2 and parts[0] == "api":
        group, version, rest = "", parts[1], parts[2:]
    elif len(parts) >= 2 and parts[0] == "apis":
        group, version, rest = parts[1], (parts[2] if len(parts) > 2 else None), parts[3:]
    else:
        return None, None, None, None, None, None
    namespace = None
    namespace_subresource = group == "" and len(rest) == 3 and rest[2] in ("status", "finalize")
    if len(rest) >= 3 and rest[0] == "namespaces" and not namespace_subresource:
        namespace, rest = rest[1], rest[2:]
    plural = rest[0] if rest else None
    name = rest[1] if len(rest) > 1 else None
    subresource = "/".join(rest[2:]) or None
    return group, version, plural, namespace, name, subresource


def _action(method: str, name: str | None, watch: bool) -> kmock.action | None:
    if method == "GET":
        return kmock.action.WATCH if watch else kmock.action.LIST if name is None else kmock.action.FETCH
    if name is None:
        return kmock.action.CREATE if method == "POST" else None
    return {"PATCH": kmock.action.UPDATE, "DELETE": kmock.action.DELETE}.get(method)


def _is_watch(params: Mapping[str, str]) -> bool:
    return params.get("watch", "").lower() in ("true", "1")


async def parse_request(raw: aiohttp.web.BaseRequest, request_id: int) -> kmock.Request:
    body = await raw.read()
    text = body.decode("utf-8", errors="replace")
    try:
        if "yaml" in raw.content_type and body:
            data = yaml.safe_load(body)
        else:
            data = json.loads(body) if body else None
    except (ValueError, yaml.YAMLError):
        data = None
    group, version, plural, namespace, name, subresource = parse_path(raw.path)
    params = dict(raw.query)
    resource = None if group is None else kmock.resource(group=group, version=version, plural=plural)
    return kmock.Request(
        id=request_id,
        raw_request=raw,
        url=raw.url,
        method=raw.method,
        params=params,
        headers=dict(raw.headers),
        cookies=dict(raw.cookies),
        body=body,
        text=text,
        data=data,
        action=None if group is None else _action(raw.method, name, _is_watch(params)),
        resource=resource,
        namespace=namespace,
        name=name,
        subresource=subresource,
    )


def _json(
    body: Mapping[str, Any], status: int = 200, warnings: list[str] | None = None
) -> aiohttp.web.Response:
    response = aiohttp.web.json_response(body, status=status)
    for warning in warnings or ():  # as the apiserver warns (kubectl prints them)
        response.headers.add("Warning", '299 - "' + warning.replace('"', '\\"') + '"')
    return response


def _content_type(request: kmock.Request) -> str:
    raw = request.headers.get("Content-Type") or request.headers.get("content-type") or ""
    return raw.split(";")[0].strip().lower()


@attrs.define(kw_only=True)
class KubeEmulator(kmock.KubernetesEmulator):
    """kmock's emulator with Kubernetes API semantics for the resource types in `store`."""

    store: Store = attrs.field(init=False)
    fault: Fault | None = attrs.field(default=None, init=False)
    dropping: bool = attrs.field(default=False, init=False)  # close connections without answering
    latency: float = attrs.field(default=0.0, init=False)
    closing: bool = attrs.field(default=False, init=False)
    # Unexpected exceptions inside the emulator (its bugs, not API errors), for tests to assert on.
    failures: list[BaseException] = attrs.field(factory=list, init=False)
    requests_kept: int = 2000
    _declared: set[kmock.resource] = attrs.field(factory=set, init=False)

    def __attrs_post_init__(self) -> None:
        super().__attrs_post_init__()
        self.store = Store(self.objects, on_types_changed=self._sync_discovery)
        self.store.register(BUILTINS)

    def _sync_discovery(self) -> None:
        """Declare exactly the served types to kmock's discovery endpoints (kopf scans them)."""
        served: set[kmock.resource] = set()
        for rt in self.store.types:
            key = kmock.resource(rt.group, rt.version, rt.plural)
            served.add(key)
            self.resources[key] = kmock.ResourceInfo(
                kind=rt.kind,
                singular=rt.singular,
                namespaced=rt.namespaced,
                verbs=set(rt.verbs),
                shortnames=set(rt.short_names),
                categories=set(rt.categories),
                subresources=set(rt.subresources),
            )
        for key in self._declared - served:
            del self.resources[key]
        self._declared = served

    def _get_resources(self) -> list[kmock.resource]:
        # Only what is declared: kmock would also list resources of (soft-deleted) stored objects.
        return list(kmock.KubernetesScaffold._get_resources(self))

    async def _serve_version(self, request: kmock.Request) -> Any:
        listing = await super()._serve_version(request)
        if isinstance(listing, dict):
            listing["groupVersion"] = listing["groupVersion"].lstrip("/")  # kmock says "/v1"
            for entry in listing["resources"]:
                if "/" in entry["name"]:  # kmock copies short names to subresources: kubectl warns
                    entry.update(
                        shortNames=[], categories=[], singularName="", verbs=["get", "patch", "update"]
                    )
        return listing

    async def __call__(self, raw: aiohttp.web.BaseRequest) -> aiohttp.web.StreamResponse:
        response = await self._answer(raw)
        # No keep-alive: kopf.operator() cancels every task created while it ran when it exits, and
        # an aiohttp server connection whose task is cancelled while idle stays open but dead:
        # a client reusing it would hang. A connection per request costs little on loopback.
        response.force_close()
        return response

    async def _answer(self, raw: aiohttp.web.BaseRequest) -> aiohttp.web.StreamResponse:
        await raw.read()
        if self.latency:
            await asyncio.sleep(self.latency)
        if self.dropping and raw.transport is not None:
            raw.transport.abort()  # the client sees a dropped connection, as with a dead apiserver
            return aiohttp.web.Response(status=503)
        request = await parse_request(raw, len(self._requests))
        self._requests.append(request)
        del self._requests[: -self.requests_kept]
        try:
            if self.closing:
                raise errors.from_status(503, "the emulator is shutting down")
            if self.fault is not None and self.fault.hits(raw.method, raw.path):
                fault = self.fault
                if fault.remaining is not None:
                    fault.remaining -= 1
                    if fault.remaining <= 0:
                        self.fault = None
                raise errors.from_status(fault.code, fault.message)
            return await self._handle(request)
        except ApiError as exc:
            return _json(exc.status(), exc.code)
        except kmock.KubernetesError as exc:  # from kmock's own handling of undeclared paths
            return _json(ApiError(exc.status, exc.message or "", exc.reason or "").status(), exc.status)
        except Exception as exc:
            logger.exception("The Kubernetes API emulator failed on %s %s", raw.method, raw.path_qs)
            self.failures.append(exc)
            return _json(ApiError(500, f"{type(exc).__name__}: {exc}", "InternalError").status(), 500)

    async def _handle(self, request: kmock.Request) -> aiohttp.web.StreamResponse:
        path = request.url.path
        if path in ("/healthz", "/readyz", "/livez"):
            return aiohttp.web.Response(text="ok")
        if path == "/openapi/v3":
            return _json(openapi.root(self.store.types))
        if path.startswith("/openapi/v3/"):
            wanted = path.removeprefix("/openapi/v3/")
            types = [rt for rt in self.store.types if openapi.group_version_path(rt) == wanted]
            if not types:
                raise _NOT_FOUND
            return _json(openapi.document(types))
        resource = request.resource
        if resource is not None and resource.version is not None and resource.plural is not None:
            rt = self.store.lookup(resource.group or "", resource.version, resource.plural)
            if rt is not None:
                return await self._serve(request, rt)
        return await super()._handle(request)

    def _matcher(self, rt: ResourceType, params: Mapping[str, str]) -> Predicate:
        try:
            labels = parse_label_selector(params.get("labelSelector"))
            fields = parse_field_selector(params.get("fieldSelector"), rt.field_selectors)
        except SelectorError as exc:
            raise errors.bad_request(str(exc)) from None
        return lambda obj: labels((obj.get("metadata") or {}).get("labels") or {}) and fields(obj)

    async def _serve(self, request: kmock.Request, rt: ResourceType) -> aiohttp.web.StreamResponse:
        method, namespace, name = str(request.method.value), request.namespace, request.name
        status = request.subresource == "status"
        if (namespace is not None and not rt.namespaced) or (
            request.subresource is not None and (name is None or request.subresource not in rt.subresources)
        ):
            raise _NOT_FOUND
        params = request.params
        dry_run = params.get("dryRun") == "All"
        write = Write(dry_run=dry_run, field_validation=params.get("fieldValidation") or "Warn")
        if method in ("POST", "PUT", "PATCH") and request.body and request.data is None:
            content_type = _content_type(request)
            if "protobuf" in content_type or "cbor" in content_type:
                message = "the body of the request was in an unknown format - accepted media types include: "
                raise ApiError(415, message + "application/json, application/yaml", "UnsupportedMediaType")
            raise errors.bad_request("the request body is not valid JSON")
        store = self.store
        if method == "GET" and _is_watch(params):
            return await self._watch(request, rt)
        table_version = wants_table(request.headers.get("Accept") or request.headers.get("accept") or "")
        if method == "GET" and name is None:
            limit = int(params["limit"]) if params.get("limit", "").isdigit() else None
            listing = store.listing(
                rt, namespace, self._matcher(rt, params), limit=limit, continue_token=params.get("continue")
            )
            if table_version:
                return _json(self._table(rt, listing["items"], table_version, params, listing["metadata"]))
            return _json(listing)
        if method == "GET" and name is not None:
            obj = store.get(rt, namespace, name)
            return _json(self._table(rt, [obj], table_version, params) if table_version else obj)
        if method == "POST" and name is None and (namespace is not None or not rt.namespaced):
            return _json(store.create(rt, namespace, request.data, write), 201, write.warnings)
        if method == "PUT" and name is not None:
            obj = store.update(rt, namespace, name, request.data, write, status=status)
            return _json(obj, 200, write.warnings)
        if method == "PATCH" and name is not None:
            content_type = _content_type(request)
            obj = store.patch(rt, namespace, name, content_type, request.data, write, status=status)
            return _json(obj, 200, write.warnings)
        if method == "DELETE" and name is not None:
            options = request.data if isinstance(request.data, dict) else None
            return _json(store.delete(rt, namespace, name, options, dry_run=dry_run))
        if method == "DELETE" and name is None:  # deletecollection
            listing = store.listing(rt, namespace, self._matcher(rt, params))
            for obj in listing["items"]:
                meta = obj["metadata"]
                store.delete(rt, meta.get("namespace"), meta["name"], dry_run=dry_run)
            return _json(listing)
        raise ApiError(
            405, "the server does not allow this method on the requested resource", "MethodNotAllowed"
        )

    @staticmethod
    def _table(
        rt: ResourceType,
        objects: list[Body],
        version: str,
        params: Mapping[str, str],
        list_meta: Mapping[str, Any] | None = None,
        headers: bool = True,
    ) -> dict[str, Any]:
        include = params.get("includeObject", "PartialObjectMetadata")
        return table(
            objects,
            rt.printer_columns,
            version=version,
            include_object=include,
            headers=headers,
            list_meta=list_meta,
        )

    async def _watch(self, request: kmock.Request, rt: ResourceType) -> aiohttp.web.StreamResponse:
        params, raw = request.params, request._raw_request
        assert raw is not None  # set by parse_request()
        match = self._matcher(rt, params)
        initial = params.get("sendInitialEvents") == "true"
        since: int | None = None
        if params.get("resourceVersion") not in (None, "", "0") and not initial:
            try:
                since = int(params["resourceVersion"])
            except ValueError:
                raise errors.bad_request(f"invalid resource version: {params['resourceVersion']}") from None
        timeout = float(params["timeoutSeconds"]) if params.get("timeoutSeconds") else None

        def visible(obj: Body | None) -> bool:
            meta = (obj or {}).get("metadata") or {}
            return (
                obj is not None
                and (request.namespace is None or meta.get("namespace") == request.namespace)
                and (request.name is None or meta.get("name") == request.name)
                and match(obj)
            )

        table_version = wants_table(request.headers.get("Accept") or request.headers.get("accept") or "")
        sent: list[bool] = []  # a Table watch has column definitions in its first event only

        def event(change: Change) -> dict[str, Any] | None:
            # With a selector, an object that starts or stops matching is ADDED or DELETED for it.
            now, before = visible(change.obj), visible(change.old)
            kind = change.type
            if kind == "MODIFIED" and now != before:
                kind = "ADDED" if now else "DELETED"
            elif not now:
                return None
            obj: dict[str, Any] = self.store.render(rt, change.obj)
            if table_version:
                obj = self._table(rt, [obj], table_version, params, headers=not sent)
                sent.append(True)
            return {"type": kind, "object": obj}

        response = aiohttp.web.StreamResponse(status=200)
        response.content_type = "application/json"
        response.force_close()  # see __call__
        await response.prepare(raw)
        try:
            backlog, watch = self.store.subscribe(rt, since)
        except ApiError as exc:  # a too old resourceVersion: an ERROR event, as the apiserver sends
            await response.write(json.dumps({"type": "ERROR", "object": exc.status()}).encode() + b"\n")
            await response.write_eof()
            return response
        loop = asyncio.get_running_loop()
        deadline = None if timeout is None else loop.time() + timeout
        try:
            for old_change in backlog:
                if (item := event(old_change)) is not None:
                    await response.write(json.dumps(item).encode() + b"\n")
            if initial:
                bookmark = {
                    "kind": rt.kind,
                    "apiVersion": rt.api_version,
                    "metadata": {
                        "resourceVersion": str(self.store.rv),
                        "annotations": {_INITIAL_EVENTS_END: "true"},
                    },
                }
                await response.write(json.dumps({"type": "BOOKMARK", "object": bookmark}).encode() + b"\n")
            while not self.closing:
                wait = _LIVENESS_POLL if deadline is None else min(_LIVENESS_POLL, deadline - loop.time())
                if wait <= 0:
                    break
                try:
                    change = await asyncio.wait_for(watch.queue.get(), wait)
                except TimeoutError:
                    if raw.transport is None or raw.transport.is_closing():
                        break  # the client went away
                    continue
                if change is None:
                    break
                if (item := event(change)) is not None:
                    await response.write(json.dumps(item).encode() + b"\n")
        except (ConnectionError, RuntimeError):
            pass  # the client disconnected mid-stream
        finally:
            self.store.unsubscribe(watch)
        with contextlib.suppress(ConnectionError, RuntimeError):
            await response.write_eof()
        return response
