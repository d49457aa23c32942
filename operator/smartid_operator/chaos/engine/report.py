"""The run's JSON report (pure): what status says, plus every lost id up to a bound and the
timeline's series, sized to fit a ConfigMap beside the picture."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

REPORT_VERSION = 1
LOST_IN_REPORT = 1000
MAX_BYTES = 600_000  # a ConfigMap holds 1 MiB in all; the picture needs the rest


def build(*, run: str, namespace: str, database: str, status: Mapping[str, Any],
          lost_ids: Sequence[str], series: Mapping[str, Any],
          extra: Mapping[str, Any] | None = None) -> dict[str, Any]:
    keys = ("phase", "reason", "message", "settings", "workload", "written", "reindexed",
            "lost", "duplicated", "recoverySeconds", "counts", "timings")
    report: dict[str, Any] = {"report": "SmartIDOutageTest", "version": REPORT_VERSION,
                              "run": run, "namespace": namespace, "database": database}
    report.update({("result" if k == "phase" else k): status[k] for k in keys if k in status})
    report["lostIds"] = list(lost_ids[:LOST_IN_REPORT])
    report["lostIdsTotal"] = len(lost_ids)
    report.update(extra or {})
    report["series"] = {"unit": "seconds since the scale-down", **series}
    return report


def encode(report: dict[str, Any]) -> bytes:
    """Pretty JSON; if it would not fit, the series go first, then lost ids beyond 100."""
    raw = json.dumps(report, indent=2).encode()
    if len(raw) > MAX_BYTES:
        report = {**report, "series": {"omitted": "too large for the ConfigMap"}}
        raw = json.dumps(report, indent=2).encode()
    if len(raw) > MAX_BYTES:
        report = {**report, "lostIds": report["lostIds"][:100]}
        raw = json.dumps(report, indent=2).encode()
    return raw
