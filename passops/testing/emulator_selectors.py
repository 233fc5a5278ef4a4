"""Label and field selectors with the apiserver's grammar and matching rules."""

from __future__ import annotations

import re
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass
from typing import Any

_KEY = r"[A-Za-z0-9][-A-Za-z0-9_./]*"
_VALUE = r"[-A-Za-z0-9_.]*"
_SET_RE = re.compile(rf"^({_KEY})\s+(in|notin)\s*\(\s*((?:{_VALUE}\s*,\s*)*{_VALUE})\s*\)$")
_EQ_RE = re.compile(rf"^({_KEY})\s*(==|!=|=)\s*({_VALUE})$")
_CMP_RE = re.compile(rf"^({_KEY})\s*([<>])\s*(-?\d+)$")
_EXISTS_RE = re.compile(rf"^(!?)\s*({_KEY})$")


class SelectorError(ValueError):
    """The selector does not parse (the apiserver answers 400 BadRequest)."""


Matcher = Callable[[Mapping[str, str]], bool]


def _split(text: str) -> list[str]:
    """Split on top-level commas: `a in (x,y),b` is two requirements."""
    parts, depth, current = [], 0, ""
    for char in text:
        if char == "(":
            depth += 1
        elif char == ")":
            depth -= 1
        if char == "," and depth == 0:
            parts.append(current.strip())
            current = ""
        else:
            current += char
    parts.append(current.strip())
    return parts


def _requirement(text: str) -> Matcher:
    if match := _SET_RE.match(text):
        key, op, raw = match.groups()
        values = {value.strip() for value in raw.split(",")}
        if op == "in":
            return lambda labels: labels.get(key) in values
        return lambda labels: labels.get(key) not in values  # absent keys match `notin`
    if match := _EQ_RE.match(text):
        key, op, value = match.groups()
        if op == "!=":
            return lambda labels: labels.get(key) != value  # absent keys match `!=`
        return lambda labels: labels.get(key) == value
    if match := _CMP_RE.match(text):
        key, op, bound = match.group(1), match.group(2), int(match.group(3))

        def compare(labels: Mapping[str, str]) -> bool:
            raw = labels.get(key)
            if raw is None or not re.fullmatch(r"-?\d+", raw):
                return False
            return int(raw) > bound if op == ">" else int(raw) < bound

        return compare
    if match := _EXISTS_RE.match(text):
        negated, key = match.groups()
        return (lambda labels: key not in labels) if negated else (lambda labels: key in labels)
    raise SelectorError(f"unable to parse requirement: {text!r}")


def parse_label_selector(text: str | None) -> Matcher:
    """A predicate over an object's labels; an empty selector matches everything."""
    if not text or not text.strip():
        return lambda labels: True
    requirements = [_requirement(part) for part in _split(text)]
    return lambda labels: all(requirement(labels) for requirement in requirements)


@dataclass(frozen=True)
class FieldRequirement:
    path: str
    value: str
    negated: bool

    def matches(self, obj: Mapping[str, Any]) -> bool:
        node: Any = obj
        for part in self.path.split("."):
            node = node.get(part) if isinstance(node, Mapping) else None
        actual = "" if node is None else str(node).lower() if isinstance(node, bool) else str(node)
        return (actual == self.value) != self.negated


def parse_field_selector(text: str | None, supported: Collection[str]) -> Callable[[Mapping[str, Any]], bool]:
    """A predicate over whole objects; only the fields the resource supports may be used."""
    if not text or not text.strip():
        return lambda obj: True
    requirements = []
    for part in _split(text):
        match = re.fullmatch(r"\s*([A-Za-z0-9_.]+)\s*(==|!=|=)\s*(.*?)\s*", part)
        if not match:
            raise SelectorError(f"invalid selector: {part!r}; can't understand {part!r}")
        path, op, value = match.groups()
        if path not in supported:
            raise SelectorError(f"field label not supported: {path}")
        requirements.append(FieldRequirement(path, value, op == "!="))
    return lambda obj: all(requirement.matches(obj) for requirement in requirements)
