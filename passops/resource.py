"""The PassPurchase custom resource: its coordinates, names, labels and annotations.

Everything here is part of the external contract (CONTRACT.md, "The resource").
"""

from __future__ import annotations

import hashlib
import re
from enum import StrEnum
from typing import Final

GROUP: Final = "passops.dev"
VERSION: Final = "v1alpha1"
PLURAL: Final = "passpurchases"
KIND: Final = "PassPurchase"
API_VERSION: Final = f"{GROUP}/{VERSION}"

LABEL_TENANT: Final = "passops.dev/tenant"
LABEL_CUSTOMER: Final = "passops.dev/customer"
LABEL_PHASE: Final = "passops.dev/phase"

ANNOTATION_RESYNC: Final = "passops.dev/resync-requested-at"
ANNOTATION_PAUSED: Final = "passops.dev/paused"

# Bounded so that a retry storm of deliveries cannot grow the object towards etcd's size limit.
MAX_EVENTS: Final = 20

# Kubernetes names are DNS subdomains of at most 253 characters; label values at most 63.
_MAX_NAME: Final = 253
_LABEL_VALUE_RE: Final = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")


class Phase(StrEnum):
    PENDING = "Pending"
    AWAITING_PAYMENT = "AwaitingPayment"
    RECONCILING = "Reconciling"
    READY = "Ready"
    FAILED = "Failed"
    PAUSED = "Paused"


class Source(StrEnum):
    WEBHOOK = "webhook"
    SYNC = "sync"
    BACKFILL = "backfill"
    MANUAL = "manual"


def purchase_name(checkout_session_id: str) -> str:
    """The resource name of a Checkout Session: the same for every delivery of the same purchase.

    Stripe ids are case-sensitive while Kubernetes names are lower-case, so two ids differing only
    in case would collide; the hash of the exact id keeps them apart.
    """
    if not checkout_session_id:
        raise ValueError("a Checkout Session id is required")
    # surrogatepass: a name for any str at all; the gateway refuses such ids before they get here.
    digest = hashlib.sha256(checkout_session_id.encode("utf-8", "surrogatepass")).hexdigest()[:8]
    readable = re.sub(r"[^a-z0-9-]", "-", checkout_session_id.lower().replace("_", "-")).strip("-")
    readable = readable[: _MAX_NAME - 9] or "cs"
    return f"{readable}-{digest}"


def label_value(value: str | None) -> str | None:
    """A value usable as a label (at most 63 characters of the allowed alphabet), or None."""
    if not value or len(value) > 63 or not _LABEL_VALUE_RE.match(value):
        return None
    return value


def is_paused(annotations: dict[str, str] | None) -> bool:
    # Exactly "true": a typo such as "yes" must not silently stop reconciliation.
    return (annotations or {}).get(ANNOTATION_PAUSED) == "true"
