"""The PassPurchase CRD as shipped in the package (crds/ in the repository, passops/crds in a wheel)."""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path

CRD_FILE = "passpurchase.yaml"


def crd_path() -> Path:
    # A regular file in both layouts (a symlink in the repository, a copy in the wheel).
    return Path(str(files("passops") / "crds" / CRD_FILE))
