"""The recovery agent's Prometheus metrics (its own process, its own port)."""

from __future__ import annotations

import logging
import os

from prometheus_client import Counter, Gauge, Histogram, start_http_server

from smartid_operator.recovery.engine.report import PassReport

log = logging.getLogger(__name__)

PENDING = Gauge("smartid_recovery_pending",
                "Records on storage not yet indexed (an estimate while Mongo is down)")
INDEXED = Counter("smartid_recovery_indexed_total",
                  "Records the recovery agent indexed, by kind", ["kind"])
SECONDS = Histogram("smartid_recovery_seconds", "Duration of recovery passes, by kind",
                    ["kind"], buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60, 300))
SKIPPED = Gauge("smartid_recovery_skipped",
                "Inputs on storage that break the contract and cannot be indexed")
REACHABLE = Gauge("smartid_recovery_mongo_reachable", "1 if the agent reaches Mongo")
LAST_PASS = Gauge("smartid_recovery_last_pass_timestamp_seconds",
                  "When the last successful pass finished (Unix time)")

WALK_SECONDS = Gauge("smartid_recovery_walk_seconds",
                     "Duration of the last walk of the recordings tree (stat of every directory)")
DIRECTORIES = Gauge("smartid_recovery_directories", "Directories under recordings/ walked")


def observe(report: PassReport) -> None:
    SECONDS.labels(report.kind).observe(report.duration_seconds)
    INDEXED.labels("recordings").inc(report.recordings_indexed)
    INDEXED.labels("segments").inc(report.segments_indexed)
    PENDING.set(report.pending)
    if report.ok:
        SKIPPED.set(len(report.skipped))
        if report.finished_at is not None:
            LAST_PASS.set(report.finished_at.timestamp())


def serve(port: int, addr: str | None = None) -> bool:
    """Serve metrics; a taken port costs the metrics, never the recovery (False)."""
    if not port:
        return False
    try:
        # SMARTID_METRICS_ADDRESS: as the operator's (smartid_operator.metrics.listen_address)
        start_http_server(port, addr=addr or os.environ.get("SMARTID_METRICS_ADDRESS")
                          or "0.0.0.0")
    except OSError as exc:
        log.error("metrics not served on port %d: %s", port, exc)
        return False
    return True
