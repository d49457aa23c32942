"""The runs inside the operator: one task per run, aborts, recovery after a restart, the
start-up sweep of workloads left scaled down, and ``spec.chaos.schedule``.

Kopf delivers the runs' watch events (``observe``, through ``promise.py``); the databases come
from the running operator (``promise.Operator``), whose workers stay the only writers of the
databases' status: a run's outcome reaches ``status.lastOutageTest`` through ``report``.
"""

from __future__ import annotations

import asyncio
import copy
import datetime
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from smartid_operator import clock
from smartid_operator.chaos import PLURAL
from smartid_operator.chaos.children import scheduled_run
from smartid_operator.chaos.engine.env import Env, Key, Refusal
from smartid_operator.chaos.engine.executor import Execution
from smartid_operator.chaos.engine.model import (
    ABORTED,
    REFUSED,
    RUNNING,
    TERMINAL,
    last_outage_test,
)
from smartid_operator.chaos.engine.recover import recover, restore_from_annotation
from smartid_operator.chaos.schedule import KEEP_SCHEDULED, SCHEDULED_LABEL, due
from smartid_operator.errors import ConfigError, KubeError
from smartid_operator.promise import Operator
from smartid_operator.spec import parse
from smartid_operator.status import Observation

log = logging.getLogger(__name__)
LOOP_INTERVAL = 2.0  # seconds between sweeps and schedule checks
STOP_GRACE = 60.0  # how long shutdown waits for runs to give the replicas back
Report = Callable[[Key, dict[str, Any], Observation | None], None]  # to the database's status


@dataclass
class Entry:
    database: str
    uid: str
    task: asyncio.Task[Any]
    execution: Execution | None = None  # None: a recovery or a refusal, not a run
    active: bool = True  # a refusal holds the run's key but not its database


class Manager:
    def __init__(self, operator: Operator, report: Report) -> None:
        self.operator = operator
        ctx = operator.context
        self.env = Env(kube=ctx.kube, in_kube=ctx.in_kube_pool, pool=ctx.pool,
                       image=ctx.image, event=operator.event, database=operator.database,
                       database_status=operator.status, report=report,
                       active_run=self._active_run)
        self.tasks: dict[Key, Entry] = {}
        self.runs: dict[Key, dict[str, Any]] = {}  # every run as last seen
        self.finished: dict[str, str] = {}  # uid -> phase, of runs this process ended
        self.swept: set[Key] = set()  # databases whose workload was checked since start
        self.schedule_since: dict[Key, datetime.datetime] = {}
        self.loop: asyncio.Task[None] | None = None

    def _active_run(self, db: Key, exclude: str) -> str | None:
        for (ns, name), entry in self.tasks.items():
            if entry.active and (ns, entry.database) == db and name != exclude:
                return name
        for (ns, name), run in self.runs.items():  # Running, left by an earlier process
            if (ns, run["spec"].get("database")) == db and name != exclude and \
                    (run.get("status") or {}).get("phase") == RUNNING and \
                    run["metadata"].get("uid") not in self.finished:
                return name
        return None

    # -- watch events of runs ------------------------------------------------------------------

    def observe(self, event: str | None, body: Mapping[str, Any]) -> None:
        meta = body["metadata"]
        key: Key = (meta["namespace"], meta["name"])
        entry = self.tasks.get(key)
        if event == "DELETED":
            self.runs.pop(key, None)
            self._cancel(key, "Deleted")
            return
        run = copy.deepcopy(dict(body))
        self.runs[key] = run
        uid = meta.get("uid", "")
        if entry is not None and entry.uid != uid:  # deleted and created again meanwhile
            self._cancel(key, "Deleted")
            entry = None
        if entry is not None:
            if (run.get("spec") or {}).get("abort"):
                self._cancel(key, "AbortRequested")
            return
        if uid in self.finished:  # a late event of a run this process finished
            return
        phase = (run.get("status") or {}).get("phase")
        if phase in TERMINAL:
            return
        if phase == RUNNING:
            self._start(key, run, self._recover(run), None)
        elif (run.get("spec") or {}).get("abort"):
            self._start(key, run, self._never_started(run), None)
        elif (other := self._active_run((key[0], run["spec"].get("database", "")),
                                        key[1])) is not None:
            # Decided here, in event order, not in the tasks: two runs created together
            # must not each see the other and both refuse.
            self._start(key, run, self._refuse_busy(run, other), None, active=False)
        else:
            execution = Execution(self.env, run)
            self._start(key, run, execution.execute(), execution)

    def _start(self, key: Key, run: dict[str, Any], work: Any,
               execution: Execution | None, *, active: bool = True) -> None:
        task = asyncio.get_running_loop().create_task(work, name=f"smartid-run-{key[0]}/{key[1]}")
        entry = Entry(run["spec"].get("database", ""), run["metadata"].get("uid", ""), task,
                      execution, active)
        self.tasks[key] = entry
        task.add_done_callback(lambda t: self._done(key, entry, t))

    def _done(self, key: Key, entry: Entry, task: asyncio.Task[Any]) -> None:
        if self.tasks.get(key) is entry:
            del self.tasks[key]
        phase = None if task.cancelled() or task.exception() else task.result()
        self.finished[entry.uid] = str(phase or ABORTED)
        if not task.cancelled() and task.exception() is not None:
            log.error("run %s/%s failed unexpectedly", *key, exc_info=task.exception())
        execution = entry.execution
        if execution is None or (execution.annotated and not execution.restored) \
                or task.cancelled() or task.exception() is not None:
            # Anything short of a clean restore: look at the workload again.
            self.swept.discard((key[0], entry.database))

    def _cancel(self, key: Key, reason: str) -> None:
        entry = self.tasks.get(key)
        if entry is None or entry.execution is None:
            return
        if entry.execution.abort_reason is None:
            entry.execution.abort_reason = reason
            entry.task.cancel()

    async def _recover(self, run: dict[str, Any]) -> str:
        meta = run["metadata"]
        fresh = await self.env.call(self.env.kube.custom_object, PLURAL, meta["namespace"],
                                    meta["name"])
        if fresh is None or (fresh.get("status") or {}).get("phase") != RUNNING:
            return str((fresh or {}).get("status", {}).get("phase") or "Gone")
        await recover(self.env, fresh)
        return ABORTED

    async def _refuse_busy(self, run: dict[str, Any], other: str) -> str:
        execution = Execution(self.env, run)
        execution.timings.mark("started", self.env.now())
        await execution.refuse(Refusal("RunActive", f"run {other} is still active for "
                                                    f"SmartIDDatabase {run['spec']['database']}"
                                                    f": one outage test at a time"))
        return REFUSED

    async def _never_started(self, run: dict[str, Any]) -> str:
        meta = run["metadata"]
        status = {"phase": ABORTED, "reason": "AbortRequested", "step": "Done",
                  "message": "spec.abort was set before the run started; nothing was touched"}
        await self.env.call(self.env.kube.apply_custom_status, PLURAL, "SmartIDOutageTest",
                            meta["namespace"], meta["name"], status)
        self.env.report((meta["namespace"], run["spec"]["database"]),
                        last_outage_test(meta["name"], status), None)
        return ABORTED

    # -- the loop: sweeps and schedules ----------------------------------------------------------

    def start(self) -> None:
        self.loop = asyncio.get_running_loop().create_task(self._loop(), name="smartid-chaos")

    async def _loop(self) -> None:
        while True:
            await asyncio.sleep(LOOP_INTERVAL)
            for key in self.operator.databases():
                try:
                    await self._sweep(key)
                    await self._schedule(key)
                except (KubeError, ConfigError) as exc:
                    log.warning("chaos upkeep of %s/%s: %s", *key, exc)
                except Exception:  # a bug here must not end the loop for every database
                    log.exception("chaos upkeep of %s/%s failed", *key)

    async def _sweep(self, key: Key) -> None:
        """A workload left annotated with no run active (an operator killed mid-run whose run
        was deleted meanwhile, or a restore that kept failing): give its replicas back."""
        if key in self.swept or self._active_run(key, "") is not None:
            return
        body = self.operator.database(key)
        if body is None:
            return
        ref = parse(body["spec"]).mongo.workload
        note = await restore_from_annotation(self.env, key[0], ref)
        self.swept.add(key)
        if note is not None:
            log.warning("restored %s/%s %s left scaled down by run %s", key[0], ref.kind,
                        ref.name, note.get("run"))

    async def _schedule(self, key: Key) -> None:
        body = self.operator.database(key)
        if body is None:
            return
        chaos = parse(body["spec"]).chaos
        if not chaos.schedule or not chaos.allow_disruption:
            self.schedule_since.pop(key, None)
            return
        now = clock.utcnow()
        since = self.schedule_since.setdefault(key, now)
        fire = due(chaos.schedule, since, now)
        if fire is None:
            return
        self.schedule_since[key] = now
        manifest = scheduled_run(body, fire)
        try:
            await self.env.call(self.env.kube.create_custom, PLURAL, key[0], manifest)
            log.info("schedule %r: created run %s/%s", chaos.schedule, key[0],
                     manifest["metadata"]["name"])
        except KubeError as exc:
            if exc.status != 409:  # 409: created already (a restart within the minute)
                raise
        await self._prune(key)

    async def _prune(self, key: Key) -> None:
        """Keep the newest KEEP_SCHEDULED finished scheduled runs of a database."""
        done = sorted(
            (run["metadata"].get("creationTimestamp", ""), name)
            for (ns, name), run in self.runs.items()
            if ns == key[0] and run["spec"].get("database") == key[1]
            and (run["metadata"].get("labels") or {}).get(SCHEDULED_LABEL) == "true"
            and (run.get("status") or {}).get("phase") in TERMINAL)
        for _, name in done[:-KEEP_SCHEDULED] if len(done) > KEEP_SCHEDULED else []:
            await self.env.call(self.env.kube.delete_custom, PLURAL, key[0], name)

    # -- shutdown ------------------------------------------------------------------------------

    async def stop(self) -> None:
        """Operator shutdown: abort every run (each restores its workload) and wait a while."""
        if self.loop is not None:
            self.loop.cancel()
        for key in list(self.tasks):
            self._cancel(key, "OperatorStopping")
        tasks = [entry.task for entry in self.tasks.values()]
        if tasks:
            await asyncio.wait(tasks, timeout=STOP_GRACE)
