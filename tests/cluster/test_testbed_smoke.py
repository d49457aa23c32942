"""The test bed does what a real cluster would for the parts the operator relies on."""

from __future__ import annotations

import pymongo
import pytest
from kubernetes import client

from smartid_testbed.cluster import wait_for
from smartid_testbed.install import mongo_statefulset
from smartid_testbed.kubelet import MONGO_PORT
from smartid_testbed.testbed import TestBed
from tests.cluster.helpers import pod_exists, pod_ready, scale


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
    wait_for(lambda: not pod_exists(core, namespace, "mongo-0"), timeout=60,
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
