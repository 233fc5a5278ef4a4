"""The emulator's object store: Kubernetes write semantics over kmock's object history.

Every operation here is synchronous (no `await`), so each one is atomic in the event loop: a
precondition check and the write it guards can never interleave with another request.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import copy
import datetime
import json
import random
import uuid
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import kmock

from passops.testing import emulator_errors as errors
from passops.testing.emulator_errors import ApiError, Cause
from passops.testing.emulator_patches import PatchError, json_patch, merge_patch
from passops.testing.emulator_resources import (
    CRDS,
    EVENTS,
    NAMESPACES,
    ResourceType,
    crd_problems,
    established_status,
    from_crd,
)
from passops.testing.emulator_schema import metadata_problems, metadata_type_error, normalize

Body = dict[str, Any]
Predicate = Callable[[Mapping[str, Any]], bool]
# Fields only the apiserver sets; what a client sends for them is ignored (or a precondition).
_SYSTEM_FIELDS = (
    "uid", "creationTimestamp", "deletionTimestamp", "deletionGracePeriodSeconds", "generation",
    "resourceVersion", "selfLink", "managedFields",
)  # fmt: skip
_NAME_CHARS = "bcdfghjklmnpqrstvwxz2456789"  # as the apiserver's generateName suffixes


def now() -> str:
    return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass(frozen=True)
class Change:
    """One write as watchers see it; `old` lets a selector-filtered watch see objects enter and leave."""

    rv: int
    store_id: tuple[str, str, str]
    type: str
    obj: Body
    old: Body | None


@dataclass
class Write:
    """How a client asked to write (?dryRun=All, ?fieldValidation=), and the warnings it gets back."""

    dry_run: bool = False
    field_validation: str = "Warn"  # the apiserver's default; Strict fails, Ignore is silent
    warnings: list[str] = field(default_factory=list)


@dataclass(eq=False)
class Watch:
    store_id: tuple[str, str, str]
    queue: asyncio.Queue[Change | None] = field(default_factory=asyncio.Queue)


def _spec_part(obj: Mapping[str, Any]) -> Body:
    """What counts for `metadata.generation`: everything except metadata and status."""
    return {k: v for k, v in obj.items() if k not in ("metadata", "status", "apiVersion", "kind")}


class Store:
    def __init__(
        self,
        objects: kmock.ObjectsArray,
        *,
        on_types_changed: Callable[[], None] = lambda: None,
        history: int = 10_000,
        versions_kept: int = 20,
        event_ttl: float = 3600.0,
    ) -> None:
        self.objects = objects  # kmock's array: the history of every object, for assertions
        self.rv = 1000  # the etcd revision: one counter for every write of every resource
        self._types: dict[tuple[str, str, str], ResourceType] = {}
        self._changes: deque[Change] = deque(maxlen=history)
        self._compacted = 0  # changes up to this revision are gone: older watches get 410
        self._watches: set[Watch] = set()
        self._versions_kept = versions_kept
        self.event_ttl = event_ttl
        self._next_event_sweep = datetime.datetime.min.replace(tzinfo=datetime.UTC)
        self._on_types_changed = on_types_changed

    # --- resource types -------------------------------------------------------------------------
    def register(self, types: Iterable[ResourceType]) -> None:
        for rt in types:
            self._types[(rt.group, rt.version, rt.plural)] = rt
        self._on_types_changed()

    def lookup(self, group: str, version: str, plural: str) -> ResourceType | None:
        return self._types.get((group, version, plural))

    @property
    def types(self) -> list[ResourceType]:
        return list(self._types.values())

    def find_type(self, name: str) -> ResourceType:
        """By plural, `plural.group`, singular, short name or kind (as kubectl resolves them)."""
        for rt in self._types.values():
            if name in (rt.plural, rt.group_resource, rt.singular, rt.kind, *rt.short_names):
                return rt
        raise KeyError(f"no resource type {name!r} is served")

    # --- reading --------------------------------------------------------------------------------
    def _key(self, rt: ResourceType, namespace: str | None, name: str) -> kmock.ObjectKey:
        return (kmock.resource(*rt.store_id), namespace if rt.namespaced else None, name)

    def _stored(self, rt: ResourceType, namespace: str | None, name: str) -> Body | None:
        key = self._key(rt, namespace, name)
        if key not in self.objects or self.objects[key].deleted:
            return None
        return copy.deepcopy(self.objects[key].raw)

    def current(self, rt: ResourceType, namespace: str | None) -> list[Body]:
        """The live objects of a type (all namespaces if None), sorted as the apiserver lists them."""
        resource = kmock.resource(*rt.store_id)
        found = [
            (ns or "", name, obj)
            for (res, ns, name), obj in self.objects.items()
            if res == resource and not obj.deleted and (namespace is None or ns == namespace)
        ]
        return [copy.deepcopy(obj.raw) for _, _, obj in sorted(found, key=lambda t: (t[0], t[1]))]

    @staticmethod
    def render(rt: ResourceType, obj: Body) -> Body:
        """The object as served at the requested version (all versions share one store)."""
        return obj if obj.get("apiVersion") == rt.api_version else {**obj, "apiVersion": rt.api_version}

    def get(self, rt: ResourceType, namespace: str | None, name: str) -> Body:
        obj = self._stored(rt, namespace, name)
        if obj is None:
            raise errors.not_found(rt.group_resource, rt.group, rt.plural, name)
        return self.render(rt, obj)

    def listing(
        self,
        rt: ResourceType,
        namespace: str | None,
        match: Predicate,
        *,
        limit: int | None = None,
        continue_token: str | None = None,
    ) -> Body:
        items = [self.render(rt, obj) for obj in self.current(rt, namespace) if match(obj)]
        if continue_token:
            try:
                start = json.loads(base64.urlsafe_b64decode(continue_token))["start"]
            except (ValueError, KeyError, TypeError, binascii.Error):
                raise errors.bad_request("continue key is not valid: illegal base64 data") from None
            items = [i for i in items if _sort_key(i) > tuple(start)]
        meta: Body = {"resourceVersion": str(self.rv)}
        if limit and len(items) > limit:
            start = list(_sort_key(items[limit - 1]))
            meta["continue"] = base64.urlsafe_b64encode(json.dumps({"start": start}).encode()).decode()
            meta["remainingItemCount"] = len(items) - limit
            items = items[:limit]
        return {"apiVersion": rt.api_version, "kind": rt.list_kind, "metadata": meta, "items": items}

    # --- watching -------------------------------------------------------------------------------
    def subscribe(self, rt: ResourceType, since: int | None) -> tuple[list[Change], Watch]:
        """The changes to replay (or the current state as ADDED) and a queue for what comes next."""
        if since is not None and since < self._compacted:
            raise errors.gone(f"too old resource version: {since} ({self._compacted + 1})")
        if since is None:
            backlog = [Change(self.rv, rt.store_id, "ADDED", obj, None) for obj in self.current(rt, None)]
        else:
            backlog = [c for c in self._changes if c.rv > since and c.store_id == rt.store_id]
        watch = Watch(rt.store_id)
        self._watches.add(watch)
        return backlog, watch

    def unsubscribe(self, watch: Watch) -> None:
        self._watches.discard(watch)

    def close_watches(self) -> None:
        """End every open watch stream (an outage or a shutdown); clients reconnect and re-list."""
        for watch in self._watches:
            watch.queue.put_nowait(None)
        self._watches.clear()

    def compact(self) -> None:
        """Forget the change history, as etcd compaction does: older watches must re-list (410)."""
        self._compacted = self.rv
        self._changes.clear()

    def _emit(self, rt: ResourceType, kind: str, obj: Body, old: Body | None) -> None:
        if len(self._changes) == self._changes.maxlen:
            self._compacted = self._changes[0].rv
        change = Change(self.rv, rt.store_id, kind, obj, old)
        self._changes.append(change)
        for watch in self._watches:
            if watch.store_id == rt.store_id:
                watch.queue.put_nowait(change)

    def _save(self, rt: ResourceType, obj: Body, old: Body | None) -> Body:
        meta = obj["metadata"]
        key = self._key(rt, meta.get("namespace"), meta["name"])
        if key not in self.objects:
            self.objects[key] = copy.deepcopy(obj)
        else:
            self.objects[key].history.append(copy.deepcopy(obj))
            history = self.objects[key].history
            if len(history) > self._versions_kept:
                del history[: len(history) - self._versions_kept]
        self._emit(rt, "ADDED" if old is None else "MODIFIED", copy.deepcopy(obj), old)
        return self.render(rt, obj)

    def _remove(self, rt: ResourceType, obj: Body) -> Body:
        self.rv += 1
        obj = copy.deepcopy(obj)
        obj["metadata"]["resourceVersion"] = str(self.rv)
        meta = obj["metadata"]
        self.objects[self._key(rt, meta.get("namespace"), meta["name"])].delete()
        self._emit(rt, "DELETED", copy.deepcopy(obj), None)
        if rt == CRDS:
            self._drop_crd(obj)
        if rt.namespaced:
            self._finish_namespace(meta["namespace"])
        return self.render(rt, obj)

    # --- writing --------------------------------------------------------------------------------
    def _check_body(self, rt: ResourceType, body: Any) -> Body:
        if not isinstance(body, dict):
            raise errors.bad_request("the body of the request was in an unknown format")
        if metadata_type_error(body.get("metadata") or {}) is not None:
            raise errors.bad_request(f"unable to decode the object: {metadata_type_error(body['metadata'])}")
        if rt.custom and not body.get("kind"):
            raise errors.bad_request(f"Object 'Kind' is missing in '{json.dumps(body)[:200]}'")
        if body.get("kind", rt.kind) != rt.kind:
            raise errors.bad_request(f"the kind in the data ({body['kind']}) does not match {rt.kind}")
        if body.get("apiVersion", rt.api_version) != rt.api_version:
            message = (
                f"the API version in the data ({body['apiVersion']}) does not match the expected "
                f"API version ({rt.api_version})"
            )
            raise errors.bad_request(message)
        return copy.deepcopy(body)

    def _invalid(self, rt: ResourceType, name: str, causes: list[Cause]) -> ApiError:
        return errors.invalid(rt.kind_group, rt.group, rt.kind, name, causes)

    def _finalize_content(
        self, rt: ResourceType, obj: Body, old: Body | None, write: Write, *, status_only: bool
    ) -> Body:
        """Schema, metadata checks and the kind-specific fields the apiserver maintains."""
        obj["apiVersion"], obj["kind"] = (old or {}).get("apiVersion", rt.api_version), rt.kind
        unknown: list[str] = []
        obj, causes = normalize(obj, rt.schema, unknown)
        if unknown and write.field_validation == "Strict":
            raise errors.bad_request(
                "strict decoding error: " + ", ".join(f'unknown field "{u}"' for u in unknown)
            )
        if write.field_validation == "Warn":
            write.warnings += [f'unknown field "{u}"' for u in unknown]
        meta = obj["metadata"]
        causes += metadata_problems(meta, dns_label=rt == NAMESPACES)
        if old is not None and old["metadata"].get("deletionTimestamp"):
            added = sorted(set(meta.get("finalizers") or ()) - set(old["metadata"].get("finalizers") or ()))
            if added:
                message = f"Forbidden: no new finalizers can be added if the object is being deleted: {added}"
                causes.append(Cause("metadata.finalizers", "FieldValueForbidden", message))
        if rt == CRDS and not status_only:
            causes += crd_problems(obj)
        if causes:
            raise self._invalid(rt, meta.get("name") or meta.get("generateName") or "", causes)
        if rt == NAMESPACES:
            meta.setdefault("labels", {})["kubernetes.io/metadata.name"] = meta["name"]
            obj.setdefault("spec", {"finalizers": ["kubernetes"]})
            obj.setdefault("status", {"phase": "Active"})
        if rt == CRDS:
            obj["status"] = (old or {}).get("status") or established_status(obj, now())
        return obj

    def create(self, rt: ResourceType, namespace: str | None, body: Any, write: Write | None = None) -> Body:
        write = write or Write()
        obj = self._check_body(rt, body)
        meta = obj.setdefault("metadata", {})
        if meta.get("resourceVersion"):
            raise ApiError(500, "resourceVersion should not be set on objects to be created")
        if rt.namespaced:
            if meta.get("namespace", namespace) != namespace:
                message = (
                    "the namespace of the provided object does not match the namespace sent on the request"
                )
                raise errors.bad_request(message)
            self._require_namespace(namespace or "")
            meta["namespace"] = namespace
        else:
            meta.pop("namespace", None)
        for key in _SYSTEM_FIELDS:
            meta.pop(key, None)
        if "status" in rt.subresources and rt != NAMESPACES:
            obj.pop("status", None)  # status is written through /status only
        if not meta.get("name"):
            if not meta.get("generateName"):
                cause = Cause(
                    "metadata.name", "FieldValueRequired", "Required value: name or generateName is required"
                )
                raise self._invalid(rt, "", [cause])
            meta["name"] = self._generate_name(rt, namespace, meta["generateName"])
        obj = self._finalize_content(rt, obj, None, write, status_only=False)
        meta = obj["metadata"]
        if self._stored(rt, namespace, meta["name"]) is not None:
            raise errors.already_exists(rt.group_resource, rt.group, rt.plural, meta["name"])
        meta.update(uid=str(uuid.uuid4()), creationTimestamp=now())
        if rt.custom:
            meta["generation"] = 1
        if write.dry_run:
            return self.render(rt, {**obj, "metadata": {**meta, "resourceVersion": str(self.rv)}})
        self.rv += 1
        meta["resourceVersion"] = str(self.rv)
        result = self._save(rt, obj, None)
        if rt == CRDS:
            self._register_crd(obj)
        if rt == EVENTS:
            self._expire_events()
        return result

    def _expire_events(self) -> None:
        """Events live an hour, as with the apiserver's --event-ttl: a long demo does not pile them up."""
        now = datetime.datetime.now(datetime.UTC)
        # A sweep reads every Event: once a minute at most, or each new Event costs O(events).
        if now < self._next_event_sweep:
            return
        self._next_event_sweep = now + datetime.timedelta(seconds=min(60.0, self.event_ttl))
        cutoff = now - datetime.timedelta(seconds=self.event_ttl)
        for event in self.current(EVENTS, None):
            created = datetime.datetime.fromisoformat(
                event["metadata"]["creationTimestamp"].replace("Z", "+00:00")
            )
            if created < cutoff:
                self._remove(EVENTS, event)
                meta = event["metadata"]
                del self.objects[self._key(EVENTS, meta["namespace"], meta["name"])]  # no history kept

    def _generate_name(self, rt: ResourceType, namespace: str | None, prefix: str) -> str:
        while True:
            name = prefix[:58] + "".join(random.choices(_NAME_CHARS, k=5))
            if self._stored(rt, namespace, name) is None:
                return name

    def _require_namespace(self, namespace: str) -> None:
        ns = self._stored(NAMESPACES, None, namespace)
        if ns is None:
            raise errors.not_found("namespaces", "", "namespaces", namespace)
        if ns["metadata"].get("deletionTimestamp"):
            message = f"unable to create new content in namespace {namespace} because it is being terminated"
            raise ApiError(403, message, "Forbidden")

    def _current(self, rt: ResourceType, namespace: str | None, name: str) -> Body:
        obj = self._stored(rt, namespace, name)
        if obj is None:
            raise errors.not_found(rt.group_resource, rt.group, rt.plural, name)
        return obj

    def _check_preconditions(self, rt: ResourceType, current: Body, rv: Any, uid: Any) -> None:
        meta = current["metadata"]
        if uid and uid != meta["uid"]:
            why = f"Precondition failed: UID in precondition: {uid}, UID in object meta: {meta['uid']}"
            raise errors.conflict(rt.group_resource, rt.group, rt.plural, meta["name"], why)
        if rv and str(rv) != meta["resourceVersion"]:
            raise errors.conflict(rt.group_resource, rt.group, rt.plural, meta["name"])

    def update(
        self,
        rt: ResourceType,
        namespace: str | None,
        name: str,
        body: Any,
        write: Write | None = None,
        *,
        status: bool = False,
    ) -> Body:
        """PUT: replace the object (or only its status), guarded by metadata.resourceVersion."""
        current = self._current(rt, namespace, name)
        obj = self._check_body(rt, body)
        meta = obj.get("metadata") or {}
        if meta.get("name", name) != name:
            message = f"the name of the object ({meta['name']}) does not match the name on the URL ({name})"
            raise errors.bad_request(message)
        if rt.namespaced and meta.get("namespace", namespace) != namespace:
            message = "the namespace of the provided object does not match the namespace sent on the request"
            raise errors.bad_request(message)
        if rt.custom and not meta.get("resourceVersion"):
            message = "Invalid value: 0x0: must be specified for an update"
            raise self._invalid(rt, name, [Cause("metadata.resourceVersion", "FieldValueInvalid", message)])
        self._check_preconditions(rt, current, meta.get("resourceVersion"), meta.get("uid"))
        return self._commit(rt, current, obj, write or Write(), status=status)

    def patch(
        self,
        rt: ResourceType,
        namespace: str | None,
        name: str,
        content_type: str,
        patch: Any,
        write: Write | None = None,
        *,
        status: bool = False,
    ) -> Body:
        current = self._current(rt, namespace, name)
        if content_type == "application/json-patch+json":
            try:
                patched = json_patch(current, patch)
            except PatchError as exc:
                raise errors.unprocessable(str(exc)) from None
        elif content_type == "application/merge-patch+json" or (
            content_type == "application/strategic-merge-patch+json" and not rt.custom
        ):  # built-ins: strategic merge approximated by a merge patch (lists replaced, not merged)
            if not isinstance(patch, dict):
                raise errors.bad_request("a merge patch must be a JSON object")
            patched = merge_patch(current, patch)
        else:
            accepted = "application/json-patch+json, application/merge-patch+json"
            message = (
                f"the body of the request was in an unknown format - accepted media types include: {accepted}"
            )
            raise ApiError(415, message, "UnsupportedMediaType")
        obj = self._check_body(rt, patched)
        meta = obj.get("metadata") or {}
        if meta.get("name") != name or (rt.namespaced and meta.get("namespace") != namespace):
            cause = Cause("metadata.name", "FieldValueInvalid", "Invalid value: field is immutable")
            raise self._invalid(rt, name, [cause])
        # A resourceVersion in the patch is a precondition (optimistic concurrency for patches).
        self._check_preconditions(rt, current, meta.get("resourceVersion"), meta.get("uid"))
        return self._commit(rt, current, obj, write or Write(), status=status)

    def _commit(self, rt: ResourceType, current: Body, obj: Body, write: Write, *, status: bool) -> Body:
        if status:  # the status subresource: only .status changes, everything else is kept
            obj = {**copy.deepcopy(current), "status": obj.get("status")}
            if obj["status"] is None:
                del obj["status"]
        else:
            obj.setdefault("metadata", {})
            for key in _SYSTEM_FIELDS:
                obj["metadata"].pop(key, None)
                if key in current["metadata"]:
                    obj["metadata"][key] = current["metadata"][key]
            if "status" in rt.subresources:  # the main resource cannot change the status
                obj.pop("status", None)
                if "status" in current:
                    obj["status"] = current["status"]
        obj = self._finalize_content(rt, obj, current, write, status_only=status)
        meta = obj["metadata"]
        if rt.custom and not status and _spec_part(obj) != _spec_part(current):
            meta["generation"] = int(current["metadata"].get("generation", 1)) + 1
        if obj == current:
            return self.render(rt, current)  # a no-op write: no new resourceVersion, no event
        if meta.get("deletionTimestamp") and not meta.get("finalizers"):
            return current if write.dry_run else self._remove(rt, obj)
        if write.dry_run:
            return self.render(rt, obj)
        self.rv += 1
        meta["resourceVersion"] = str(self.rv)
        result = self._save(rt, obj, current)
        if rt == CRDS:
            self._register_crd(obj)
        return result

    def delete(
        self,
        rt: ResourceType,
        namespace: str | None,
        name: str,
        options: Mapping[str, Any] | None = None,
        *,
        dry_run: bool = False,
    ) -> Body:
        """Finalizers hold the object (deletionTimestamp set) until the last one is removed."""
        current = self._current(rt, namespace, name)
        preconditions = (options or {}).get("preconditions") or {}
        self._check_preconditions(rt, current, preconditions.get("resourceVersion"), preconditions.get("uid"))
        meta = current["metadata"]
        if meta.get("deletionTimestamp") or dry_run:
            return self.render(rt, current)
        if rt == NAMESPACES:
            for other in self.types:
                if other.namespaced and other.version == (other.storage_version or other.version):
                    for obj in self.current(other, name):
                        self.delete(other, name, obj["metadata"]["name"])
            if self._namespace_has_content(name):
                return self._mark_deleted(rt, current, status={"phase": "Terminating"})
        if meta.get("finalizers"):
            return self._mark_deleted(rt, current)
        return self._remove(rt, current)

    def _mark_deleted(self, rt: ResourceType, current: Body, status: Body | None = None) -> Body:
        obj = copy.deepcopy(current)
        obj["metadata"].update(deletionTimestamp=now(), deletionGracePeriodSeconds=0)
        if status is not None:
            obj["status"] = status
        self.rv += 1
        obj["metadata"]["resourceVersion"] = str(self.rv)
        return self._save(rt, obj, current)

    def _namespace_has_content(self, namespace: str) -> bool:
        return any(ns == namespace and not obj.deleted for (_, ns, _), obj in self.objects.items())

    def _finish_namespace(self, namespace: str) -> None:
        ns = self._stored(NAMESPACES, None, namespace)
        if ns and ns["metadata"].get("deletionTimestamp") and not self._namespace_has_content(namespace):
            self._remove(NAMESPACES, ns)

    def _register_crd(self, crd: Body) -> None:
        self.register(rt for rt in from_crd(crd))

    def _drop_crd(self, crd: Body) -> None:
        """Deleting a CRD deletes its objects and stops serving it."""
        types = from_crd(crd)
        for rt in types:
            self._types.pop((rt.group, rt.version, rt.plural), None)
        if types:
            resource = kmock.resource(*types[0].store_id)
            for (res, _, _), obj in list(self.objects.items()):
                if res == resource and not obj.deleted:
                    self._remove(types[0], obj.raw)
        self._on_types_changed()


def _sort_key(obj: Mapping[str, Any]) -> tuple[str, str]:
    meta = obj.get("metadata") or {}
    return (meta.get("namespace") or "", meta.get("name") or "")
