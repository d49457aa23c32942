"""One worker per SmartIDDatabase: the only writer of its status, its Events and its children.

Kopf delivers watch events (the database itself, the Mongo workload's pods, the children);
handlers only *poke* the worker of the database concerned. The worker runs one reconcile pass
at a time, coalescing every poke that arrived meanwhile into the next pass, and otherwise
wakes once per health interval (sooner, with a growing delay, while Mongo is unreachable).
Transitions are computed against the status this worker last wrote, so each posts exactly one
Event, and the status is written only when it changed.

Why not Kopf's change handlers plus a timer: they are two concurrent entry points per object,
and timers and daemons require a finalizer, which strands a resource whenever the operator is
gone before it (uninstall, Argo CD prune order). Watch-event handlers need neither a finalizer
nor annotations on the object.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from smartid_operator import metrics
from smartid_operator.errors import KubeError
from smartid_operator.manifests import MANAGED_BY, MANAGED_LABEL
from smartid_operator.promise import Promise
from smartid_operator.reconcile import Children, Context, Result, reconcile

log = logging.getLogger(__name__)

Key = tuple[str, str]  # namespace, name
TERMINATING_RECHECKS = (0.3, 0.8, 1.5)
Body = dict[str, Any]


@dataclass
class Hooks:
    """What the worker needs from Kopf, injected so the loop stays testable without it."""

    adopt: Callable[[dict[str, Any], Mapping[str, Any]], None]
    event: Callable[[Mapping[str, Any], str, str, str], None]  # body, type, reason, message


@dataclass
class Worker:
    key: Key
    body: Body
    context: Context
    hooks: Hooks
    interval: float
    status: dict[str, Any] = field(default_factory=dict)
    children: Children = field(default_factory=Children)
    poked: asyncio.Event = field(default_factory=asyncio.Event)
    failures: int = 0
    rechecks: int = 0
    task: asyncio.Task[None] | None = None
    # Each promise's memory of this database (kept by the registry: a watch event may
    # come before its database's, and a re-created database keeps the name's memory).
    memory: Callable[[Promise], Any] = lambda promise: promise.memory()

    def workload(self) -> WorkloadKey:
        """The Mongo workload the spec names (read from the latest body, never cached)."""
        ref = (self.body.get("spec") or {}).get("mongo", {}).get("workload") or {}
        return WorkloadKey(self.key[0], ref.get("kind", "StatefulSet"), ref.get("name", ""))

    def poke(self, *later: float) -> None:
        """Wake now, and again after each of ``later`` seconds."""
        self.poked.set()
        loop = asyncio.get_running_loop()
        for delay in later:
            loop.call_later(delay, self.poked.set)

    async def run(self) -> None:
        self.status = dict(self.body.get("status") or {})
        delay = 0.0  # the first pass runs at once
        while True:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(delay):  # not wait_for: see mongo._refused
                    await self.poked.wait()
            self.poked.clear()
            try:
                delay = await self._pass()
            except asyncio.CancelledError:
                raise
            except Exception:  # a bug must not end this database's worker for good
                log.exception("reconcile of %s/%s failed", *self.key)
                metrics.RECONCILES.labels(*self.key, "error").inc()
                self.failures += 1
                delay = self._backoff()

    def _backoff(self) -> float:
        return float(min(60, 5 * 2 ** min(self.failures - 1, 4)))

    async def _pass(self) -> float:
        started = time.monotonic()
        body = self.body
        result = await reconcile(self.context, body, self.status, self.children,
                                 adopt=lambda child: self.hooks.adopt(child, body),
                                 memory=self.memory)
        await self._publish(body, result)
        for promise in self.context.promises:
            promise.published(self.key, result.status, self.memory(promise))
        log.debug("pass %s/%s: %s in %.3f s", *self.key, result.status.get("phase"),
                 time.monotonic() - started)
        metrics.observe(self.key, body, result, time.monotonic() - started)
        if result.unavailable:
            self.failures += 1
            return min(self.interval, self._backoff())
        self.failures = 0
        if result.recheck_after is not None:  # settling (recovery under way): look again
            # At the asked pace for a while (a report is followed within a second), then
            # slower, so a database that never settles costs little.
            self.rechecks += 1
            growth = min(max(self.rechecks - FAST_RECHECKS, 0), 4)
            return min(self.interval, result.recheck_after * float(2 ** growth))
        self.rechecks = 0
        return self.interval

    async def _publish(self, body: Mapping[str, Any], result: Result) -> None:
        if result.status != self.status:
            try:
                await self.context.in_kube_pool(lambda: self.context.kube.apply_status(
                    self.key[0], self.key[1], result.status))
            except KubeError as exc:
                if exc.status == 404:  # deleted meanwhile: the DELETED event stops us
                    return
                raise
            self.status = result.status
        for event in result.events:  # the promises': Reindexed, MigrationApplied, ...
            self.hooks.event(body, event.type, event.reason, event.message)
            if event.posted is not None:
                event.posted()
        for change in result.transitions:
            self.hooks.event(body, "Normal" if change.status == "True" else "Warning",
                             change.reason, f"{change.type} is {change.status}: {change.message}")


@dataclass(frozen=True)
class WorkloadKey:
    namespace: str
    kind: str
    name: str


class Registry:
    """The workers, which databases a watch event concerns, and each promise's memory of
    each database: the running operator as a promise sees it (``promise.Operator``)."""

    def __init__(self, context: Context, hooks: Hooks, interval: float) -> None:
        self.context = context
        self.hooks = hooks
        self.interval = interval
        self.workers: dict[Key, Worker] = {}
        self.memories: dict[tuple[str, Key], Any] = {}  # (promise, database) -> memory

    # -- promise.Operator --------------------------------------------------------------------

    def databases(self) -> list[Key]:
        return list(self.workers)

    def database(self, key: Key) -> Body | None:
        worker = self.workers.get(key)
        return None if worker is None else worker.body

    def status(self, key: Key) -> Mapping[str, Any]:
        worker = self.workers.get(key)
        return {} if worker is None else worker.status

    def memory(self, promise: Promise, key: Key) -> Any:
        slot = (promise.name, key)
        if slot not in self.memories:
            self.memories[slot] = promise.memory()
        return self.memories[slot]

    def poke(self, key: Key) -> None:
        if key in self.workers:
            self.workers[key].poke()

    def event(self, body: Mapping[str, Any], type_: str, reason: str, message: str) -> None:
        self.hooks.event(body, type_, reason, message)

    # -- the databases ---------------------------------------------------------------------------

    def observe(self, event: str | None, body: Mapping[str, Any]) -> None:
        """A watch event of a SmartIDDatabase (None: the initial listing)."""
        meta = body["metadata"]
        key: Key = (meta["namespace"], meta["name"])
        worker = self.workers.get(key)
        same = worker is not None and worker.body["metadata"].get("uid") == meta.get("uid")
        if event == "DELETED":
            if same:
                asyncio.get_running_loop().create_task(self.forget(key, worker))
            return
        snapshot = _plain(body)
        if worker is not None and not same:
            # Deleted and created again between two events: a new object, a new worker;
            # the old one only stops (the name's clients and memory go on serving the new).
            del self.workers[key]
            asyncio.get_running_loop().create_task(_stop(worker))
            worker = None
        if worker is None:
            worker = Worker(key, snapshot, self.context, self.hooks, self.interval,
                            memory=lambda promise: self.memory(promise, key))
            worker.task = asyncio.get_running_loop().create_task(
                worker.run(), name=f"smartid-worker-{key[0]}/{key[1]}")
            self.workers[key] = worker
        else:
            changed = snapshot["metadata"].get("generation") != \
                worker.body["metadata"].get("generation")
            worker.body = snapshot
            if changed:  # the spec changed; our own status writes do not wake us
                worker.poke()

    async def forget(self, key: Key, worker: Worker | None = None) -> None:
        """The database is gone: stop its worker and drop what is kept for it. With
        ``worker``, only if that worker is still the one for the name (not re-created)."""
        if worker is not None and self.workers.get(key) is not worker:
            await _stop(worker)
            return
        worker = self.workers.pop(key, None)
        if worker is not None:
            await _stop(worker)
        await self.context.pool.forget(f"{key[0]}/{key[1]}")
        metrics.forget(*key)
        for promise in self.context.promises:
            promise.forget(key)
        if key not in self.workers:  # not re-created meanwhile
            for promise in self.context.promises:
                self.memories.pop((promise.name, key), None)

    async def stop(self) -> None:
        for key in list(self.workers):
            await self.forget(key)
        await self.context.pool.close()

    # -- what wakes them -------------------------------------------------------------------------

    def heard(self, group: str, version: str, plural: str, event: str | None,
              body: Mapping[str, Any]) -> None:
        """A watch event of a kind the core or a promise watches (not the databases)."""
        if (group, plural) == ("", "pods"):
            self.pod_changed(body)
        else:
            self.child_changed(event, body)
        managed = (body["metadata"].get("labels") or {}).get(MANAGED_LABEL) == MANAGED_BY
        for promise in self.context.promises:
            for watch in promise.watches:
                if (watch.group, watch.version, watch.plural) == (group, version, plural) \
                        and (managed or not watch.managed):
                    promise.heard(self, watch, event, body)

    def pod_changed(self, body: Mapping[str, Any]) -> int:
        """A pod event: wake the databases whose Mongo workload owns the pod. Returns how
        many were woken."""
        owner = pod_workload(body)
        if owner is None:
            return 0
        # A terminating pod's server stops a moment after the event (the kubelet sends
        # SIGTERM once it sees the deletion too): look again shortly, not at the next tick.
        later = TERMINATING_RECHECKS if body["metadata"].get("deletionTimestamp") else ()
        woken = 0
        for worker in self.workers.values():
            if worker.workload() == owner:
                worker.poke(*later)
                woken += 1
        return woken

    def child_changed(self, event: str | None, body: Mapping[str, Any]) -> bool:
        """A watch event of a child the operator owns: re-apply it if it is not as written."""
        meta = body["metadata"]
        for ref in meta.get("ownerReferences") or []:
            if not ref.get("controller") or ref.get("kind") != "SmartIDDatabase":
                continue
            worker = self.workers.get((meta["namespace"], ref["name"]))
            if worker is None or worker.body["metadata"].get("uid") != ref.get("uid"):
                continue
            if worker.children.observed(body["kind"], meta["name"],
                                        None if event == "DELETED" else meta):
                worker.poke()
                return True
        return False



FAST_RECHECKS = 60


async def _stop(worker: Worker) -> None:
    if worker.task is not None:
        worker.task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await worker.task


def pod_workload(body: Mapping[str, Any]) -> WorkloadKey | None:
    """The StatefulSet or Deployment a pod belongs to, from its controller reference."""
    meta = body["metadata"]
    for ref in meta.get("ownerReferences") or []:
        if not ref.get("controller"):
            continue
        if ref.get("kind") == "StatefulSet":
            return WorkloadKey(meta["namespace"], "StatefulSet", ref["name"])
        if ref.get("kind") == "ReplicaSet":
            suffix = (meta.get("labels") or {}).get("pod-template-hash")
            if suffix and ref["name"].endswith(f"-{suffix}"):
                return WorkloadKey(meta["namespace"], "Deployment",
                                   ref["name"][:-len(suffix) - 1])
    return None


def _plain(body: Mapping[str, Any]) -> Body:
    """A plain, detached copy (Kopf's bodies are live views)."""
    return copy.deepcopy(dict(body))
