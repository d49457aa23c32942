"""Backups in the operator on the real control plane: the operator (under its own ServiceAccount)
declares the CronJob; the real controller-manager makes Jobs of it; the kubelet stand-in runs
the real ``smartid-operator backup run`` with the claim at /backups and reports its termination
message; status, conditions and Events follow from the watch events alone."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pymongo
from kubernetes import client

from smartid_operator.backup import scan
from smartid_testbed.cluster import wait_for
from smartid_testbed.install import apply, render
from smartid_testbed.testbed import TestBed
from tests.cluster.backups import (
    CLAIM,
    CRONJOB,
    RESTORES,
    backup_job,
    backup_now,
    backup_spec,
    backups_claim,
    wait_backup,
    wait_backup_healthy,
    wait_restore,
)
from tests.cluster.conftest import Operator
from tests.cluster.helpers import (
    GROUP,
    PLURAL,
    VERSION,
    assert_no_exceptions,
    condition,
    database,
    scale,
    wait_phase,
)


def db_events(core: client.CoreV1Api, namespace: str) -> list[tuple[str, str]]:
    return [(e.reason, e.message) for e in core.list_namespaced_event(namespace).items
            if e.involved_object.kind == "SmartIDDatabase"]


def visible(root: Path) -> list[str]:
    return sorted(p.name for p in root.iterdir() if not p.name.startswith("."))


def test_the_cronjob_is_declared_and_a_job_made_from_it_leaves_a_verified_dump(
        operator: Operator, testbed: TestBed, api_client: client.ApiClient,
        core: client.CoreV1Api, custom: client.CustomObjectsApi, namespace: str,
        mongo: str) -> None:
    batch = client.BatchV1Api(api_client)
    backups_claim(core, namespace)
    with pymongo.MongoClient(mongo) as mc:
        mc.smartid.parsed_segments.insert_many(
            [{"doc_id": f"d{i}", "tenant_id": "t", "page_number": 1, "text": f"segment {i}"}
             for i in range(120)])
    custom.create_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL,
                                           database(backup=backup_spec()))
    obj = wait_phase(custom, namespace, "Ready", timeout=90)
    assert condition(obj, "BackupScheduled")["status"] == "True", obj["status"]
    assert condition(obj, "BackupHealthy")["reason"] == "AwaitingFirstRun"
    assert obj["status"]["backup"]["cronJob"] == CRONJOB

    cron = api_client.sanitize_for_serialization(
        batch.read_namespaced_cron_job(CRONJOB, namespace))
    assert cron["metadata"]["ownerReferences"][0]["uid"] == obj["metadata"]["uid"]
    spec = cron["spec"]
    assert (spec["schedule"], spec["timeZone"], spec["suspend"], spec["concurrencyPolicy"],
            spec["startingDeadlineSeconds"], spec["successfulJobsHistoryLimit"],
            spec["failedJobsHistoryLimit"]) == ("30 3 * * *", "Europe/Berlin", False, "Forbid",
                                                120, 3, 3)
    job_spec = spec["jobTemplate"]["spec"]
    assert (job_spec["backoffLimit"], job_spec["activeDeadlineSeconds"]) == (0, 600)
    pod = job_spec["template"]["spec"]
    container = pod["containers"][0]
    operator_pod = core.read_namespaced_pod(operator.pod, operator.namespace)
    assert container["image"] == operator_pod.spec.containers[0].image
    assert container["args"] == ["backup", "run",
                                 f"--termination-log={container['terminationMessagePath']}"]
    assert {"name": "SMARTID_MONGO_URI", "valueFrom": {"secretKeyRef": {
        "name": "smartid-mongo", "key": "uri"}}} in container["env"]
    assert container["envFrom"] == [{"configMapRef": {"name": "smartid-settings"}}]
    assert {m["mountPath"] for m in container["volumeMounts"]} == {"/backups", "/tmp"}
    assert {"name": "data", "persistentVolumeClaim": {"claimName": CLAIM}} in pod["volumes"]
    assert pod["automountServiceAccountToken"] is False
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    settings = core.read_namespaced_config_map("smartid-settings", namespace).data
    assert settings["SMARTID_BACKUP_KEEP_LAST"] == "2"

    assert backup_job(testbed, batch, namespace, "backup-now", timeout=90) == "Complete", \
        testbed.pod_logs(namespace, "backup-now")
    root = testbed.claim_path(namespace, CLAIM)
    dumps = scan(root).dumps
    assert [d.name for d in dumps] == visible(root) and len(dumps) == 1
    dump = dumps[0]
    assert dump.counts["parsed_segments"] == 120 and dump.verified is True
    assert (root / dump.name / "smartid" / "parsed_segments.bson.gz").is_file()
    manifest = json.loads((root / dump.name / "smartid-manifest.json").read_text())
    assert manifest["database"] == "smartid"

    obj = wait_backup(custom, namespace, "status.backup showing the dump", lambda o: (
        o["status"].get("backup", {}).get("latestDump", {}).get("name") == dump.name
        and (condition(o, "BackupHealthy") or {}).get("reason") == "LastBackupSucceeded"))
    section = obj["status"]["backup"]
    assert section["lastSuccessfulJob"] == "backup-now"
    assert section["lastSuccessfulTime"] >= obj["metadata"]["creationTimestamp"]
    latest = section["latestDump"]
    assert (latest["documents"], latest["counts"]["parsed_segments"], latest["verified"]) == \
        (dump.documents, 120, True)
    assert section["lastVerifiedDump"]["name"] == dump.name and section["dumps"] == 1
    assert "lastFailure" not in section and "active" not in section
    assert obj["status"]["phase"] == "Ready"
    # The printer column reads it.
    table = testbed.kubectl("get", "sidb", "smartid", "-n", namespace)
    assert "LAST BACKUP" in table and "<unknown>" not in table.splitlines()[1], table
    wait_for(lambda: [r for r, _ in db_events(core, namespace)].count("BackupSucceeded") == 1,
             timeout=15, what=f"one BackupSucceeded Event in {db_events(core, namespace)}")
    message = next(m for r, m in db_events(core, namespace) if r == "BackupSucceeded")
    assert dump.name in message and "verified" in message
    # Declared once and never reported missing in between.
    assert "NotApplied" not in [r for r, _ in db_events(core, namespace)]
    assert_no_exceptions(operator)


def test_the_sample_declares_its_backup_cronjob(
        operator: Operator, testbed: TestBed, api_client: client.ApiClient,
        custom: client.CustomObjectsApi, namespace: str, mongo: str) -> None:
    """`kubectl apply -k deploy/samples` (here into the test's namespace, beside its mongo)."""
    docs = [d for d in render(testbed, "deploy/samples")
            if d["kind"] in ("PersistentVolumeClaim", "SmartIDDatabase")]
    for doc in docs:
        doc["metadata"].pop("namespace", None)
    apply(testbed, docs, namespace=namespace)
    declared = next(d for d in docs if d["kind"] == "SmartIDDatabase")["spec"]["backup"]
    assert declared["enabled"] is True
    wait_backup(custom, namespace, "BackupScheduled True", lambda o: (
        (condition(o, "BackupScheduled") or {}).get("status") == "True"))
    cron = client.BatchV1Api(api_client).read_namespaced_cron_job(CRONJOB, namespace)
    assert cron.spec.schedule == declared["schedule"] and cron.spec.suspend is False
    assert cron.spec.concurrency_policy == "Forbid"
    pod = cron.spec.job_template.spec.template.spec
    assert pod.volumes[0].persistent_volume_claim.claim_name == \
        declared["storage"]["persistentVolumeClaim"]
    settings = client.CoreV1Api(api_client).read_namespaced_config_map(
        "smartid-settings", namespace).data
    assert (settings["SMARTID_BACKUP_RETENTION_DAYS"], settings["SMARTID_BACKUP_KEEP_LAST"]) \
        == (str(declared["retention"]["days"]), str(declared["retention"]["keepLast"]))
    assert_no_exceptions(operator)


def test_mongo_down_during_a_backup_fails_the_job_and_backup_healthy_says_why(
        operator: Operator, testbed: TestBed, api_client: client.ApiClient,
        core: client.CoreV1Api, custom: client.CustomObjectsApi, namespace: str,
        mongo: str) -> None:
    batch, apps = client.BatchV1Api(api_client), client.AppsV1Api(api_client)
    backups_claim(core, namespace)
    custom.create_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL,
                                           database(backup=backup_spec()))
    wait_phase(custom, namespace, "Ready", timeout=90)
    assert backup_job(testbed, batch, namespace, "good", timeout=90) == "Complete"
    root = testbed.claim_path(namespace, CLAIM)
    before = visible(root)
    assert len(before) == 1

    scale(apps, namespace, "mongo", 0)
    wait_phase(custom, namespace, "Degraded", timeout=30)
    assert backup_job(testbed, batch, namespace, "during-outage", timeout=90) == "Failed"
    # Nothing half-written under a final name, and no temporary left behind either.
    assert visible(root) == before
    assert [p.name for p in root.iterdir() if p.name.startswith(".tmp-")] == []

    obj = wait_backup_healthy(custom, namespace, "LastBackupFailed")
    healthy = condition(obj, "BackupHealthy")
    failure = obj["status"]["backup"]["lastFailure"]
    assert failure["job"] == "during-outage" and failure["reason"], failure
    assert "during-outage" in healthy["message"] and failure["reason"] in healthy["message"]
    # The last good dump is still the one before the outage.
    assert obj["status"]["backup"]["latestDump"]["name"] == before[0]
    assert obj["status"]["backup"]["lastSuccessfulJob"] == "good"
    wait_for(lambda: [r for r, _ in db_events(core, namespace)].count("BackupFailed") == 1,
             timeout=15, what="one BackupFailed Event")
    print(f"backup during the outage: {failure['reason']}")

    # Mongo back, a backup succeeds: healthy again.
    scale(apps, namespace, "mongo", 1)
    wait_phase(custom, namespace, "Ready", timeout=90)
    assert backup_job(testbed, batch, namespace, "after-outage", timeout=90) == "Complete"
    wait_backup(custom, namespace, "BackupHealthy True", lambda o: (
        (condition(o, "BackupHealthy") or {}).get("status") == "True"))
    assert_no_exceptions(operator)


def test_a_missing_secret_is_named_in_status_and_switching_off_removes_the_cronjob(
        operator: Operator, testbed: TestBed, api_client: client.ApiClient,
        core: client.CoreV1Api, custom: client.CustomObjectsApi, namespace: str) -> None:
    batch = client.BatchV1Api(api_client)
    backups_claim(core, namespace)
    custom.create_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL,
                                           database(backup=backup_spec()))
    wait_backup(custom, namespace, "BackupScheduled True", lambda o: (
        (condition(o, "BackupScheduled") or {}).get("status") == "True"))
    backup_now(testbed, namespace, "no-secret")
    obj = wait_backup_healthy(custom, namespace, "JobCannotStart")
    message = condition(obj, "BackupHealthy")["message"]
    assert "no-secret" in message and 'secret "smartid-mongo" not found' in message, message
    assert obj["status"]["backup"]["active"][0] == {
        "job": "no-secret", "startTime": obj["status"]["backup"]["active"][0]["startTime"],
        "waiting": "CreateContainerConfigError"}
    assert condition(obj, "MongoReachable")["reason"] == "SecretNotFound"

    custom.patch_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, "smartid",
                                          {"spec": {"backup": {"enabled": False}}})

    def gone() -> bool:
        try:
            batch.read_namespaced_cron_job(CRONJOB, namespace)
        except client.ApiException as exc:
            return exc.status == 404
        return False

    wait_for(gone, timeout=30, what="the CronJob deleted")
    obj = wait_backup(custom, namespace, "generation 2 observed",
                      lambda o: o["status"].get("observedGeneration") == 2)
    assert condition(obj, "BackupScheduled") is None and condition(obj, "BackupHealthy") is None
    assert "backup" not in obj["status"]
    assert_no_exceptions(operator)


def restore(name: str, target: str, dump: str = "latest-verified",
            drop: bool = False) -> dict[str, Any]:
    spec: dict[str, Any] = {"database": "smartid", "dump": dump, "targetDatabase": target}
    if drop:
        spec["drop"] = True
    return {"apiVersion": f"{GROUP}/{VERSION}", "kind": "SmartIDRestore",
            "metadata": {"name": name}, "spec": spec}


def test_a_restore_resource_restores_a_named_dump_and_refuses_a_non_empty_target(
        operator: Operator, testbed: TestBed, api_client: client.ApiClient,
        core: client.CoreV1Api, custom: client.CustomObjectsApi, namespace: str,
        mongo: str) -> None:
    batch = client.BatchV1Api(api_client)
    backups_claim(core, namespace)
    with pymongo.MongoClient(mongo) as mc:
        mc.smartid.notes.insert_many([{"n": i} for i in range(50)])
        mc.smartid.notes.create_index("n", name="n_1")
    custom.create_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL,
                                           database(backup=backup_spec()))
    wait_phase(custom, namespace, "Ready", timeout=90)
    assert backup_job(testbed, batch, namespace, "b1", timeout=90) == "Complete"
    root = testbed.claim_path(namespace, CLAIM)
    dump = scan(root).dumps[0]
    files_before = sorted(str(p.relative_to(root)) for p in root.rglob("*"))

    custom.create_namespaced_custom_object(GROUP, VERSION, namespace, RESTORES,
                                           restore("r1", "smartid_restored", dump.name))
    done = wait_restore(custom, namespace, "r1")
    status = done["status"]
    assert status["phase"] == "Succeeded", (status, testbed.pod_logs(namespace, "r1-restore"))
    assert (status["dump"], status["documents"]) == (dump.name, dump.documents)
    assert status["counts"]["notes"] == 50 and status["job"] == "r1-restore"
    with pymongo.MongoClient(mongo) as mc:
        restored = mc.smartid_restored
        assert restored.notes.count_documents({}) == 50
        assert "n_1" in {i["name"] for i in restored.notes.list_indexes()}
    job = api_client.sanitize_for_serialization(batch.read_namespaced_job("r1-restore",
                                                                          namespace))
    assert job["metadata"]["ownerReferences"][0]["uid"] == done["metadata"]["uid"]
    mount = job["spec"]["template"]["spec"]["containers"][0]["volumeMounts"][0]
    assert (mount["mountPath"], mount["readOnly"]) == ("/backups", True)

    # Again into the same, now non-empty, target: refused, and nothing written.
    custom.create_namespaced_custom_object(GROUP, VERSION, namespace, RESTORES,
                                           restore("r2", "smartid_restored"))
    status = wait_restore(custom, namespace, "r2")["status"]
    assert (status["phase"], status["reason"]) == ("Failed", "Refused"), status
    assert "not empty" in status["message"] and "spec.drop" in status["message"]
    with pymongo.MongoClient(mongo) as mc:
        assert mc.smartid_restored.notes.count_documents({}) == 50

    # Told to replace: the latest verified dump over it.
    with pymongo.MongoClient(mongo) as mc:
        mc.smartid_restored.notes.insert_one({"n": "extra"})
    custom.create_namespaced_custom_object(GROUP, VERSION, namespace, RESTORES,
                                           restore("r3", "smartid_restored", drop=True))
    status = wait_restore(custom, namespace, "r3")["status"]
    assert (status["phase"], status["dump"]) == ("Succeeded", dump.name), status
    with pymongo.MongoClient(mongo) as mc:
        assert mc.smartid_restored.notes.count_documents({}) == 50
    # The dumps were only read.
    assert sorted(str(p.relative_to(root)) for p in root.rglob("*")) == files_before
    # One restore is one restore.
    try:
        custom.patch_namespaced_custom_object(GROUP, VERSION, namespace, RESTORES, "r3",
                                              {"spec": {"targetDatabase": "other"}})
        raise AssertionError("a restore's spec was changed")
    except client.ApiException as exc:
        assert exc.status == 422 and "cannot be changed" in exc.body
    reasons = [e.reason for e in core.list_namespaced_event(namespace).items
               if e.involved_object.kind == "SmartIDRestore"]
    assert reasons.count("RestoreSucceeded") == 2 and reasons.count("RestoreFailed") == 1
    assert_no_exceptions(operator)
