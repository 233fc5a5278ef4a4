"""A minimal OpenAPI v3 for the served types, enough for kubectl's `--validate` (the default).

kubectl fetches /openapi/v3 before create/apply to learn whether the server validates fields itself
(a `fieldValidation` query parameter on the PATCH operation of the kind); it does, so kubectl sends
`fieldValidation=Strict` and leaves validation to the emulator. The CRD schemas are included too,
so `kubectl explain` works.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from typing import Any

from passops.testing.emulator_resources import ResourceType

_QUERY = [
    {"name": name, "in": "query", "schema": {"type": "string", "uniqueItems": True}}
    for name in ("dryRun", "fieldManager", "fieldValidation")
]


def group_version_path(rt: ResourceType) -> str:
    return f"apis/{rt.group}/{rt.version}" if rt.group else f"api/{rt.version}"


def _schema_name(rt: ResourceType) -> str:
    return (
        ".".join([*reversed(rt.group.split(".")), rt.version, rt.kind])
        if rt.group
        else f"io.k8s.api.core.{rt.version}.{rt.kind}"
    )


def document(types: Iterable[ResourceType]) -> dict[str, Any]:
    """The OpenAPI v3 document of one group/version."""
    paths: dict[str, Any] = {}
    schemas: dict[str, Any] = {}
    for rt in types:
        gvk = {"group": rt.group, "version": rt.version, "kind": rt.kind}
        base = (
            "/"
            + group_version_path(rt)
            + ("/namespaces/{namespace}" if rt.namespaced else "")
            + f"/{rt.plural}"
        )

        def operation(action: str, rt: ResourceType = rt, gvk: dict[str, str] = gvk) -> dict[str, Any]:
            return {
                "operationId": f"{action}{rt.kind}",
                "parameters": _QUERY,
                "responses": {"200": {"description": "OK"}},
                "x-kubernetes-action": action,
                "x-kubernetes-group-version-kind": gvk,
            }

        paths[base] = {"get": operation("list"), "post": operation("post")}
        paths[base + "/{name}"] = {verb: operation(verb) for verb in ("get", "put", "patch", "delete")}
        if rt.schema is not None:
            schemas[_schema_name(rt)] = {**rt.schema, "x-kubernetes-group-version-kind": [gvk]}
    return {
        "openapi": "3.0.0",
        "info": {"title": "Kubernetes", "version": "v1.26.4"},
        "paths": paths,
        "components": {"schemas": schemas},
    }


def root(types: Iterable[ResourceType]) -> dict[str, Any]:
    """/openapi/v3: where each group/version's document is (kubectl caches them by hash)."""
    by_path: dict[str, list[ResourceType]] = {}
    for rt in types:
        by_path.setdefault(group_version_path(rt), []).append(rt)
    paths = {}
    for path, members in sorted(by_path.items()):
        digest = hashlib.sha256(json.dumps(document(members), sort_keys=True).encode()).hexdigest()[:16]
        paths[path] = {"serverRelativeURL": f"/openapi/v3/{path}?hash={digest.upper()}"}
    return {"paths": paths}
