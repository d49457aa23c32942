"""The Job of a SmartIDRestore: ``smartid-operator backup restore`` in the operator's image,
the database's backup claim at /backups read-only (a restore can never touch the dumps) or a
bucket (``spec.source.s3``, else the database's own), the URI from the database's Secret.
Owned by the SmartIDRestore."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from smartid_operator.backup.children import backup_pod_spec
from smartid_operator.manifests import labels, owner_reference
from smartid_operator.spec import DatabaseSpec, RestoreSpec, parse_restore

COMPONENT = "restore"
RESTORE_LABEL = "smartid.io/restore"
KIND, PLURAL = "SmartIDRestore", "smartidrestores"


def job_name(restore: str) -> str:
    return f"{restore}-restore"


def restore_args(spec: RestoreSpec) -> list[str]:
    args = ["backup", "restore", spec.dump, f"--target-database={spec.target_database}"]
    return [*args, "--drop"] if spec.drop else args


def restore_job(restore: Mapping[str, Any], database: DatabaseSpec, image: str) -> dict[str, Any]:
    meta, spec = restore["metadata"], parse_restore(restore["spec"])
    selector = {**labels(spec.database, COMPONENT), RESTORE_LABEL: meta["name"]}
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
