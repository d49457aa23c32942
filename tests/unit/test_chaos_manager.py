"""The runs' manager inside the operator, against the fake seams of chaos_fakes: one
task per run, aborts by field and by deletion, late events, recovery of a run an earlier
process left Running, the start-up sweep, and schedules with their history limit."""

from __future__ import annotations

import asyncio
import datetime
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import pytest

from smartid_operator import mongo
from smartid_operator.chaos import ANNOTATION, manager
from smartid_operator.chaos.engine import executor
from smartid_operator.chaos.manager import Manager
from smartid_operator.chaos.schedule import KEEP_SCHEDULED, SCHEDULED_LABEL
from smartid_operator.errors import KubeError
from smartid_operator.reconcile import Context
from smartid_operator.worker import Hooks, Registry
from tests.unit.chaos_fakes import DB, FakeKube, FakeProbe, World, inline, run_body


class ScheduleKube(FakeKube):
    def __init__(self, world: World) -> None:
        super().__init__(world)
        self.created: list[str] = []
        self.deleted: list[str] = []
        self.phases: dict[str, list[Any]] = {}

    def create_custom(self, plural: str, namespace: str, body: dict[str, Any]) -> Any:
        name = body["metadata"]["name"]
        if name in self.created:
            raise KubeError(409, "AlreadyExists", name)
        self.created.append(name)
        return body

    def delete_custom(self, plural: str, namespace: str, name: str) -> bool:
        self.deleted.append(name)
        return True

    def apply_custom_status(self, plural: str, kind: str, namespace: str, name: str,
                            status: dict[str, Any]) -> None:
        super().apply_custom_status(plural, kind, namespace, name, status)
        self.phases.setdefault(name, []).append(status.get("phase"))


@dataclass
class FakeWorker:
    body: dict[str, Any]
    status: dict[str, Any] = field(default_factory=dict)
    reports: list[tuple[str, Mapping[str, Any], Any]] = field(default_factory=list)

    def report(self, section: str, value: Mapping[str, Any], observation: Any = None) -> None:
        self.reports.append((section, value, observation))


def make(world: World) -> tuple[Manager, ScheduleKube, FakeWorker]:
    kube = ScheduleKube(world)
    context = Context(kube=kube, pool=mongo.Pool(), in_kube_pool=inline,  # type: ignore[arg-type]
                      in_blocking_pool=inline, image="img:1")
    registry = Registry(context, Hooks(adopt=lambda child, owner: None,
                                       event=lambda *args: world.events.append(args[2:])), 5)
    worker = FakeWorker(world.database or DB)
    registry.workers[("ns", "db")] = worker  # type: ignore[assignment]
    chaos = Manager(registry, lambda key, value, verdict: worker.report(
        "lastOutageTest", value, verdict))
    chaos.env.probe = lambda *args: FakeProbe(world)  # type: ignore[assignment,return-value]
    chaos.env.poll = chaos.env.sample = 0.01
    return chaos, kube, worker


@pytest.fixture(autouse=True)
def quick_picture(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(executor, "render", lambda timeline: b"\x89PNG-stand-in")


async def settle(chaos: Manager) -> None:
    while chaos.tasks:
        await asyncio.wait([e.task for e in chaos.tasks.values()])


def test_a_run_gets_one_task_and_its_late_events_are_ignored() -> None:
    world = World()

    async def scenario() -> None:
        chaos, _, worker = make(world)
        run = run_body()
        chaos.observe(None, run)
        chaos.observe("MODIFIED", run)  # our own status write coming back: same task
        assert len(chaos.tasks) == 1
        await settle(chaos)
        assert chaos.finished["r1-uid"] == "Passed"
        stale = {**run, "status": {"phase": "Running", "step": "Holding"}}
        chaos.observe("MODIFIED", stale)  # delivered after the task ended: not a restart
        assert chaos.tasks == {}
        assert worker.reports[-1][1]["result"] == "Passed"

    asyncio.run(scenario())
    assert [s["phase"] for s in world.statuses].count("Passed") == 1


def test_a_second_run_is_refused_while_the_first_has_a_task() -> None:
    world = World()

    async def scenario() -> None:
        chaos, kube, _ = make(world)
        # Created together: the first is the one, the second is refused (not both).
        chaos.observe(None, run_body("first", outageSeconds=30))
        chaos.observe(None, run_body("second"))
        while world.replicas != 0:
            await asyncio.sleep(0.01)
        assert chaos._active_run(("ns", "db"), "second") == "first"
        assert kube.phases["second"] == ["Refused"]
        chaos.observe("MODIFIED", {**run_body("first", outageSeconds=30),
                                   "spec": {"database": "db", "abort": True}})
        await settle(chaos)
        assert kube.phases["first"][-1] == "Aborted" and "Refused" not in kube.phases["first"]

    asyncio.run(scenario())
    refused = [s for s in world.statuses if s.get("phase") == "Refused"]
    assert len(refused) == 1 and refused[0]["reason"] == "RunActive"
    assert "run first is still active" in refused[0]["message"]
    assert world.replicas == 2 and not world.annotations


def test_deleting_a_run_cancels_it_and_gives_the_replicas_back() -> None:
    world = World()

    async def scenario() -> None:
        chaos, _, _ = make(world)
        chaos.observe(None, run_body(outageSeconds=30))
        while world.replicas != 0:
            await asyncio.sleep(0.01)
        chaos.observe("DELETED", run_body())
        await settle(chaos)

    asyncio.run(scenario())
    assert world.replicas == 2 and not world.annotations
    assert "Aborted" not in [s.get("phase") for s in world.statuses]  # nothing to write to


def test_a_run_found_running_without_a_task_is_recovered_once_confirmed() -> None:
    world = World()
    world.replicas = 0
    world.annotations[ANNOTATION] = '{"run": "r1", "replicas": 2}'
    running = {**run_body(), "status": {"phase": "Running", "step": "Writing"}}

    async def scenario() -> None:
        chaos, _, _ = make(world)
        world.objects[("smartidoutagetests", "r1")] = running
        chaos.observe(None, running)
        await settle(chaos)

    asyncio.run(scenario())
    assert world.replicas == 2 and not world.annotations
    assert (world.statuses[-1]["phase"], world.statuses[-1]["reason"]) == ("Aborted",
                                                                          "OperatorRestarted")


def test_a_stale_running_event_for_a_run_already_finished_touches_nothing() -> None:
    world = World()
    world.replicas = 0  # someone else's business: the run says it is done
    world.annotations[ANNOTATION] = '{"run": "r1", "replicas": 2}'

    async def scenario() -> None:
        chaos, _, _ = make(world)
        world.objects[("smartidoutagetests", "r1")] = {**run_body(),
                                                       "status": {"phase": "Passed"}}
        chaos.observe(None, {**run_body(), "status": {"phase": "Running"}})
        await settle(chaos)

    asyncio.run(scenario())
    assert world.replicas == 0 and world.statuses == []


def test_the_sweep_restores_a_workload_left_annotated_unless_a_run_is_active() -> None:
    world = World()
    world.replicas = 0
    world.annotations[ANNOTATION] = '{"run": "gone", "replicas": 3}'

    async def scenario() -> None:
        chaos, _, _ = make(world)
        chaos.runs[("ns", "other")] = {**run_body("other"), "status": {"phase": "Running"}}
        await chaos._sweep(("ns", "db"))
        assert world.replicas == 0  # a run still marked Running: its recovery will do it
        del chaos.runs[("ns", "other")]
        await chaos._sweep(("ns", "db"))
        assert world.replicas == 3 and not world.annotations
        assert ("ns", "db") in chaos.swept

    asyncio.run(scenario())


def test_a_schedule_creates_one_run_per_fire_time_and_prunes_old_ones(
        monkeypatch: pytest.MonkeyPatch) -> None:
    world = World()
    assert world.database is not None
    world.database["spec"]["chaos"]["schedule"] = "*/5 * * * *"

    async def scenario() -> None:
        chaos, kube, _ = make(world)
        key = ("ns", "db")
        now = datetime.datetime.now(datetime.UTC)
        await chaos._schedule(key)  # first sight: counting starts now, nothing due
        assert kube.created == []
        chaos.schedule_since[key] = now - datetime.timedelta(minutes=11)
        await chaos._schedule(key)
        assert len(kube.created) == 1 and kube.created[0].startswith("db-s")
        await chaos._schedule(key)  # nothing new is due
        assert len(kube.created) == 1
        for i in range(KEEP_SCHEDULED + 2):
            chaos.runs[("ns", f"old-{i}")] = {
                "metadata": {"name": f"old-{i}", "labels": {SCHEDULED_LABEL: "true"},
                             "creationTimestamp": f"2026-01-01T00:{i:02d}:00Z"},
                "spec": {"database": "db"}, "status": {"phase": "Passed"}}
        await chaos._prune(key)
        assert kube.deleted == ["old-0", "old-1"]

    asyncio.run(scenario())


def test_shutdown_aborts_runs_and_waits_for_their_restore(
        monkeypatch: pytest.MonkeyPatch) -> None:
    world = World()
    monkeypatch.setattr(manager, "STOP_GRACE", 5.0)

    async def scenario() -> None:
        chaos, _, _ = make(world)
        chaos.observe(None, run_body(outageSeconds=30))
        while world.replicas != 0:
            await asyncio.sleep(0.01)
        await chaos.stop()

    asyncio.run(scenario())
    assert world.replicas == 2
    assert (world.statuses[-1]["phase"], world.statuses[-1]["reason"]) == ("Aborted",
                                                                          "OperatorStopping")
