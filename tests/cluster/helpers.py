"""Builders and waits shared by the cluster-tier tests."""

from __future__ import annotations

from typing import Any

from kubernetes import client

GROUP, VERSION, PLURAL = "smartid.io", "v1alpha1", "smartiddatabases"


def database(name: str = "smartid", **spec: Any) -> dict[str, Any]:
    body: dict[str, Any] = {"mongo": {"uriSecretRef": {"name": "smartid-mongo"},
                                      "workload": {"name": "mongo"}}}
    body.update(spec)
    return {"apiVersion": f"{GROUP}/{VERSION}", "kind": "SmartIDDatabase",
            "metadata": {"name": name}, "spec": body}


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
