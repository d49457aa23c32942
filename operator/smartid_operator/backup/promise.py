"""The backup promise's door for the core (runs in the operator process): the CronJob whose
Jobs dump, verify and prune (``engine/``, in the Jobs' pods), ``status.backup`` from the Jobs'
watch events, and the SmartIDRestore controller (``restores.py``)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from smartid_operator import GROUP, VERSION
from smartid_operator.backup import metrics
from smartid_operator.backup.children import COMPONENT, backup_cronjob, cronjob_name
from smartid_operator.backup.children import PLURAL as RESTORE_PLURAL
from smartid_operator.backup.jobs import BackupMemory
from smartid_operator.backup.observe import BACKUP_HEALTHY, BACKUP_SCHEDULED, observe
from smartid_operator.backup.restores import Restores
from smartid_operator.manifests import instance_of
from smartid_operator.promise import Body, Child, Event, Key, Look, Operator, Promise, View, Watch
from smartid_operator.spec import DatabaseSpec

JOBS, CRONJOBS = Watch("batch", "v1", "jobs"), Watch("batch", "v1", "cronjobs")
PODS = Watch("", "v1", "pods")  # a Job's pod: its termination message is the run's outcome
RESTORES = Watch(GROUP, VERSION, RESTORE_PLURAL, managed=False)
NOT_APPLIED = ("ApplyFailed", "ChildRejected", "InvalidSpec")


class Backup(Promise):
    name = "backup"
    section = "backup"
    conditions = (BACKUP_SCHEDULED, BACKUP_HEALTHY)
    watches = (JOBS, CRONJOBS, PODS, RESTORES)
    owns = (CRONJOBS,)

    def __init__(self) -> None:
        self.restores: Restores | None = None

    def memory(self) -> BackupMemory:
        return BackupMemory()

    def settings(self, spec: DatabaseSpec) -> dict[str, str]:
        if not spec.backup.enabled:
            return {}
        return {"SMARTID_BACKUP_RETENTION_DAYS": str(spec.backup.retention_days),
                "SMARTID_BACKUP_KEEP_LAST": str(spec.backup.keep_last),
                "SMARTID_BACKUP_GZIP": "true" if spec.backup.gzip else "false"}

    def children(self, name: str, namespace: str, spec: DatabaseSpec,
                 image: str) -> Sequence[Child]:
        return [("CronJob", cronjob_name(name),
                 backup_cronjob(name, namespace, spec, image) if spec.backup.enabled else None)]

    async def observe(self, look: Look) -> View | None:
        if not look.spec.backup.enabled:
            return None
        memory: BackupMemory = look.memory
        view = observe(memory, look.spec.backup, cronjob=cronjob_name(look.key[1]),
                       # Every child was applied (or found unchanged) by this pass.
                       applied=look.resources.reason not in NOT_APPLIED,
                       apply_message=look.resources.message,
                       previous=look.previous.get(self.section) or {}, now=look.now)
        key = look.key
        events = []
        for outcome in view.outcomes:  # each finished Job once, after status shows it
            if outcome.uid in memory.announced:
                continue

            def posted(uid: str = outcome.uid, ok: bool = outcome.succeeded) -> None:
                memory.announced.add(uid)
                metrics.run_finished(*key, ok)

            events.append(Event("Normal" if outcome.succeeded else "Warning",
                                "BackupSucceeded" if outcome.succeeded else "BackupFailed",
                                outcome.message, posted))
        return View(section=view.section, observations=[view.scheduled, view.healthy],
                    required=(BACKUP_SCHEDULED,), recheck_after=view.recheck_after,
                    events=events)

    def heard(self, operator: Operator, watch: Watch, event: str | None, body: Body) -> None:
        if self.restores is not None:  # a SmartIDRestore, its Job or its Job's pod
            if watch == RESTORES:
                self.restores.observe(event, body)
            elif watch == JOBS:
                self.restores.job_changed(event, body)
            elif watch == PODS:
                self.restores.pod_changed(body)
        key = instance_of(body, COMPONENT)
        if key is None:  # not the backup CronJob, its Jobs or their pods
            return
        memory: BackupMemory = operator.memory(self, key)
        changed = (memory.job_event(event, body) if watch == JOBS else
                   memory.cronjob_event(event, body) if watch == CRONJOBS else
                   memory.pod_event(body))
        if changed:
            operator.poke(key)

    def published(self, key: Key, status: Mapping[str, Any], memory: Any) -> None:
        metrics.observe(*key, status, memory.cronjob_created if memory else None)

    def forget(self, key: Key) -> None:
        metrics.forget(*key)

    async def start(self, operator: Operator) -> None:
        self.restores = Restores(operator)



PROMISE = Backup()
