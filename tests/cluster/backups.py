"""Backup and restore helpers shared by the cluster-tier tests: the claim, the spec, a Job
made from the CronJob as the README says, and waits on status and on a SmartIDRestore."""

from __future__ import annotations

from typing import Any

from kubernetes import client

from smartid_testbed.cluster import wait_for
from smartid_testbed.testbed import TestBed
from tests.cluster.helpers import GROUP, VERSION, get_db

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


def job_outcome(batch: client.BatchV1Api, namespace: str, name: str) -> str | None:
    job = batch.read_namespaced_job(name, namespace)
    for cond in job.status.conditions or []:
        if cond.type in ("Complete", "Failed") and cond.status == "True":
            return str(cond.type)
    return None


def backup_now(bed: TestBed, namespace: str, job: str) -> None:
    """What the README tells a person to do for a backup now."""
    bed.kubectl("create", "job", f"--from=cronjob/{CRONJOB}", job, "-n", namespace)


def wait_backup(custom: client.CustomObjectsApi, namespace: str, what: str,
                check: Any, timeout: float = 60) -> dict[str, Any]:
    def probe() -> dict[str, Any] | None:
        obj = get_db(custom, namespace)
        return obj if check(obj) else None

    result: dict[str, Any] = wait_for(probe, timeout=timeout, what=what)
    return result


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
