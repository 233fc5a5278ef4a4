"""The resource types the emulator serves: a few built-ins kopf needs, and any CRD's served versions."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from passops.testing.emulator_errors import Cause

# What any resource supports as field selectors; events and CRD `selectableFields` add more.
_META_FIELDS = ("metadata.name", "metadata.namespace")
_EVENT_FIELDS = (
    *_META_FIELDS,
    "involvedObject.kind",
    "involvedObject.namespace",
    "involvedObject.name",
    "involvedObject.uid",
    "involvedObject.apiVersion",
    "involvedObject.resourceVersion",
    "involvedObject.fieldPath",
    "reason",
    "reportingComponent",
    "source",
    "type",
)
_VERBS = ("create", "delete", "deletecollection", "get", "list", "patch", "update", "watch")


@dataclass(frozen=True)
class ResourceType:
    group: str
    version: str
    plural: str
    kind: str
    namespaced: bool
    singular: str = ""
    short_names: tuple[str, ...] = ()
    categories: tuple[str, ...] = ()
    subresources: frozenset[str] = frozenset()
    # The structural schema (openAPIV3Schema) of a custom resource; None: store as given.
    schema: Mapping[str, Any] | None = field(default=None, compare=False, hash=False)
    # Custom resources: generation counts spec changes, PUT needs resourceVersion, no strategic merge.
    custom: bool = False
    # Objects of all served versions of one CRD live in one store under the storage version.
    storage_version: str = ""
    field_selectors: tuple[str, ...] = _META_FIELDS
    printer_columns: tuple[Mapping[str, Any], ...] = field(default=(), compare=False, hash=False)

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    @property
    def list_kind(self) -> str:
        return f"{self.kind}List"

    @property
    def group_resource(self) -> str:
        """How the apiserver names the resource in messages: `passpurchases.passops.dev`."""
        return f"{self.plural}.{self.group}" if self.group else self.plural

    @property
    def kind_group(self) -> str:
        """How the apiserver names the kind in validation messages: `PassPurchase.passops.dev`."""
        return f"{self.kind}.{self.group}" if self.group else self.kind

    @property
    def store_id(self) -> tuple[str, str, str]:
        return (self.group, self.storage_version or self.version, self.plural)

    @property
    def verbs(self) -> tuple[str, ...]:
        return _VERBS


_AGE = {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"}
NAMESPACES = ResourceType(
    "", "v1", "namespaces", "Namespace", namespaced=False, singular="namespace", short_names=("ns",),
    subresources=frozenset({"status"}),
    printer_columns=({"name": "Status", "type": "string", "jsonPath": ".status.phase"}, _AGE),
)  # fmt: skip
EVENTS = ResourceType(
    "", "v1", "events", "Event", namespaced=True, singular="event", short_names=("ev",),
    field_selectors=_EVENT_FIELDS,
    printer_columns=(
        {"name": "Last Seen", "type": "date", "jsonPath": ".lastTimestamp"},
        {"name": "Type", "type": "string", "jsonPath": ".type"},
        {"name": "Reason", "type": "string", "jsonPath": ".reason"},
        {"name": "Object", "type": "string", "jsonPath": ".involvedObject.name"},
        {"name": "Message", "type": "string", "jsonPath": ".message"},
    ),
)  # fmt: skip
CRDS = ResourceType(
    "apiextensions.k8s.io", "v1", "customresourcedefinitions", "CustomResourceDefinition",
    namespaced=False, singular="customresourcedefinition", short_names=("crd", "crds"),
    categories=("api-extensions",), subresources=frozenset({"status"}),
    printer_columns=({"name": "Created At", "type": "date", "jsonPath": ".metadata.creationTimestamp"},),
)  # fmt: skip
BUILTINS = (NAMESPACES, EVENTS, CRDS)


def crd_problems(crd: Mapping[str, Any]) -> list[Cause]:
    """What the apiserver would reject in a CRD (the subset the emulator relies on)."""
    spec = crd.get("spec") or {}
    names = spec.get("names") or {}
    problems = []
    for key in ("group", "scope"):
        if not spec.get(key):
            problems.append(Cause(f"spec.{key}", "FieldValueRequired", "Required value"))
    for key in ("plural", "kind"):
        if not names.get(key):
            problems.append(Cause(f"spec.names.{key}", "FieldValueRequired", "Required value"))
    if not spec.get("versions"):
        problems.append(Cause("spec.versions", "FieldValueRequired", "Required value"))
    expected = f"{names.get('plural')}.{spec.get('group')}"
    name = (crd.get("metadata") or {}).get("name")
    if not problems and name != expected:
        message = f'Invalid value: "{name}": must be spec.names.plural+"."+spec.group'
        problems.append(Cause("metadata.name", "FieldValueInvalid", message))
    return problems


def from_crd(crd: Mapping[str, Any]) -> list[ResourceType]:
    """One resource type per served version of a (valid) CRD."""
    spec = crd["spec"]
    names = spec["names"]
    versions = [v for v in spec["versions"] if v.get("served", True)]
    storage = next((v["name"] for v in spec["versions"] if v.get("storage")), versions[0]["name"])
    types = []
    for version in versions:
        subresources = frozenset(
            key for key in ("status", "scale") if key in (version.get("subresources") or {})
        )
        selectable = tuple(f["jsonPath"].lstrip(".") for f in version.get("selectableFields") or ())
        types.append(
            ResourceType(
                group=spec["group"],
                version=version["name"],
                plural=names["plural"],
                kind=names["kind"],
                namespaced=spec["scope"] == "Namespaced",
                singular=names.get("singular") or names["kind"].lower(),
                short_names=tuple(names.get("shortNames") or ()),
                categories=tuple(names.get("categories") or ()),
                subresources=subresources,
                schema=(version.get("schema") or {}).get("openAPIV3Schema"),
                custom=True,
                storage_version=storage,
                field_selectors=(*_META_FIELDS, *selectable),
                # Without printer columns, the apiserver shows an Age column.
                printer_columns=tuple(version.get("additionalPrinterColumns") or (_AGE,)),
            )
        )
    return types


def established_status(crd: Mapping[str, Any], now: str) -> dict[str, Any]:
    """The status the apiextensions controller gives an accepted CRD."""
    spec = crd["spec"]
    conditions = [
        {"type": kind, "status": "True", "reason": reason, "message": message, "lastTransitionTime": now}
        for kind, reason, message in (
            ("NamesAccepted", "NoConflicts", "no conflicts found"),
            ("Established", "InitialNamesAccepted", "the initial names have been accepted"),
        )
    ]
    stored = [v["name"] for v in spec["versions"] if v.get("storage")]
    return {"acceptedNames": dict(spec["names"]), "conditions": conditions, "storedVersions": stored}
