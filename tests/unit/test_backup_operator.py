"""Backups in the operator, pure parts: the CronJob builder, the Job memory fed by watch events,
and ``status.backup`` with its conditions; and the worker posting one Event per finished Job."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest

from smartid_operator.backup.children import backup_cronjob
from smartid_operator.backup.jobs import BackupMemory, JobMemory
from smartid_operator.reconcile import desired_children
from smartid_operator.spec import BackupSpec, parse
from tests.unit.backup_fakes import T0, at, job, pod, view
from tests.unit.worker_fakes import FakeKube, db_body, registry_for, settle

DUMP = {"name": "db-20260306T020000Z", "time": at(0), "sizeBytes": 4096, "documents": 120,
        "verified": True, "counts": {"parsed_segments": 120}}
OK = json.dumps({"result": "Succeeded", "reason": None, "dump": DUMP,
                 "verification": {"result": "Passed", "reason": None},
                 "backups": {"latestDump": None, "dumps": 2,
                             "lastVerifiedDump": {**DUMP, "verified": True}}})
DOWN = json.dumps({"result": "Failed", "reason": "ServerSelectionTimeoutError: refused",
                   "backups": None})


# -- the CronJob -------------------------------------------------------------------------------

def test_the_cronjob_carries_the_spec_and_runs_the_entrypoint_safely() -> None:
    spec = parse({"mongo": {"uriSecretRef": {"name": "sec", "key": "k"},
                            "workload": {"name": "m"}},
                  "backup": {"enabled": True, "schedule": "15 1 * * *",
                             "timeZone": "Europe/Berlin", "suspend": True,
                             "storage": {"persistentVolumeClaim": "bk"},
                             "startingDeadlineSeconds": 90, "activeDeadlineSeconds": 900,
                             "backoffLimit": 2, "successfulJobsHistoryLimit": 5,
                             "failedJobsHistoryLimit": 4}})
    cron = backup_cronjob("db", "ns", spec, "registry/smartid-operator:1.2")
    assert cron["metadata"]["name"] == "db-backup"
    s = cron["spec"]
    assert (s["schedule"], s["timeZone"], s["suspend"], s["concurrencyPolicy"],
            s["startingDeadlineSeconds"], s["successfulJobsHistoryLimit"],
            s["failedJobsHistoryLimit"]) == ("15 1 * * *", "Europe/Berlin", True, "Forbid", 90,
                                             5, 4)
    job_spec = s["jobTemplate"]["spec"]
    assert (job_spec["backoffLimit"], job_spec["activeDeadlineSeconds"]) == (2, 900)
    # Jobs, scheduled or by hand, and their pods carry what maps them back to the database.
    labels = s["jobTemplate"]["metadata"]["labels"]
    assert labels["app.kubernetes.io/instance"] == "db"
    assert labels["app.kubernetes.io/component"] == "backup"
    assert job_spec["template"]["metadata"]["labels"] == labels
    assert job_spec["podFailurePolicy"]["rules"][0]["onExitCodes"]["values"] == [2, 3]
    pod_spec = job_spec["template"]["spec"]
    container = pod_spec["containers"][0]
    assert container["image"] == "registry/smartid-operator:1.2"
    # The outcome goes to the file the pod keeps as its termination message.
    assert container["args"] == ["backup", "run",
                                 f"--termination-log={container['terminationMessagePath']}"]
    assert "SMARTID_MONGO_URI" not in json.dumps(container["args"])
    env = {e["name"]: e for e in container["env"]}
    assert env["SMARTID_MONGO_URI"]["valueFrom"] == {
        "secretKeyRef": {"name": "sec", "key": "k"}}
    assert env["SMARTID_BACKUP_DIR"]["value"] == "/backups"
    assert container["envFrom"] == [{"configMapRef": {"name": "db-settings"}}]
    assert container["terminationMessagePolicy"] == "FallbackToLogsOnError"
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert pod_spec["automountServiceAccountToken"] is False
    assert pod_spec["securityContext"]["runAsNonRoot"] is True
    assert pod_spec["restartPolicy"] == "Never"
    mounts = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
    volumes = {v["name"]: v for v in pod_spec["volumes"]}
    assert volumes[mounts["/backups"]]["persistentVolumeClaim"] == {"claimName": "bk"}
    assert "emptyDir" in volumes[mounts["/tmp"]]


def test_no_time_zone_is_left_to_the_controller_and_disabled_means_delete() -> None:
    base = {"mongo": {"uriSecretRef": {"name": "s"}, "workload": {"name": "m"}}}
    spec = parse({**base, "backup": {"enabled": True,
                                     "storage": {"persistentVolumeClaim": "bk"}}})
    assert "timeZone" not in backup_cronjob("db", "ns", spec, "img")["spec"]
    children = {(k, n): m for k, n, m in desired_children("db", "ns", spec, "img")}
    assert children[("CronJob", "db-backup")] is not None
    off = {(k, n): m for k, n, m in desired_children("db", "ns", parse(base), "img")}
    assert off[("CronJob", "db-backup")] is None


# -- the memory ----------------------------------------------------------------------------------

def test_the_initial_listing_is_not_news_and_a_deleted_job_is_forgotten() -> None:
    memory = JobMemory()
    assert memory.job_event(None, job("old", "Complete"))
    assert "uid-old" in memory.announced
    assert memory.job_event("ADDED", job("new", None))
    assert "uid-new" not in memory.announced
    assert memory.pod_event(pod("new", exit_code=0, message=OK))
    # The pod's deletion event still carries its status; a bare one does not erase it.
    assert not memory.pod_event(pod("new"))
    assert memory.latest_pod("new").report["result"] == "Succeeded"  # type: ignore[union-attr]
    assert memory.job_event("DELETED", job("new", None))
    assert "new" not in memory.jobs and "new" not in memory.pods
    assert not memory.pod_event({"metadata": {"name": "x", "ownerReferences": []}})


# -- status and conditions -----------------------------------------------------------------------

def test_a_success_fills_the_section_and_is_announced_once_its_report_is_in() -> None:
    memory = BackupMemory()
    memory.job_event("ADDED", job("b1", "Complete", end=3))
    early = view(memory, 3.1)
    assert early.outcomes == [] and early.recheck_after == 1.0  # the pod's event is coming
    memory.pod_event(pod("b1", exit_code=0, message=OK))
    v = view(memory, 3.2)
    assert v.section["lastSuccessfulTime"] == at(3)
    assert v.section["lastSuccessfulJob"] == "b1"
    assert v.section["latestDump"] == DUMP and v.section["dumps"] == 2
    assert v.section["lastVerifiedDump"]["name"] == DUMP["name"]
    assert v.section["nextScheduleTime"] == "2026-03-07T02:00:00Z"
    assert (v.healthy.ok, v.healthy.reason) == (True, "LastBackupSucceeded")
    assert (v.scheduled.ok, v.scheduled.reason) == (True, "Scheduled")
    assert [o.job for o in v.outcomes] == ["b1"] and v.outcomes[0].succeeded
    assert "120 documents" in v.outcomes[0].message
    # A report that never comes: announced anyway after a while, with what is known.
    memory2 = BackupMemory()
    memory2.job_event("ADDED", job("b2", "Complete", end=3))
    assert view(memory2, 4).outcomes[0].message == "backup Job b2: completed"


@pytest.mark.parametrize(("pod_body", "job_reason", "expected"), [
    (pod("f", exit_code=1, message=DOWN), "", "ServerSelectionTimeoutError: refused"),
    # FallbackToLogsOnError: the log's end, its last line.
    (pod("f", exit_code=1, message="Traceback (most recent call last):\nKeyError: 'x'\n"),
     "", "KeyError: 'x'"),
    (None, "DeadlineExceeded", "DeadlineExceeded: Job was active longer than specified"),
])
def test_a_failure_says_why_and_outranks_an_older_success(
        pod_body: dict[str, Any] | None, job_reason: str, expected: str) -> None:
    memory = BackupMemory()
    memory.job_event("ADDED", job("ok", "Complete", end=1))
    memory.pod_event(pod("ok", exit_code=0, message=OK))
    memory.job_event("ADDED", job("f", "Failed", start=5, end=6, reason=job_reason,
                                  message="Job was active longer than specified"
                                  if job_reason else ""))
    if pod_body:
        memory.pod_event(pod_body)
    v = view(memory, 30)
    assert v.section["lastFailure"] == {"time": at(6), "job": "f", "reason": expected}
    assert (v.healthy.ok, v.healthy.reason) == (False, "LastBackupFailed")
    assert expected in v.healthy.message and "f" in v.healthy.message
    assert v.section["latestDump"] == DUMP  # the last good dump is still there
    failed = [o for o in v.outcomes if not o.succeeded]
    assert failed and expected in failed[0].message


def test_a_pod_that_cannot_start_is_named() -> None:
    memory = BackupMemory()
    memory.job_event("ADDED", job("stuck", None))
    memory.pod_event(pod("stuck", waiting=("CreateContainerConfigError",
                                           'secret "mongo" not found')))
    v = view(memory, 1)
    assert (v.healthy.ok, v.healthy.reason) == (False, "JobCannotStart")
    assert 'stuck cannot start its pod: CreateContainerConfigError: secret "mongo" not found' \
        in v.healthy.message
    assert v.section["active"] == [{"job": "stuck", "startTime": at(0),
                                    "waiting": "CreateContainerConfigError"}]


def test_what_the_jobs_no_longer_show_is_carried_over() -> None:
    previous = {"lastSuccessfulTime": at(1), "lastSuccessfulJob": "gone", "latestDump": DUMP,
                "lastFailure": {"time": at(-60), "job": "older", "reason": "x"},
                "lastScheduleTime": at(0), "dumps": 3}
    v = view(BackupMemory(), 10, previous=previous)
    for key in ("lastSuccessfulTime", "lastSuccessfulJob", "latestDump", "lastFailure",
                "lastScheduleTime", "dumps"):
        assert v.section[key] == previous[key]
    assert (v.healthy.ok, v.healthy.reason) == (True, "LastBackupSucceeded")
    assert v.outcomes == []


@pytest.mark.parametrize(("schedule", "minutes", "overdue"), [
    ("0 2 * * *", 48 * 60 + 59, False),       # two runs due, the second may still be going
    ("0 2 * * *", 49 * 60 + 1, True),         # the second run had its hour: alarm
    ("0 2 * * 1-5", 3 * 24 * 60, False),       # Friday's success, Monday's run: the weekend
    ("0 2 * * 1-5", 5 * 24 * 60 + 31, True),   # Monday and Tuesday missed
    ("*/10 * * * *", 25, False),
    ("*/10 * * * *", 26, True),
])
def test_overdue_after_two_missed_runs(schedule: str, minutes: float, overdue: bool) -> None:
    spec = BackupSpec(enabled=True, schedule=schedule, claim="b")
    v = view(BackupMemory(), minutes, spec, previous={"lastSuccessfulTime": at(0)})
    assert (v.healthy.reason == "BackupOverdue") is overdue, v.healthy
    if overdue:
        assert not v.healthy.ok and at(0) in v.healthy.message


def test_a_first_run_is_awaited_then_overdue_from_the_cronjob_creation() -> None:
    memory = BackupMemory()
    memory.cronjob_event("ADDED", {"metadata": {"creationTimestamp": at(0)},
                                   "status": {"lastScheduleTime": at(0)}})
    v = view(memory, 60)
    assert (v.healthy.ok, v.healthy.reason) == (True, "AwaitingFirstRun")
    assert v.section["lastScheduleTime"] == at(0)
    assert view(memory, 49 * 60 + 1).healthy.reason == "BackupOverdue"


def test_a_first_job_whose_pod_reported_before_the_job_completed_is_not_no_run() -> None:
    """The pod's report (what the storage holds, retention) can arrive a pass before the Job's
    completion: the condition then names the running Job rather than saying nothing ran."""
    memory = BackupMemory()
    memory.job_event("ADDED", job("b1", None))
    memory.pod_event(pod("b1", exit_code=0, message=OK))
    v = view(memory, 2)
    assert v.section["dumps"] == 2  # what the report says of the storage, shown already
    assert (v.healthy.ok, v.healthy.reason) == (True, "AwaitingFirstRun")
    assert v.healthy.message == "no backup has completed yet; backup Job b1 is running"


def test_suspended_and_not_applied() -> None:
    suspended = BackupSpec(enabled=True, schedule="0 2 * * *", claim="b", suspend=True)
    v = view(BackupMemory(), 10 * 24 * 60, suspended, previous={"lastSuccessfulTime": at(0)})
    assert (v.scheduled.ok, v.scheduled.reason) == (True, "Suspended")
    assert v.healthy.ok and v.section["suspended"] is True
    assert "nextScheduleTime" not in v.section
    v = view(BackupMemory(), 1, applied=False)
    assert (v.scheduled.ok, v.scheduled.reason) == (False, "NotApplied")
    assert "boom" in v.scheduled.message


# -- the worker: one Event per finished Job ------------------------------------------------------

def test_each_finished_job_is_announced_once() -> None:
    async def scenario() -> list[tuple[str, str]]:
        kube, events = FakeKube(), []
        registry = registry_for(kube, events)
        body = db_body()
        body["spec"]["backup"] = {"enabled": True, "storage": {"persistentVolumeClaim": "b"}}
        # before the database
        registry.heard("batch", "v1", "jobs", None, job("before-start", "Complete"))
        registry.observe(None, body)
        await settle()
        registry.heard("batch", "v1", "jobs", "ADDED", job("b1", None))
        registry.heard("batch", "v1", "jobs", "MODIFIED", job("b1", "Complete", end=2))
        registry.heard("", "v1", "pods", "MODIFIED", pod("b1", exit_code=0, message=OK))
        await settle()
        # again: no news
        registry.heard("batch", "v1", "jobs", "MODIFIED", job("b1", "Complete", end=2))
        registry.heard("", "v1", "pods", "MODIFIED", pod("b1", exit_code=0, message=OK))
        await settle()
        await registry.stop()
        return events

    events = asyncio.run(scenario())
    assert [e for e in events if e[1].startswith("backup Job")] == [
        ("Normal", f"backup Job b1: dump {DUMP['name']}: 120 documents, 4,096 bytes, verified "
                   f"by a restore")]


# -- restores ------------------------------------------------------------------------------------

def _restore(status: dict[str, Any] | None = None, drop: bool = False) -> dict[str, Any]:
    return {"apiVersion": "smartid.io/v1alpha1", "kind": "SmartIDRestore",
            "metadata": {"name": "r", "namespace": "ns", "uid": "ru", "generation": 1},
            "spec": {"database": "db", "dump": "latest-verified", "targetDatabase": "copy",
                     "drop": drop}, "status": status or {}}


DB_SPEC = parse({"mongo": {"uriSecretRef": {"name": "s"}, "workload": {"name": "m"}},
                 "backup": {"storage": {"persistentVolumeClaim": "bk"}}})
RESTORED = json.dumps({"result": "Succeeded", "reason": None, "refused": False,
                       "restore": {"dump": "db-1", "target": "copy", "documents": 7,
                                   "counts": {"a": 7}}})
REFUSED = json.dumps({"result": "Failed", "reason": "target database 'copy' is not empty (1 "
                      "collection(s): a); pass --drop to replace", "refused": True,
                      "restore": {"dump": "db-1", "target": "copy"}})


def test_a_restore_starts_once_and_ends_with_what_its_pod_reported() -> None:
    from smartid_operator.backup.children import restore_job
    from smartid_operator.backup.jobs import JobState, pod_state
    from smartid_operator.backup.restores import decide

    now = T0
    d = decide(_restore(), None, None, None, job_gone=False, now=now)
    assert (d.status["phase"], d.status["reason"], d.retry) == ("Pending", "DatabaseNotFound",
                                                                True)
    d = decide(_restore(), DB_SPEC, None, None, job_gone=False, now=now)
    assert d.create_job and d.status["phase"] == "Running"
    job_manifest = restore_job(_restore(drop=True), DB_SPEC, "img")
    container = job_manifest["spec"]["template"]["spec"]["containers"][0]
    assert container["args"] == ["backup", "restore", "latest-verified",
                                 "--target-database=copy", "--drop",
                                 f"--termination-log={container['terminationMessagePath']}"]
    assert container["volumeMounts"][0] == {"name": "data", "mountPath": "/backups",
                                            "readOnly": True}
    assert container["envFrom"] == [{"configMapRef": {"name": "db-settings"}}]
    assert job_manifest["metadata"]["ownerReferences"] == [
        {"apiVersion": "smartid.io/v1alpha1", "kind": "SmartIDRestore", "name": "r", "uid": "ru",
         "controller": True, "blockOwnerDeletion": True}]
    assert job_manifest["spec"]["backoffLimit"] == 0

    done = JobState.of(job("r-restore", "Complete", end=2))
    d = decide(_restore(d.status), DB_SPEC, done, pod_state(pod("r-restore", exit_code=0,
                                                                message=RESTORED)),
               job_gone=False, now=now)
    assert (d.status["phase"], d.status["dump"], d.status["documents"], d.status["counts"]) \
        == ("Succeeded", "db-1", 7, {"a": 7})
    assert not d.create_job
    # Finished is final: a deleted Job or anything later changes nothing.
    assert decide(_restore(d.status), DB_SPEC, None, None, job_gone=True,
                  now=now).status == d.status

    failed = JobState.of(job("r-restore", "Failed", end=2, reason="BackoffLimitExceeded"))
    d = decide(_restore({"phase": "Running"}), DB_SPEC, failed,
               pod_state(pod("r-restore", exit_code=4, message=REFUSED)), job_gone=False,
               now=now)
    assert (d.status["phase"], d.status["reason"]) == ("Failed", "Refused")
    assert "not empty" in d.status["message"] and "spec.drop: true" in d.status["message"]
    d = decide(_restore({"phase": "Running"}), DB_SPEC, None, None, job_gone=True, now=now)
    assert (d.status["phase"], d.status["reason"]) == ("Failed", "JobDeleted")
    no_storage = parse({"mongo": {"uriSecretRef": {"name": "s"}, "workload": {"name": "m"}}})
    d = decide(_restore(), no_storage, None, None, job_gone=False, now=now)
    assert (d.status["phase"], d.status["reason"]) == ("Failed", "NoBackupStorage")
