"""Backup and restore helpers shared by the cluster-tier tests: the claim, the spec, a Job
made from the CronJob as the README says, and waits on status and on a SmartIDRestore."""

from __future__ import annotations

from typing import Any

from kubernetes import client

from smartid_testbed.cluster import wait_for
from smartid_testbed.testbed import TestBed
from tests.cluster.helpers import GROUP, VERSION, condition, get_db, job_outcome

CLAIM = "backups"
CRONJOB = "smartid-backup"


def backups_claim(core: client.CoreV1Api, namespace: str, name: str = CLAIM) -> None:
    core.create_namespaced_persistent_volume_claim(namespace, client.V1PersistentVolumeClaim(
        metadata=client.V1ObjectMeta(name=name),
        spec=client.V1PersistentVolumeClaimSpec(
            access_modes=["ReadWriteOnce"],
            resources=client.V1VolumeResourceRequirements(requests={"storage": "1Gi"}))))


def backup_spec(**extra: Any) -> dict[str, Any]:
    return {"enabled": True, "schedule": "30 3 * * *", "timeZone": "Europe/Berlin",
            "retention": {"days": 7, "keepLast": 2}, "storage": {"persistentVolumeClaim": CLAIM},
            "startingDeadlineSeconds": 120, "activeDeadlineSeconds": 600, "backoffLimit": 0,
            **extra}


def backup_now(bed: TestBed, namespace: str, job: str) -> None:
    """What the README tells a person to do for a backup now."""
    bed.kubectl("create", "job", f"--from=cronjob/{CRONJOB}", job, "-n", namespace)


def backup_job(bed: TestBed, batch: client.BatchV1Api, namespace: str, job: str,
               timeout: float = 120) -> str:
    """``backup_now``, and how the Job ended: ``Complete`` or ``Failed``."""
    backup_now(bed, namespace, job)
    outcome: str = wait_for(lambda: job_outcome(batch, namespace, job), timeout=timeout,
                            what=f"the backup Job {job}")
    return outcome


def wait_backup(custom: client.CustomObjectsApi, namespace: str, what: str,
                check: Any, timeout: float = 60) -> dict[str, Any]:
    def probe() -> dict[str, Any] | None:
        obj = get_db(custom, namespace)
        return obj if check(obj) else None

    result: dict[str, Any] = wait_for(probe, timeout=timeout, what=what)
    return result


def wait_backup_healthy(custom: client.CustomObjectsApi, namespace: str,
                        reason: str) -> dict[str, Any]:
    """The database once its ``BackupHealthy`` condition has ``reason``."""
    return wait_backup(custom, namespace, f"BackupHealthy {reason}", lambda o: (
        (condition(o, "BackupHealthy") or {}).get("reason") == reason))


RESTORES = "smartidrestores"


def wait_restore(custom: client.CustomObjectsApi, namespace: str, name: str) -> dict[str, Any]:
    def done() -> dict[str, Any] | None:
        obj = custom.get_namespaced_custom_object(GROUP, VERSION, namespace, RESTORES, name)
        return obj if (obj.get("status") or {}).get("phase") in ("Succeeded", "Failed") else None

    try:
        result: dict[str, Any] = wait_for(done, timeout=90, what=f"restore {name} finished")
    except TimeoutError as exc:
        last = custom.get_namespaced_custom_object(GROUP, VERSION, namespace, RESTORES, name)
        raise AssertionError(f"{exc}: {last.get('status')}") from None
    return result
