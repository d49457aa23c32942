"""The core's Prometheus metrics (each promise has its own ``metrics.py``), served on their own
port (``--metrics-port``)."""

from __future__ import annotations

import contextlib
import os
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
PING = Gauge("smartid_mongo_ping_seconds", "Latency of the last ping that was answered",
             ["namespace", "name"])
LAST_CHECK = Gauge("smartid_last_check_timestamp_seconds", "When the database was last checked",
                   ["namespace", "name"])
READY = Gauge("smartid_database_ready", "1 if the SmartIDDatabase is Ready",
              ["namespace", "name"])
# Every status condition, so alerts can say why (SchemaReady's reason, BackupHealthy's
# JobCannotStart) without a metric per reason. One series per type: the reason moves.
CONDITION = Gauge("smartid_database_condition",
                  "1 if the status condition is True, 0 if False, by type and current reason",
                  ["namespace", "name", "type", "reason"])


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
    READY.labels(namespace, name).set(int(status["phase"] == "Ready"))
    _conditions(namespace, name, status.get("conditions") or [])
    outcome = "invalid" if result.config_error else "unavailable" if result.unavailable else "ok"
    RECONCILES.labels(namespace, name, outcome).inc()
    if result.config_error:
        ERRORS.labels("reconcile", result.config_error.reason).inc()
    DURATION.labels("reconcile").observe(seconds)


def _conditions(namespace: str, name: str, conditions: list[Mapping[str, Any]]) -> None:
    current = {(c.get("type", ""), c.get("reason", "")): c.get("status") == "True"
               for c in conditions}
    for labels in list(CONDITION._metrics):  # a reason that moved on leaves no stale series
        if labels[:2] == (namespace, name) and labels[2:] not in current:
            CONDITION.remove(*labels)
    for (type_, reason), ok in current.items():
        CONDITION.labels(namespace, name, type_, reason).set(int(ok))


def listen_address() -> str:
    """Where metrics listen: all interfaces, unless ``SMARTID_METRICS_ADDRESS`` names one (the
    test bed's pods share one host, so each gets its own loopback address, as a pod its IP)."""
    return os.environ.get("SMARTID_METRICS_ADDRESS") or "0.0.0.0"


def serve(port: int, addr: str | None = None) -> None:
    if port:
        start_http_server(port, addr=addr or listen_address())


def forget(namespace: str, name: str) -> None:
    """Drop a deleted database's series so dashboards do not show ghosts."""
    for gauge in (READY, PING, LAST_CHECK):
        with contextlib.suppress(KeyError):
            gauge.remove(namespace, name)
    for labelled in (MONGO_REACHABLE, RECONCILES, CONDITION):
        for labels in list(labelled._metrics):  # no public iteration API
            if labels[:2] == (namespace, name):
                labelled.remove(*labels)
