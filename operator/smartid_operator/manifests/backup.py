"""The backup CronJob: one per SmartIDDatabase with backups enabled.

Kubernetes schedules (time zone, missed runs, suspension, no overlap); each run is a Job of the
operator's own image running ``smartid-operator backup run`` against the backup claim at
``/backups``, which dumps, verifies by a restore into a scratch database, prunes, and leaves
its outcome in the container's termination message, where the operator reads it from the Pod
(``backup/jobs.py``) without ever mounting the volume.
"""

from __future__ import annotations

from typing import Any

from smartid_operator.manifests import child_name, labels
from smartid_operator.manifests.pods import Container, operator_pod
from smartid_operator.spec import DatabaseSpec

COMPONENT = "backup"
STORAGE = "/backups"
CONTAINER = "backup"
# `backup run` exit codes that a retry cannot mend: 2 usage, 3 verification failed.
FINAL_EXIT_CODES = [2, 3]


def cronjob_name(instance: str) -> str:
    return child_name(instance, COMPONENT)


def backup_pod_spec(instance: str, spec: DatabaseSpec, image: str, container: str,
                    args: list[str], *, read_only: bool) -> dict[str, Any]:
    """The pod of a backup or restore Job: the claim at /backups (see ``pods.operator_pod``)."""
    assert spec.backup.claim is not None  # the CRD requires it when backups are enabled
    return operator_pod(instance, spec, image, Container(
        name=container, args=args, claim=spec.backup.claim, mount_path=STORAGE,
        read_only=read_only, env=[{"name": "SMARTID_BACKUP_DIR", "value": STORAGE}],
        requests={"cpu": "100m", "memory": "128Mi"}, memory_limit="1Gi",
        termination_message=True),
        restartPolicy="Never")  # a retry is a new pod: each attempt's message is kept


def backup_cronjob(instance: str, namespace: str, spec: DatabaseSpec,
                   image: str) -> dict[str, Any]:
    backup = spec.backup
    selector = labels(instance, COMPONENT)
    cron: dict[str, Any] = {
        "schedule": backup.schedule,
        "suspend": backup.suspend,
        # A stuck run must never overlap the next; activeDeadlineSeconds ends it instead.
        "concurrencyPolicy": "Forbid",
        "startingDeadlineSeconds": backup.starting_deadline_seconds,
        "successfulJobsHistoryLimit": backup.successful_jobs_history_limit,
        "failedJobsHistoryLimit": backup.failed_jobs_history_limit,
        "jobTemplate": {
            # Copied to every Job, scheduled or `kubectl create job --from`: how the operator
            # maps a Job (and its pods) back to this database.
            "metadata": {"labels": selector},
            "spec": {
                "backoffLimit": backup.backoff_limit,
                "activeDeadlineSeconds": backup.active_deadline_seconds,
                "podFailurePolicy": {"rules": [
                    {"action": "FailJob", "onExitCodes": {
                        "containerName": CONTAINER, "operator": "In",
                        "values": FINAL_EXIT_CODES}},
                    # An evicted or preempted pod is not the run's fault: retry for free.
                    {"action": "Ignore", "onPodConditions": [{"type": "DisruptionTarget"}]},
                ]},
                "template": {
                    "metadata": {"labels": selector},
                    "spec": backup_pod_spec(instance, spec, image, CONTAINER,
                                            ["backup", "run"], read_only=False),
                },
            },
        },
    }
    if backup.time_zone:
        cron["timeZone"] = backup.time_zone
    return {
        "apiVersion": "batch/v1",
        "kind": "CronJob",
        "metadata": {"name": cronjob_name(instance), "namespace": namespace,
                     "labels": selector},
        "spec": cron,
    }
