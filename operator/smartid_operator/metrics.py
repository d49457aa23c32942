"""Prometheus metrics, served on their own port (``--metrics-port``)."""

from __future__ import annotations

import contextlib
from typing import TYPE_CHECKING

from prometheus_client import Counter, Gauge, Histogram, start_http_server

if TYPE_CHECKING:
    from smartid_operator.reconcile import Result

RECONCILES = Counter("smartid_reconciles_total", "Reconciles by handler and result",
                     ["handler", "result"])
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
READY = Gauge("smartid_database_ready", "1 if the SmartIDDatabase is Ready",
              ["namespace", "name"])


def observe(handler: str, namespace: str, name: str, database: str, result: Result,
            seconds: float) -> None:
    """Record one reconcile pass."""
    status = result.status
    if (reachable := status.get("mongo", {}).get("reachable")) is not None:
        MONGO_REACHABLE.labels(namespace, name, database).set(int(reachable))
    if version := status.get("schema", {}).get("version"):
        SCHEMA_VERSION.labels(namespace, name).set(int(version[1:]))
    READY.labels(namespace, name).set(int(status["phase"] == "Ready"))
    MIGRATIONS.labels(namespace, name).inc(len(result.migrated))
    outcome = "invalid" if result.spec_error else "unavailable" if result.unavailable else "ok"
    RECONCILES.labels(handler, outcome).inc()
    if result.spec_error:
        ERRORS.labels(handler, result.spec_error.reason).inc()
    DURATION.labels(handler).observe(seconds)


def serve(port: int, addr: str = "0.0.0.0") -> None:
    if port:
        start_http_server(port, addr=addr)


def forget(namespace: str, name: str) -> None:
    """Drop a deleted database's series so dashboards do not show ghosts."""
    for gauge in (READY, SCHEMA_VERSION):
        with contextlib.suppress(KeyError):
            gauge.remove(namespace, name)
    for labels in list(MONGO_REACHABLE._metrics):  # no public iteration API
        if labels[:2] == (namespace, name):
            MONGO_REACHABLE.remove(*labels)
