"""In-process fakes of the outage test's two seams (Kubernetes, Mongo), coupled as the real
world is: Mongo answers only while the workload has replicas, the writer Job puts documents
on "storage", and the "agent" indexes storage once Mongo answers (unless a test breaks it).
Shared by test_chaos_executor and test_chaos_manager."""

from __future__ import annotations

import asyncio
import copy
from collections.abc import Callable, Sequence
from typing import Any

from smartid_operator import mongo
from smartid_operator.chaos.engine import executor
from smartid_operator.chaos.engine.probe import Found

DB = {"apiVersion": "smartid.io/v1alpha1", "kind": "SmartIDDatabase",
      "metadata": {"name": "db", "namespace": "ns", "uid": "db-uid"},
      "spec": {"mongo": {"uriSecretRef": {"name": "s"}, "workload": {"name": "mongo"}},
               "recovery": {"enabled": True, "storage": {"persistentVolumeClaim": "recs"}},
               "chaos": {"allowDisruption": True, "outageSeconds": 1, "recordings": 3,
                         "segmentsPerRecording": 2}}}


def run_body(name: str = "r1", **spec: Any) -> dict[str, Any]:
    return {"apiVersion": "smartid.io/v1alpha1", "kind": "SmartIDOutageTest",
            "metadata": {"name": name, "namespace": "ns", "uid": f"{name}-uid", "generation": 1},
            "spec": {"database": "db", "recoveryTimeoutSeconds": 2, **spec}}


class World:
    def __init__(self) -> None:
        self.replicas = 2
        self.workload_exists = True
        self.annotations: dict[str, str] = {}
        self.ops: list[tuple[str, Any]] = []
        self.jobs: dict[str, dict[str, Any]] = {}
        self.storage: list[tuple[str, str, str]] = []  # collection, id, run
        self.docs: dict[str, dict[str, dict[str, Any]]] = {"recordings": {},
                                                           "recording_segments": {}}
        self.agent_works = True
        self.writer_fails = False
        self.statuses: list[dict[str, Any]] = []
        self.events: list[tuple[str, str]] = []
        self.reports: list[dict[str, Any]] = []
        self.config_maps: dict[str, dict[str, Any]] = {}
        self.objects: dict[tuple[str, str], dict[str, Any]] = {}
        self.active: str | None = None
        self.database: dict[str, Any] | None = copy.deepcopy(DB)

    @property
    def up(self) -> bool:
        return self.replicas > 0

    def add_doc(self, collection: str, doc_id: str, run: str, by: str) -> None:
        tag = {"metadata" if collection == "recordings" else "attributes": {"chaos_run": run}}
        self.docs[collection][doc_id] = {"_id": doc_id, "indexed_by": by, **tag}


class FakeKube:
    def __init__(self, world: World) -> None:
        self.w = world

    def workload(self, namespace: str, ref: Any) -> dict[str, Any] | None:
        if not self.w.workload_exists:
            return None
        return {"metadata": {"annotations": dict(self.w.annotations)}}

    def replicas(self, namespace: str, ref: Any) -> int:
        return self.w.replicas

    def scale(self, namespace: str, ref: Any, replicas: int) -> None:
        self.w.ops.append(("scale", replicas))
        self.w.replicas = replicas

    def annotate_workload(self, namespace: str, ref: Any, key: str, value: str | None) -> None:
        self.w.ops.append(("annotate", value))
        if value is None:
            self.w.annotations.pop(key, None)
        else:
            self.w.annotations[key] = value

    def secret_value(self, namespace: str, ref: Any) -> str:
        return "mongodb://fake"

    def create_job(self, manifest: dict[str, Any]) -> dict[str, Any]:
        self.w.ops.append(("job", manifest["metadata"]["name"]))
        args = manifest["spec"]["template"]["spec"]["containers"][0]["args"]
        opts = dict(a[2:].split("=", 1) for a in args if a.startswith("--"))
        run, n, m = opts["run"], int(opts["recordings"]), int(opts["segments-per-recording"])
        if self.w.writer_fails:
            self.w.jobs[manifest["metadata"]["name"]] = {"status": {"failed": 1, "conditions": [
                {"type": "Failed", "status": "True", "message": "BackoffLimitExceeded"}]}}
            return manifest
        for rid in executor.recording_ids(run, n):
            self.w.storage.append(("recordings", rid, run))
            for seq in range(m):
                self.w.storage.append(("recording_segments", f"{rid}:{seq}", run))
        if self.w.up:  # Mongo answered the writer: it indexed everything itself
            for coll, doc_id, r in self.w.storage:
                self.w.add_doc(coll, doc_id, r, "writer")
            self.w.storage.clear()
        self.w.jobs[manifest["metadata"]["name"]] = {"status": {"succeeded": 1}}
        return manifest

    def job(self, namespace: str, name: str) -> dict[str, Any] | None:
        return self.w.jobs.get(name)

    def apply(self, manifest: dict[str, Any]) -> dict[str, Any]:
        self.w.config_maps[manifest["metadata"]["name"]] = manifest
        return manifest

    def apply_custom_status(self, plural: str, kind: str, namespace: str, name: str,
                            status: dict[str, Any]) -> None:
        self.w.statuses.append(copy.deepcopy(status))

    def patch_custom(self, plural: str, namespace: str, name: str,
                     patch: dict[str, Any]) -> dict[str, Any]:
        self.w.ops.append(("owner", patch["metadata"]["ownerReferences"][0]["uid"]))
        return patch

    def custom_object(self, plural: str, namespace: str, name: str) -> dict[str, Any] | None:
        if plural == "smartiddatabases":
            return self.w.database
        return self.w.objects.get((plural, name))


class FakeProbe:
    def __init__(self, world: World) -> None:
        self.w = world

    def _need(self) -> None:
        if not self.w.up:
            raise mongo.MongoError("connection refused")

    async def reachable(self) -> tuple[bool, str | None]:
        await asyncio.sleep(0)
        if self.w.up and self.w.agent_works:  # the agent indexes the moment Mongo answers
            for coll, doc_id, run in self.w.storage:
                self.w.add_doc(coll, doc_id, run, "agent")
            self.w.storage.clear()
        return self.w.up, None if self.w.up else "connection refused"

    async def counts(self) -> tuple[int, int]:
        self._need()
        return len(self.w.docs["recordings"]) + 10, len(self.w.docs["recording_segments"]) + 20

    async def tagged(self, run: str) -> tuple[int, int]:
        self._need()
        return tuple(sum(1 for d in docs.values()  # type: ignore[return-value]
                         if (d.get("metadata") or d.get("attributes") or {}).get("chaos_run")
                         == run) for docs in self.w.docs.values())

    async def present(self, collection: str, ids: Sequence[str]) -> dict[str, Found]:
        self._need()
        docs = self.w.docs[collection]
        return {i: Found(i, None, None, docs[i]["indexed_by"]) for i in ids if i in docs}

    async def close(self) -> None:
        return None


async def inline(fn: Callable[[], Any]) -> Any:
    await asyncio.sleep(0)
    return fn()
