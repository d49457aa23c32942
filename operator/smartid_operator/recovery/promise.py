"""The recovery promise's door for the core (runs in the operator process): the agent
Deployment (``children.py``; the agent itself is ``engine/``, in its own pod), and the
``Recovered`` condition from the report the agent leaves in Mongo (``observe.py``)."""

from __future__ import annotations

import datetime
import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass

from smartid_operator import clock, mongo
from smartid_operator.manifests import instance_of
from smartid_operator.promise import Body, Child, Event, Look, Operator, Promise, View, Watch
from smartid_operator.recovery.children import (
    COMPONENT,
    agent_name,
    recovery_agent,
    with_settings_hash,
)
from smartid_operator.recovery.engine import state
from smartid_operator.recovery.observe import RECOVERED, claim_problem, observe
from smartid_operator.spec import DatabaseSpec
from smartid_operator.status import MONGO_REACHABLE

PODS = Watch("", "v1", "pods")  # the agent's: why it cannot be scheduled (a missing claim)
SETTLING_RECHECK = 0.5  # seconds: the agent's report is followed within a second


@dataclass
class RecoveryMemory:
    # Why the agent's pod cannot be scheduled (the scheduler's words), from its watch
    # events: a missing claim shows within a second, not as a silent agent.
    unschedulable: str | None = None
    # When this operator last saw Mongo stop answering (its own clock, not the condition's
    # whole seconds): evidence that claims an outage's writes were indexed must come after.
    lost_at: datetime.datetime | None = None
    reachable: bool | None = None  # as the last pass saw it


class Recovery(Promise):
    name = "recovery"
    section = "recovery"
    conditions = (RECOVERED,)
    must_fix = frozenset({"ClaimNotFound", "ClaimNotBound"})
    watches = (PODS,)
    owns = (Watch("apps", "v1", "deployments"),)  # the agent

    def memory(self) -> RecoveryMemory:
        return RecoveryMemory()

    def settings(self, spec: DatabaseSpec) -> dict[str, str]:
        if not spec.recovery.enabled:
            return {}
        return {"SMARTID_RECOVERY_BATCH_SIZE": str(spec.recovery.batch_size),
                "SMARTID_RECOVERY_SCAN_INTERVAL_SECONDS": str(spec.recovery.scan_interval_seconds)}

    def children(self, name: str, namespace: str, spec: DatabaseSpec,
                 image: str) -> Sequence[Child]:
        if not spec.recovery.enabled:
            return [("Deployment", agent_name(name), None)]
        # Roll the agent when what it reads from the settings ConfigMap changes.
        read = {"database": spec.mongo.database, **self.settings(spec)}
        digest = hashlib.sha256(json.dumps(read, sort_keys=True).encode()).hexdigest()[:16]
        return [("Deployment", agent_name(name),
                 with_settings_hash(recovery_agent(name, namespace, spec, image), digest))]

    async def observe(self, look: Look) -> View | None:
        memory: RecoveryMemory = look.memory
        reachable = look.handle is not None
        before = memory.reachable
        if before is None:  # this operator's first pass: what the status last said
            said = _condition(look, MONGO_REACHABLE)
            before = None if said is None else said.get("status") == "True"
        if not reachable and before is not False:
            memory.lost_at = look.now
        memory.reachable = reachable
        spec = look.spec
        if not spec.recovery.enabled:
            return None
        report = None
        handle = look.handle
        if handle is not None:
            try:
                report = await mongo.read_one(handle, spec.mongo.database, state.STATE,
                                              state.REPORT_ID)
            except mongo.MongoError:
                handle = None  # lost meanwhile: no claim either way
        previous = look.previous.get(self.section) or {}
        view = observe(report, agent=agent_name(look.key[1]), reachable=handle is not None,
                       reachable_since=self._since(look, memory), now=look.now,
                       scan_interval=spec.recovery.scan_interval_seconds, previous=previous,
                       unschedulable=claim_problem(memory.unschedulable,
                                                   spec.recovery.claim or ""))
        events = []
        recovered = view.section.get("lastRecovery") or {}
        if recovered and recovered != previous.get("lastRecovery") and recovered.get("indexed"):
            events.append(Event(
                "Normal", "Reindexed",
                f"indexed {recovered['indexed']} recording(s) and segment(s) written while "
                f"Mongo was down, {recovered.get('seconds')} s after it answered again"))
        return View(section=view.section, observations=[view.observation],
                    required=self.conditions,
                    recheck_after=None if view.settled else SETTLING_RECHECK, events=events)

    @staticmethod
    def _since(look: Look, memory: RecoveryMemory) -> datetime.datetime:
        """Evidence must postdate the outage: a pass that started after this operator saw
        Mongo stop answering (no pass can report while it is down), or, with no such memory
        (the operator restarted), after the condition says Mongo came back."""
        if memory.lost_at is not None:
            return memory.lost_at
        said = _condition(look, MONGO_REACHABLE)
        if said is not None and said.get("status") == "True":
            return clock.parse_iso(said["lastTransitionTime"])
        return look.now.replace(microsecond=0)

    def heard(self, operator: Operator, watch: Watch, event: str | None, body: Body) -> None:
        key = instance_of(body, COMPONENT)
        if key is None or operator.database(key) is None:
            return
        conditions = (body.get("status") or {}).get("conditions") or []
        scheduled: Body = next((c for c in conditions if c.get("type") == "PodScheduled"), {})
        problem = None
        if scheduled.get("status") == "False" and not body["metadata"].get("deletionTimestamp"):
            problem = str(scheduled.get("message") or scheduled.get("reason") or "Pending")
        memory: RecoveryMemory = operator.memory(self, key)
        if problem != memory.unschedulable:
            memory.unschedulable = problem
            operator.poke(key)



def _condition(look: Look, type_: str) -> Body | None:
    return next((c for c in look.previous.get("conditions") or [] if c.get("type") == type_),
                None)


PROMISE = Recovery()
