"""Kubernetes API errors as the emulator answers them: `Status` objects with code, reason and message.

Messages follow kube-apiserver's wording, so that code matching on them (and people reading logs)
sees what a real cluster would say.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

# The reason the apiserver gives for an HTTP status when nothing more specific applies.
_REASONS = {
    400: "BadRequest",
    401: "Unauthorized",
    403: "Forbidden",
    404: "NotFound",
    405: "MethodNotAllowed",
    409: "Conflict",
    410: "Expired",
    415: "UnsupportedMediaType",
    422: "Invalid",
    429: "TooManyRequests",
    500: "InternalError",
    503: "ServiceUnavailable",
    504: "Timeout",
}


@dataclass(frozen=True)
class Cause:
    """One field-level problem of an invalid object (Status.details.causes[])."""

    field: str
    reason: str
    message: str

    def render(self) -> str:
        return f"{self.field}: {self.message}" if self.field else self.message


@dataclass
class ApiError(Exception):
    """An answer other than success: rendered as a Kubernetes `Status` object."""

    code: int
    message: str
    reason: str = ""
    details: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        super().__init__(self.message)
        self.reason = self.reason or _REASONS.get(self.code, "Unknown")

    def status(self) -> dict[str, Any]:
        body: dict[str, Any] = {
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.message,
            "reason": self.reason,
            "code": self.code,
        }
        if self.details:
            body["details"] = self.details
        return body

    def json(self) -> str:
        return json.dumps(self.status())


def _details(group: str, plural: str, name: str | None) -> dict[str, Any]:
    details: dict[str, Any] = {"group": group, "kind": plural} if group else {"kind": plural}
    if name:
        details["name"] = name
    return details


def not_found(group_resource: str, group: str, plural: str, name: str) -> ApiError:
    return ApiError(404, f'{group_resource} "{name}" not found', "NotFound", _details(group, plural, name))


def already_exists(group_resource: str, group: str, plural: str, name: str) -> ApiError:
    details = _details(group, plural, name)
    return ApiError(409, f'{group_resource} "{name}" already exists', "AlreadyExists", details)


def conflict(group_resource: str, group: str, plural: str, name: str, why: str | None = None) -> ApiError:
    why = why or "the object has been modified; please apply your changes to the latest version and try again"
    message = f'Operation cannot be fulfilled on {group_resource} "{name}": {why}'
    return ApiError(409, message, "Conflict", _details(group, plural, name))


def invalid(kind_group: str, group: str, kind: str, name: str, causes: list[Cause]) -> ApiError:
    rendered = [cause.render() for cause in causes]
    summary = rendered[0] if len(rendered) == 1 else "[" + ", ".join(rendered) + "]"
    details: dict[str, Any] = {"name": name, "kind": kind, "causes": []}
    if group:
        details["group"] = group
    details["causes"] = [{"reason": c.reason, "message": c.message, "field": c.field} for c in causes]
    return ApiError(422, f'{kind_group} "{name}" is invalid: {summary}', "Invalid", details)


def bad_request(message: str) -> ApiError:
    return ApiError(400, message, "BadRequest")


def gone(message: str) -> ApiError:
    return ApiError(410, message, "Expired")


def unprocessable(message: str) -> ApiError:
    """A request the server understood but could not apply (e.g. a failed JSON-patch `test`)."""
    return ApiError(422, message, "Invalid", {"causes": [{"message": message}]})


def from_status(code: int, message: str | None = None) -> ApiError:
    """An injected failure (outage simulation) with the reason a real apiserver would give."""
    default = {
        429: "Too many requests, please try again later.",
        500: "Internal error occurred: injected failure",
        503: "the server is currently unable to handle the request",
        504: "the server was unable to return a response in the time allotted, but may still be "
        "processing the request",
    }
    return ApiError(code, message or default.get(code, f"injected failure with HTTP {code}"))
