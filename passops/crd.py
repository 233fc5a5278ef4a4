"""The PassPurchase CRD as shipped in the package (crds/ in the repository, passops/crds in a wheel)."""

from __future__ import annotations

from importlib.resources import as_file, files
from pathlib import Path
from typing import Any

import yaml

CRD_FILE = "passpurchase.yaml"


def crd_text() -> str:
    return (files("passops") / "crds" / CRD_FILE).read_text(encoding="utf-8")


def crd_manifest() -> dict[str, Any]:
    loaded = yaml.safe_load(crd_text())
    if not isinstance(loaded, dict):
        raise ValueError("the packaged CRD is not a YAML mapping")
    return loaded


def crd_path() -> Path:
    with as_file(files("passops") / "crds" / CRD_FILE) as path:
        return Path(path)
