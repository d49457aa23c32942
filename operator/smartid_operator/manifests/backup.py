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
    """The pod of a backup or restore Job: the claim at /backups, the URI from the Secret, the
    settings from the ConfigMap, nothing else (no API token, no writable root)."""
    assert spec.backup.claim is not None  # the CRD requires it when backups are enabled
    return {
        "restartPolicy": "Never",  # a retry is a new pod: each attempt's message is kept
        "automountServiceAccountToken": False,  # files and Mongo only, no Kubernetes API
        "enableServiceLinks": False,
        "securityContext": {"runAsNonRoot": True, "runAsUser": 65532, "runAsGroup": 65532,
                            "fsGroup": 65532, "seccompProfile": {"type": "RuntimeDefault"}},
        "containers": [{
            "name": container,
            "image": image,
            "args": args,
            "env": [
                {"name": "SMARTID_MONGO_URI", "valueFrom": {"secretKeyRef": {
                    "name": spec.mongo.uri_secret.name, "key": spec.mongo.uri_secret.key}}},
                {"name": "SMARTID_BACKUP_DIR", "value": STORAGE},
            ],
            # Database, retention, gzip: the settings ConfigMap, read when the pod starts.
            "envFrom": [{"configMapRef": {"name": child_name(instance, "settings")}}],
            # The JSON outcome; a crash before it is written leaves the log's end instead.
            "terminationMessagePath": "/dev/termination-log",
            "terminationMessagePolicy": "FallbackToLogsOnError",
            "resources": {"requests": {"cpu": "100m", "memory": "128Mi"},
                          "limits": {"memory": "1Gi"}},
            "securityContext": {"allowPrivilegeEscalation": False,
                                "readOnlyRootFilesystem": True,
                                "capabilities": {"drop": ["ALL"]}},
            "volumeMounts": [{"name": "backups", "mountPath": STORAGE, "readOnly": read_only},
                             # the tools' private --config file, the engines' scratch
                             {"name": "tmp", "mountPath": "/tmp"}],
        }],
        "volumes": [
            {"name": "backups", "persistentVolumeClaim": {"claimName": spec.backup.claim}},
            {"name": "tmp", "emptyDir": {}},
        ],
    }


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
