"""The test bed does what a real cluster would for the parts the operator relies on."""

from __future__ import annotations

import pymongo
import pytest
from kubernetes import client

from smartid_testbed.cluster import wait_for
from smartid_testbed.kubelet import MONGO_PORT
from smartid_testbed.testbed import TestBed


def mongo_statefulset(name: str) -> dict:
    labels = {"app": name}
    return {
        "apiVersion": "apps/v1", "kind": "StatefulSet",
        "metadata": {"name": name},
        "spec": {
            "serviceName": name, "replicas": 1, "selector": {"matchLabels": labels},
            "template": {"metadata": {"labels": labels}, "spec": {"containers": [{
                "name": "mongo", "image": "mongo:7",
                "ports": [{"containerPort": MONGO_PORT}],
                "volumeMounts": [{"name": "data", "mountPath": "/data/db"}]}]}},
            "volumeClaimTemplates": [{"metadata": {"name": "data"}, "spec": {
                "accessModes": ["ReadWriteOnce"],
                "resources": {"requests": {"storage": "1Gi"}}}}],
        },
    }


def pod_ready(core: client.CoreV1Api, namespace: str, name: str) -> client.V1Pod | None:
    try:
        pod = core.read_namespaced_pod(name, namespace)
    except client.ApiException:
        return None
    ready = any(c.type == "Ready" and c.status == "True" for c in pod.status.conditions or [])
    return pod if ready else None


def scale(apps: client.AppsV1Api, namespace: str, name: str, replicas: int) -> None:
    apps.patch_namespaced_stateful_set_scale(name, namespace, {"spec": {"replicas": replicas}})


def test_mongo_statefulset_survives_scale_to_zero_and_back(
        testbed: TestBed, api_client: client.ApiClient, core: client.CoreV1Api,
        namespace: str) -> None:
    apps = client.AppsV1Api(api_client)
    apps.create_namespaced_stateful_set(namespace, mongo_statefulset("mongo"))
    pod = wait_for(lambda: pod_ready(core, namespace, "mongo-0"), timeout=60,
                   what="mongo-0 Ready")
    address = pod.status.pod_ip
    assert address == testbed.mongo_address(namespace, "mongo-0")
    assert pod.status.container_statuses[0].ready
    uri = f"mongodb://{address}:{MONGO_PORT}/smartid"
    core.create_namespaced_secret(namespace, client.V1Secret(
        metadata=client.V1ObjectMeta(name="smartid-mongo"), string_data={"uri": uri}))

    with pymongo.MongoClient(uri, serverSelectionTimeoutMS=5000) as mc:
        mc.smartid.recordings.insert_one({"_id": "rec-1", "path": "/recordings/rec-1.wav"})

    scale(apps, namespace, "mongo", 0)
    wait_for(lambda: not _pod_exists(core, namespace, "mongo-0"), timeout=60,
             what="mongo-0 deleted")
    with (pymongo.MongoClient(uri, serverSelectionTimeoutMS=1000, connectTimeoutMS=500) as mc,
          pytest.raises(pymongo.errors.ServerSelectionTimeoutError, match="Connection refused")):
        mc.admin.command("ping")

    scale(apps, namespace, "mongo", 1)
    wait_for(lambda: pod_ready(core, namespace, "mongo-0"), timeout=60,
             what="mongo-0 Ready again")
    with pymongo.MongoClient(uri, serverSelectionTimeoutMS=5000) as mc:
        assert mc.smartid.recordings.find_one({"_id": "rec-1"}) == {
            "_id": "rec-1", "path": "/recordings/rec-1.wav"}


def _pod_exists(core: client.CoreV1Api, namespace: str, name: str) -> bool:
    try:
        core.read_namespaced_pod(name, namespace)
    except client.ApiException as exc:
        if exc.status == 404:
            return False
        raise
    return True
