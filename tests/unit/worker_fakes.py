"""In-process recorders for the Kubernetes and Mongo seams of the per-database worker
(logic only; the cluster tier runs the same worker against the real servers)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping
from typing import Any

from smartid_operator import mongo
from smartid_operator.reconcile import Context
from smartid_operator.worker import Hooks, Registry


def db_body(name: str = "db", generation: int = 1, uid: str = "u1") -> dict[str, Any]:
    return {"apiVersion": "smartid.io/v1alpha1", "kind": "SmartIDDatabase",
            "metadata": {"name": name, "namespace": "ns", "uid": uid, "generation": generation},
            "spec": {"mongo": {"uriSecretRef": {"name": "s"},
                               "workload": {"kind": "StatefulSet", "name": "mongo"},
                               "connectTimeoutSeconds": 1}}}


class FakeKube:
    """Records writes and passes; the Secret names a port nothing listens on, so Mongo is
    refused. ``during_pass`` runs inside each pass, as a watch event arriving meanwhile."""

    def __init__(self) -> None:
        self.status_writes: list[dict[str, Any]] = []
        self.applies: list[str] = []
        self.deletes: list[str] = []
        self.passes = 0  # every pass reads the workload once
        self.during_pass: Callable[[int], None] = lambda number: None

    def secret_value(self, namespace: str, ref: Any) -> str:
        return "mongodb://127.0.0.1:9/?directConnection=true"

    def workload(self, namespace: str, ref: Any) -> dict[str, Any]:
        self.passes += 1
        self.during_pass(self.passes)
        return {"kind": "StatefulSet"}

    def apply(self, manifest: Mapping[str, Any]) -> dict[str, Any]:
        self.applies.append(manifest["metadata"]["name"])
        return {"metadata": {"resourceVersion": str(len(self.applies)), "uid": "c1"}}

    def delete(self, kind: str, namespace: str, name: str) -> bool:
        self.deletes.append(name)
        return False

    def apply_status(self, namespace: str, name: str, status: Mapping[str, Any]) -> None:
        self.status_writes.append(dict(status))


async def inline(fn: Callable[[], Any]) -> Any:
    await asyncio.sleep(0)  # a real pass yields here too
    return fn()


def registry_for(kube: FakeKube, events: list[tuple[str, str]]) -> Registry:
    context = Context(kube=kube, pool=mongo.Pool(),  # type: ignore[arg-type]
                      in_kube_pool=inline, in_blocking_pool=inline)
    hooks = Hooks(adopt=lambda child, owner: None,
                  event=lambda body, type_, reason, message: events.append(
                      (type_, message.split(" is ")[0])))
    return Registry(context, hooks, interval=3600)


async def until(done: Callable[[], object], what: str, timeout: float = 10) -> None:
    """Wait for a condition of the scenario, not for a fixed time."""
    deadline = asyncio.get_running_loop().time() + timeout
    while not done():
        assert asyncio.get_running_loop().time() < deadline, f"no {what} in {timeout} s"
        await asyncio.sleep(0.005)


async def settle() -> None:
    """A fixed 0.5 s; prefer ``until`` with the condition the test waits for."""
    for _ in range(50):
        await asyncio.sleep(0.01)
