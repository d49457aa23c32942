"""The outage test's steps against in-process fakes of the two seams: the order of what it
does to the workload, that every way out restores the replicas, refusals, the verdict's
inputs, abort, and the recovery of a run an operator left behind.

The fake world couples them as the real one does: Mongo answers only while the workload has
replicas, the writer Job puts documents on "storage", and the "agent" indexes storage once
Mongo answers (unless the test breaks it). The cluster tier runs the same steps for real.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import pytest

from smartid_operator import mongo
from smartid_operator.chaos import ANNOTATION
from smartid_operator.chaos.engine import executor
from smartid_operator.chaos.engine.env import Env
from smartid_operator.chaos.engine.executor import Execution
from smartid_operator.chaos.engine.probe import RECORDINGS
from smartid_operator.chaos.engine.recover import recover
from smartid_operator.errors import KubeError
from tests.unit.chaos_fakes import (
    FakeKube,
    FakeProbe,
    World,
    inline,
    run_body,
)


def env_for(world: World) -> Env:
    return Env(kube=FakeKube(world), in_kube=inline, pool=mongo.Pool(), image="img:1",  # type: ignore[arg-type]
               event=lambda body, type_, reason, message: world.events.append((reason,
                                                                               message)),
               database=lambda key: world.database,
               database_status=lambda key: {"conditions": [
                   {"type": "Recovered", "status": "True"}]},
               report=lambda key, value, observation: world.reports.append(
                   {**value, "observation": observation}),
               active_run=lambda key, name: world.active,
               probe=lambda *args: FakeProbe(world),  # type: ignore[arg-type,return-value]
               poll=0.01, sample=0.01)


@pytest.fixture(autouse=True)
def quick_picture(monkeypatch: pytest.MonkeyPatch) -> None:
    """The picture is tested in test_chaos_model; here a stand-in keeps the runs quick."""
    monkeypatch.setattr(executor, "render", lambda timeline: b"\x89PNG-stand-in")


def execute(world: World, run: dict[str, Any]) -> str:
    return asyncio.run(Execution(env_for(world), run).execute())


def test_a_run_annotates_before_scaling_restores_and_passes() -> None:
    world = World()
    assert execute(world, run_body()) == "Passed"
    note = next(v for op, v in world.ops if op == "annotate" and v)
    assert '"replicas": 2' in note and '"run": "r1"' in note
    assert [op for op in world.ops if op[0] != "owner"] == [
        ("annotate", note), ("scale", 0), ("job", "r1-writer"), ("scale", 2),
        ("annotate", None)]
    assert ("owner", "db-uid") in world.ops
    assert world.replicas == 2 and ANNOTATION not in world.annotations
    final = world.statuses[-1]
    assert (final["phase"], final["written"], final["reindexed"], final["lost"],
            final["duplicated"]) == ("Passed", 9, 9, 0, 0)
    assert final["counts"]["recordings"] == {"baseline": 10, "written": 3, "expected": 13,
                                             "final": 13, "reindexed": 3, "lost": 0,
                                             "duplicated": 0, "indexedByWriter": 0}
    assert final["recoverySeconds"] >= 0
    assert {"outageStart", "unreachableConfirmed", "writesDone", "restored", "reachable",
            "fullyReindexed", "finished"} <= set(final["timings"])
    steps = [s.get("step") for s in world.statuses]
    assert steps.index("ScalingDown") < steps.index("Writing") < steps.index("Holding") \
        < steps.index("WaitingForRecovery") < steps.index("Done")
    assert world.reports[-1]["result"] == "Passed" and world.reports[-1]["run"] == "r1"
    condition = world.reports[-1]["observation"]
    assert (condition.type, condition.ok, condition.reason) == ("OutageTestPassed", True,
                                                                "AllReindexed")
    cm = world.config_maps["r1-report"]
    assert '"result": "Passed"' in cm["data"]["report.json"]
    assert "timeline.png" in cm["binaryData"]
    assert final["report"] == {"configMap": "r1-report", "keys": ["report.json",
                                                                  "timeline.png"]}
    reasons = [r for r, _ in world.events]
    assert reasons == ["Started", "ScaledDown", "Restored", "MongoBack", "Passed"]


def test_a_broken_recovery_fails_the_run_naming_the_missing_ids() -> None:
    world = World()
    world.agent_works = False
    assert execute(world, run_body()) == "Failed"
    final = world.statuses[-1]
    assert (final["reason"], final["lost"], final["lostIdsTotal"]) == ("Lost", 9, 9)
    assert final["lostIds"][0] == "chaos-r1-r000000"
    assert world.reports[-1]["observation"].ok is False
    assert "chaos-r1-r000000, chaos-r1-r000001, chaos-r1-r000002, chaos-r1-r000000:0" \
        in final["message"]
    assert world.replicas == 2 and not world.annotations


def test_a_failed_writer_fails_the_run_and_still_restores() -> None:
    world = World()
    world.writer_fails = True
    assert execute(world, run_body()) == "Failed"
    final = world.statuses[-1]
    assert final["reason"] == "WriterFailed" and "BackoffLimitExceeded" in final["message"]
    assert world.replicas == 2 and not world.annotations
    assert "r1-report" in world.config_maps  # a failed run still leaves its report


def test_an_outage_that_does_not_take_fails_as_not_effective(
        monkeypatch: pytest.MonkeyPatch) -> None:
    world = World()
    monkeypatch.setattr(executor, "UNREACHABLE_WAIT", 0.2)
    kube = FakeKube(world)
    original = kube.scale

    def scale(namespace: str, ref: Any, replicas: int) -> None:  # another Mongo answers
        original(namespace, ref, replicas)
        world.replicas = max(world.replicas, 1)

    env = env_for(world)
    kube.scale = scale  # type: ignore[method-assign]
    env.kube = kube  # type: ignore[assignment]
    assert asyncio.run(Execution(env, run_body()).execute()) == "Failed"
    assert world.statuses[-1]["reason"] == "OutageNotEffective"
    assert ("scale", 2) in world.ops and not world.annotations


@pytest.mark.parametrize(("change", "reason", "words"), [
    (lambda w: w.database["spec"]["chaos"].update(allowDisruption=False),
     "DisruptionNotAllowed", "allowDisruption false"),
    (lambda w: w.database["spec"]["recovery"].update(enabled=False), "RecoveryDisabled",
     "nothing would index"),
    (lambda w: setattr(w, "workload_exists", False), "WorkloadNotFound",
     "StatefulSet/mongo (spec.mongo.workload of db) does not exist"),
    (lambda w: setattr(w, "replicas", 0), "MongoUnreachable", "does not answer"),
    (lambda w: setattr(w, "active", "r0"), "RunActive", "run r0 is still active"),
    (lambda w: setattr(w, "database", None), "DatabaseNotFound", "ns/db"),
    (lambda w: w.annotations.update({ANNOTATION: '{"run": "r0"}'}), "RestorePending",
     "an earlier run"),
    (lambda w: w.add_doc(RECORDINGS, "chaos-r1-r000000", "r1", "agent"), "IdsInUse",
     "give this run another name"),
])
def test_refusals_touch_nothing_and_say_why(change: Callable[[World], Any], reason: str,
                                             words: str) -> None:
    world = World()
    change(world)
    replicas = world.replicas
    assert execute(world, run_body()) == "Refused"
    final = world.statuses[-1]
    assert (final["phase"], final["reason"]) == ("Refused", reason)
    assert words in final["message"]
    assert [op for op in world.ops if op[0] in ("scale", "job")] == []
    assert world.replicas == replicas
    assert world.reports[-1]["result"] == "Refused"
    assert world.reports[-1]["observation"] is None  # a refusal proves nothing either way


def test_an_abort_during_the_outage_restores_and_marks_the_run_aborted() -> None:
    world = World()

    async def scenario() -> None:
        execution = Execution(env_for(world), run_body(outageSeconds=30))
        task = asyncio.create_task(execution.execute())
        while not world.statuses or world.statuses[-1].get("step") != "Holding":
            await asyncio.sleep(0.01)
        assert world.replicas == 0
        execution.abort_reason = "AbortRequested"
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(scenario())
    assert world.replicas == 2 and not world.annotations
    assert (world.statuses[-1]["phase"], world.statuses[-1]["reason"]) == ("Aborted",
                                                                          "AbortRequested")


def test_a_deleted_run_restores_and_writes_no_status() -> None:
    world = World()

    async def scenario() -> None:
        execution = Execution(env_for(world), run_body(outageSeconds=30))
        task = asyncio.create_task(execution.execute())
        while world.replicas != 0:
            await asyncio.sleep(0.01)
        writes = len(world.statuses)
        execution.abort_reason = "Deleted"
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert len(world.statuses) <= writes + 1  # at most the step in flight

    asyncio.run(scenario())
    assert world.replicas == 2 and not world.annotations


def test_a_restore_that_the_api_refuses_is_retried() -> None:
    world = World()
    kube = FakeKube(world)
    original = kube.scale
    failures = [KubeError(500, "InternalError", "etcd"), KubeError(429, "TooMany", "slow")]

    def scale(namespace: str, ref: Any, replicas: int) -> None:
        if replicas and failures:
            raise failures.pop(0)
        original(namespace, ref, replicas)

    kube.scale = scale  # type: ignore[method-assign]
    env = env_for(world)
    env.kube = kube  # type: ignore[assignment]
    assert asyncio.run(Execution(env, run_body()).execute()) == "Passed"
    assert world.replicas == 2 and not failures


def test_recover_restores_from_the_annotation_and_aborts_the_run() -> None:
    world = World()
    world.replicas = 0
    world.annotations[ANNOTATION] = '{"run": "r1", "replicas": 3, "uid": "r1-uid"}'
    run = run_body()
    run["status"] = {"phase": "Running", "step": "Holding",
                     "timings": {"started": "2026-01-01T00:00:00.000Z"}}
    asyncio.run(recover(env_for(world), run))
    assert world.replicas == 3 and not world.annotations
    final = world.statuses[-1]
    assert (final["phase"], final["reason"]) == ("Aborted", "OperatorRestarted")
    assert "during step Holding; StatefulSet/mongo restored to 3 replicas" in final["message"]
    assert final["timings"]["started"] == "2026-01-01T00:00:00.000Z"
    assert world.reports[-1]["result"] == "Aborted"


def test_recover_leaves_another_runs_annotation_alone() -> None:
    world = World()
    world.replicas = 0
    world.annotations[ANNOTATION] = '{"run": "other", "replicas": 3}'
    run = run_body()
    run["status"] = {"phase": "Running", "step": "Writing"}
    asyncio.run(recover(env_for(world), run))
    assert world.replicas == 0 and ANNOTATION in world.annotations
    assert "nothing to restore" in world.statuses[-1]["message"]
