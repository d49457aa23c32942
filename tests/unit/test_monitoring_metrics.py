"""The series the alerts read, from a status as the worker publishes it (pure: the metric
functions and the default registry, no server)."""

from __future__ import annotations

import datetime
from typing import Any

from prometheus_client import REGISTRY

from smartid_operator import metrics, promises
from smartid_operator.backup import metrics as backup_metrics
from smartid_operator.reconcile import Result

KEY = ("shop", "unit-metrics")


def sample(name: str, **labels: str) -> float | None:
    value: float | None = REGISTRY.get_sample_value(
        name, {"namespace": KEY[0], "name": KEY[1], **labels})
    return value


def observe(status: dict[str, Any]) -> None:
    """As the worker publishes a pass: the core's series, then each promise's."""
    body = {"spec": {"mongo": {"database": "smartid"}}}
    published = {"phase": "Ready", **status}
    metrics.observe(KEY, body, Result(status=published, transitions=[]), 0.1)
    for promise in promises.load():
        promise.published(KEY, published, promise.memory())


def forget() -> None:
    metrics.forget(*KEY)
    for promise in promises.load():
        promise.forget(KEY)


def condition(type_: str, status: str, reason: str) -> dict[str, str]:
    return {"type": type_, "status": status, "reason": reason}


def test_each_condition_is_one_series_whose_reason_moves_on() -> None:
    observe({"conditions": [condition("SchemaReady", "False", "MigrationLocked"),
                            condition("Ready", "True", "AllConditionsMet")]})
    assert sample("smartid_database_condition", type="SchemaReady",
                  reason="MigrationLocked") == 0
    assert sample("smartid_database_condition", type="Ready", reason="AllConditionsMet") == 1
    observe({"conditions": [condition("SchemaReady", "True", "UpToDate")]})
    assert sample("smartid_database_condition", type="SchemaReady", reason="UpToDate") == 1
    # no stale series left behind: an alert on the old reason would never resolve
    assert sample("smartid_database_condition", type="SchemaReady",
                  reason="MigrationLocked") is None
    assert sample("smartid_database_condition", type="Ready", reason="AllConditionsMet") is None
    forget()
    assert sample("smartid_database_condition", type="SchemaReady", reason="UpToDate") is None


def test_only_an_outage_test_with_a_verdict_sets_its_series() -> None:
    observe({"lastOutageTest": {"result": "Refused", "run": "r0"}})
    assert sample("smartid_outage_test_passed") is None
    observe({"lastOutageTest": {"result": "Failed", "run": "r1", "lost": 3,
                                "finishedAt": "2026-12-06T08:00:00Z"}})
    assert sample("smartid_outage_test_passed") == 0
    assert sample("smartid_outage_test_lost") == 3
    assert sample("smartid_outage_test_finished_timestamp_seconds") == datetime.datetime(
        2026, 12, 6, 8, tzinfo=datetime.UTC).timestamp()
    observe({"lastOutageTest": {"result": "Passed", "run": "r2", "lost": 0,
                                "recoverySeconds": 1.5}})
    assert sample("smartid_outage_test_passed") == 1
    assert sample("smartid_outage_test_recovery_seconds") == 1.5
    observe({"lastOutageTest": {"result": "Aborted", "run": "r3"}})
    assert sample("smartid_outage_test_passed") == 1  # an abort proves nothing either way
    forget()
    assert sample("smartid_outage_test_passed") is None


def test_backup_series_for_verification_suspension_and_the_schedule() -> None:
    created = datetime.datetime(2026, 12, 1, tzinfo=datetime.UTC)
    backup_metrics.observe(*KEY, {"backup": {
        "suspended": True, "lastVerifiedDump": {"name": "d1", "time": "2026-12-05T02:00:00Z"}}},
        created)
    assert sample("smartid_backup_suspended") == 1
    assert sample("smartid_backup_schedule_created_timestamp_seconds") == created.timestamp()
    assert sample("smartid_backup_last_verified_timestamp_seconds") == datetime.datetime(
        2026, 12, 5, 2, tzinfo=datetime.UTC).timestamp()
    backup_metrics.observe(*KEY, {})  # backups switched off: a database without backups
    for name in ("smartid_backup_suspended", "smartid_backup_schedule_created_timestamp_seconds",
                 "smartid_backup_last_verified_timestamp_seconds"):
        assert sample(name) is None, name


def test_metrics_listen_where_the_environment_says(monkeypatch: Any) -> None:
    assert metrics.listen_address() == "0.0.0.0"
    monkeypatch.setenv("SMARTID_METRICS_ADDRESS", "127.9.9.9")
    assert metrics.listen_address() == "127.9.9.9"
