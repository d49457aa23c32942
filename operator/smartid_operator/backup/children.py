"""The backup CronJob (one per SmartIDDatabase with backups enabled) and a SmartIDRestore's Job:
pure builders.

Kubernetes schedules (time zone, missed runs, suspension, no overlap); each run is a Job of the
operator's own image running ``smartid-operator backup run`` against the backup claim at
``/backups`` or a bucket (its keys as env from their Secret, never in args), which dumps,
verifies by a restore into a scratch database, prunes, and leaves its outcome in the
container's termination message, where the operator reads it from the Pod
(``backup/jobs.py``) without ever mounting the volume.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from smartid_operator.manifests import child_name, labels, owner_reference
from smartid_operator.manifests.pods import TERMINATION_PATH, Container, operator_pod
from smartid_operator.spec import DatabaseSpec, RestoreSpec, S3Spec, parse_restore

COMPONENT = "backup"
STORAGE = "/backups"
CONTAINER = "backup"
CA_DIR = "/etc/smartid/s3-ca"
# `backup run` exit codes that a retry cannot mend: 2 usage, 3 verification failed.
FINAL_EXIT_CODES = [2, 3]


def cronjob_name(instance: str) -> str:
    return child_name(instance, COMPONENT)


def s3_env(s3: S3Spec) -> list[dict[str, Any]]:
    """The bucket as the AWS tools' variables; the keys by reference to their Secret."""
    def value(name: str, text: str) -> list[dict[str, Any]]:
        return [{"name": name, "value": text}] if text else []

    def secret(name: str, key: str) -> dict[str, Any]:
        return {"name": name, "valueFrom": {"secretKeyRef": {
            "name": s3.credentials_secret, "key": key}}}

    return [*value("SMARTID_BACKUP_S3_URL", s3.url),
            secret("AWS_ACCESS_KEY_ID", s3.access_key_id_key),
            secret("AWS_SECRET_ACCESS_KEY", s3.secret_access_key_key),
            *value("SMARTID_BACKUP_S3_CREDENTIALS_SECRET", s3.credentials_secret),
            *value("AWS_ENDPOINT_URL", s3.endpoint), *value("AWS_REGION", s3.region),
            *value("SMARTID_BACKUP_S3_FORCE_PATH_STYLE", "true" if s3.force_path_style else ""),
            *value("SMARTID_BACKUP_S3_SSE", s3.server_side_encryption),
            *value("SMARTID_BACKUP_S3_SSE_KMS_KEY_ID", s3.kms_key_id),
            *value("AWS_CA_BUNDLE", f"{CA_DIR}/ca.crt" if s3.ca_bundle else "")]


def ca_volume(s3: S3Spec) -> list[tuple[dict[str, Any], dict[str, Any]]]:
    ref = s3.ca_bundle
    if ref is None:
        return []
    items = [{"key": ref.key, "path": "ca.crt"}]
    source = {"configMap": {"name": ref.name, "items": items}} if ref.kind == "ConfigMap" \
        else {"secret": {"secretName": ref.name, "items": items}}
    return [({"name": "s3-ca", **source},
             {"name": "s3-ca", "mountPath": CA_DIR, "readOnly": True})]


def backup_pod_spec(instance: str, spec: DatabaseSpec, image: str, container: str,
                    args: list[str], *, read_only: bool,
                    s3: S3Spec | None = None) -> dict[str, Any]:
    """The pod of a backup or restore Job: the claim at /backups, or the bucket's settings
    and keys as env (``s3``, default the database's; see ``pods.operator_pod``)."""
    s3 = s3 or spec.backup.s3
    # The outcome goes to the file the pod names as its termination message, and the command
    # is told which: nothing in the image has to guess or look for it.
    args = [*args, f"--termination-log={TERMINATION_PATH}"]
    if s3 is not None:
        storage = Container(name=container, args=args, claim=None, mount_path=STORAGE,
                            env=s3_env(s3), volumes=ca_volume(s3),
                            requests={"cpu": "100m", "memory": "128Mi"}, memory_limit="1Gi",
                            termination_message=True)
    else:
        assert spec.backup.claim is not None  # the CRD requires a storage with backups on
        storage = Container(name=container, args=args, claim=spec.backup.claim,
                            mount_path=STORAGE, read_only=read_only,
                            env=[{"name": "SMARTID_BACKUP_DIR", "value": STORAGE}],
                            requests={"cpu": "100m", "memory": "128Mi"}, memory_limit="1Gi",
                            termination_message=True)
    # A retry is a new pod: each attempt's message is kept.
    return operator_pod(instance, spec, image, storage, restartPolicy="Never")


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


# -- a SmartIDRestore's Job ------------------------------------------------------------------

RESTORE_COMPONENT = "restore"
RESTORE_LABEL = "smartid.io/restore"
KIND, PLURAL = "SmartIDRestore", "smartidrestores"


def job_name(restore: str) -> str:
    return f"{restore}-restore"


def restore_args(spec: RestoreSpec) -> list[str]:
    args = ["backup", "restore", spec.dump, f"--target-database={spec.target_database}"]
    return [*args, "--drop"] if spec.drop else args


def restore_job(restore: Mapping[str, Any], database: DatabaseSpec, image: str) -> dict[str, Any]:
    """``smartid-operator backup restore`` in the operator's image, the database's backup
    claim at /backups read-only (a restore can never touch the dumps) or a bucket
    (``spec.source.s3``, else the database's own), the URI from the database's Secret; owned
    by the SmartIDRestore."""
    meta, spec = restore["metadata"], parse_restore(restore["spec"])
    selector = {**labels(spec.database, RESTORE_COMPONENT), RESTORE_LABEL: meta["name"]}
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {
            "name": job_name(meta["name"]), "namespace": meta["namespace"], "labels": selector,
            "ownerReferences": [owner_reference(restore)]},
        "spec": {
            # One attempt: a half-done restore is not retried into a target it just filled.
            "backoffLimit": 0,
            "activeDeadlineSeconds": database.backup.active_deadline_seconds,
            "template": {
                "metadata": {"labels": selector},
                "spec": backup_pod_spec(spec.database, database, image, "restore",
                                        restore_args(spec), read_only=True, s3=spec.source_s3),
            },
        },
    }
