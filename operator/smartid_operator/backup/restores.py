"""SmartIDRestore in the operator: one restore per resource, run once as a Job.

The operator is the only writer of a restore's status, one sync at a time per restore, from
watch events (the restore, its Job, the Job's pod); the Job's pod leaves the outcome in its
termination message. A finished restore is never run again, whatever happens to its Job.
"""

from __future__ import annotations

import asyncio
import datetime
import functools
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from smartid_operator.backup.children import (
    KIND,
    PLURAL,
    RESTORE_COMPONENT,
    RESTORE_LABEL,
    job_name,
    restore_job,
)
from smartid_operator.backup.jobs import (
    FAILED,
    STUCK,
    SUCCEEDED,
    JobState,
    PodState,
    job_of_pod,
    pod_state,
)
from smartid_operator.clock import iso, utcnow
from smartid_operator.errors import ConfigError, KubeError
from smartid_operator.manifests import COMPONENT_LABEL
from smartid_operator.promise import Operator
from smartid_operator.spec import DatabaseSpec, RestoreSpec, parse, parse_restore

log = logging.getLogger(__name__)
Key = tuple[str, str]
PENDING, RUNNING = "Pending", "Running"
TERMINAL = frozenset({SUCCEEDED, FAILED})
RETRY_PENDING = 5.0  # seconds between looks for a database that is not there yet
EXIT_REFUSED = 4


@dataclass(frozen=True)
class Decision:
    status: dict[str, Any]
    create_job: bool = False
    retry: bool = False  # look again later (the database is not known yet)


def decide(body: Mapping[str, Any], database: DatabaseSpec | None, job: JobState | None,
           pod: PodState | None, *, job_gone: bool, now: datetime.datetime) -> Decision:
    """The restore's next status (pure). ``job_gone``: the Job this restore started is gone."""
    meta, spec = body["metadata"], parse_restore(body["spec"])
    previous = dict(body.get("status") or {})
    base = {"observedGeneration": meta.get("generation"), "job": job_name(meta["name"])}
    if previous.get("phase") in TERMINAL:
        return Decision(previous)
    start = previous.get("startTime") or iso(now)

    def status(phase: str, reason: str, message: str, **extra: Any) -> dict[str, Any]:
        doc = {**base, "phase": phase, "reason": reason, "message": message, **extra}
        return {k: v for k, v in doc.items() if v is not None}

    if job is None:
        if job_gone:
            return Decision(status(FAILED, "JobDeleted", f"the restore Job {base['job']} was "
                                   f"deleted before it finished", startTime=start,
                                   completionTime=iso(now)))
        if database is None:
            return Decision(status(PENDING, "DatabaseNotFound",
                                   f"SmartIDDatabase {spec.database} is not in this "
                                   f"namespace (yet)"), retry=True)
        if database.backup.claim is None and database.backup.s3 is None and \
                spec.source_s3 is None:
            return Decision(status(FAILED, "NoBackupStorage",
                                   f"SmartIDDatabase {spec.database} names no "
                                   f"spec.backup.storage (persistentVolumeClaim or s3) and "
                                   f"this restore no spec.source.s3 to restore from",
                                   completionTime=iso(now)))
        return Decision(status(RUNNING, "JobCreated", _what(spec), startTime=start),
                        create_job=True)
    report = (pod.report if pod else None) or {}
    restored = report.get("restore") or {}
    extra = {"startTime": iso(job.started or job.created) or start,
             "dump": restored.get("dump"), "documents": restored.get("documents"),
             "counts": restored.get("counts")}
    if job.outcome == SUCCEEDED:
        return Decision(status(SUCCEEDED, "Restored",
                               f"restored {restored.get('dump', spec.dump)} into "
                               f"{spec.target_database}: {restored.get('documents', '?')} "
                               f"documents, counts and indexes checked against the manifest",
                               completionTime=iso(job.finished), **extra))
    if job.outcome == FAILED:
        refused = bool(report.get("refused")) or (pod is not None and
                                                  pod.exit_code == EXIT_REFUSED)
        why = report.get("reason") or (pod.log_end if pod else "") or job.reason or \
            "the restore Job failed"
        if refused and "--drop" in why:
            why += " (spec.drop: true in a new SmartIDRestore)"
        return Decision(status(FAILED, "Refused" if refused else "RestoreFailed", why,
                               completionTime=iso(job.finished), **extra))
    if pod is not None and pod.waiting and pod.waiting[0] in STUCK:
        return Decision(status(RUNNING, "JobCannotStart",
                               f"the restore Job cannot start its pod: {pod.waiting[0]}: "
                               f"{pod.waiting[1]}", startTime=extra["startTime"]))
    return Decision(status(RUNNING, "Restoring", _what(spec), startTime=extra["startTime"]))


def _what(spec: RestoreSpec) -> str:
    return (f"restoring {spec.dump} of {spec.database} into {spec.target_database}"
            + (" (replacing the dumped collections)" if spec.drop else ""))


@dataclass
class Tracked:
    body: dict[str, Any] | None = None
    job: JobState | None = None
    pod: PodState | None = None
    job_deleted: bool = False
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)


class Restores:
    def __init__(self, operator: Operator) -> None:
        self.operator = operator
        self.tracked: dict[Key, Tracked] = {}
        self.tasks: set[asyncio.Task[None]] = set()

    # -- watch events ----------------------------------------------------------------------------

    def observe(self, event: str | None, body: Mapping[str, Any]) -> None:
        meta = body["metadata"]
        key: Key = (meta["namespace"], meta["name"])
        if event == "DELETED":
            self.tracked.pop(key, None)
            return
        entry = self.tracked.setdefault(key, Tracked())
        if entry.body is not None and entry.body["metadata"].get("uid") != meta.get("uid"):
            self.tracked[key] = entry = Tracked()  # a new object of the same name
        entry.body = _plain(body)
        self._sync_soon(key)

    def job_changed(self, event: str | None, body: Mapping[str, Any]) -> None:
        key = _restore_key(body)
        if key is None:
            return
        entry = self.tracked.setdefault(key, Tracked())
        entry.job = None if event == "DELETED" else JobState.of(body)
        entry.job_deleted = event == "DELETED"
        self._sync_soon(key)

    def pod_changed(self, body: Mapping[str, Any]) -> None:
        key = _restore_key(body)
        if key is None or job_of_pod(body) is None:
            return
        entry = self.tracked.setdefault(key, Tracked())
        state = pod_state(body)
        if entry.pod is not None and entry.pod.message and not state.message:
            return  # keep the outcome the pod reported
        entry.pod = state
        self._sync_soon(key)

    # -- one sync at a time per restore ----------------------------------------------------------

    def _sync_soon(self, key: Key, delay: float = 0.0) -> None:
        loop = asyncio.get_running_loop()

        def start() -> None:
            task = loop.create_task(self._sync(key))
            self.tasks.add(task)  # held: the loop keeps only a weak reference
            task.add_done_callback(self.tasks.discard)

        loop.call_later(delay, start)

    async def _sync(self, key: Key) -> None:
        entry = self.tracked.get(key)
        if entry is None or entry.body is None:
            return
        async with entry.lock:
            try:
                await self._sync_locked(key, entry)
            except (KubeError, ConfigError) as exc:
                log.warning("restore %s/%s: %s; retrying", *key, exc)
                self._sync_soon(key, RETRY_PENDING)
            except Exception:  # a bug must not end this restore's updates for good
                log.exception("restore %s/%s failed; retrying", *key)
                self._sync_soon(key, RETRY_PENDING)

    async def _sync_locked(self, key: Key, entry: Tracked) -> None:
        body = entry.body
        assert body is not None
        ctx = self.operator.context
        previous = body.get("status") or {}
        job_gone = entry.job_deleted
        if entry.job is None and previous.get("phase") == RUNNING and not job_gone:
            # Started before (an operator restart): is its Job still there?
            live = await ctx.in_kube_pool(functools.partial(ctx.kube.job, key[0],
                                                            job_name(key[1])))
            if live is None:
                job_gone = True
            else:
                entry.job = JobState.of(live)
        decision = decide(body, self._database(key[0], body["spec"]["database"]), entry.job,
                          entry.pod, job_gone=job_gone, now=utcnow())
        if decision.create_job:
            database = self._database(key[0], body["spec"]["database"])
            assert database is not None
            live = await ctx.in_kube_pool(functools.partial(
                ctx.kube.create_job, restore_job(body, database, ctx.image)))
            entry.job = entry.job or JobState.of(live)
        if decision.status != previous:
            await ctx.in_kube_pool(functools.partial(
                ctx.kube.apply_custom_status, PLURAL, KIND, key[0], key[1], decision.status))
            body["status"] = decision.status
            self._announce(body, previous, decision.status)
        if decision.retry:
            self._sync_soon(key, RETRY_PENDING)

    def _database(self, namespace: str, name: str) -> DatabaseSpec | None:
        body = self.operator.database((namespace, name))
        if body is None:
            return None
        try:
            return parse(body.get("spec") or {})
        except ConfigError:
            return None

    def _announce(self, body: Mapping[str, Any], before: Mapping[str, Any],
                  after: Mapping[str, Any]) -> None:
        phase = after.get("phase")
        if phase == before.get("phase") or phase == PENDING:
            return
        reason = {RUNNING: "RestoreStarted", SUCCEEDED: "RestoreSucceeded",
                  FAILED: "RestoreFailed"}[str(phase)]
        self.operator.event(body, "Warning" if phase == FAILED else "Normal", reason,
                                  str(after.get("message", "")))


def _restore_key(body: Mapping[str, Any]) -> Key | None:
    meta = body["metadata"]
    labels = meta.get("labels") or {}
    if labels.get(COMPONENT_LABEL) != RESTORE_COMPONENT or not labels.get(RESTORE_LABEL):
        return None
    return meta["namespace"], labels[RESTORE_LABEL]


def _plain(body: Mapping[str, Any]) -> dict[str, Any]:
    import copy

    return copy.deepcopy(dict(body))
