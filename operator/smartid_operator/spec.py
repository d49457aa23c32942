"""A typed, read-only view of a SmartIDDatabase spec.

The API server's schema has already applied defaults and refused bad input; parsing here is
for types and for the few rules only the operator can check (the Secret, the workload).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from smartid_operator.errors import ConfigError


@dataclass(frozen=True)
class SecretRef:
    name: str
    key: str = "uri"


@dataclass(frozen=True)
class WorkloadRef:
    kind: Literal["StatefulSet", "Deployment"]
    name: str


@dataclass(frozen=True)
class MongoSpec:
    uri_secret: SecretRef
    database: str
    workload: WorkloadRef
    connect_timeout_seconds: int = 5


@dataclass(frozen=True)
class BackupSpec:
    enabled: bool = False
    schedule: str = "0 2 * * *"
    time_zone: str | None = None
    retention_days: int = 7
    keep_last: int = 3
    claim: str | None = None
    gzip: bool = True
    suspend: bool = False
    starting_deadline_seconds: int = 600
    active_deadline_seconds: int = 14400
    backoff_limit: int = 1
    successful_jobs_history_limit: int = 3
    failed_jobs_history_limit: int = 3


@dataclass(frozen=True)
class RecoverySpec:
    enabled: bool = False
    claim: str | None = None
    scan_interval_seconds: int = 5
    batch_size: int = 500


@dataclass(frozen=True)
class ChaosSpec:
    allow_disruption: bool = False
    schedule: str | None = None
    outage_seconds: int = 30
    recordings: int = 50
    segments_per_recording: int = 20


@dataclass(frozen=True)
class DatabaseSpec:
    mongo: MongoSpec
    schema_version: str = "latest"
    backup: BackupSpec = BackupSpec()
    recovery: RecoverySpec = RecoverySpec()
    chaos: ChaosSpec = ChaosSpec()


def parse(spec: Mapping[str, Any]) -> DatabaseSpec:
    try:
        mongo = spec["mongo"]
        secret = mongo["uriSecretRef"]
        workload = mongo["workload"]
    except (KeyError, TypeError) as exc:
        raise ConfigError("InvalidSpec", f"spec.mongo is incomplete: missing {exc}") from None
    backup = spec.get("backup") or {}
    retention = backup.get("retention") or {}
    recovery = spec.get("recovery") or {}
    chaos = spec.get("chaos") or {}
    return DatabaseSpec(
        mongo=MongoSpec(
            uri_secret=SecretRef(secret["name"], secret.get("key", "uri")),
            database=mongo.get("database", "smartid"),
            workload=WorkloadRef(workload.get("kind", "StatefulSet"), workload["name"]),
            connect_timeout_seconds=int(mongo.get("connectTimeoutSeconds", 5)),
        ),
        schema_version=(spec.get("schema") or {}).get("version", "latest"),
        backup=BackupSpec(
            enabled=bool(backup.get("enabled", False)),
            schedule=backup.get("schedule", "0 2 * * *"),
            time_zone=backup.get("timeZone"),
            retention_days=int(retention.get("days", 7)),
            keep_last=int(retention.get("keepLast", 3)),
            claim=(backup.get("storage") or {}).get("persistentVolumeClaim"),
            gzip=bool(backup.get("gzip", True)),
            suspend=bool(backup.get("suspend", False)),
            starting_deadline_seconds=int(backup.get("startingDeadlineSeconds", 600)),
            active_deadline_seconds=int(backup.get("activeDeadlineSeconds", 14400)),
            backoff_limit=int(backup.get("backoffLimit", 1)),
            successful_jobs_history_limit=int(backup.get("successfulJobsHistoryLimit", 3)),
            failed_jobs_history_limit=int(backup.get("failedJobsHistoryLimit", 3)),
        ),
        recovery=RecoverySpec(
            enabled=bool(recovery.get("enabled", False)),
            claim=(recovery.get("storage") or {}).get("persistentVolumeClaim"),
            scan_interval_seconds=int(recovery.get("scanIntervalSeconds", 5)),
            batch_size=int(recovery.get("batchSize", 500)),
        ),
        chaos=ChaosSpec(
            allow_disruption=bool(chaos.get("allowDisruption", False)),
            schedule=chaos.get("schedule"),
            outage_seconds=int(chaos.get("outageSeconds", 30)),
            recordings=int(chaos.get("recordings", 50)),
            segments_per_recording=int(chaos.get("segmentsPerRecording", 20)),
        ),
    )
