"""Server-side Table output (`Accept: application/json;as=Table;g=meta.k8s.io`), as `kubectl get` asks.

The apiserver, not kubectl, renders a CRD's additionalPrinterColumns: without this, `kubectl get pp`
against the emulator would show only NAME and AGE.
"""

from __future__ import annotations

import datetime
import json
import re
from collections.abc import Mapping, Sequence
from typing import Any

_NAME_COLUMN = {
    "name": "Name",
    "type": "string",
    "format": "name",
    "description": "Name must be unique within a namespace.",
    "priority": 0,
}
_STEP = re.compile(
    r"""\.(?P<field>[A-Za-z0-9_-]+)"""
    r"""|\[(?P<index>-?\d+)\]"""
    r"""|\[(?P<all>\*)\]"""
    r"""|\[\?\(@\.(?P<key>[A-Za-z0-9_.-]+)\s*==\s*["'](?P<value>[^"']*)["']\)\]"""
)


def wants_table(accept: str) -> str | None:
    """The meta.k8s.io version of the Table the client accepts first, if it asks for one."""
    for media in accept.split(","):
        params = dict(p.strip().split("=", 1) for p in media.split(";")[1:] if "=" in p)
        if params.get("as") == "Table" and params.get("g", "meta.k8s.io") == "meta.k8s.io":
            return params.get("v", "v1")
    return None


def jsonpath(obj: Any, path: str) -> list[Any]:
    """The values at a printer column's JSONPath: fields, [n], [*] and [?(@.key=="value")] filters."""
    path = path.strip().removeprefix("{").removesuffix("}")
    nodes, position = [obj], 0
    while position < len(path):
        step = _STEP.match(path, position)
        if step is None:
            return []  # beyond the subset printer columns use
        position = step.end()
        found: list[Any] = []
        for node in nodes:
            if step["field"] is not None and isinstance(node, Mapping) and step["field"] in node:
                found.append(node[step["field"]])
            elif (
                step["index"] is not None
                and isinstance(node, list)
                and -len(node) <= int(step["index"]) < len(node)
            ):
                found.append(node[int(step["index"])])
            elif step["all"] is not None and isinstance(node, list):
                found.extend(node)
            elif step["key"] is not None and isinstance(node, list):
                found.extend(item for item in node if _dig(item, step["key"]) == step["value"])
        nodes = found
    return nodes


def _dig(node: Any, dotted: str) -> Any:
    for part in dotted.split("."):
        node = node.get(part) if isinstance(node, Mapping) else None
    return None if node is None else str(node)


def human_duration(seconds: float) -> str:
    """k8s.io/apimachinery's duration.HumanDuration: what the AGE column shows."""
    s = int(seconds)
    if s < -1:
        return "<invalid>"
    if s < 0:
        return "0s"
    if s < 120:
        return f"{s}s"
    minutes = s // 60
    if minutes < 10:
        return f"{minutes}m{s % 60}s" if s % 60 else f"{minutes}m"
    if minutes < 180:
        return f"{minutes}m"
    hours = minutes // 60
    if hours < 8:
        return f"{hours}h{minutes % 60}m" if minutes % 60 else f"{hours}h"
    if hours < 48:
        return f"{hours}h"
    if hours < 24 * 8:
        return f"{hours // 24}d{hours % 24}h" if hours % 24 else f"{hours // 24}d"
    if hours < 24 * 365 * 2:
        return f"{hours // 24}d"
    years, days = hours // 24 // 365, hours // 24 % 365
    if hours < 24 * 365 * 8:
        return f"{years}y{days}d" if days else f"{years}y"
    return f"{years}y"


def _cell(kind: str, value: Any) -> Any:
    if value is None:
        return None
    if kind == "integer" and isinstance(value, int | float) and not isinstance(value, bool):
        return int(value)
    if kind == "number" and isinstance(value, int | float) and not isinstance(value, bool):
        return value
    if kind == "boolean" and isinstance(value, bool):
        return value
    if kind == "date" and isinstance(value, str):
        try:
            when = datetime.datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            return "<invalid>"
        return human_duration((datetime.datetime.now(datetime.UTC) - when).total_seconds())
    if kind == "string":
        return value if isinstance(value, str) else json.dumps(value)
    return None


def table(
    objects: Sequence[Mapping[str, Any]],
    columns: Sequence[Mapping[str, Any]],
    *,
    version: str = "v1",
    include_object: str = "PartialObjectMetadata",
    headers: bool = True,
    list_meta: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    definitions = [
        _NAME_COLUMN,
        *(
            {
                "name": c["name"],
                "type": c.get("type", "string"),
                "format": c.get("format", ""),
                "description": c.get("description", ""),
                "priority": c.get("priority", 0),
            }
            for c in columns
        ),
    ]
    rows = []
    for obj in objects:
        cells = [obj["metadata"]["name"]]
        for column in columns:
            values = jsonpath(obj, column["jsonPath"])
            cells.append(_cell(column.get("type", "string"), values[0] if values else None))
        row: dict[str, Any] = {"cells": cells}
        if include_object == "Object":
            row["object"] = obj
        elif include_object != "None":
            partial = {"kind": "PartialObjectMetadata", "apiVersion": f"meta.k8s.io/{version}"}
            row["object"] = {**partial, "metadata": obj["metadata"]}
        rows.append(row)
    return {
        "kind": "Table",
        "apiVersion": f"meta.k8s.io/{version}",
        "metadata": dict(list_meta or {}),
        "columnDefinitions": definitions if headers else None,
        "rows": rows,
    }
