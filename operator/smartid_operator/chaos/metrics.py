"""The chaos promise's Prometheus metrics, in the operator process: the last outage test with
a verdict, per database (a refused or aborted run proves nothing either way)."""

from __future__ import annotations

import contextlib
from collections.abc import Mapping
from typing import Any

from prometheus_client import Gauge

from smartid_operator import clock

OUTAGE_PASSED = Gauge("smartid_outage_test_passed",
                      "1 if the last outage test with a verdict passed, 0 if it failed",
                      ["namespace", "name"])
OUTAGE_FINISHED = Gauge("smartid_outage_test_finished_timestamp_seconds",
                        "When the last outage test with a verdict finished (Unix time)",
                        ["namespace", "name"])
OUTAGE_RECOVERY = Gauge("smartid_outage_test_recovery_seconds",
                        "Seconds from Mongo's return to the last outage write reindexed",
                        ["namespace", "name"])
OUTAGE_LOST = Gauge("smartid_outage_test_lost", "Writes the last outage test found not reindexed",
                    ["namespace", "name"])
_GAUGES = (OUTAGE_PASSED, OUTAGE_FINISHED, OUTAGE_RECOVERY, OUTAGE_LOST)


def observe(namespace: str, name: str, last: Mapping[str, Any]) -> None:
    if last.get("result") not in ("Passed", "Failed"):
        return
    OUTAGE_PASSED.labels(namespace, name).set(int(last["result"] == "Passed"))
    OUTAGE_LOST.labels(namespace, name).set(int(last.get("lost") or 0))
    if (seconds := last.get("recoverySeconds")) is not None:
        OUTAGE_RECOVERY.labels(namespace, name).set(float(seconds))
    if finished := last.get("finishedAt"):
        OUTAGE_FINISHED.labels(namespace, name).set(clock.parse_iso(finished).timestamp())


def forget(namespace: str, name: str) -> None:
    for gauge in _GAUGES:
        with contextlib.suppress(KeyError):
            gauge.remove(namespace, name)
