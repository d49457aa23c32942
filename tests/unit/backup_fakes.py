"""Builders shared by the backup unit tests: the Job and pod objects Kubernetes would send
(times in minutes after ``T0``), a pass of the backup observation, and dump manifests (ages
in days before ``NOW``)."""

from __future__ import annotations

import datetime
from typing import Any

from smartid_operator.backup import observe
from smartid_operator.backup.engine.manifest import (
    FAILED,
    PASSED,
    CollectionEntry,
    FileEntry,
    Manifest,
    Verification,
)
from smartid_operator.backup.jobs import BackupMemory
from smartid_operator.manifests import labels
from smartid_operator.spec import BackupSpec

UTC = datetime.UTC
T0 = datetime.datetime(2026, 3, 6, 2, 0, tzinfo=UTC)  # a Friday
SPEC = BackupSpec(enabled=True, schedule="0 2 * * *", claim="backups")


def at(minutes: float) -> str:
    return (T0 + datetime.timedelta(minutes=minutes)).strftime("%Y-%m-%dT%H:%M:%SZ")


def job(name: str, outcome: str | None, *, start: float = 0, end: float = 1, uid: str = "",
        reason: str = "", message: str = "") -> dict[str, Any]:
    status: dict[str, Any] = {"startTime": at(start)}
    if outcome == "Complete":
        status |= {"completionTime": at(end), "conditions": [
            {"type": "Complete", "status": "True", "lastTransitionTime": at(end)}]}
    elif outcome == "Failed":
        status["conditions"] = [{"type": "Failed", "status": "True", "reason": reason,
                                 "message": message, "lastTransitionTime": at(end)}]
    return {"metadata": {"name": name, "namespace": "ns", "uid": uid or f"uid-{name}",
                         "creationTimestamp": at(start),
                         "labels": labels("db", "backup")},
            "status": status}


def pod(job_name: str, *, exit_code: int | None = None, message: str | None = None,
        waiting: tuple[str, str] | None = None, start: float = 0) -> dict[str, Any]:
    state: dict[str, Any]
    if waiting:
        state = {"waiting": {"reason": waiting[0], "message": waiting[1]}}
    elif exit_code is not None:
        state = {"terminated": {"exitCode": exit_code, **({"message": message} if message
                                                          else {})}}
    else:
        state = {"running": {}}
    return {"metadata": {"name": f"{job_name}-p", "namespace": "ns", "creationTimestamp": at(start),
                         "labels": labels("db", "backup"),
                         "ownerReferences": [{"controller": True, "kind": "Job",
                                              "name": job_name}]},
            "status": {"containerStatuses": [{"state": state}]}}


def view(memory: BackupMemory, minutes: float, spec: BackupSpec = SPEC,
         previous: dict[str, Any] | None = None, applied: bool = True) -> observe.BackupView:
    return observe.observe(memory, spec, cronjob="db-backup", applied=applied,
                           apply_message="boom", previous=previous or {},
                           now=T0 + datetime.timedelta(minutes=minutes))


NOW = datetime.datetime(2025, 3, 1, 2, 0, tzinfo=datetime.UTC)


def manifest(name: str, age_days: float, verified: bool | None,
             counts: dict[str, int]) -> Manifest:
    started = NOW - datetime.timedelta(days=age_days)
    verification = None if verified is None else Verification(
        PASSED if verified else FAILED, started, None if verified else "x: content hash differs",
        "builtin", "smartid_verify", 1.0)
    return Manifest(name, "smartid", started, started + datetime.timedelta(seconds=30),
                    "builtin", "v", "7.0", True,
                    tuple(CollectionEntry(c, "collection", n, n * 100, "0" * 64)
                          for c, n in counts.items()),
                    (FileEntry("smartid/a.bson.gz", 1000, "0" * 64),
                     FileEntry("prelude.json.gz", 55, "0" * 64)), verification)
