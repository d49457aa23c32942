"""The settings ConfigMap: the one place the operator's pods (the agents, the Jobs) read the
database's settings from, through ``envFrom``, so a spec change reaches them without
re-rendering every Job template. Each promise adds its keys, only while it is enabled."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from smartid_operator.manifests import child_name, labels
from smartid_operator.promise import Promise
from smartid_operator.spec import DatabaseSpec


def settings_config_map(instance: str, namespace: str, spec: DatabaseSpec,
                        promises: Iterable[Promise]) -> dict[str, Any]:
    data = {"SMARTID_DATABASE": spec.mongo.database}  # each key here is read by a CLI
    for promise in promises:
        data |= promise.settings(spec)
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": child_name(instance, "settings"), "namespace": namespace,
                     "labels": labels(instance, "settings")},
        "data": data,
    }
