"""The backup promise inside a reconcile (pure): ``status.backup`` and the ``BackupScheduled``
and ``BackupHealthy`` conditions, from the Jobs the CronJob owns and their pods' termination
messages (``backup/jobs.py``), the CronJob's status, and the status last written.

What a Job no longer shows (history limits delete old Jobs) is carried over from the status
last written, so the last success and the last failure are never forgotten.
"""

from __future__ import annotations

import datetime
import zoneinfo
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from croniter import croniter

from smartid_operator.backup.jobs import (
    FAILED,
    RUNNING,
    STUCK,
    SUCCEEDED,
    BackupMemory,
    JobState,
)
from smartid_operator.clock import iso, utc
from smartid_operator.spec import BackupSpec
from smartid_operator.status import Observation

BACKUP_SCHEDULED = "BackupScheduled"
BACKUP_HEALTHY = "BackupHealthy"
REPORT_WAIT = 10.0  # seconds a finished Job's Event waits for its pod's termination message
_EPOCH = datetime.datetime.min.replace(tzinfo=datetime.UTC)


@dataclass(frozen=True)
class Outcome:
    """A finished Job worth one Event."""

    uid: str
    job: str
    succeeded: bool
    message: str


@dataclass
class BackupView:
    scheduled: Observation
    healthy: Observation
    section: dict[str, Any]
    outcomes: list[Outcome] = field(default_factory=list)
    recheck_after: float | None = None


# -- the schedule ------------------------------------------------------------------------------

def _zone(name: str | None) -> datetime.tzinfo:
    try:
        return zoneinfo.ZoneInfo(name) if name else datetime.UTC
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        return datetime.UTC


def fire_times(spec: BackupSpec, after: datetime.datetime, count: int) -> list[datetime.datetime]:
    """The next ``count`` scheduled times after ``after`` (UTC), in the schedule's time zone
    (the controller-manager's, UTC, when none is given); [] if croniter cannot read it."""
    schedule = spec.schedule.lower() if spec.schedule.startswith("@") else spec.schedule
    try:
        it = croniter(schedule, after.astimezone(_zone(spec.time_zone)))
        return [it.get_next(datetime.datetime).astimezone(datetime.UTC) for _ in range(count)]
    except (ValueError, KeyError):
        return []


def overdue_at(spec: BackupSpec, since: datetime.datetime) -> datetime.datetime | None:
    """When no success since ``since`` becomes an alarm: the second run after it has had half
    an interval (at most an hour) to finish. About twice the schedule's interval, and no false
    alarm over the weekend of a weekdays-only schedule."""
    times = fire_times(spec, since, 2)
    if len(times) < 2:
        return None
    return times[1] + min((times[1] - times[0]) / 2, datetime.timedelta(hours=1))


# -- the view ------------------------------------------------------------------------------------

def _present(fields: Mapping[str, Any]) -> dict[str, Any]:
    """Only what is known: status is applied server-side, where a null is no value."""
    return {k: v for k, v in fields.items() if v is not None}


def _size(n: int) -> str:
    return f"{n / 1e6:.1f} MB" if n >= 100_000 else f"{n:,} bytes"


def _dump_line(dump: Mapping[str, Any]) -> str:
    verified = {True: "verified by a restore", False: "FAILED verification",
                None: "not verified"}[dump.get("verified")]
    return (f"dump {dump.get('name')}: {dump.get('documents', 0):,} documents, "
            f"{_size(int(dump.get('sizeBytes') or 0))}, {verified}")


def _failure_reason(memory: BackupMemory, job: JobState) -> str:
    pod = memory.latest_pod(job.name)
    report = pod.report if pod else None
    if report and report.get("reason"):
        return str(report["reason"])
    if pod is not None and pod.log_end:
        return pod.log_end
    if job.reason:
        return job.reason
    if pod is not None and pod.exit_code is not None:
        return f"exit code {pod.exit_code}"
    return "the Job failed"


def observe(memory: BackupMemory, spec: BackupSpec, *, cronjob: str, applied: bool,
            apply_message: str, previous: Mapping[str, Any],
            now: datetime.datetime) -> BackupView:
    """``applied``: this pass applied the CronJob as declared (or found it unchanged)."""
    section: dict[str, Any] = {"cronJob": cronjob, "schedule": spec.schedule}
    if spec.time_zone:
        section["timeZone"] = spec.time_zone
    if spec.suspend:
        section["suspended"] = True
    if memory.last_schedule:
        section["lastScheduleTime"] = iso(memory.last_schedule)
    elif "lastScheduleTime" in previous:
        section["lastScheduleTime"] = previous["lastScheduleTime"]
    upcoming = fire_times(spec, now, 1)
    if upcoming and not spec.suspend:
        section["nextScheduleTime"] = iso(upcoming[0])

    jobs = sorted(memory.jobs.values(), key=lambda j: (j.finished or j.created or _EPOCH, j.name))
    successes = [j for j in jobs if j.outcome == SUCCEEDED]
    failures = [j for j in jobs if j.outcome == FAILED]
    outcomes: list[Outcome] = []
    recheck: float | None = None

    # The last success: the newest of the Jobs we see, the CronJob's word, and the status.
    success_time = utc(previous.get("lastSuccessfulTime"))
    for key in ("lastSuccessfulJob", "latestDump", "lastVerifiedDump", "dumps"):
        if key in previous:
            section[key] = previous[key]
    if memory.last_successful and (success_time is None or memory.last_successful > success_time):
        success_time = memory.last_successful
    for job in successes:
        assert job.finished is not None
        if success_time is None or job.finished >= success_time:
            success_time = job.finished
            section["lastSuccessfulJob"] = job.name
            pod = memory.latest_pod(job.name)
            report = (pod.report if pod else None) or {}
            if report.get("dump"):
                section["latestDump"] = _present(report["dump"])
    if success_time is not None:
        section["lastSuccessfulTime"] = iso(success_time)

    failure = dict(previous.get("lastFailure") or {})
    for job in failures:
        assert job.finished is not None
        known = utc(failure.get("time"))
        if known is None or job.finished >= known:
            failure = {"time": iso(job.finished), "job": job.name,
                       "reason": _failure_reason(memory, job)}
    if failure:
        section["lastFailure"] = failure

    # What the storage holds, as the newest report with a summary saw it (the bucket's or the
    # volume's manifests), and whether the newest run could apply retention.
    if "retention" in previous:
        section["retention"] = previous["retention"]
    for job in jobs:
        pod = memory.latest_pod(job.name)
        report = (pod.report if pod else None) or {}
        if isinstance(report.get("retention"), dict):
            section["retention"] = {**_present(report["retention"]), "job": job.name}
        backups = report.get("backups") or {}
        if backups:
            section["dumps"] = backups.get("dumps", 0)
            if backups.get("lastVerifiedDump"):
                section["lastVerifiedDump"] = _present(backups["lastVerifiedDump"])

    active = []
    stuck: tuple[str, str, str] | None = None
    for job in jobs:
        if job.outcome != RUNNING:
            continue
        entry: dict[str, Any] = {"job": job.name}
        if job.started or job.created:
            entry["startTime"] = iso(job.started or job.created)
        pod = memory.latest_pod(job.name)
        if pod is not None and pod.waiting and pod.waiting[0]:
            entry["waiting"] = pod.waiting[0]
            if pod.waiting[0] in STUCK and stuck is None:
                stuck = (job.name, *pod.waiting)
        active.append(entry)
    if active:
        section["active"] = active

    for job in jobs:
        if job.outcome == RUNNING or job.uid in memory.announced:
            continue
        pod = memory.latest_pod(job.name)
        assert job.finished is not None
        waited = (now - job.finished).total_seconds()
        if (pod is None or pod.message is None) and waited < REPORT_WAIT:
            recheck = 1.0  # its pod's event is on its way: announce with the details
            continue
        report = (pod.report if pod else None) or {}
        if job.outcome == SUCCEEDED:
            detail = _dump_line(report["dump"]) if report.get("dump") else "completed"
            outcomes.append(Outcome(job.uid, job.name, True, f"backup Job {job.name}: {detail}"))
        else:
            outcomes.append(Outcome(job.uid, job.name, False,
                                    f"backup Job {job.name} failed: "
                                    f"{_failure_reason(memory, job)}"))

    return BackupView(_scheduled(spec, cronjob, applied, apply_message, upcoming),
                      _healthy(spec, section, stuck, memory, success_time, now),
                      section, outcomes, recheck)


def _scheduled(spec: BackupSpec, cronjob: str, applied: bool, apply_message: str,
               upcoming: list[datetime.datetime]) -> Observation:
    if not applied:
        return Observation(BACKUP_SCHEDULED, False, "NotApplied",
                           f"CronJob {cronjob} is not as declared yet: {apply_message}")
    zone = spec.time_zone or "the controller-manager's time zone"
    if spec.suspend:
        return Observation(BACKUP_SCHEDULED, True, "Suspended",
                           f"CronJob {cronjob} exists and is suspended (spec.backup.suspend): "
                           f"no scheduled run starts; Jobs created from it still run")
    when = f"; next run at {iso(upcoming[0])}" if upcoming else ""
    return Observation(BACKUP_SCHEDULED, True, "Scheduled",
                       f"CronJob {cronjob} runs '{spec.schedule}' ({zone}){when}")


def _healthy(spec: BackupSpec, section: Mapping[str, Any], stuck: tuple[str, str, str] | None,
             memory: BackupMemory, success_time: datetime.datetime | None,
             now: datetime.datetime) -> Observation:
    if stuck is not None:
        job, reason, message = stuck
        return Observation(BACKUP_HEALTHY, False, "JobCannotStart",
                           f"backup Job {job} cannot start its pod: {reason}"
                           + (f": {message}" if message else ""))
    failure = section.get("lastFailure") or {}
    failed_at = utc(failure.get("time"))
    if failed_at is not None and (success_time is None or failed_at > success_time):
        return Observation(BACKUP_HEALTHY, False, "LastBackupFailed",
                           f"the last backup ({failure.get('job')}, {failure.get('time')}) "
                           f"failed: {failure.get('reason')}")
    since = success_time or memory.cronjob_created
    due = overdue_at(spec, since) if since is not None and not spec.suspend else None
    if due is not None and now > due:
        what = f"since {iso(success_time)}" if success_time else \
            f"since the CronJob was created at {iso(since)}"
        return Observation(BACKUP_HEALTHY, False, "BackupOverdue",
                           f"no backup succeeded {what}: two scheduled runs of "
                           f"'{spec.schedule}' have passed (missed, stuck or failing)")
    if success_time is not None:
        dump = section.get("latestDump")
        detail = f": {_dump_line(dump)}" if dump else ""
        return Observation(BACKUP_HEALTHY, True, "LastBackupSucceeded",
                           f"the last backup succeeded at {iso(success_time)}{detail}")
    running = ", ".join(entry["job"] for entry in section.get("active") or [])
    if running:  # its pod may have reported already: the Job's completion is what counts
        return Observation(BACKUP_HEALTHY, True, "AwaitingFirstRun",
                           f"no backup has completed yet; backup Job {running} is running")
    return Observation(BACKUP_HEALTHY, True, "AwaitingFirstRun",
                       "no backup has run yet"
                       + (f"; the first is due at {section['nextScheduleTime']}"
                          if section.get("nextScheduleTime") else ""))
