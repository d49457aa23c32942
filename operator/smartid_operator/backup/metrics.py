"""The operator's backup metrics, per database, from what its status says (served with the
operator's other metrics)."""

from __future__ import annotations

import contextlib
import datetime
from collections.abc import Mapping
from typing import Any

from prometheus_client import Counter, Gauge

from smartid_operator.clock import utc

RUNS = Counter("smartid_backup_runs_total", "Backup Jobs seen finishing, by result",
               ["namespace", "name", "result"])
HEALTHY = Gauge("smartid_backup_healthy", "1 if the BackupHealthy condition is True",
                ["namespace", "name"])
LAST_SUCCESS = Gauge("smartid_backup_last_success_timestamp_seconds",
                     "When the last backup succeeded (Unix time)", ["namespace", "name"])
LAST_FAILURE = Gauge("smartid_backup_last_failure_timestamp_seconds",
                     "When the last backup failed (Unix time)", ["namespace", "name"])
DUMP_BYTES = Gauge("smartid_backup_latest_dump_bytes", "Size of the latest dump",
                   ["namespace", "name"])
DUMP_DOCUMENTS = Gauge("smartid_backup_latest_dump_documents", "Documents in the latest dump",
                       ["namespace", "name"])
LAST_VERIFIED = Gauge("smartid_backup_last_verified_timestamp_seconds",
                      "When the newest dump whose restore was verified was taken (Unix time)",
                      ["namespace", "name"])
SUSPENDED = Gauge("smartid_backup_suspended", "1 if the backup schedule is suspended",
                  ["namespace", "name"])
# What "never verified" counts from: a backup schedule younger than the alert's age is not late.
SCHEDULE_CREATED = Gauge("smartid_backup_schedule_created_timestamp_seconds",
                         "When the backup CronJob was created (Unix time)", ["namespace", "name"])
_GAUGES = (HEALTHY, LAST_SUCCESS, LAST_FAILURE, DUMP_BYTES, DUMP_DOCUMENTS, LAST_VERIFIED,
           SUSPENDED, SCHEDULE_CREATED)


def run_finished(namespace: str, name: str, succeeded: bool) -> None:
    RUNS.labels(namespace, name, "succeeded" if succeeded else "failed").inc()


def observe(namespace: str, name: str, status: Mapping[str, Any],
            schedule_created: datetime.datetime | None = None) -> None:
    section = status.get("backup")
    if not section:
        forget(namespace, name)
        return
    SUSPENDED.labels(namespace, name).set(int(bool(section.get("suspended"))))
    if schedule_created is not None:
        SCHEDULE_CREATED.labels(namespace, name).set(schedule_created.timestamp())
    if verified := utc((section.get("lastVerifiedDump") or {}).get("time")):
        LAST_VERIFIED.labels(namespace, name).set(verified.timestamp())
    healthy = next((c for c in status.get("conditions") or []
                    if c.get("type") == "BackupHealthy"), None)
    if healthy is not None:
        HEALTHY.labels(namespace, name).set(int(healthy.get("status") == "True"))
    if success := utc(section.get("lastSuccessfulTime")):
        LAST_SUCCESS.labels(namespace, name).set(success.timestamp())
    if failure := utc((section.get("lastFailure") or {}).get("time")):
        LAST_FAILURE.labels(namespace, name).set(failure.timestamp())
    if dump := section.get("latestDump"):
        DUMP_BYTES.labels(namespace, name).set(int(dump.get("sizeBytes") or 0))
        DUMP_DOCUMENTS.labels(namespace, name).set(int(dump.get("documents") or 0))


def forget(namespace: str, name: str) -> None:
    for gauge in _GAUGES:
        with contextlib.suppress(KeyError):
            gauge.remove(namespace, name)
    for result in ("succeeded", "failed"):
        with contextlib.suppress(KeyError):
            RUNS.remove(namespace, name, result)
