"""The operator core on the real control plane, deployed from the shipped manifests and
running under its own ServiceAccount and RBAC (the kubelet stand-in runs its pod)."""

from __future__ import annotations

import time
import urllib.request
from typing import Any

import pymongo
import pytest
from kubernetes import client, config

from smartid_testbed.cluster import wait_for
from smartid_testbed.install import apply_samples, install_operator, mongo_statefulset
from smartid_testbed.kubelet import MONGO_PORT
from smartid_testbed.testbed import TestBed
from tests.cluster.conftest import Operator
from tests.cluster.helpers import (
    GROUP,
    PLURAL,
    VERSION,
    condition,
    database,
    pod_ready,
    scale,
)


def get_db(custom: client.CustomObjectsApi, namespace: str, name: str = "smartid") -> Any:
    return custom.get_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, name)


def wait_phase(custom: client.CustomObjectsApi, namespace: str, phase: str,
               timeout: float = 60, name: str = "smartid") -> dict[str, Any]:
    def check() -> dict[str, Any] | None:
        obj = get_db(custom, namespace, name)
        return obj if (obj.get("status") or {}).get("phase") == phase else None

    result: dict[str, Any] = wait_for(check, timeout=timeout, what=f"phase {phase}")
    return result


MIGRATION_IDS = ["v1_baseline", "v2_harden_parsed_segments", "v3_recordings"]


def assert_no_exceptions(op: Operator) -> None:
    logs = op.logs()
    assert "Traceback" not in logs, logs[-3000:]
    assert "Unhandled" not in logs, logs[-3000:]


def test_samples_go_ready_under_the_namespaced_install(
        testbed: TestBed, core: client.CoreV1Api, custom: client.CustomObjectsApi) -> None:
    """`kubectl apply -k deploy/` then `kubectl apply -k deploy/samples`, as the README says."""
    namespace, _ = install_operator(testbed, "deploy", health_interval=2)
    assert namespace == "smartid"
    uri = apply_samples(testbed, "smartid")

    obj = wait_phase(custom, "smartid", "Ready", timeout=90)
    assert obj["status"]["observedGeneration"] == obj["metadata"]["generation"]
    for type_ in ("Ready", "MongoReachable", "ResourcesReady", "SchemaReady"):
        assert condition(obj, type_)["status"] == "True", obj["status"]
    assert obj["status"]["mongo"]["reachable"] is True
    schema = obj["status"]["schema"]
    assert (schema["version"], schema["target"], schema["pending"]) == ("v3", "v3", [])
    assert schema["applied"] == MIGRATION_IDS
    # The stand-in's gaps are named in status, never hidden (see README).
    assert condition(obj, "SchemaReady")["reason"] == "AppliedWithServerGaps"
    assert any("created_at_1" in gap for gap in schema["unsupported"])

    table = testbed.kubectl("get", "sidb", "-n", "smartid")
    header, row = table.splitlines()[:2]
    assert header.split()[:4] == ["NAME", "PHASE", "MONGO", "SCHEMA"]
    assert row.split()[:4] == ["smartid", "Ready", "True", "v3"]

    def events() -> list[client.CoreV1Event]:
        return core.list_namespaced_event(
            "smartid", field_selector="involvedObject.kind=SmartIDDatabase").items

    reasons = [e.reason for e in events()]
    assert {"Pinged", "Applied", "AllConditionsMet"} <= set(reasons)
    assert reasons.count("MigrationApplied") == 3

    # A second reconcile (a spec change) applies nothing.
    custom.patch_namespaced_custom_object(GROUP, VERSION, "smartid", PLURAL, "smartid",
                                          {"spec": {"recovery": {"batchSize": 100}}})
    wait_for(lambda: get_db(custom, "smartid")["status"]["observedGeneration"] == 2,
             timeout=30, what="the second reconcile")
    with pymongo.MongoClient(uri) as mc:
        assert mc.smartid.smartid_migrations.count_documents({}) == 3
    assert [e.reason for e in events()].count("MigrationApplied") == 3
    assert all(e.source.component == "smartid-operator" or e.reporting_component ==
               "smartid-operator" for e in events())

    pods = core.list_namespaced_pod(
        "smartid", label_selector="app.kubernetes.io/name=smartid-operator").items
    assert pods[0].spec.service_account_name == "smartid-operator"
    logs = testbed.pod_logs("smartid", pods[0].metadata.name)
    assert "Traceback" not in logs, logs[-3000:]
    # Least privilege, as the operator's own ServiceAccount sees it.
    as_operator = client.CoreV1Api(config.new_client_from_config(config_file=str(
        testbed.cluster.service_account_kubeconfig("smartid", "smartid-operator"))))
    assert as_operator.read_namespaced_secret("smartid-mongo", "smartid").data["uri"]
    for forbidden in (lambda: as_operator.list_namespaced_secret("smartid"),
                      lambda: as_operator.read_namespaced_secret("smartid-mongo", "default"),
                      lambda: as_operator.list_namespaced_pod("smartid"),
                      lambda: as_operator.delete_namespaced_config_map("smartid-settings",
                                                                       "smartid")):
        with pytest.raises(client.ApiException) as denied:
            forbidden()
        assert denied.value.status == 403

    # The namespaced operator has done its part; the rest of the session uses the other one.
    testbed.kubectl("delete", "deployment", "smartid-operator", "-n", "smartid", "--wait=false")


def test_outage_degrades_and_recovery_returns_to_ready(
        operator: Operator, api_client: client.ApiClient, core: client.CoreV1Api,
        custom: client.CustomObjectsApi, namespace: str, mongo: str) -> None:
    apps = client.AppsV1Api(api_client)
    fast = {"uriSecretRef": {"name": "smartid-mongo"}, "workload": {"name": "mongo"},
            "connectTimeoutSeconds": 1}
    custom.create_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL,
                                           database(mongo=fast))
    wait_phase(custom, namespace, "Ready")

    scale(apps, namespace, "mongo", 0)
    started = time.monotonic()
    obj = wait_phase(custom, namespace, "Degraded", timeout=30)
    degraded_after = time.monotonic() - started
    reach = condition(obj, "MongoReachable")
    assert reach["status"] == "False" and reach["reason"] == "Unreachable"
    assert condition(obj, "Ready")["status"] == "False"
    # Bounded: the health interval (2 s) plus the connect timeout (1 s), with slack for
    # the pod's termination.
    assert degraded_after < 20

    scale(apps, namespace, "mongo", 1)
    wait_for(lambda: pod_ready(core, namespace, "mongo-0"), timeout=60, what="mongo back")
    obj = wait_phase(custom, namespace, "Ready", timeout=30)
    assert condition(obj, "MongoReachable")["status"] == "True"
    warnings = [e for e in core.list_namespaced_event(namespace).items
                if e.involved_object.kind == "SmartIDDatabase" and e.type == "Warning"]
    assert any(e.reason == "Unreachable" for e in warnings)
    assert_no_exceptions(operator)


def test_spec_change_advances_generation_and_patches_children_in_place(
        operator: Operator, core: client.CoreV1Api, custom: client.CustomObjectsApi,
        namespace: str, mongo: str) -> None:
    custom.create_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, database())
    obj = wait_phase(custom, namespace, "Ready")
    settings = core.read_namespaced_config_map("smartid-settings", namespace)
    owner = settings.metadata.owner_references[0]
    assert (owner.kind, owner.name, owner.uid) == ("SmartIDDatabase", "smartid",
                                                   obj["metadata"]["uid"])
    assert owner.controller is True
    assert settings.data["SMARTID_RECOVERY_BATCH_SIZE"] == "500"

    custom.patch_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, "smartid",
                                          {"spec": {"recovery": {"batchSize": 250}}})

    def observed() -> dict[str, Any] | None:
        current = get_db(custom, namespace)
        return current if current["status"].get("observedGeneration") == 2 else None

    obj = wait_for(observed, timeout=30, what="observedGeneration 2")
    assert obj["metadata"]["generation"] == 2
    after = core.read_namespaced_config_map("smartid-settings", namespace)
    assert after.metadata.uid == settings.metadata.uid
    assert after.data["SMARTID_RECOVERY_BATCH_SIZE"] == "250"
    assert_no_exceptions(operator)


def test_deleting_the_database_lets_the_garbage_collector_remove_children(
        operator: Operator, core: client.CoreV1Api, custom: client.CustomObjectsApi,
        namespace: str, mongo: str) -> None:
    custom.create_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, database())
    wait_phase(custom, namespace, "Ready")
    core.read_namespaced_config_map("smartid-settings", namespace)

    custom.delete_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, "smartid")

    def gone() -> bool:
        try:
            core.read_namespaced_config_map("smartid-settings", namespace)
        except client.ApiException as exc:
            return exc.status == 404
        return False

    wait_for(gone, timeout=60, what="the garbage collector to delete the ConfigMap")
    assert_no_exceptions(operator)


def test_missing_secret_and_workload_fail_clearly_and_heal_without_a_retry_storm(
        operator: Operator, testbed: TestBed, api_client: client.ApiClient,
        core: client.CoreV1Api, custom: client.CustomObjectsApi, namespace: str) -> None:
    custom.create_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, database())
    obj = wait_phase(custom, namespace, "Failed")
    resources = condition(obj, "ResourcesReady")
    assert resources["reason"] == "WorkloadNotFound"
    assert f"StatefulSet {namespace}/mongo (spec.mongo.workload) does not exist" in \
        resources["message"]
    reach = condition(obj, "MongoReachable")
    assert reach["reason"] == "SecretNotFound"
    assert "spec.mongo.uriSecretRef.name" in reach["message"]

    # No retry storm: the change handler gave up for good (PermanentError); only the health
    # timer looks again, once per interval.
    time.sleep(5)  # observe a window of the operator's behaviour, not a wait for readiness
    warnings = [e for e in core.list_namespaced_event(namespace).items
                if e.involved_object.kind == "SmartIDDatabase" and e.type == "Warning"]
    assert sum(e.count or 1 for e in warnings) <= 4, [(e.reason, e.count) for e in warnings]

    # Fix what the spec points at; the level-based check brings it to Ready unaided.
    uri = f"mongodb://{testbed.mongo_address(namespace, 'mongo-0')}:{MONGO_PORT}/smartid"
    core.create_namespaced_secret(namespace, client.V1Secret(
        metadata=client.V1ObjectMeta(name="smartid-mongo"), string_data={"wrong": uri}))
    obj = wait_for(lambda: (o := get_db(custom, namespace)) and
                   condition(o, "MongoReachable")["reason"] == "SecretKeyMissing" and o,
                   timeout=30, what="SecretKeyMissing")
    assert "has no key 'uri'" in condition(obj, "MongoReachable")["message"]
    core.patch_namespaced_secret("smartid-mongo", namespace, {"stringData": {"uri": uri}})
    client.AppsV1Api(api_client).create_namespaced_stateful_set(namespace, mongo_statefulset())
    wait_phase(custom, namespace, "Ready", timeout=60)
    assert_no_exceptions(operator)


def test_metrics_endpoint_reports_reconciles_and_reachability(
        operator: Operator, custom: client.CustomObjectsApi, namespace: str,
        mongo: str) -> None:
    custom.create_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, database())
    wait_phase(custom, namespace, "Ready")
    url = f"http://127.0.0.1:{operator.ports['metrics']}/metrics"

    def scraped() -> str | None:
        with urllib.request.urlopen(url, timeout=5) as resp:
            text = resp.read().decode()
        line = (f'smartid_mongo_reachable{{database="smartid",name="smartid",'
                f'namespace="{namespace}"}} 1.0')
        return text if line in text else None

    text = wait_for(scraped, timeout=20, what="the reachability gauge")
    assert 'smartid_reconciles_total{handler="converge",result="ok"}' in text
    assert f'smartid_database_ready{{name="smartid",namespace="{namespace}"}} 1.0' in text


def test_pinned_schema_stops_there_and_a_tampered_checksum_fails_naming_it(
        operator: Operator, custom: client.CustomObjectsApi, namespace: str,
        mongo: str) -> None:
    custom.create_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL,
                                           database(schema={"version": "v2"}))
    obj = wait_phase(custom, namespace, "Ready")
    schema = obj["status"]["schema"]
    assert (schema["version"], schema["target"]) == ("v2", "v2")
    assert schema["applied"] == MIGRATION_IDS[:2]

    with pymongo.MongoClient(mongo) as mc:
        mc.smartid.smartid_migrations.update_one({"_id": "v1_baseline"},
                                                 {"$set": {"checksum": "sha256:tampered"}})
    obj = wait_phase(custom, namespace, "Failed", timeout=30)
    schema_ready = condition(obj, "SchemaReady")
    assert schema_ready["status"] == "False"
    assert schema_ready["reason"] == "ChecksumMismatch"
    assert "v1_baseline" in schema_ready["message"]
    assert obj["status"]["schema"]["drift"] == ["v1_baseline"]

    # Moving the pin forward does not get past the drift: nothing more is applied.
    custom.patch_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, "smartid",
                                          {"spec": {"schema": {"version": "latest"}}})
    wait_for(lambda: get_db(custom, namespace)["status"]["observedGeneration"] == 2,
             timeout=30, what="the update to be observed")
    with pymongo.MongoClient(mongo) as mc:
        assert mc.smartid.smartid_migrations.count_documents({}) == 2
    assert_no_exceptions(operator)


def test_created_while_mongo_is_down_backs_off_then_goes_ready(
        operator: Operator, testbed: TestBed, api_client: client.ApiClient,
        core: client.CoreV1Api, custom: client.CustomObjectsApi, namespace: str) -> None:
    apps = client.AppsV1Api(api_client)
    uri = f"mongodb://{testbed.mongo_address(namespace, 'mongo-0')}:{MONGO_PORT}/smartid"
    core.create_namespaced_secret(namespace, client.V1Secret(
        metadata=client.V1ObjectMeta(name="smartid-mongo"), string_data={"uri": uri}))
    apps.create_namespaced_stateful_set(namespace, mongo_statefulset(replicas=0))
    fast = {"uriSecretRef": {"name": "smartid-mongo"}, "workload": {"name": "mongo"},
            "connectTimeoutSeconds": 1}
    custom.create_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL,
                                           database(mongo=fast))
    obj = wait_phase(custom, namespace, "Degraded")
    assert condition(obj, "MongoReachable")["reason"] == "Unreachable"
    assert "schema" not in obj["status"]  # nothing claimed about a schema it cannot see

    scale(apps, namespace, "mongo", 1)
    obj = wait_phase(custom, namespace, "Ready", timeout=60)
    assert obj["status"]["schema"]["version"] == "v3"
    assert_no_exceptions(operator)
