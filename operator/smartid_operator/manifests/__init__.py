"""Pure builders: a SmartIDDatabase's name and spec in, Kubernetes manifests out.

No I/O here; the reconciler adopts and applies what these return.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

MANAGED_BY = "smartid-operator"
COMPONENT_LABEL, INSTANCE_LABEL = "app.kubernetes.io/component", "app.kubernetes.io/instance"
MANAGED_LABEL = "app.kubernetes.io/managed-by"


def owner_reference(owner: Mapping[str, Any]) -> dict[str, Any]:
    """The controller reference a child carries to ``owner``: garbage collected with it, and
    its watch events traced back to it."""
    meta = owner["metadata"]
    return {"apiVersion": owner["apiVersion"], "kind": owner["kind"], "name": meta["name"],
            "uid": meta["uid"], "controller": True, "blockOwnerDeletion": True}


def labels(instance: str, component: str) -> dict[str, str]:
    return {
        "app.kubernetes.io/name": "smartid",
        INSTANCE_LABEL: instance,
        COMPONENT_LABEL: component,
        MANAGED_LABEL: MANAGED_BY,
    }


def child_name(instance: str, suffix: str) -> str:
    """``<instance>-<suffix>``, kept within the 63 characters a label value allows."""
    name = f"{instance}-{suffix}"
    return name if len(name) <= 63 else f"{instance[:62 - len(suffix)]}-{suffix}"


def instance_of(body: Mapping[str, Any], component: str) -> tuple[str, str] | None:
    """The database (namespace, name) whose ``component`` an object is, by its labels."""
    meta = body["metadata"]
    found = meta.get("labels") or {}
    if found.get(COMPONENT_LABEL) != component or not found.get(INSTANCE_LABEL):
        return None
    return meta["namespace"], found[INSTANCE_LABEL]
