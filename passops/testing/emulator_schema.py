"""Structural-schema handling as kube-apiserver does it for custom resources: prune, default, validate.

Order as in the apiserver: unknown fields (and nulls of non-nullable fields) are dropped, defaults are
filled in, then the result is validated; a validation failure is a 422 `Invalid` listing every cause.
Also the ObjectMeta checks every resource gets (names, labels, annotations).
"""

from __future__ import annotations

import base64
import binascii
import copy
import json
import re
from collections.abc import Mapping
from typing import Any

from passops.testing.emulator_errors import Cause

_OBJECT_META_FIELDS = frozenset(
    {
        "name", "generateName", "namespace", "selfLink", "uid", "resourceVersion", "generation",
        "creationTimestamp", "deletionTimestamp", "deletionGracePeriodSeconds", "labels", "annotations",
        "ownerReferences", "finalizers", "managedFields",
    }
)  # fmt: skip
_TOP_LEVEL = ("apiVersion", "kind", "metadata")

_DATE_TIME_RE = re.compile(r"^\d{4}-\d{2}-\d{2}[Tt]\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-]\d{2}:\d{2})?$")
_DATE_RE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_UUID_RE = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")

_DNS_LABEL = r"[a-z0-9]([-a-z0-9]*[a-z0-9])?"
_DNS_SUBDOMAIN_RE = re.compile(rf"^{_DNS_LABEL}(\.{_DNS_LABEL})*$")
_DNS_LABEL_RE = re.compile(rf"^{_DNS_LABEL}$")
_QUALIFIED_NAME_RE = re.compile(r"^([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$")
_LABEL_VALUE_RE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")
_MAX_ANNOTATIONS_BYTES = 256 * 1024


def _show(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), sort_keys=True)


def _type_of(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    return "array" if isinstance(value, list) else "object"


def _type_ok(value: Any, expected: str) -> bool:
    actual = _type_of(value)
    return actual == expected or (expected == "number" and actual == "integer")


def _preserves(schema: Mapping[str, Any]) -> bool:
    return bool(schema.get("x-kubernetes-preserve-unknown-fields")) or bool(
        schema.get("x-kubernetes-embedded-resource")
    )


def prune(
    value: Any,
    schema: Mapping[str, Any],
    *,
    root: bool = False,
    path: str = "",
    dropped: list[str] | None = None,
) -> Any:
    """A copy of `value` without the fields the schema does not know (and without disallowed nulls).

    The paths of the unknown fields go to `dropped` (for `fieldValidation=Strict` or `Warn`).
    """
    dropped = [] if dropped is None else dropped
    if isinstance(value, list):
        items = schema.get("items")
        if not isinstance(items, Mapping):
            return value
        return [prune(item, items, path=f"{path}[{i}]", dropped=dropped) for i, item in enumerate(value)]
    if not isinstance(value, Mapping):
        return value
    properties: Mapping[str, Any] = schema.get("properties") or {}
    additional = schema.get("additionalProperties")
    keep_meta = root or bool(schema.get("x-kubernetes-embedded-resource"))
    prefix = f"{path}." if path else ""
    result: dict[str, Any] = {}
    for key, item in value.items():
        if keep_meta and key in _TOP_LEVEL:
            if key == "metadata" and root and isinstance(item, Mapping):
                dropped += [f"metadata.{k}" for k in item if k not in _OBJECT_META_FIELDS]
                item = {k: v for k, v in item.items() if k in _OBJECT_META_FIELDS}
            result[key] = item
        elif key in properties:
            if item is None and not properties[key].get("nullable"):
                continue  # as the apiserver does: a null of a non-nullable field is dropped
            result[key] = prune(item, properties[key], path=f"{prefix}{key}", dropped=dropped)
        elif isinstance(additional, Mapping):
            result[key] = prune(item, additional, path=f"{path}[{key}]", dropped=dropped)
        elif _preserves(schema) or additional is True:
            result[key] = item
        else:
            dropped.append(f"{prefix}{key}")
    return result


def apply_defaults(value: Any, schema: Mapping[str, Any]) -> None:
    """Fill in `default:` values of absent fields, in place, at every level that is present."""
    if isinstance(value, list) and isinstance(schema.get("items"), Mapping):
        for item in value:
            apply_defaults(item, schema["items"])
    elif isinstance(value, dict):
        for key, sub in (schema.get("properties") or {}).items():
            if key not in value and "default" in sub:
                value[key] = copy.deepcopy(sub["default"])
            if key in value:
                apply_defaults(value[key], sub)
        if isinstance(schema.get("additionalProperties"), Mapping):
            for item in value.values():
                apply_defaults(item, schema["additionalProperties"])


def _format_ok(value: str, fmt: str) -> bool:
    if fmt == "date-time":
        return bool(_DATE_TIME_RE.match(value))
    if fmt == "date":
        return bool(_DATE_RE.match(value))
    if fmt == "uuid":
        return bool(_UUID_RE.match(value))
    if fmt == "byte":
        try:
            base64.b64decode(value, validate=True)
        except (binascii.Error, ValueError):
            return False
    return True


def _validate_scalar(value: Any, schema: Mapping[str, Any], path: str, causes: list[Cause]) -> None:
    def bad(message: str) -> None:
        causes.append(Cause(path, "FieldValueInvalid", f"Invalid value: {_show(value)}: {path} {message}"))

    if isinstance(value, str):
        if "maxLength" in schema and len(value) > schema["maxLength"]:
            message = f"Too long: may not be more than {schema['maxLength']} bytes"
            causes.append(Cause(path, "FieldValueTooLong", message))
        if "minLength" in schema and len(value) < schema["minLength"]:
            bad(f"in body should be at least {schema['minLength']} chars long")
        if "pattern" in schema and not re.search(schema["pattern"], value):
            bad(f"in body should match '{schema['pattern']}'")
        if "format" in schema and not _format_ok(value, schema["format"]):
            bad(f"in body must be of type {schema['format']}: {_show(value)}")
    elif isinstance(value, int | float) and not isinstance(value, bool):
        if "minimum" in schema:
            exclusive = bool(schema.get("exclusiveMinimum"))
            if value < schema["minimum"] or (exclusive and value == schema["minimum"]):
                relation = "greater than" if exclusive else "greater than or equal to"
                bad(f"in body should be {relation} {schema['minimum']}")
        if "maximum" in schema:
            exclusive = bool(schema.get("exclusiveMaximum"))
            if value > schema["maximum"] or (exclusive and value == schema["maximum"]):
                relation = "less than" if exclusive else "less than or equal to"
                bad(f"in body should be {relation} {schema['maximum']}")


def _validate_list(value: list[Any], schema: Mapping[str, Any], path: str, causes: list[Cause]) -> None:
    if "maxItems" in schema and len(value) > schema["maxItems"]:
        message = f"Too many: {len(value)}: must have at most {schema['maxItems']} items"
        causes.append(Cause(path, "FieldValueTooMany", message))
    if "minItems" in schema and len(value) < schema["minItems"]:
        message = (
            f"Invalid value: {len(value)}: {path} in body should have at least {schema['minItems']} items"
        )
        causes.append(Cause(path, "FieldValueInvalid", message))
    list_type = schema.get("x-kubernetes-list-type")
    if list_type in ("set", "map"):
        keys = schema.get("x-kubernetes-list-map-keys") or []
        seen: set[str] = set()
        for index, item in enumerate(value):
            if list_type == "map" and isinstance(item, Mapping):
                identity = _show({key: item.get(key) for key in keys})
            else:
                identity = _show(item)
            if identity in seen:
                message = f"Duplicate value: {identity}"
                causes.append(Cause(f"{path}[{index}]", "FieldValueDuplicate", message))
            seen.add(identity)
    items = schema.get("items")
    if isinstance(items, Mapping):
        for index, item in enumerate(value):
            validate(item, items, f"{path}[{index}]", causes)


def validate(
    value: Any, schema: Mapping[str, Any], path: str = "", causes: list[Cause] | None = None
) -> list[Cause]:
    """Every way `value` breaks the schema, as apiserver-worded causes (an empty list: valid)."""
    causes = [] if causes is None else causes
    if value is None and schema.get("nullable"):
        return causes
    if schema.get("x-kubernetes-int-or-string"):
        if _type_of(value) not in ("integer", "string"):
            message = f"Invalid value: {_show(value)}: {path} in body must be of type int-or-string"
            causes.append(Cause(path, "FieldValueTypeInvalid", message))
            return causes
    elif "type" in schema and not _type_ok(value, schema["type"]):
        actual = _type_of(value)
        message = f'Invalid value: "{actual}": {path} in body must be of type {schema["type"]}: "{actual}"'
        causes.append(Cause(path, "FieldValueTypeInvalid", message))
        return causes
    if "enum" in schema and value not in schema["enum"]:
        supported = ", ".join(_show(v) for v in schema["enum"])
        message = f"Unsupported value: {_show(value)}: supported values: {supported}"
        causes.append(Cause(path, "FieldValueNotSupported", message))
    if isinstance(value, list):
        _validate_list(value, schema, path, causes)
    elif isinstance(value, Mapping):
        prefix = f"{path}." if path else ""
        for key in schema.get("required") or ():
            if key not in value:
                causes.append(Cause(f"{prefix}{key}", "FieldValueRequired", "Required value"))
        properties: Mapping[str, Any] = schema.get("properties") or {}
        additional = schema.get("additionalProperties")
        for key, item in value.items():
            if key in properties:
                validate(item, properties[key], f"{prefix}{key}", causes)
            elif isinstance(additional, Mapping):
                validate(item, additional, f"{path}[{key}]", causes)
        if "maxProperties" in schema and len(value) > schema["maxProperties"]:
            message = f"Too many: {len(value)}: must have at most {schema['maxProperties']} items"
            causes.append(Cause(path, "FieldValueTooMany", message))
    else:
        _validate_scalar(value, schema, path, causes)
    return causes


def normalize(
    obj: Mapping[str, Any], schema: Mapping[str, Any] | None, dropped: list[str] | None = None
) -> tuple[dict[str, Any], list[Cause]]:
    """Prune, default and validate a whole object against its CRD's openAPIV3Schema."""
    if schema is None:
        return copy.deepcopy(dict(obj)), []
    result: dict[str, Any] = copy.deepcopy(prune(obj, schema, root=True, dropped=dropped))
    apply_defaults(result, schema)
    # apiVersion/kind/metadata are the apiserver's business, not the schema's.
    properties = {k: v for k, v in (schema.get("properties") or {}).items() if k not in _TOP_LEVEL}
    body_schema = {**schema, "properties": properties}
    body = {k: v for k, v in result.items() if k not in _TOP_LEVEL}
    return result, validate(body, body_schema)


def _qualified_name_problem(key: str) -> str | None:
    prefix, _, name = key.rpartition("/")
    if prefix and (len(prefix) > 253 or not _DNS_SUBDOMAIN_RE.match(prefix)):
        return "prefix part must be a lowercase RFC 1123 subdomain"
    if not name or len(name) > 63 or not _QUALIFIED_NAME_RE.match(name):
        return (
            "name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end "
            "with an alphanumeric character, and be at most 63 characters"
        )
    return None


def metadata_problems(meta: Mapping[str, Any], *, dns_label: bool = False) -> list[Cause]:
    """ObjectMeta validation every resource gets: the name, label keys and values, annotation keys."""
    causes = []
    name = meta.get("name")
    if isinstance(name, str):
        pattern, limit = (_DNS_LABEL_RE, 63) if dns_label else (_DNS_SUBDOMAIN_RE, 253)
        if len(name) > limit or not pattern.match(name):
            kind, chars = ("RFC 1123 label", "'-'") if dns_label else ("RFC 1123 subdomain", "'-' or '.'")
            message = (
                f'Invalid value: "{name}": a lowercase {kind} must consist of lower case alphanumeric '
                f"characters, {chars}, and must start and end with an alphanumeric character "
                f"(at most {limit} characters)"
            )
            causes.append(Cause("metadata.name", "FieldValueInvalid", message))
    for key, value in (meta.get("labels") or {}).items():
        if problem := _qualified_name_problem(key):
            causes.append(Cause("metadata.labels", "FieldValueInvalid", f'Invalid value: "{key}": {problem}'))
        if len(value) > 63 or not _LABEL_VALUE_RE.match(value):
            message = (
                f'Invalid value: "{value}": a valid label must be an empty string or consist of alphanumeric '
                "characters, '-', '_' or '.', and must start and end with an alphanumeric character "
                "(at most 63 characters)"
            )
            causes.append(Cause("metadata.labels", "FieldValueInvalid", message))
    annotations = meta.get("annotations") or {}
    for key in annotations:
        if problem := _qualified_name_problem(key):
            message = f'Invalid value: "{key}": {problem}'
            causes.append(Cause("metadata.annotations", "FieldValueInvalid", message))
    if sum(len(k) + len(v) for k, v in annotations.items()) > _MAX_ANNOTATIONS_BYTES:
        message = f"Too long: must have at most {_MAX_ANNOTATIONS_BYTES} bytes"
        causes.append(Cause("metadata.annotations", "FieldValueTooLong", message))
    return causes


def metadata_type_error(meta: Any) -> str | None:
    """A decoding error (the apiserver's 400) when ObjectMeta fields have the wrong JSON types."""
    if not isinstance(meta, Mapping):
        return "Object 'metadata' must be an object"
    for key in ("labels", "annotations"):
        value = meta.get(key)
        if value is not None and (
            not isinstance(value, Mapping) or not all(isinstance(v, str) for v in value.values())
        ):
            return f"metadata.{key}: must be a map of strings"
    finalizers = meta.get("finalizers")
    if finalizers is not None and (
        not isinstance(finalizers, list) or not all(isinstance(f, str) for f in finalizers)
    ):
        return "metadata.finalizers: must be a list of strings"
    for key in ("name", "generateName", "namespace", "resourceVersion", "uid"):
        if meta.get(key) is not None and not isinstance(meta[key], str):
            return f"metadata.{key}: must be a string"
    return None
