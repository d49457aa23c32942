"""Tier 3 on kind: the shipped operator image and the official mongo:7 image, deployed by
`make e2e-kind` with the same kustomize manifests (deploy/ and deploy/samples)."""

from __future__ import annotations

import time
from typing import Any

from kubernetes import client, config

NAMESPACE = "smartid"
GROUP, VERSION, PLURAL = "smartid.io", "v1alpha1", "smartiddatabases"


def wait_phase(custom: client.CustomObjectsApi, phase: str, timeout: float) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    obj: dict[str, Any] = {}
    while time.monotonic() < deadline:
        obj = custom.get_namespaced_custom_object(GROUP, VERSION, NAMESPACE, PLURAL, "smartid")
        if (obj.get("status") or {}).get("phase") == phase:
            return obj
        time.sleep(2)
    raise AssertionError(f"no phase {phase} after {timeout} s: {obj.get('status')}")


def test_real_mongo_outage_is_seen_and_recovered() -> None:
    api = config.new_client_from_config()
    custom = client.CustomObjectsApi(api)
    apps = client.AppsV1Api(api)
    obj = wait_phase(custom, "Ready", timeout=300)
    assert obj["status"]["mongo"]["version"].startswith("7.")

    apps.patch_namespaced_stateful_set_scale("mongo", NAMESPACE, {"spec": {"replicas": 0}})
    try:
        obj = wait_phase(custom, "Degraded", timeout=120)
        reach = next(c for c in obj["status"]["conditions"] if c["type"] == "MongoReachable")
        assert reach["reason"] == "Unreachable"
    finally:
        # Never leave Mongo at 0, whatever the assertions said.
        apps.patch_namespaced_stateful_set_scale("mongo", NAMESPACE, {"spec": {"replicas": 1}})
    wait_phase(custom, "Ready", timeout=300)
