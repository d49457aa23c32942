"""The schema promise's Prometheus metrics, in the operator process."""

from __future__ import annotations

import contextlib
from collections.abc import Mapping
from typing import Any

from prometheus_client import Counter, Gauge

MIGRATIONS = Counter("smartid_migrations_applied_total", "Migrations applied by the operator",
                     ["namespace", "name"])
SCHEMA_VERSION = Gauge("smartid_schema_version", "Schema version the database is at",
                       ["namespace", "name"])


def applied(namespace: str, name: str) -> None:
    MIGRATIONS.labels(namespace, name).inc()


def observe(namespace: str, name: str, section: Mapping[str, Any]) -> None:
    MIGRATIONS.labels(namespace, name)  # the series exists from the first pass, at 0
    if version := section.get("version"):
        SCHEMA_VERSION.labels(namespace, name).set(int(version[1:]))


def forget(namespace: str, name: str) -> None:
    for metric in (MIGRATIONS, SCHEMA_VERSION):
        with contextlib.suppress(KeyError):
            metric.remove(namespace, name)
