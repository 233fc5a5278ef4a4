"""Which purchases a support command acts on: names, a label selector, or a state."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from passops.kube import Body, Invalid, NotFound, PurchaseClient
from passops.resource import LABEL_PHASE

_NAME = re.compile(r"[a-z0-9]([-a-z0-9.]*[a-z0-9])?")  # a DNS-1123 subdomain, as Kubernetes names are


class SelectionError(Exception):
    """The selection names nothing, or something that does not exist."""


@dataclass(frozen=True)
class Selection:
    names: Sequence[str] = ()
    selector: str | None = None
    stalled: bool = False
    failed: bool = False
    all: bool = False
    allow_all: bool = True  # `status --all` reads everything; `resync` has no --all on purpose

    def validate(self) -> None:
        for name in self.names:
            if len(name) > 253 or not _NAME.fullmatch(name):
                raise SelectionError(
                    f"{name!r} is not a PassPurchase name (lower-case letters, digits, '-', '.')"
                )
        options = "-l SELECTOR, --stalled, --failed" + (" or --all" if self.allow_all else "")
        chosen = sum(bool(x) for x in (self.names, self.selector, self.stalled, self.failed))
        if not chosen and not self.all:
            raise SelectionError(f"name purchases, or pass {options}")
        if self.names and (self.selector or self.stalled or self.failed or self.all):
            raise SelectionError(f"give either names or a selection ({options}), not both")

    def describe(self) -> str:
        if self.names:
            return ", ".join(self.names)
        parts = [f"-l {self.selector}" if self.selector else "", "--stalled" if self.stalled else ""]
        parts += ["--failed" if self.failed else "", "--all" if self.all else ""]
        return " ".join(p for p in parts if p)


def _is_stalled(body: Body) -> bool:
    conditions = (body.get("status") or {}).get("conditions") or []
    return any(c.get("type") == "Stalled" and c.get("status") == "True" for c in conditions)


async def select(purchases: PurchaseClient, selection: Selection) -> list[Body]:
    selection.validate()
    if selection.names:
        found: list[Body] = []
        for name in selection.names:
            try:
                found.append(await purchases.get(name))
            except NotFound:
                raise SelectionError(
                    f"no PassPurchase {name!r} in namespace {purchases.namespace!r}"
                ) from None
        return found
    selector = selection.selector
    if selection.failed:
        selector = ",".join(filter(None, [selector, f"{LABEL_PHASE}=Failed"]))
    try:
        bodies = await purchases.list(selector)
    except Invalid as exc:
        raise SelectionError(f"invalid label selector {selection.selector!r}: {exc}") from None
    if selection.stalled:
        bodies = [b for b in bodies if _is_stalled(b)]
    return sorted(bodies, key=lambda b: str(b["metadata"]["name"]))
