"""What the operator remembers of backup and restore Jobs, fed by watch events only.

Kopf delivers the Jobs (labelled ``app.kubernetes.io/managed-by``), their pods and the backup
CronJob; each event updates this memory, and a pass reads it. So status follows the Jobs
without a single LIST per pass: at rest the operator reads nothing more than before. A pod's
termination message (the JSON outcome ``backup run`` leaves) is kept after the pod is gone,
and dropped with its Job.
"""

from __future__ import annotations

import datetime
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from smartid_operator.backup.engine.summary import parse_termination_message
from smartid_operator.clock import utc

RUNNING, SUCCEEDED, FAILED = "Running", "Succeeded", "Failed"
# Waiting reasons of a container that will not start by itself: a person must act.
STUCK = frozenset({"CreateContainerConfigError", "CreateContainerError", "ErrImagePull",
                   "ImagePullBackOff", "InvalidImageName", "RunContainerError"})


@dataclass(frozen=True)
class PodState:
    name: str
    created: datetime.datetime | None
    exit_code: int | None = None
    message: str | None = None  # the termination message, as the kubelet reported it
    waiting: tuple[str, str] | None = None  # (reason, message) of a container not running

    @property
    def report(self) -> dict[str, Any] | None:
        """The ``backup run`` / ``backup restore`` JSON outcome, if the pod left one."""
        return parse_termination_message(self.message) if self.message else None

    @property
    def log_end(self) -> str:
        """The message's last non-blank line, at most 500 characters ("" for none): what a
        container that left no report said last (``FallbackToLogsOnError``: its log's end)."""
        lines = [line for line in (self.message or "").strip().splitlines() if line.strip()]
        return lines[-1][:500] if lines else ""


@dataclass(frozen=True)
class JobState:
    name: str
    uid: str
    created: datetime.datetime | None
    started: datetime.datetime | None
    finished: datetime.datetime | None
    outcome: str  # RUNNING, SUCCEEDED or FAILED
    reason: str = ""  # the Job's own failure reason and message (deadline, back-off...)
    manual: bool = False  # `kubectl create job --from=cronjob/...`

    @classmethod
    def of(cls, body: Mapping[str, Any]) -> JobState:
        meta, status = body["metadata"], body.get("status") or {}
        outcome, finished, reason = RUNNING, None, ""
        for cond in status.get("conditions") or []:
            if cond.get("status") != "True":
                continue
            if cond.get("type") == "Complete":
                outcome = SUCCEEDED
                finished = utc(status.get("completionTime")) or \
                    utc(cond.get("lastTransitionTime"))
            elif cond.get("type") == "Failed":
                outcome, finished = FAILED, utc(cond.get("lastTransitionTime"))
                reason = ": ".join(p for p in (cond.get("reason"), cond.get("message")) if p)
        annotations = meta.get("annotations") or {}
        return cls(meta["name"], meta.get("uid", ""), utc(meta.get("creationTimestamp")),
                   utc(status.get("startTime")), finished, outcome, reason,
                   annotations.get("cronjob.kubernetes.io/instantiate") == "manual")


def pod_state(body: Mapping[str, Any]) -> PodState:
    meta = body["metadata"]
    statuses = (body.get("status") or {}).get("containerStatuses") or []
    exit_code = message = waiting = None
    if statuses:
        state = statuses[0].get("state") or {}
        if terminated := state.get("terminated"):
            exit_code = terminated.get("exitCode")
            message = terminated.get("message") or None
        elif pending := state.get("waiting"):
            waiting = (str(pending.get("reason") or ""), str(pending.get("message") or ""))
    return PodState(meta["name"], utc(meta.get("creationTimestamp")), exit_code,
                    message, waiting)


def job_of_pod(body: Mapping[str, Any]) -> str | None:
    for ref in body["metadata"].get("ownerReferences") or []:
        if ref.get("controller") and ref.get("kind") == "Job":
            return str(ref["name"])
    return None


@dataclass
class JobMemory:
    """The Jobs of one database and one component (backup, or restore), and their pods."""

    jobs: dict[str, JobState] = field(default_factory=dict)
    pods: dict[str, dict[str, PodState]] = field(default_factory=dict)  # job -> pod -> state
    announced: set[str] = field(default_factory=set)  # uids whose outcome got its Event

    def job_event(self, event: str | None, body: Mapping[str, Any]) -> bool:
        """True if what status is made of changed."""
        name = body["metadata"]["name"]
        if event == "DELETED":
            self.pods.pop(name, None)
            gone = self.jobs.pop(name, None)
            if gone is not None:
                self.announced.discard(gone.uid)
            return gone is not None
        state = JobState.of(body)
        if event is None and state.outcome != RUNNING:
            # The initial listing (operator start): finished before we looked, not news.
            self.announced.add(state.uid)
        before = self.jobs.get(name)
        if before is not None and before.uid != state.uid:  # same name, a new Job
            self.pods.pop(name, None)
        self.jobs[name] = state
        return before != state

    def pod_event(self, body: Mapping[str, Any]) -> bool:
        job = job_of_pod(body)
        if job is None:
            return False
        state = pod_state(body)
        pods = self.pods.setdefault(job, {})
        before = pods.get(state.name)
        if before is not None and before.message and not state.message:
            return False  # a later event without the message (deletion) keeps what we saw
        pods[state.name] = state
        return before != state

    def latest_pod(self, job: str) -> PodState | None:
        pods = self.pods.get(job) or {}
        epoch = datetime.datetime.min.replace(tzinfo=datetime.UTC)
        return max(pods.values(), key=lambda p: (p.created or epoch, p.name), default=None)


@dataclass
class BackupMemory(JobMemory):
    """The backup Jobs plus what the CronJob's own status says (from its watch events)."""

    cronjob_created: datetime.datetime | None = None
    last_schedule: datetime.datetime | None = None
    last_successful: datetime.datetime | None = None

    def cronjob_event(self, event: str | None, body: Mapping[str, Any]) -> bool:
        before = (self.cronjob_created, self.last_schedule, self.last_successful)
        if event == "DELETED":
            self.cronjob_created = None
        else:
            status = body.get("status") or {}
            self.cronjob_created = utc(body["metadata"].get("creationTimestamp"))
            self.last_schedule = utc(status.get("lastScheduleTime")) or \
                self.last_schedule
            self.last_successful = utc(status.get("lastSuccessfulTime")) or \
                self.last_successful
        return before != (self.cronjob_created, self.last_schedule, self.last_successful)
