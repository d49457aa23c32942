"""Tier 3 on kind: the operator image built by `make e2e-kind` and the official mongo:7 image,
deployed with the same kustomize manifests (deploy/ and deploy/samples)."""

from __future__ import annotations

import json
import os

import pytest
from kubernetes import client

from tests.kind.conftest import NAMESPACE, Kubectl
from tests.kind.helpers import wait_phase

# deploy.sh waited for the operator's rollout and for mongo-0 to be Ready (the image pull
# included), so these measure the operator alone. They add up to less than the test's limit.
READY_S, DEGRADED_S, BACK_S = 180, 120, 240


def test_operator_runs_the_image_just_built(kubectl: Kubectl) -> None:
    """Re-runs get the new build: a unique tag per build, loaded into kind and rolled out."""
    image = os.environ.get("SMARTID_KIND_IMAGE")
    if not image:
        pytest.skip("SMARTID_KIND_IMAGE not set (make e2e-kind sets it to the image it built)")
    deployment = json.loads(kubectl("-n", NAMESPACE, "get", "deployment/smartid-operator",
                                    "-o", "json"))
    assert deployment["spec"]["template"]["spec"]["containers"][0]["image"] == image
    pods = json.loads(kubectl("-n", NAMESPACE, "get", "pods", "-o", "json",
                              "-l", "app.kubernetes.io/name=smartid-operator"))["items"]
    running = [p for p in pods if "deletionTimestamp" not in p["metadata"]]
    assert [p["spec"]["containers"][0]["image"] for p in running] == [image]


@pytest.mark.timeout(READY_S + DEGRADED_S + BACK_S + 60)
def test_real_mongo_outage_is_seen_and_recovered(api: client.ApiClient,
                                                 kubectl: Kubectl) -> None:
    custom = client.CustomObjectsApi(api)
    apps = client.AppsV1Api(api)
    status = wait_phase(custom, "Ready", READY_S)
    assert status["mongo"]["version"].startswith("7.")

    apps.patch_namespaced_stateful_set_scale("mongo", NAMESPACE, {"spec": {"replicas": 0}})
    try:
        status = wait_phase(custom, "Degraded", DEGRADED_S)
        reach = next(c for c in status["conditions"] if c["type"] == "MongoReachable")
        assert reach["reason"] == "Unreachable"
    finally:
        # Never leave Mongo at 0, whatever the assertions said.
        apps.patch_namespaced_stateful_set_scale("mongo", NAMESPACE, {"spec": {"replicas": 1}})
    kubectl("-n", NAMESPACE, "rollout", "status", "statefulset/mongo", f"--timeout={BACK_S}s",
            timeout=BACK_S + 10)
    wait_phase(custom, "Ready", BACK_S)
