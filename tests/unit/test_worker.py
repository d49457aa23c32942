"""The per-database worker and its registry: one writer, pokes coalesced, Events once.

The Kubernetes and Mongo seams are replaced by in-process recorders here (logic only); the
cluster tier runs the same worker against a real API server and a real wire-protocol server.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any

import pytest

from smartid_operator import mongo
from smartid_operator.errors import KubeError
from smartid_operator.reconcile import Children, Context, Result, reconcile
from smartid_operator.worker import WorkloadKey, pod_workload
from tests.unit.worker_fakes import FakeKube, db_body, inline, registry_for, until

# A window in which a pass that should not run would show (a pass takes milliseconds here).
QUIET = 0.3
MONGO_POD = {"metadata": {"namespace": "ns", "ownerReferences": [
    {"controller": True, "kind": "StatefulSet", "name": "mongo"}]}}


def test_pokes_during_a_pass_coalesce_and_events_post_once_per_transition() -> None:
    async def scenario() -> tuple[FakeKube, list[tuple[str, str]]]:
        kube, events = FakeKube(), []
        registry = registry_for(kube, events)

        def burst(number: int) -> None:
            if number == 1:  # a burst of pod events while the first pass runs
                for _ in range(20):
                    registry.pod_changed(MONGO_POD)
        kube.during_pass = burst
        registry.observe(None, db_body())
        await until(lambda: kube.passes >= 2, "second pass")
        await asyncio.sleep(QUIET)
        await registry.stop()
        return kube, events

    kube, events = asyncio.run(scenario())
    # Twenty pokes during the first pass: one more pass, not twenty.
    assert kube.passes == 2
    # The first pass wrote the status; the coalesced second pass found nothing new.
    assert len(kube.status_writes) == 1
    assert kube.status_writes[0]["phase"] == "Degraded"
    assert kube.status_writes[0]["mongo"] == {"reachable": False}
    assert kube.applies == ["db-settings"]  # the unchanged child was not written again
    # Recovery and backups are off: made sure of once, not per pass.
    assert kube.deletes == ["db-recovery", "db-backup"]
    # One Event per condition that changed, however many pokes arrived.
    assert sorted(events) == [("Normal", "ResourcesReady"), ("Warning", "MongoReachable"),
                              ("Warning", "Ready")]


def test_own_status_writes_do_not_wake_the_worker_but_a_spec_change_does() -> None:
    async def scenario() -> FakeKube:
        kube = FakeKube()
        registry = registry_for(kube, [])
        registry.observe(None, db_body())
        await until(lambda: kube.status_writes, "first status write")
        written = db_body()
        written["status"] = kube.status_writes[-1]
        registry.observe("MODIFIED", written)  # our own write coming back
        await asyncio.sleep(QUIET)
        assert kube.passes == 1
        registry.observe("MODIFIED", db_body(generation=2))
        await until(lambda: len(kube.status_writes) == 2, "second status write")
        await registry.stop()
        return kube

    kube = asyncio.run(scenario())
    assert kube.passes == 2
    assert [w["observedGeneration"] for w in kube.status_writes] == [1, 2]


def test_a_child_edited_by_someone_else_is_applied_again() -> None:
    children = Children()
    manifest = {"kind": "ConfigMap", "metadata": {"name": "db-settings"}, "data": {"a": "1"}}
    assert children.needs_apply(manifest)
    children.record(manifest, {"metadata": {"resourceVersion": "7", "uid": "c1"}})
    assert not children.needs_apply(manifest)
    assert not children.observed("ConfigMap", "db-settings",
                                 {"resourceVersion": "7"})  # our own write
    assert children.observed("ConfigMap", "db-settings", {"resourceVersion": "9"})  # another's
    assert children.needs_apply(manifest)
    children.record(manifest, {"metadata": {"resourceVersion": "10", "uid": "c1"}})
    assert children.observed("ConfigMap", "db-settings", None)  # deleted
    # A child with a generation (a CronJob): its controller's status updates are not edits.
    cronjob = {"kind": "CronJob", "metadata": {"name": "db-backup"}, "spec": {}}
    children.record(cronjob, {"metadata": {"generation": 1, "resourceVersion": "20"}})
    assert not children.observed("CronJob", "db-backup", {"generation": 1,
                                                          "resourceVersion": "21"})
    assert children.observed("CronJob", "db-backup", {"generation": 2, "resourceVersion": "22"})
    assert children.needs_apply({**manifest, "data": {"a": "2"}})


@pytest.mark.parametrize(("owner", "labels", "expected"), [
    ({"kind": "StatefulSet", "name": "mongo"}, {}, WorkloadKey("ns", "StatefulSet", "mongo")),
    ({"kind": "ReplicaSet", "name": "mongo-7d9f8"}, {"pod-template-hash": "7d9f8"},
     WorkloadKey("ns", "Deployment", "mongo")),
    ({"kind": "ReplicaSet", "name": "mongo-7d9f8"}, {}, None),
    ({"kind": "Job", "name": "backup-1"}, {}, None),
])
def test_a_pod_is_traced_to_its_workload(owner: dict[str, str], labels: dict[str, str],
                                         expected: WorkloadKey | None) -> None:
    pod = {"metadata": {"namespace": "ns", "labels": labels,
                        "ownerReferences": [{"controller": True, **owner}]}}
    assert pod_workload(pod) == expected


def test_a_database_deleted_and_created_again_keeps_its_new_worker() -> None:
    async def scenario() -> tuple[bool, bool]:
        kube = FakeKube()
        registry = registry_for(kube, [])
        registry.observe(None, db_body(uid="old"))
        await until(lambda: kube.passes >= 1, "first pass")
        old = registry.workers[("ns", "db")]
        registry.observe("DELETED", db_body(uid="old"))
        registry.observe("ADDED", db_body(uid="new"))  # before the forget task has run
        registry.observe("DELETED", db_body(uid="old"))  # a late event of the old object
        await until(lambda: old.task is not None and old.task.done(), "the old worker's end")
        new = registry.workers.get(("ns", "db"))
        alive = new is not None and new.task is not None and not new.task.done()
        replaced = new is not old and old.task is not None and old.task.done()
        await registry.stop()
        return alive, replaced

    alive, replaced = asyncio.run(scenario())
    assert alive and replaced


class RefusingKube(FakeKube):
    """The API server refuses the CronJob as Invalid (422), as it does a bad time zone."""

    def apply(self, manifest: Mapping[str, Any]) -> dict[str, Any]:
        if manifest["kind"] == "CronJob":
            raise KubeError(422, "Unprocessable Entity",
                            'CronJob.batch "db-backup" is invalid: spec.timeZone: Invalid '
                            'value: "Mars/Olympus": unknown time zone Mars/Olympus')
        return super().apply(manifest)


def _pass(kube: FakeKube, body: dict[str, Any]) -> Result:
    async def one() -> Result:
        context = Context(kube=kube, pool=mongo.Pool(),  # type: ignore[arg-type]
                          in_kube_pool=inline, in_blocking_pool=inline)
        try:
            return await reconcile(context, body, {}, Children(), adopt=lambda child: None)
        finally:
            await context.pool.close()
    return asyncio.run(one())


def test_a_child_the_api_server_refuses_fails_the_database_naming_its_message() -> None:
    body = db_body()
    body["spec"]["backup"] = {"enabled": True, "storage": {"persistentVolumeClaim": "b"}}
    result = _pass(RefusingKube(), body)
    resources = next(c for c in result.status["conditions"] if c["type"] == "ResourcesReady")
    assert resources["reason"] == "ChildRejected"
    assert "refused CronJob ns/db-backup" in resources["message"]
    assert "spec.timeZone: Invalid value" in resources["message"]
    assert result.status["phase"] == "Failed"
    assert result.config_error is not None and result.unavailable is None  # no retry storm


def test_a_time_zone_that_is_none_is_refused_before_any_child_is_applied() -> None:
    kube = FakeKube()
    body = db_body()
    body["spec"]["backup"] = {"enabled": True, "timeZone": "Mars/Olympus",
                              "storage": {"persistentVolumeClaim": "b"}}
    result = _pass(kube, body)
    resources = next(c for c in result.status["conditions"] if c["type"] == "ResourcesReady")
    assert (resources["reason"], resources["message"]) == (
        "InvalidSpec", "spec.backup.timeZone: 'Mars/Olympus' is not a time zone of the IANA "
                       "database")
    assert result.status["phase"] == "Failed" and kube.applies == []
    body["spec"]["backup"]["timeZone"] = "Europe/Berlin"
    assert _pass(kube, body).status["phase"] != "Failed"
    assert "db-backup" in kube.applies
