"""A promise the core has never heard of, through ``promise.Promise`` alone: its children are
applied, its section and conditions reach the status, ``Ready`` waits for what it requires,
its must-fix reasons fail the database, its Events follow the status, and switched off it
leaves nothing behind. (The four real promises are the same kind of object.)"""

from __future__ import annotations

import asyncio
import datetime
from typing import Any

import pytest

from smartid_operator import mongo, promises
from smartid_operator import reconcile as reconcile_module
from smartid_operator.chaos.promise import PROMISE as CHAOS
from smartid_operator.chaos.promise import ChaosMemory
from smartid_operator.promise import Event, Look, Promise, View
from smartid_operator.reconcile import Children, Context, Result, reconcile
from smartid_operator.spec import DatabaseSpec, parse
from smartid_operator.status import MONGO_REACHABLE, RESOURCES_READY, Observation
from tests.unit.worker_fakes import FakeKube, db_body, inline


class Fifth(Promise):
    name = "fifth"
    section = "fifth"
    conditions = ("FifthReady",)
    must_fix = frozenset({"FifthMisconfigured"})

    def __init__(self, view: View | None) -> None:
        self.view = view
        self.looks: list[Look] = []

    def settings(self, spec: DatabaseSpec) -> dict[str, str]:
        return {"SMARTID_FIFTH": "on"}

    def children(self, name: str, namespace: str, spec: DatabaseSpec,
                 image: str) -> list[tuple[str, str, dict[str, Any] | None]]:
        return [("ConfigMap", f"{name}-fifth",
                 {"apiVersion": "v1", "kind": "ConfigMap",
                  "metadata": {"name": f"{name}-fifth", "namespace": namespace}})]

    async def observe(self, look: Look) -> View | None:
        self.looks.append(look)
        return self.view


def run(fifth: Fifth, kube: FakeKube, current: dict[str, Any] | None = None) -> Result:
    async def one() -> Result:
        context = Context(kube=kube, pool=mongo.Pool(),  # type: ignore[arg-type]
                          in_kube_pool=inline, in_blocking_pool=inline,
                          promises=(*promises.load(), fifth))
        try:
            return await reconcile(context, db_body(), current or {}, Children(),
                                   adopt=lambda child: None)
        finally:
            await context.pool.close()
    return asyncio.run(one())


def by_type(result: Result) -> dict[str, dict[str, Any]]:
    return {c["type"]: c for c in result.status["conditions"]}


def test_a_fifth_promise_is_reconciled_through_the_interface_alone() -> None:
    posted: list[str] = []
    fifth = Fifth(View(section={"seen": 1},
                       observations=[Observation("FifthReady", False, "FifthMisconfigured",
                                                 "spec.fifth names nothing")],
                       required=("FifthReady",), recheck_after=0.25,
                       events=[Event("Normal", "FifthSaid", "hello",
                                     posted=lambda: posted.append("hello"))]))
    kube = FakeKube()
    result = run(fifth, kube)
    assert "db-fifth" in kube.applies
    assert fifth.looks and fifth.looks[0].key == ("ns", "db")
    assert fifth.looks[0].handle is None  # Mongo refused: the promise is told so
    assert result.status["fifth"] == {"seen": 1}
    conditions = by_type(result)
    assert conditions["FifthReady"]["reason"] == "FifthMisconfigured"
    assert result.status["phase"] == "Failed"  # its must-fix reason
    assert result.config_error is not None and result.config_error.reason == "FifthMisconfigured"
    assert result.recheck_after == 0.25
    assert [e.reason for e in result.events] == ["FifthSaid"]
    assert posted == []  # the worker posts it once the status is written


def test_ready_waits_for_what_it_requires_and_off_it_leaves_nothing(
        monkeypatch: pytest.MonkeyPatch) -> None:
    async def answered(*args: Any) -> tuple[Observation, None, None]:
        return Observation(MONGO_REACHABLE, True, "Pinged", "answers ping"), None, None

    monkeypatch.setattr(reconcile_module, "_reach", answered)  # no server in this tier
    waiting = Fifth(View(section={"seen": 2}, required=("FifthReady",)))
    result = run(waiting, FakeKube())
    assert by_type(result)["Ready"]["message"] == \
        "not observed yet: SchemaReady, FifthReady"  # the schema's, unobserved without Mongo
    optional = run(Fifth(View(section={"seen": 2})), FakeKube())
    assert by_type(optional)["Ready"]["message"] == "not observed yet: SchemaReady"
    before = run(Fifth(View(section={"seen": 3}, observations=[
        Observation("FifthReady", True, "Fine", "all good")])), FakeKube())
    assert by_type(before)["FifthReady"]["status"] == "True"
    off = run(Fifth(None), FakeKube(), current=before.status)
    assert "fifth" not in off.status
    assert "FifthReady" not in by_type(off)


def test_an_outage_report_for_a_deleted_database_does_not_reach_its_successor() -> None:
    """Promise memories outlive a database deleted and created again under its name (the
    backup Jobs' do on purpose); a run's outcome belongs to the object it tested."""
    memory = ChaosMemory(last={"result": "Passed", "run": "r1"}, uid="old-uid",
                         verdict=Observation("OutageTestPassed", True, "Passed", "0 lost"))

    def look(uid: str) -> Look:
        return Look(key=("ns", "db"), uid=uid, spec=parse(db_body()["spec"]), previous={},
                    memory=memory, handle=None, now=datetime.datetime.now(datetime.UTC),
                    resources=Observation(RESOURCES_READY, True, "Applied", "ok"),
                    owner="test", in_blocking_pool=inline)

    same = asyncio.run(CHAOS.observe(look("old-uid")))
    assert same.section == {"result": "Passed", "run": "r1"} and same.observations
    successor = asyncio.run(CHAOS.observe(look("new-uid")))
    assert successor.section is None and successor.observations == []
