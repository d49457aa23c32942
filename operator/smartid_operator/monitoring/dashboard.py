"""The Grafana dashboard, per database (variables ``namespace`` and ``name``), as plain data.

Importable as is (Dashboards > Import): a ``datasource`` variable picks the Prometheus. Each
panel's queries are listed by ``queries()``, which a test runs against the test bed's
Prometheus.
"""

from __future__ import annotations

from typing import Any

UID = "smartid-operator"
SEL = 'namespace=~"$namespace", name=~"$name"'
DS = {"type": "prometheus", "uid": "${datasource}"}

# (row title, [(panel title, kind, unit, [(legend, expr), ...], description)])
Panel = tuple[str, str, str, list[tuple[str, str]], str]
ROWS: list[tuple[str, list[Panel]]] = [
    ("Availability", [
        ("Mongo reachable", "state", "bool_yes_no",
         [("{{namespace}}/{{name}}", f"smartid_mongo_reachable{{{SEL}}}")],
         "1 while the operator's ping answers"),
        ("Ready", "state", "bool_yes_no",
         [("{{namespace}}/{{name}}", f"smartid_database_ready{{{SEL}}}")],
         "the SmartIDDatabase's Ready condition"),
        ("Ping latency", "timeseries", "s",
         [("{{namespace}}/{{name}}", f"smartid_mongo_ping_seconds{{{SEL}}}")],
         "the last answered ping"),
        ("Firing alerts", "table", "none",
         [("{{alertname}}", f'ALERTS{{alertstate="firing", {SEL}}}')],
         "the operator's alerts that fire now for these databases"),
    ]),
    ("Recovery", [
        ("Recovery backlog", "timeseries", "none",
         [("{{namespace}}/{{name}}", f"smartid_recovery_pending{{{SEL}}}")],
         "records on the recovery volume not yet indexed"),
        ("Reindex rate", "timeseries", "ops",
         [("{{namespace}}/{{name}} {{kind}}",
           f"sum by (namespace, name, kind) (rate(smartid_recovery_indexed_total{{{SEL}}}[1m]))")],
         "records the recovery agent indexes per second"),
        ("Skipped inputs", "stat", "none",
         [("{{namespace}}/{{name}}", f"smartid_recovery_skipped{{{SEL}}}")],
         "inputs that break the storage contract"),
        ("Agent's last pass", "stat", "s",
         [("{{namespace}}/{{name}}",
           f"time() - smartid_recovery_last_pass_timestamp_seconds{{{SEL}}}")],
         "seconds since the recovery agent finished a pass"),
    ]),
    ("Backups", [
        ("Last backup age", "stat", "s",
         [("{{namespace}}/{{name}}",
           f"time() - smartid_backup_last_success_timestamp_seconds{{{SEL}}}")],
         "since the last successful backup"),
        ("Verified backup age", "stat", "s",
         [("{{namespace}}/{{name}}",
           f"time() - smartid_backup_last_verified_timestamp_seconds{{{SEL}}}")],
         "since the newest dump whose restore was verified was taken"),
        ("Latest dump size", "timeseries", "bytes",
         [("{{namespace}}/{{name}}", f"smartid_backup_latest_dump_bytes{{{SEL}}}")],
         "size of the latest dump"),
        ("Backup runs", "timeseries", "none",
         [("{{namespace}}/{{name}} {{result}}",
           f"sum by (namespace, name, result) (increase(smartid_backup_runs_total{{{SEL}}}[1h]))")],
         "backup Jobs finished in the last hour, by result"),
    ]),
    ("Outage tests", [
        ("Last outage test", "state", "bool_yes_no",
         [("{{namespace}}/{{name}}", f"smartid_outage_test_passed{{{SEL}}}")],
         "1 passed, 0 failed; its history over time"),
        ("Recovery seconds", "timeseries", "s",
         [("{{namespace}}/{{name}}", f"smartid_outage_test_recovery_seconds{{{SEL}}}")],
         "from Mongo's return to the last outage write reindexed"),
        ("Lost writes", "stat", "none",
         [("{{namespace}}/{{name}}", f"smartid_outage_test_lost{{{SEL}}}")],
         "outage writes the last test found not reindexed"),
    ]),
    ("Reconcile", [
        ("Reconcile latency", "timeseries", "s",
         [("p50", "histogram_quantile(0.5, sum by (le) "
                  "(rate(smartid_reconcile_duration_seconds_bucket[5m])))"),
          ("p95", "histogram_quantile(0.95, sum by (le) "
                  "(rate(smartid_reconcile_duration_seconds_bucket[5m])))")],
         "duration of reconcile passes, all databases"),
        ("Reconcile passes", "timeseries", "ops",
         [("{{namespace}}/{{name}} {{result}}",
           f"sum by (namespace, name, result) (rate(smartid_reconciles_total{{{SEL}}}[5m]))")],
         "passes per second by result (ok, unavailable, invalid, error)"),
        ("Reconcile errors", "timeseries", "none",
         [("{{namespace}}/{{name}}", "sum by (namespace, name) (increase(smartid_reconciles_"
                                     f'total{{result=~"error|invalid", {SEL}}}[5m]))')],
         "failed passes in 5 minutes"),
    ]),
]


def _panel(pid: int, title: str, kind: str, unit: str, targets: list[tuple[str, str]],
           description: str, x: int, y: int, width: int) -> dict[str, Any]:
    panel_type = {"state": "state-timeline"}.get(kind, kind)
    panel: dict[str, Any] = {
        "id": pid, "type": panel_type, "title": title, "description": description,
        "datasource": DS, "gridPos": {"h": 7, "w": width, "x": x, "y": y},
        "fieldConfig": {"defaults": {"unit": unit}, "overrides": []},
        "targets": [{"refId": chr(ord("A") + i), "datasource": DS, "expr": expr,
                     "legendFormat": legend, "instant": kind == "table", "range": kind != "table"}
                    for i, (legend, expr) in enumerate(targets)],
        "options": {},
    }
    if kind == "state":
        panel["fieldConfig"]["defaults"]["mappings"] = [{"type": "value", "options": {
            "0": {"text": "no", "color": "red"}, "1": {"text": "yes", "color": "green"}}}]
    if kind == "table":
        panel["transformations"] = [{"id": "labelsToFields", "options": {}}]
    return panel


def _variable(name: str, query: str) -> dict[str, Any]:
    return {"name": name, "label": name, "type": "query", "datasource": DS,
            "query": {"query": query, "refId": name}, "definition": query, "refresh": 2,
            "includeAll": True, "multi": True, "allValue": ".*",
            "current": {"text": "All", "value": "$__all"}, "sort": 1}


def dashboard() -> dict[str, Any]:
    panels: list[dict[str, Any]] = []
    pid, y = 1, 0
    for row, items in ROWS:
        panels.append({"id": pid, "type": "row", "title": row, "collapsed": False,
                       "gridPos": {"h": 1, "w": 24, "x": 0, "y": y}, "panels": []})
        pid, y = pid + 1, y + 1
        width = 24 // len(items)
        for i, item in enumerate(items):
            panels.append(_panel(pid, *item, x=i * width, y=y, width=width))
            pid += 1
        y += 7
    return {
        "uid": UID, "title": "SmartID operator", "tags": ["smartid", "mongodb"],
        "timezone": "browser", "schemaVersion": 39, "version": 1, "editable": True,
        "refresh": "30s", "time": {"from": "now-6h", "to": "now"},
        "annotations": {"list": []},
        "templating": {"list": [
            {"name": "datasource", "label": "Prometheus", "type": "datasource",
             "query": "prometheus", "current": {}, "hide": 0},
            _variable("namespace", "label_values(smartid_database_ready, namespace)"),
            _variable("name", 'label_values(smartid_database_ready{namespace=~"$namespace"}, '
                              "name)"),
        ]},
        "panels": panels,
    }


def queries() -> list[tuple[str, str]]:
    """(panel title, PromQL) of every panel, the variables at All."""
    return [(title, expr.replace("$namespace", ".*").replace("$name", ".*"))
            for _, items in ROWS for title, _, _, targets, _ in items for _, expr in targets]
