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
class KeyRef:
    """A key of a ConfigMap or a Secret (``kind``)."""

    kind: Literal["ConfigMap", "Secret"]
    name: str
    key: str


@dataclass(frozen=True)
class S3Spec:
    """``spec.backup.storage.s3`` (and a SmartIDRestore's ``source.s3``). The keys live in a
    Secret; only its name and key names are here."""

    bucket: str
    credentials_secret: str
    access_key_id_key: str = "AWS_ACCESS_KEY_ID"
    secret_access_key_key: str = "AWS_SECRET_ACCESS_KEY"
    prefix: str = ""
    endpoint: str = ""
    region: str = ""
    force_path_style: bool = False
    server_side_encryption: str = ""
    kms_key_id: str = ""
    ca_bundle: KeyRef | None = None

    @property
    def url(self) -> str:
        return f"s3://{self.bucket}" + (f"/{self.prefix.strip('/')}" if self.prefix else "")


def parse_s3(doc: Mapping[str, Any] | None) -> S3Spec | None:
    if not doc:
        return None
    creds = doc.get("credentialsSecretRef") or {}
    sse = doc.get("serverSideEncryption") or {}
    ca = doc.get("caBundle") or {}
    ca_ref = None
    for kind, field_name in (("ConfigMap", "configMapKeyRef"), ("Secret", "secretKeyRef")):
        if ref := ca.get(field_name):
            ca_ref = KeyRef(kind, ref["name"], ref.get("key", "ca.crt"))  # type: ignore[arg-type]
    return S3Spec(
        bucket=doc["bucket"], credentials_secret=creds.get("name", ""),
        access_key_id_key=creds.get("accessKeyIdKey", "AWS_ACCESS_KEY_ID"),
        secret_access_key_key=creds.get("secretAccessKeyKey", "AWS_SECRET_ACCESS_KEY"),
        prefix=doc.get("prefix", ""), endpoint=doc.get("endpoint", ""),
        region=doc.get("region", ""), force_path_style=bool(doc.get("forcePathStyle", False)),
        server_side_encryption=sse.get("algorithm", ""), kms_key_id=sse.get("kmsKeyId", ""),
        ca_bundle=ca_ref)


@dataclass(frozen=True)
class BackupSpec:
    enabled: bool = False
    schedule: str = "0 2 * * *"
    time_zone: str | None = None
    retention_days: int = 7
    keep_last: int = 3
    claim: str | None = None
    s3: S3Spec | None = None
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
            s3=parse_s3((backup.get("storage") or {}).get("s3")),
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
