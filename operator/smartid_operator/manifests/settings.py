"""The settings ConfigMap: the one place the operator's Jobs (backup, reindex, outage test)
read the database's settings from, through ``envFrom``, so a spec change reaches them without
re-rendering every Job template."""

from __future__ import annotations

from typing import Any

from smartid_operator.manifests import child_name, labels
from smartid_operator.spec import DatabaseSpec


def settings_config_map(instance: str, namespace: str, spec: DatabaseSpec) -> dict[str, Any]:
    data = {"SMARTID_DATABASE": spec.mongo.database}  # each key here is read by a CLI
    # Only what is enabled: a disabled capability's settings leave the ConfigMap.
    if spec.backup.enabled:
        data |= {"SMARTID_BACKUP_RETENTION_DAYS": str(spec.backup.retention_days),
                 "SMARTID_BACKUP_KEEP_LAST": str(spec.backup.keep_last),
                 "SMARTID_BACKUP_GZIP": "true" if spec.backup.gzip else "false"}
    if spec.recovery.enabled:
        data |= {"SMARTID_RECOVERY_BATCH_SIZE": str(spec.recovery.batch_size),
                 "SMARTID_RECOVERY_SCAN_INTERVAL_SECONDS": str(spec.recovery.scan_interval_seconds)}
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": child_name(instance, "settings"), "namespace": namespace,
                     "labels": labels(instance, "settings")},
        "data": data,
    }
