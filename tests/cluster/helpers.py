"""Builders and waits shared by the cluster-tier tests."""

from __future__ import annotations

import contextlib
import os
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from kubernetes import client

from smartid_testbed import binaries
from smartid_testbed.cluster import wait_for
from smartid_testbed.install import mongo_statefulset
from smartid_testbed.kubelet import MONGO_PORT

if TYPE_CHECKING:
    from smartid_testbed.testbed import TestBed
    from tests.cluster.conftest import Operator

GROUP, VERSION, PLURAL = "smartid.io", "v1alpha1", "smartiddatabases"
RUNS = "smartidoutagetests"


def database(name: str = "smartid", **spec: Any) -> dict[str, Any]:
    body: dict[str, Any] = {"mongo": {"uriSecretRef": {"name": "smartid-mongo"},
                                      "workload": {"name": "mongo"}}}
    body.update(spec)
    return {"apiVersion": f"{GROUP}/{VERSION}", "kind": "SmartIDDatabase",
            "metadata": {"name": name}, "spec": body}


@contextlib.contextmanager
def new_namespace(core: client.CoreV1Api, name: str) -> Iterator[str]:
    """A namespace of its own for a test or a module, deleted afterwards."""
    core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=name)))
    try:
        yield name
    finally:
        core.delete_namespace(name)


def start_mongo(testbed: TestBed, api_client: client.ApiClient, core: client.CoreV1Api,
                namespace: str) -> str:
    """A ready mongo StatefulSet and its URI Secret in ``namespace``; returns the URI."""
    uri = f"mongodb://{testbed.mongo_address(namespace, 'mongo-0')}:{MONGO_PORT}/smartid"
    core.create_namespaced_secret(namespace, client.V1Secret(
        metadata=client.V1ObjectMeta(name="smartid-mongo"), string_data={"uri": uri}))
    client.AppsV1Api(api_client).create_namespaced_stateful_set(namespace, mongo_statefulset())
    wait_for(lambda: pod_ready(core, namespace, "mongo-0"), timeout=60, what="mongo-0 Ready")
    return uri


def create_claim(core: client.CoreV1Api, namespace: str, name: str) -> None:
    """A 1 GiB ReadWriteOnce claim of the default StorageClass (the stand-in provisions it)."""
    core.create_namespaced_persistent_volume_claim(namespace, client.V1PersistentVolumeClaim(
        metadata=client.V1ObjectMeta(name=name),
        spec=client.V1PersistentVolumeClaimSpec(
            access_modes=["ReadWriteOnce"],
            resources=client.V1VolumeResourceRequirements(requests={"storage": "1Gi"}))))


def pod_ready(core: client.CoreV1Api, namespace: str, name: str) -> client.V1Pod | None:
    try:
        pod = core.read_namespaced_pod(name, namespace)
    except client.ApiException:
        return None
    ready = any(c.type == "Ready" and c.status == "True" for c in pod.status.conditions or [])
    return pod if ready else None


def pod_exists(core: client.CoreV1Api, namespace: str, name: str) -> bool:
    try:
        core.read_namespaced_pod(name, namespace)
    except client.ApiException as exc:
        if exc.status == 404:
            return False
        raise
    return True


def scale(apps: client.AppsV1Api, namespace: str, name: str, replicas: int) -> None:
    apps.patch_namespaced_stateful_set_scale(name, namespace, {"spec": {"replicas": replicas}})


def condition(obj: dict[str, Any], type_: str) -> dict[str, Any] | None:
    for cond in (obj.get("status") or {}).get("conditions") or []:
        if cond["type"] == type_:
            return dict(cond)
    return None


def job_outcome(batch: client.BatchV1Api, namespace: str, name: str) -> str | None:
    """``Complete`` or ``Failed`` once the Job has ended, else None."""
    job = batch.read_namespaced_job(name, namespace)
    for cond in job.status.conditions or []:
        if cond.type in ("Complete", "Failed") and cond.status == "True":
            return str(cond.type)
    return None


class SilentServer:
    """A loopback TCP server that accepts connections and never answers: a Mongo that hangs
    (a refused connection would be detected at once; this one costs the full timeout)."""

    def __init__(self) -> None:
        import socket
        import threading

        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.port = self.sock.getsockname()[1]
        self.held: list[socket.socket] = []
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.held.append(conn)

    def close(self) -> None:
        self.sock.close()
        for conn in self.held:
            conn.close()


def get_db(custom: client.CustomObjectsApi, namespace: str, name: str = "smartid") -> Any:
    return custom.get_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, name)


def wait_phase(custom: client.CustomObjectsApi, namespace: str, phase: str,
               timeout: float = 60, name: str = "smartid") -> dict[str, Any]:
    def check() -> dict[str, Any] | None:
        obj = get_db(custom, namespace, name)
        return obj if (obj.get("status") or {}).get("phase") == phase else None

    result: dict[str, Any] = wait_for(check, timeout=timeout, what=f"phase {phase}")
    return result


def reconcile_count(op: Operator, namespace: str, result: str, name: str = "smartid") -> float:
    with urllib.request.urlopen(f"http://127.0.0.1:{op.ports['metrics']}/metrics",
                                timeout=5) as resp:
        text = resp.read().decode()
    series = (f'smartid_reconciles_total{{name="{name}",namespace="{namespace}",'
              f'result="{result}"}} ')
    return sum(float(line[len(series):]) for line in text.splitlines()
               if line.startswith(series))


def assert_no_exceptions(op: Operator) -> None:
    logs = op.logs()
    assert "Traceback" not in logs, logs[-3000:]
    assert "Unhandled" not in logs, logs[-3000:]


def transition_events(core: client.CoreV1Api, namespace: str) -> list[str]:
    """The SmartIDDatabase Events of condition transitions, as "<Type> is <status>"."""
    return [e.message.split(":")[0] for e in core.list_namespaced_event(namespace).items
            if e.involved_object.kind == "SmartIDDatabase" and " is " in (e.message or "")]


def absent(read: Callable[..., Any], *args: Any) -> bool:
    """True once ``read(*args)`` answers 404 (deleted, or never there)."""
    try:
        read(*args)
    except client.ApiException as exc:
        return exc.status == 404
    return False


def create_run(custom: client.CustomObjectsApi, namespace: str, name: str,
               **spec: Any) -> None:
    custom.create_namespaced_custom_object(GROUP, VERSION, namespace, RUNS, {
        "apiVersion": f"{GROUP}/{VERSION}", "kind": "SmartIDOutageTest",
        "metadata": {"name": name}, "spec": {"database": "smartid", **spec}})


def get_run(custom: client.CustomObjectsApi, namespace: str, name: str) -> dict[str, Any]:
    obj: dict[str, Any] = custom.get_namespaced_custom_object(GROUP, VERSION, namespace, RUNS,
                                                              name)
    return obj


def wait_run(custom: client.CustomObjectsApi, namespace: str, name: str,
             timeout: float = 120, step: str | None = None,
             phases: tuple[str, ...] = ("Passed", "Failed", "Refused", "Aborted")
             ) -> dict[str, Any]:
    """The run's status once it is finished (or in ``phases``, or at ``step``)."""
    def check() -> dict[str, Any] | None:
        status = get_run(custom, namespace, name).get("status") or {}
        if step is not None:
            return status if status.get("step") == step else None
        return status if status.get("phase") in phases else None

    result: dict[str, Any] = wait_for(check, timeout=timeout, interval=0.1,
                                      what=f"run {name} {step or '/'.join(phases)}")
    return result


def pod_process(testbed: TestBed, pod: str, *, contains: str) -> int:
    """The pid of the process the kubelet stand-in runs for ``pod`` (its HOSTNAME is the
    pod's name, as in a container)."""
    wanted = f"HOSTNAME={pod}".encode()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            environ = (entry / "environ").read_bytes().split(b"\0")
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        if wanted in environ and contains in cmdline:
            return int(entry.name)
    raise LookupError(f"no process for pod {pod} running {contains!r}")


def require_ferretdb() -> None:
    """Skip where FerretDB, the test bed's wire-protocol server, could not be built (on CI,
    ``CI=true``, fail instead)."""
    try:
        binaries.find("ferretdb")
    except binaries.BuildError as exc:
        if os.environ.get("CI") == "true":
            pytest.fail(f"FerretDB could not be built: {exc}")
        pytest.skip(f"FerretDB could not be built: {exc}")
