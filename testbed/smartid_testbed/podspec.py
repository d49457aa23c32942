"""Pure helpers of the kubelet stand-in: what a pod runs, with which environment.

Kept free of I/O so the unit tier covers them: secrets and config maps come in as callables.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any

Pod = Mapping[str, Any]
Lookup = Callable[[str, str], Mapping[str, str] | None]  # (namespace, name) -> data or None

MONGO_IMAGES = frozenset({"mongo"})
OPERATOR_IMAGES = frozenset({"smartid-operator"})
# The operator image's ENTRYPOINT (deploy/Dockerfile); used when a container gives no command.
OPERATOR_ENTRYPOINT = ("smartid-operator",)


class PodSpecError(ValueError):
    """The pod cannot be run as written (a missing Secret key, say): the pod fails, as on a node."""


def image_name(image: str) -> str:
    """``docker.io/library/mongo:7.0@sha256:..`` -> ``mongo``; ``ghcr.io/x/smartid-operator:1`` ->
    ``smartid-operator``."""
    last = image.split("@", 1)[0].rsplit("/", 1)[-1]
    return last.split(":", 1)[0]


def workload_kind(image: str, operator_images: frozenset[str] = OPERATOR_IMAGES) -> str:
    name = image_name(image)
    if name in MONGO_IMAGES:
        return "mongo"
    if name in operator_images:
        return "command"
    return "unsupported"


def data_claim(pod: Pod) -> str | None:
    """The PersistentVolumeClaim behind the mongo container's data directory, if any.

    The volume mounted at ``/data/db`` (the official image's data path) wins; otherwise the
    first claim-backed volume.
    """
    claims = {
        v["name"]: v["persistentVolumeClaim"]["claimName"]
        for v in pod["spec"].get("volumes") or []
        if v.get("persistentVolumeClaim")
    }
    container = pod["spec"]["containers"][0]
    for mount in container.get("volumeMounts") or []:
        if mount.get("mountPath", "").rstrip("/") == "/data/db" and mount["name"] in claims:
            return claims[mount["name"]]
    return next(iter(claims.values()), None)


_FIELD_PATHS: dict[str, Callable[[Pod], Any]] = {
    "metadata.name": lambda p: p["metadata"]["name"],
    "metadata.namespace": lambda p: p["metadata"]["namespace"],
    "metadata.uid": lambda p: p["metadata"]["uid"],
    "spec.nodeName": lambda p: p["spec"].get("nodeName"),
    "spec.serviceAccountName": lambda p: p["spec"].get("serviceAccountName"),
    "status.podIP": lambda p: (p.get("status") or {}).get("podIP"),
    "status.hostIP": lambda p: (p.get("status") or {}).get("hostIP"),
}

_REF = re.compile(r"\$\(([A-Za-z_][A-Za-z0-9_.-]*)\)|\$\$")


def expand(value: str, env: Mapping[str, str]) -> str:
    """Kubernetes' ``$(VAR)`` expansion: known names replaced, ``$$`` escapes, the rest kept."""

    def repl(match: re.Match[str]) -> str:
        if match.group(0) == "$$":
            return "$"
        return env.get(match.group(1), match.group(0))

    return _REF.sub(repl, value)


def _lookup(kind: str, ref: Mapping[str, Any], namespace: str, read: Lookup) -> str | None:
    data = read(namespace, ref["name"])
    optional = bool(ref.get("optional"))
    if data is None:
        if optional:
            return None
        raise PodSpecError(f'{kind} "{ref["name"]}" not found')
    if ref["key"] not in data:
        if optional:
            return None
        raise PodSpecError(
            f'couldn\'t find key {ref["key"]} in {kind} {namespace}/{ref["name"]}')
    return data[ref["key"]]


def container_env(pod: Pod, container: Mapping[str, Any], *, secrets: Lookup,
                  configmaps: Lookup) -> dict[str, str]:
    """The container's environment as a kubelet builds it: envFrom, then env in order."""
    namespace = pod["metadata"]["namespace"]
    env: dict[str, str] = {}
    for source in container.get("envFrom") or []:
        prefix = source.get("prefix", "")
        for kind, key, read in (("secret", "secretRef", secrets),
                                ("configmap", "configMapRef", configmaps)):
            if ref := source.get(key):
                data = read(namespace, ref["name"])
                if data is None and not ref.get("optional"):
                    raise PodSpecError(f'{kind} "{ref["name"]}" not found')
                env.update({prefix + k: v for k, v in (data or {}).items()})
    for var in container.get("env") or []:
        name = var["name"]
        if "value" in var:
            env[name] = expand(var["value"] or "", env)
            continue
        source = var.get("valueFrom") or {}
        value: str | None
        if ref := source.get("secretKeyRef"):
            value = _lookup("secret", ref, namespace, secrets)
        elif ref := source.get("configMapKeyRef"):
            value = _lookup("configmap", ref, namespace, configmaps)
        elif ref := source.get("fieldRef"):
            getter = _FIELD_PATHS.get(ref["fieldPath"])
            if getter is None:
                raise PodSpecError(f"fieldRef {ref['fieldPath']} is not supported by the test bed")
            value = getter(pod)
        else:
            value = ""
        if value is not None:
            env[name] = str(value)
    return env


def container_argv(container: Mapping[str, Any], env: Mapping[str, str],
                   entrypoint: tuple[str, ...] = OPERATOR_ENTRYPOINT) -> list[str]:
    command = list(container.get("command") or entrypoint)
    args = list(container.get("args") or [])
    return [expand(part, env) for part in command + args]
