"""Recovery on the real control plane: the operator (under its own ServiceAccount) runs the
recovery agent as a Deployment of its own image; the kubelet stand-in runs it with the
recordings claim mounted at /recordings. Mongo is really scaled to 0 (its socket gone)."""

from __future__ import annotations

import datetime
import json
import time
from typing import Any

import pymongo
from kubernetes import client

from smartid_operator.recovery.contract import Segment
from smartid_operator.recovery.writer import RecordingWriter
from smartid_testbed.cluster import wait_for
from smartid_testbed.testbed import TestBed
from tests.cluster.conftest import Operator
from tests.cluster.helpers import (
    GROUP,
    PLURAL,
    VERSION,
    condition,
    create_claim,
    database,
    pod_ready,
    scale,
)
from tests.cluster.test_operator import assert_no_exceptions, get_db, wait_phase

CLAIM = "recordings"


def recordings_claim(core: client.CoreV1Api, namespace: str) -> None:
    create_claim(core, namespace, CLAIM)


def drop_by_hand(root: Any, recording_id: str) -> None:
    """A recording stored by plain file writes that follow the contract (no writer library):
    data first, then the sidecar, each under a dot-name renamed into place."""
    now = datetime.datetime.now(datetime.UTC)
    folder = root / "recordings" / f"{now:%Y%m%d}" / f"{now:%H%M}"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f".{recording_id}.dat.tmp").write_bytes(b"audio from another pipeline")
    (folder / f".{recording_id}.dat.tmp").rename(folder / f"{recording_id}.dat")
    sidecar = {"contract": 1, "recording_id": recording_id, "tenant_id": "tenant-b",
               "recorded_at": now.isoformat().replace("+00:00", "Z"),
               "data_file": f"{recording_id}.dat"}
    (folder / f".{recording_id}.json.tmp").write_text(json.dumps(sidecar))
    (folder / f".{recording_id}.json.tmp").rename(folder / f"{recording_id}.json")


def test_writes_during_an_outage_are_indexed_exactly_once_without_a_manual_step(
        operator: Operator, testbed: TestBed, api_client: client.ApiClient,
        core: client.CoreV1Api, custom: client.CustomObjectsApi, namespace: str,
        mongo: str) -> None:
    apps = client.AppsV1Api(api_client)
    recordings_claim(core, namespace)
    custom.create_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, database(
        recovery={"enabled": True, "storage": {"persistentVolumeClaim": CLAIM},
                  "batchSize": 200}))
    obj = wait_phase(custom, namespace, "Ready", timeout=90)
    assert condition(obj, "Recovered")["status"] == "True", obj["status"]
    agent = apps.read_namespaced_deployment("smartid-recovery", namespace)
    assert agent.metadata.owner_references[0].uid == obj["metadata"]["uid"]
    root = testbed.claim_path(namespace, CLAIM)
    old_pod = core.read_namespaced_pod("mongo-0", namespace).metadata.uid

    scale(apps, namespace, "mongo", 0)
    wait_phase(custom, namespace, "Degraded", timeout=30)
    with pymongo.MongoClient(mongo, serverSelectionTimeoutMS=500) as probe:
        try:
            probe.admin.command("ping")
            raise AssertionError("Mongo still answers after scale to 0")
        except pymongo.errors.PyMongoError:
            pass

    recordings: list[str] = []
    segments: list[str] = []
    with RecordingWriter(root, mongo, "smartid", timeout=0.5) as writer:
        for i in range(50):
            rid = writer.store_recording(f"audio {i}".encode(), tenant_id="tenant-a")
            recordings.append(rid)
            writer.store_segments(rid, [Segment(n, text=f"segment {n} of {i}")
                                        for n in range(20)], tenant_id="tenant-a")
            segments += [f"{rid}:{n}" for n in range(20)]
    assert writer.stats.recordings_indexed == 0 and writer.stats.segments_indexed == 0
    drop_by_hand(root, "handwritten-1")
    recordings.append("handwritten-1")

    scale(apps, namespace, "mongo", 1)
    wait_for(lambda: (p := pod_ready(core, namespace, "mongo-0")) and p.metadata.uid != old_pod,
             timeout=60, interval=0.05, what="the new mongo-0 Ready")
    back = time.monotonic()

    with pymongo.MongoClient(mongo) as mc:
        db = mc.smartid

        def all_indexed() -> bool:
            return (db.recordings.count_documents({"_id": {"$in": recordings}}) == 51
                    and db.recording_segments.count_documents(
                        {"_id": {"$in": segments}}) == 1000)

        wait_for(all_indexed, timeout=30, interval=0.05, what="every outage write indexed")
        indexed_after = time.monotonic() - back
        # By id, exactly once: the unique keys hold, and no other document crept in.
        assert sorted(d["_id"] for d in db.recordings.find({}, {"_id": 1})) == sorted(recordings)
        assert db.recording_segments.count_documents({}) == 1000
        assert {d["_id"] for d in db.recording_segments.find({}, {"_id": 1})} == set(segments)

        obj = wait_for(lambda: (o := get_db(custom, namespace)) and
                       (condition(o, "Recovered") or {}).get("status") == "True" and
                       o["status"]["phase"] == "Ready" and o, timeout=30,
                       what="Recovered True")
        last = obj["status"]["recovery"]["lastRecovery"]
        assert last["indexed"] >= 51 and obj["status"]["recovery"]["pending"] == 0
        before = (db.recordings.count_documents({}), db.recording_segments.count_documents({}))
        # A further pass (the agent's next safety pass, seen by its report) changes nothing.
        last_pass = db.smartid_recovery.find_one({"_id": "agent"})["updated_at"]
        wait_for(lambda: db.smartid_recovery.find_one({"_id": "agent"})["updated_at"]
                 > last_pass, timeout=30, what="the agent's next pass")
        assert (db.recordings.count_documents({}),
                db.recording_segments.count_documents({})) == before
    events = [e.reason for e in core.list_namespaced_event(namespace).items
              if e.involved_object.kind == "SmartIDDatabase"]
    assert "Reindexed" in events
    print(f"all outage writes indexed {indexed_after:.2f} s after mongo-0 was Ready")
    assert_no_exceptions(operator)


def test_switching_recovery_off_removes_the_agent_and_its_condition(
        operator: Operator, core: client.CoreV1Api, api_client: client.ApiClient,
        custom: client.CustomObjectsApi, namespace: str, mongo: str) -> None:
    apps = client.AppsV1Api(api_client)
    recordings_claim(core, namespace)
    custom.create_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, database(
        recovery={"enabled": True, "storage": {"persistentVolumeClaim": CLAIM}}))
    wait_phase(custom, namespace, "Ready", timeout=90)
    apps.read_namespaced_deployment("smartid-recovery", namespace)
    custom.patch_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, "smartid",
                                          {"spec": {"recovery": {"enabled": False}}})

    def gone() -> bool:
        try:
            apps.read_namespaced_deployment("smartid-recovery", namespace)
        except client.ApiException as exc:
            return exc.status == 404
        return False

    wait_for(gone, timeout=30, what="the agent Deployment deleted")
    obj = wait_for(lambda: (o := get_db(custom, namespace))["status"].get(
        "observedGeneration") == 2 and o, timeout=30, what="generation 2 observed")
    assert condition(obj, "Recovered") is None and "recovery" not in obj["status"]
    assert obj["status"]["phase"] == "Ready"
    assert_no_exceptions(operator)
