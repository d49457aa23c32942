"""The recovery promise inside a reconcile: the ``Recovered`` condition and ``status.recovery``
from the agent's last report (pure; the report is read from Mongo by the reconcile).

``Recovered`` is True only on evidence gathered after the last outage: a pass of the agent
that *started* after the operator saw Mongo stop answering (no pass reports while Mongo is
down, so it ran after Mongo came back), ended well, and left nothing pending.
A report from before an outage never counts, so the condition cannot claim the outage's
writes were indexed before they were. Its message says what that pass covered: a full pass
compared every recording on storage with the index; a changes pass stat'ed every directory
and examined every change since the agent's last full pass (``coverage`` in the report).
An agent that cannot start because of its claim says so, naming the claim.
"""

from __future__ import annotations

import datetime
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from smartid_operator import clock
from smartid_operator.status import Observation

RECOVERED = "Recovered"
SKIPS_IN_STATUS = 10


@dataclass(frozen=True)
class RecoveryView:
    observation: Observation
    section: dict[str, Any]
    settled: bool  # nothing more to wait for: no quick re-check needed


def _iso(value: Any) -> str | None:
    moment = clock.utc(value)
    return None if moment is None else clock.iso(moment)


def claim_problem(pod_message: str | None, claim: str) -> Observation | None:
    """The agent's pod cannot be scheduled because of its claim (the scheduler's words)."""
    if not pod_message:
        return None
    if f'persistentvolumeclaim "{claim}" not found' in pod_message:
        return Observation(RECOVERED, False, "ClaimNotFound",
                           f"the recovery claim {claim} (spec.recovery.storage."
                           f"persistentVolumeClaim) does not exist, so the recovery agent "
                           f"cannot start: create it or name another")
    if "unbound" in pod_message and "PersistentVolumeClaim" in pod_message:
        return Observation(RECOVERED, False, "ClaimNotBound",
                           f"the recovery claim {claim} is not bound to a volume, so the "
                           f"recovery agent cannot start (scheduler: {pod_message})")
    return Observation(RECOVERED, False, "AgentUnschedulable",
                       f"the recovery agent's pod cannot be scheduled: {pod_message}")


def observe(report: Mapping[str, Any] | None, *, agent: str, reachable: bool,
            reachable_since: datetime.datetime | None, now: datetime.datetime,
            scan_interval: float, previous: Mapping[str, Any],
            unschedulable: Observation | None = None) -> RecoveryView:
    """``previous`` is the ``status.recovery`` last written: what the report no longer says
    (the last pass that indexed something) is carried over from it."""
    section: dict[str, Any] = {"agent": agent}
    for key in ("lastIndexing", "lastRecovery"):
        if key in previous:
            section[key] = dict(previous[key])
    if unschedulable is not None:
        return RecoveryView(unschedulable, section, settled=True)
    if not reachable:
        return RecoveryView(Observation(
            RECOVERED, False, "MongoUnreachable",
            "Mongo is unreachable: recordings and segments that reach storage now wait there "
            "and are indexed the moment it answers"), section, settled=True)
    if report is None:
        return RecoveryView(Observation(RECOVERED, False, "AgentNotReporting",
                                        f"the recovery agent {agent} has not reported yet"),
                            section, settled=False)
    section.update(_summary(report))
    updated = clock.utc(report.get("updated_at"))
    started = clock.utc(report.get("started_at"))
    stale_after = max(3 * scan_interval, 30.0)
    if updated is None or (now - updated).total_seconds() > stale_after:
        age = "never" if updated is None else f"{(now - updated).total_seconds():.0f} s ago"
        return RecoveryView(Observation(
            RECOVERED, False, "AgentNotReporting",
            f"the recovery agent {agent} last reported {age} (it reports after every pass, "
            f"at least every {scan_interval:g} s)"), section, settled=True)
    if not report.get("ok", False):
        return RecoveryView(Observation(RECOVERED, False, "PassFailed",
                                        f"the last recovery pass failed: {report.get('error')}"),
                            section, settled=False)
    if reachable_since is not None and (started is None or started < reachable_since):
        return RecoveryView(Observation(
            RECOVERED, False, "Pending",
            f"waiting for a pass of the agent that started after the outage (after "
            f"{_iso(reachable_since)})"), section, settled=False)
    pending = int(report.get("pending") or 0)
    if pending:
        oldest = report.get("oldest_unindexed_seconds")
        return RecoveryView(Observation(
            RECOVERED, False, "Pending",
            f"{pending} record(s) on storage not yet indexed"
            + (f" (oldest {oldest:.0f} s)" if isinstance(oldest, (int, float)) else "")),
            section, settled=False)
    covered = coverage(report)
    skipped = int(report.get("skipped_total") or 0)
    if skipped:
        return RecoveryView(Observation(
            RECOVERED, True, "UpToDateWithSkips",
            f"{covered}; {skipped} input(s) break the storage contract and are listed in "
            f"status.recovery.skipped"), section, settled=True)
    return RecoveryView(Observation(RECOVERED, True, "UpToDate", covered), section,
                        settled=True)


def coverage(report: Mapping[str, Any]) -> str:
    """What the pass behind the report examined, in words: the whole claim of ``Recovered``."""
    cover = report.get("coverage") or {}
    at = _clock(report.get("started_at"))
    spool = "the segment spool replayed"
    if cover.get("kind") == "full":
        return (f"the agent's full pass at {at} compared every recording on storage "
                f"({cover.get('directories', 0)} directories) with the index and indexed what "
                f"was missing; {spool}")
    full = _clock(cover.get("full_pass_at"))
    return (f"the agent's pass at {at} stat'ed all {cover.get('directories', 0)} directories "
            f"under recordings/, listed the {cover.get('listed', 0)} that changed, and indexed "
            f"every recording written since {_clock(cover.get('since'))} (its last full pass, "
            f"at {full}, compared every recording on storage with the index); {spool}")


def _clock(value: Any) -> str:
    return _iso(value) or "an unknown time"


def _summary(report: Mapping[str, Any]) -> dict[str, Any]:
    """The stable part of the report: it changes when something happened, not every pass."""
    indexed = report.get("indexed") or {}
    summary: dict[str, Any] = {
        "pending": int(report.get("pending") or 0),
        "skippedTotal": int(report.get("skipped_total") or 0),
        "skipped": [{k: v for k, v in {"path": s.get("path"), "line": s.get("line"),
                                        "reason": s.get("reason")}.items() if v is not None}
                    for s in (report.get("skipped") or [])[:SKIPS_IN_STATUS]],
    }
    if indexed.get("recordings") or indexed.get("segments"):
        summary["lastIndexing"] = _present({
            "time": _iso(report.get("finished_at")), "trigger": report.get("trigger"),
            "kind": report.get("kind"),
            "recordings": int(indexed.get("recordings") or 0),
            "segments": int(indexed.get("segments") or 0),
            "durationSeconds": report.get("duration_seconds")})
    last = report.get("last_recovery")
    if last:
        summary["lastRecovery"] = _present({
            "mongoDownAt": _iso(last.get("mongo_down_at")),
            "mongoReturnedAt": _iso(last.get("mongo_returned_at")),
            "indexedAt": _iso(last.get("indexed_at")),
            "indexed": last.get("indexed"), "seconds": last.get("seconds")})
    return summary


def _present(fields: dict[str, Any]) -> dict[str, Any]:
    """Only what is known: an absent field says 'unknown' better than a null."""
    return {k: v for k, v in fields.items() if v is not None}
