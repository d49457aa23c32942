"""The pod every workload of the operator's own image runs in (recovery agent, backup and
restore Jobs, an outage test's writer): one volume claim at a fixed path, the URI from the
Secret, the database's settings from its ConfigMap, and nothing else — no Kubernetes API token,
no writable root filesystem, one non-root user shared by all of them, so each can read what
another wrote on the same volume."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from smartid_operator.manifests import child_name
from smartid_operator.spec import DatabaseSpec

USER = 65532  # the image's user (deploy/Dockerfile)
TERMINATION_PATH = "/dev/termination-log"  # Kubernetes' default, named where it is relied on


@dataclass(frozen=True)
class Container:
    name: str
    args: list[str]
    claim: str | None  # None: no volume (a backup Job writing to a bucket)
    mount_path: str
    read_only: bool = False
    env: Sequence[dict[str, Any]] = ()
    ports: Sequence[dict[str, Any]] = ()
    requests: dict[str, str] = field(default_factory=lambda: {"cpu": "50m", "memory": "64Mi"})
    memory_limit: str = "256Mi"
    # The container's JSON outcome, read by the operator from the Pod (Jobs only).
    termination_message: bool = False
    # More (volume, volumeMount) pairs, e.g. a CA bundle.
    volumes: Sequence[tuple[dict[str, Any], dict[str, Any]]] = ()


def operator_pod(instance: str, spec: DatabaseSpec, image: str, c: Container,
                 **extra: Any) -> dict[str, Any]:
    """A pod spec; ``extra`` adds pod-level fields (restartPolicy, affinity)."""
    container: dict[str, Any] = {
        "name": c.name,
        "image": image,
        "args": c.args,
        "env": [{"name": "SMARTID_MONGO_URI", "valueFrom": {"secretKeyRef": {
            "name": spec.mongo.uri_secret.name, "key": spec.mongo.uri_secret.key}}},
            *c.env],
        # Database, batch sizes, retention: read when the pod starts.
        "envFrom": [{"configMapRef": {"name": child_name(instance, "settings")}}],
        "resources": {"requests": dict(c.requests), "limits": {"memory": c.memory_limit}},
        "securityContext": {"allowPrivilegeEscalation": False, "readOnlyRootFilesystem": True,
                            "capabilities": {"drop": ["ALL"]}},
        "volumeMounts": [
            *([{"name": "data", "mountPath": c.mount_path, "readOnly": c.read_only}]
              if c.claim else []),
            {"name": "tmp", "mountPath": "/tmp"},  # scratch, private files
            *(mount for _, mount in c.volumes)],
    }
    if c.ports:
        container["ports"] = list(c.ports)
    if c.termination_message:
        # A crash before the outcome is written leaves the log's end instead.
        container["terminationMessagePath"] = TERMINATION_PATH
        container["terminationMessagePolicy"] = "FallbackToLogsOnError"
    return {
        **extra,
        "automountServiceAccountToken": False,  # files and Mongo only, no Kubernetes API
        "enableServiceLinks": False,
        "securityContext": {"runAsNonRoot": True, "runAsUser": USER, "runAsGroup": USER,
                            "fsGroup": USER, "seccompProfile": {"type": "RuntimeDefault"}},
        "containers": [container],
        "volumes": [*([{"name": "data", "persistentVolumeClaim": {"claimName": c.claim}}]
                      if c.claim else []),
                    {"name": "tmp", "emptyDir": {}},
                    *(volume for volume, _ in c.volumes)],
    }
