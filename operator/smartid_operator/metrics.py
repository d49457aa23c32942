"""Prometheus metrics, served on their own port (``--metrics-port``)."""

from __future__ import annotations

import contextlib
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from prometheus_client import Counter, Gauge, Histogram, start_http_server

if TYPE_CHECKING:
    from smartid_operator.reconcile import Result

RECONCILES = Counter("smartid_reconciles_total", "Reconcile passes by database and result",
                     ["namespace", "name", "result"])
ERRORS = Counter("smartid_reconcile_errors_total", "Reconcile errors by handler and reason",
                 ["handler", "reason"])
DURATION = Histogram("smartid_reconcile_duration_seconds", "Reconcile duration by handler",
                     ["handler"])
MONGO_REACHABLE = Gauge("smartid_mongo_reachable", "1 if the database answered ping",
                        ["namespace", "name", "database"])
MIGRATIONS = Counter("smartid_migrations_applied_total", "Migrations applied by the operator",
                     ["namespace", "name"])
SCHEMA_VERSION = Gauge("smartid_schema_version", "Schema version the database is at",
                       ["namespace", "name"])
PING = Gauge("smartid_mongo_ping_seconds", "Latency of the last ping that was answered",
             ["namespace", "name"])
LAST_CHECK = Gauge("smartid_last_check_timestamp_seconds", "When the database was last checked",
                   ["namespace", "name"])
READY = Gauge("smartid_database_ready", "1 if the SmartIDDatabase is Ready",
              ["namespace", "name"])


def observe(key: tuple[str, str], body: Mapping[str, Any], result: Result,
            seconds: float) -> None:
    """Record one reconcile pass (the time of the check and its latency live here, not in
    status: a status write per check would wake every watcher of the resource)."""
    namespace, name = key
    database = (body.get("spec") or {}).get("mongo", {}).get("database", "")
    status = result.status
    if (reachable := status.get("mongo", {}).get("reachable")) is not None:
        MONGO_REACHABLE.labels(namespace, name, database).set(int(reachable))
    if result.latency_ms is not None:
        PING.labels(namespace, name).set(result.latency_ms / 1000)
    LAST_CHECK.labels(namespace, name).set_to_current_time()
    if version := status.get("schema", {}).get("version"):
        SCHEMA_VERSION.labels(namespace, name).set(int(version[1:]))
    READY.labels(namespace, name).set(int(status["phase"] == "Ready"))
    MIGRATIONS.labels(namespace, name).inc(len(result.migrated))
    outcome = "invalid" if result.config_error else "unavailable" if result.unavailable else "ok"
    RECONCILES.labels(namespace, name, outcome).inc()
    if result.config_error:
        ERRORS.labels("reconcile", result.config_error.reason).inc()
    DURATION.labels("reconcile").observe(seconds)


def serve(port: int, addr: str = "0.0.0.0") -> None:
    if port:
        start_http_server(port, addr=addr)


def forget(namespace: str, name: str) -> None:
    """Drop a deleted database's series so dashboards do not show ghosts."""
    for gauge in (READY, SCHEMA_VERSION, PING, LAST_CHECK):
        with contextlib.suppress(KeyError):
            gauge.remove(namespace, name)
    for labelled in (MONGO_REACHABLE, RECONCILES):
        for labels in list(labelled._metrics):  # no public iteration API
            if labels[:2] == (namespace, name):
                labelled.remove(*labels)
