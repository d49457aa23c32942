"""Conditions and phase, pure: what the status says follows from what was observed.

The core's condition types (Kubernetes conventions: positive polarity, reason in CamelCase):

* ``MongoReachable`` - the Secret's URI answers ``ping``.
* ``ResourcesReady`` - the referenced workload exists and every child is as declared.
* ``Ready``          - these and every condition a promise requires (``SchemaReady``,
  ``Recovered``, ``BackupScheduled``): what Argo CD and ``kubectl wait`` read.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

MONGO_REACHABLE = "MongoReachable"
RESOURCES_READY = "ResourcesReady"
READY = "Ready"
REQUIRED: tuple[str, ...] = (MONGO_REACHABLE, RESOURCES_READY)

# Reasons of ``ConfigError``, "a person must fix the spec or what it points at": phase
# Failed, no retry of its own (the periodic check notices the fix). Promises add theirs.
CONFIG_ERRORS = frozenset({"InvalidSpec", "SecretNotFound", "SecretKeyMissing", "InvalidURI",
                           "CredentialsRefused", "WorkloadNotFound", "ChildRejected"})

Condition = dict[str, Any]


@dataclass(frozen=True)
class Observation:
    """One observed fact, to become a condition."""

    type: str
    ok: bool
    reason: str
    message: str


def set_condition(conditions: Sequence[Mapping[str, Any]], obs: Observation, *, now: str,
                  generation: int | None) -> list[Condition]:
    """Upsert one condition; ``lastTransitionTime`` moves only when the status flips."""
    status = "True" if obs.ok else "False"
    result: list[Condition] = []
    found = False
    for cond in conditions:
        if cond.get("type") != obs.type:
            result.append(dict(cond))
            continue
        found = True
        changed = cond.get("status") != status
        result.append(_condition(obs, status,
                                 now if changed else cond.get("lastTransitionTime", now),
                                 generation))
    if not found:
        result.append(_condition(obs, status, now, generation))
    return result


def _condition(obs: Observation, status: str, since: str, generation: int | None) -> Condition:
    cond: Condition = {"type": obs.type, "status": status, "reason": obs.reason,
                       "message": obs.message, "lastTransitionTime": since}
    if generation is not None:
        cond["observedGeneration"] = generation
    return cond


def apply_observations(conditions: Sequence[Mapping[str, Any]],
                       observations: Iterable[Observation], *, now: str,
                       generation: int | None,
                       required: Sequence[str] = REQUIRED) -> list[Condition]:
    """Fold observations into the conditions and derive ``Ready`` from the required ones."""
    result = [dict(c) for c in conditions]
    for obs in observations:
        result = set_condition(result, obs, now=now, generation=generation)
    by_type = {c["type"]: c for c in result}
    missing = [t for t in required if t not in by_type]
    failing = [by_type[t] for t in required if t in by_type and by_type[t]["status"] != "True"]
    if failing:
        first = failing[0]
        ready = Observation(READY, False, first["reason"], f"{first['type']}: {first['message']}")
    elif missing:
        ready = Observation(READY, False, "Reconciling", f"not observed yet: {', '.join(missing)}")
    else:
        ready = Observation(READY, True, "AllConditionsMet", "the database is as declared")
    return set_condition(result, ready, now=now, generation=generation)


def phase(conditions: Sequence[Mapping[str, Any]],
          must_fix: frozenset[str] = CONFIG_ERRORS) -> str:
    by_type = {c.get("type"): c for c in conditions}
    if not by_type:
        return "Pending"
    failing = [c for c in conditions if c.get("status") != "True" and c.get("type") != READY]
    if any(c.get("reason") in must_fix for c in failing):
        return "Failed"
    ready = by_type.get(READY)
    if ready is not None and ready.get("status") == "True":
        return "Ready"
    if any(c.get("type") == MONGO_REACHABLE for c in failing):
        return "Degraded"
    return "Progressing"


@dataclass(frozen=True)
class Transition:
    type: str
    status: str
    reason: str
    message: str


def transitions(old: Sequence[Mapping[str, Any]],
                new: Sequence[Mapping[str, Any]]) -> list[Transition]:
    """Conditions whose status or reason changed: each is worth one Kubernetes Event."""
    before = {c.get("type"): (c.get("status"), c.get("reason")) for c in old}
    return [Transition(c["type"], c["status"], c.get("reason", ""), c.get("message", ""))
            for c in new if before.get(c["type"]) != (c["status"], c.get("reason"))]


def compose(*, phase: str, generation: int | None, conditions: list[Condition],
            children: list[dict[str, str]], mongo: Mapping[str, Any] | None,
            sections: Mapping[str, Mapping[str, Any] | None]) -> dict[str, Any]:
    """The whole status the operator owns. It is applied server-side as a whole, so a key
    left out here (a version no longer known, a promise's section no longer observed) is
    removed."""
    status: dict[str, Any] = {"phase": phase, "conditions": conditions, "children": children}
    if generation is not None:
        status["observedGeneration"] = generation
    status |= {key: dict(value) for key, value in sections.items() if value}
    if mongo is not None:
        status["mongo"] = {k: v for k, v in mongo.items() if v is not None}
    return status
