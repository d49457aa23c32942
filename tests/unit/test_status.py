"""Conditions and phase: pure rules of the status."""

from __future__ import annotations

from smartid_operator import status
from smartid_operator.schema.observe import SCHEMA_READY
from smartid_operator.schema.promise import PROMISE as SCHEMA_PROMISE
from smartid_operator.status import Observation

T0, T1 = "2026-11-25T10:00:00Z", "2026-11-25T10:05:00Z"
UP = Observation(status.MONGO_REACHABLE, True, "Pinged", "ok")
DOWN = Observation(status.MONGO_REACHABLE, False, "Unreachable", "refused")
APPLIED = Observation(status.RESOURCES_READY, True, "Applied", "ok")
SCHEMA = Observation(SCHEMA_READY, True, "UpToDate", "v3")
REQUIRED = (*status.REQUIRED, SCHEMA_READY)  # as a pass has it with the schema promise
MUST_FIX = status.CONFIG_ERRORS | SCHEMA_PROMISE.must_fix


def by_type(conditions: list[dict[str, object]]) -> dict[object, dict[str, object]]:
    return {c["type"]: c for c in conditions}


def test_transition_time_moves_only_when_status_flips() -> None:
    first = status.set_condition([], UP, now=T0, generation=1)
    same = status.set_condition(first, Observation(UP.type, True, "Pinged", "faster"), now=T1,
                                generation=2)
    assert same[0]["lastTransitionTime"] == T0
    assert same[0]["message"] == "faster" and same[0]["observedGeneration"] == 2
    flipped = status.set_condition(same, DOWN, now=T1, generation=2)
    assert flipped[0]["lastTransitionTime"] == T1 and flipped[0]["status"] == "False"


def test_ready_is_derived_from_required_conditions() -> None:
    conds = by_type(status.apply_observations([], [UP, APPLIED, SCHEMA], now=T0,
                                              generation=1, required=REQUIRED))
    assert conds["Ready"]["status"] == "True"
    conds = by_type(status.apply_observations([], [APPLIED], now=T0, generation=1,
                                              required=REQUIRED))
    assert conds["Ready"]["reason"] == "Reconciling"
    assert "MongoReachable, SchemaReady" in str(conds["Ready"]["message"])
    conds = by_type(status.apply_observations([], [DOWN, APPLIED], now=T0, generation=1))
    assert conds["Ready"]["status"] == "False" and conds["Ready"]["reason"] == "Unreachable"


def test_phase_names_what_a_person_must_do() -> None:
    def phase(*obs: Observation) -> str:
        return status.phase(status.apply_observations([], obs, now=T0, generation=1,
                                                      required=REQUIRED), MUST_FIX)

    assert status.phase([]) == "Pending"
    assert phase(UP, APPLIED, SCHEMA) == "Ready"
    assert phase(DOWN, APPLIED, SCHEMA) == "Degraded"
    assert phase(UP, APPLIED) == "Progressing"
    drift = Observation(SCHEMA_READY, False, "ChecksumMismatch", "v1_baseline changed")
    assert phase(UP, APPLIED, drift) == "Failed"
    locked = Observation(SCHEMA_READY, False, "MigrationLocked", "held by pod-2")
    assert phase(UP, APPLIED, locked) == "Progressing"
    assert phase(APPLIED) == "Progressing"
    missing = Observation(status.RESOURCES_READY, False, "WorkloadNotFound", "no StatefulSet")
    assert phase(UP, missing) == "Failed"
    assert phase(Observation(UP.type, False, "SecretNotFound", "x"), APPLIED) == "Failed"


def test_transitions_list_only_changes() -> None:
    before = status.apply_observations([], [UP, APPLIED, SCHEMA], now=T0, generation=1)
    assert status.transitions(before, before) == []
    after = status.apply_observations(before, [DOWN], now=T1, generation=1)
    changed = {(t.type, t.status, t.reason) for t in status.transitions(before, after)}
    assert changed == {("MongoReachable", "False", "Unreachable"),
                       ("Ready", "False", "Unreachable")}


def test_composed_status_leaves_out_what_is_not_known() -> None:
    conditions = status.apply_observations([], [DOWN, APPLIED], now=T0, generation=3)
    composed = status.compose(phase="Degraded", generation=3, conditions=conditions,
                              children=[], mongo={"reachable": False, "version": None},
                              sections={"schema": {}})
    assert composed["mongo"] == {"reachable": False}
    assert "schema" not in composed and composed["observedGeneration"] == 3
    # Nothing volatile: two checks with the same outcome compose the same status.
    again = status.apply_observations(conditions, [DOWN, APPLIED], now=T1, generation=3)
    assert status.compose(phase="Degraded", generation=3, conditions=again, children=[],
                          mongo={"reachable": False, "version": None},
                          sections={"schema": None}) == composed
