"""The operator core on the real control plane, deployed from the shipped manifests and
running under its own ServiceAccount and RBAC (the kubelet stand-in runs its pod)."""

from __future__ import annotations

import time
import urllib.request

import pymongo
import pytest
from kubernetes import client, config

from smartid_operator.handlers import KUBE_THREADS
from smartid_testbed.cluster import wait_for
from smartid_testbed.install import apply_samples, install_operator, mongo_statefulset
from smartid_testbed.kubelet import MONGO_PORT
from smartid_testbed.testbed import TestBed
from tests.cluster.conftest import Operator
from tests.cluster.helpers import (
    GROUP,
    PLURAL,
    VERSION,
    SilentServer,
    absent,
    assert_no_exceptions,
    condition,
    create_claim,
    database,
    get_db,
    pod_ready,
    reconcile_count,
    scale,
    transition_events,
    wait_phase,
)

MIGRATION_IDS = ["v1_baseline", "v2_harden_parsed_segments", "v3_recordings"]


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

    # Events are posted in the background after the status write that they describe.
    reasons = wait_for(lambda: (r := [e.reason for e in events()]) and
                       {"Pinged", "Applied", "AllConditionsMet"} <= set(r) and
                       r.count("MigrationApplied") >= 3 and r,
                       timeout=15, what="the Events of the passes that made it Ready")
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
                      lambda: as_operator.delete_namespaced_pod("any", "smartid"),
                      lambda: as_operator.delete_namespaced_config_map("smartid-settings",
                                                                       "smartid")):
        with pytest.raises(client.ApiException) as denied:
            forbidden()
        assert denied.value.status == 403

    # The namespaced operator has done its part; the rest of the session uses the other one.
    testbed.kubectl("delete", "deployment", "smartid-operator", "-n", "smartid", "--wait=false")


def test_outage_shows_within_two_seconds_and_status_drops_what_is_no_longer_known(
        operator: Operator, api_client: client.ApiClient, core: client.CoreV1Api,
        custom: client.CustomObjectsApi, namespace: str, mongo: str) -> None:
    """The health interval is 15 s: Degraded and Ready follow the Mongo pod's events."""
    apps = client.AppsV1Api(api_client)
    custom.create_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, database())
    obj = wait_phase(custom, namespace, "Ready")
    assert obj["status"]["mongo"]["version"]  # known while it answers
    old_pod = core.read_namespaced_pod("mongo-0", namespace).metadata.uid

    scale(apps, namespace, "mongo", 0)
    started = time.monotonic()
    obj = wait_phase(custom, namespace, "Degraded", timeout=30)
    degraded_after = time.monotonic() - started
    reach = condition(obj, "MongoReachable")
    assert reach["status"] == "False" and reach["reason"] == "Unreachable"
    assert condition(obj, "Ready")["status"] == "False"
    # Server-side apply of the whole status: what is no longer known is gone, not stale.
    assert obj["status"]["mongo"] == {"reachable": False}
    assert degraded_after < 2.0, f"Degraded {degraded_after:.2f} s after scale to 0"

    scale(apps, namespace, "mongo", 1)
    # The new mongo-0 (same name, another UID) answering, as the kubelet reports it.
    wait_for(lambda: (p := pod_ready(core, namespace, "mongo-0")) and p.metadata.uid != old_pod,
             timeout=60, interval=0.05, what="the new mongo-0 Ready")
    started = time.monotonic()
    obj = wait_phase(custom, namespace, "Ready", timeout=30)
    ready_after = time.monotonic() - started
    assert condition(obj, "MongoReachable")["status"] == "True"
    assert obj["status"]["mongo"]["version"]
    assert ready_after < 2.0, f"Ready {ready_after:.2f} s after mongo-0 was Ready"
    warnings = [e for e in core.list_namespaced_event(namespace).items
                if e.involved_object.kind == "SmartIDDatabase" and e.type == "Warning"]
    assert any(e.reason == "Unreachable" for e in warnings)
    assert_no_exceptions(operator)


def test_a_spec_change_and_a_health_check_colliding_write_each_transition_once(
        operator: Operator, api_client: client.ApiClient, core: client.CoreV1Api,
        custom: client.CustomObjectsApi, namespace: str, mongo: str) -> None:
    """Spec changes and pod events arrive together on purpose; one worker serialises them,
    so every transition is one Event and the final status matches the last generation."""
    apps = client.AppsV1Api(api_client)
    custom.create_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, database())
    wait_phase(custom, namespace, "Ready")
    scale(apps, namespace, "mongo", 0)
    for size in range(100, 110):  # ten generations while the outage unfolds
        custom.patch_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, "smartid",
                                              {"spec": {"recovery": {"batchSize": size}}})
    obj = wait_for(lambda: (o := get_db(custom, namespace))["status"].get("phase") == "Degraded"
                   and o["status"].get("observedGeneration") == 11 and o,
                   timeout=30, what="Degraded at generation 11")
    # Every condition this pass evaluated carries the last generation; SchemaReady cannot be
    # evaluated without Mongo and keeps the generation it was last seen at.
    assert {c["type"]: c["observedGeneration"] for c in obj["status"]["conditions"]
            if c["type"] != "SchemaReady"} == {"Ready": 11, "MongoReachable": 11,
                                               "ResourcesReady": 11}
    scale(apps, namespace, "mongo", 1)
    wait_phase(custom, namespace, "Ready", timeout=60)

    # Ready and MongoReachable each went True -> False -> True: three Events apiece. The
    # worker posts a pass's Events after its status write, and Kopf posts them in the
    # background: the status shows Ready a moment before the Events of that pass exist.
    expected = {"Ready is False": 1, "Ready is True": 2,
                "MongoReachable is False": 1, "MongoReachable is True": 2}
    try:
        transitions = wait_for(lambda: (t := transition_events(core, namespace)) and all(
            t.count(k) >= n for k, n in expected.items()) and t, timeout=15,
            what="an Event per transition")
    except TimeoutError:
        pytest.fail(f"Events missing: {transition_events(core, namespace)}")
    assert {k: transitions.count(k) for k in expected} == expected, transitions
    events = [e for e in core.list_namespaced_event(namespace).items
              if e.involved_object.kind == "SmartIDDatabase"]
    assert all((e.count or 1) == 1 for e in events), [(e.reason, e.count) for e in events]
    assert [e.reason for e in events].count("MigrationApplied") == 3
    assert_no_exceptions(operator)


def test_a_child_field_the_builder_drops_leaves_the_cluster_with_the_uid_unchanged(
        operator: Operator, core: client.CoreV1Api, custom: client.CustomObjectsApi,
        namespace: str, mongo: str) -> None:
    recovery = {"enabled": True, "storage": {"persistentVolumeClaim": "recordings"}}
    create_claim(core, namespace, "recordings")
    custom.create_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL,
                                           database(recovery=recovery))
    obj = wait_phase(custom, namespace, "Ready")
    settings = core.read_namespaced_config_map("smartid-settings", namespace)
    owner = settings.metadata.owner_references[0]
    assert (owner.kind, owner.name, owner.uid) == ("SmartIDDatabase", "smartid",
                                                   obj["metadata"]["uid"])
    assert owner.controller is True
    assert settings.data["SMARTID_RECOVERY_BATCH_SIZE"] == "500"
    managers = {m.manager for m in settings.metadata.managed_fields}
    assert managers == {"smartid-operator"}, managers

    custom.patch_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, "smartid",
                                          {"spec": {"recovery": {"enabled": False}}})

    def dropped() -> client.V1ConfigMap | None:
        cm = core.read_namespaced_config_map("smartid-settings", namespace)
        return cm if "SMARTID_RECOVERY_BATCH_SIZE" not in (cm.data or {}) else None

    after = wait_for(dropped, timeout=30, what="the recovery settings to leave the ConfigMap")
    assert after.metadata.uid == settings.metadata.uid
    assert after.data["SMARTID_DATABASE"] == "smartid"

    # Someone else's edit and a deletion are put right from the watch, not the 15 s timer.
    core.patch_namespaced_config_map("smartid-settings", namespace,
                                     {"data": {"SMARTID_DATABASE": "elsewhere"}})
    wait_for(lambda: core.read_namespaced_config_map("smartid-settings", namespace)
             .data["SMARTID_DATABASE"] == "smartid", timeout=5, what="the edit reverted")
    core.delete_namespaced_config_map("smartid-settings", namespace)
    wait_for(lambda: core.read_namespaced_config_map("smartid-settings", namespace),
             timeout=5, what="the ConfigMap recreated")
    assert_no_exceptions(operator)


def test_deleting_the_database_lets_the_garbage_collector_remove_children(
        operator: Operator, core: client.CoreV1Api, custom: client.CustomObjectsApi,
        namespace: str, mongo: str) -> None:
    custom.create_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, database())
    wait_phase(custom, namespace, "Ready")
    core.read_namespaced_config_map("smartid-settings", namespace)

    custom.delete_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, "smartid")
    wait_for(lambda: absent(core.read_namespaced_config_map, "smartid-settings", namespace),
             timeout=60, what="the garbage collector to delete the ConfigMap")
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

    # No retry storm: a person must fix this, so the worker looks again at its next health
    # check (15 s after its last pass), not on the backoff of a transient failure (whose
    # first retry comes 5 s after). Counted from the operator's own pass counter.
    def passes() -> float:
        return sum(reconcile_count(operator, namespace, result)
                   for result in ("ok", "invalid", "unavailable"))

    before = passes()
    time.sleep(10)  # a window of the operator's behaviour: past the 5 s, short of the 15 s
    assert passes() == before, f"{passes() - before} passes within 10 s of Failed"

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
    assert (f'smartid_reconciles_total{{name="smartid",namespace="{namespace}",result="ok"}}'
            in text)
    assert f'smartid_mongo_ping_seconds{{name="smartid",namespace="{namespace}"}}' in text
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


def test_more_hanging_databases_than_threads_do_not_delay_a_healthy_one(
        operator: Operator, testbed: TestBed, core: client.CoreV1Api,
        custom: client.CustomObjectsApi, namespace: str, mongo: str) -> None:
    """Health checks are async and hold no thread: more databases whose server accepts
    connections and never answers (each with a 60 s timeout) than the operator has threads
    for Kubernetes calls leave a healthy database unaffected. A check that held a thread
    would leave none for the healthy database's Secret read."""
    hanging = KUBE_THREADS + 4
    silent = SilentServer()
    try:
        hang = {"uriSecretRef": {"name": "hang"}, "workload": {"name": "mongo"},
                "connectTimeoutSeconds": 60}
        core.create_namespaced_secret(namespace, client.V1Secret(
            metadata=client.V1ObjectMeta(name="hang"),
            string_data={"uri": f"mongodb://127.0.0.1:{silent.port}/?directConnection=true"}))
        for i in range(hanging):
            custom.create_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL,
                                                   database(f"hang-{i}", mongo=hang))
        # Checks that held a thread would get no further than one connection per thread.
        wait_for(lambda: len(silent.held) >= hanging, timeout=30,
                 what=f"{hanging} hanging connections")
        started = time.monotonic()
        custom.create_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, database())
        wait_phase(custom, namespace, "Ready", timeout=20)
        took = time.monotonic() - started
        assert took < 10, f"the healthy database took {took:.1f} s"
        for i in range(hanging):  # still waiting on their servers: not Ready, not failed
            hung = get_db(custom, namespace, f"hang-{i}")
            assert (hung.get("status") or {}).get("phase") != "Ready"
    finally:
        silent.close()
    assert_no_exceptions(operator)


def test_credentials_the_server_refuses_fail_naming_the_refusal_and_heal_when_fixed(
        operator: Operator, core: client.CoreV1Api, custom: client.CustomObjectsApi,
        namespace: str, mongo: str) -> None:
    """The server answered and refused: a person must fix the Secret, so Failed, not Degraded
    "did not answer". (The stand-in answers a SCRAM login with AuthenticationFailed, 18, the
    code MongoDB answers a wrong password with.)"""
    with_user = mongo.replace("mongodb://", "mongodb://smartid:n0t-the-password@")
    core.patch_namespaced_secret("smartid-mongo", namespace, {"stringData": {"uri": with_user}})
    custom.create_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, database())
    obj = wait_phase(custom, namespace, "Failed")
    reach = condition(obj, "MongoReachable")
    assert reach["reason"] == "CredentialsRefused", reach
    assert reach["message"].startswith("MongoDB answered and refused the credentials of the "
                                       "URI in spec.mongo.uriSecretRef: "), reach
    assert "n0t-the-password" not in str(obj["status"])
    assert condition(obj, "Ready")["reason"] == "CredentialsRefused"

    core.patch_namespaced_secret("smartid-mongo", namespace, {"stringData": {"uri": mongo}})
    wait_phase(custom, namespace, "Ready", timeout=60)  # the next health check sees the fix
    assert_no_exceptions(operator)


def test_a_spec_the_api_server_refuses_in_a_child_fails_naming_the_field(
        operator: Operator, core: client.CoreV1Api, custom: client.CustomObjectsApi,
        namespace: str, mongo: str) -> None:
    """A time zone is checked before anything is applied; what only the API server can say
    (here an hour range that ends before it starts, which the CRD's pattern admits and
    Kubernetes' cron parser does not) comes back as its 422, and either way the phase is
    Failed, never Progressing."""
    create_claim(core, namespace, "backups")
    backup = {"enabled": True, "timeZone": "Mars/Olympus",
              "storage": {"persistentVolumeClaim": "backups"}}
    custom.create_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL,
                                           database(backup=backup))
    obj = wait_phase(custom, namespace, "Failed")
    resources = condition(obj, "ResourcesReady")
    assert (resources["reason"], resources["message"]) == (
        "InvalidSpec", "spec.backup.timeZone: 'Mars/Olympus' is not a time zone of the IANA "
                       "database")
    assert condition(obj, "MongoReachable")["status"] == "True"  # checked all the same

    custom.patch_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, "smartid", {
        "spec": {"backup": {"timeZone": "Europe/Berlin", "schedule": "0 5-2 * * *"}}})
    obj = wait_for(lambda: (o := get_db(custom, namespace))["status"].get(
        "observedGeneration") == 2 and o, timeout=30, what="generation 2 observed")
    assert obj["status"]["phase"] == "Failed"
    resources = condition(obj, "ResourcesReady")
    assert resources["reason"] == "ChildRejected", resources
    assert resources["message"].startswith(
        f"the API server refused CronJob {namespace}/smartid-backup, made from this spec: "), \
        resources
    assert "spec.schedule" in resources["message"], resources

    custom.patch_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, "smartid", {
        "spec": {"backup": {"schedule": "0 2 * * 0"}}})
    obj = wait_for(lambda: (o := get_db(custom, namespace))["status"].get(
        "observedGeneration") == 3 and o, timeout=30, what="generation 3 observed")
    assert condition(obj, "ResourcesReady")["status"] == "True", obj["status"]
    cronjob = client.BatchV1Api(core.api_client).read_namespaced_cron_job("smartid-backup",
                                                                         namespace)
    assert (cronjob.spec.schedule, cronjob.spec.time_zone) == ("0 2 * * 0", "Europe/Berlin")
    assert_no_exceptions(operator)
