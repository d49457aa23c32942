"""Pure helpers of the kubelet stand-in: what a pod runs, with which environment and volumes.

Kept free of I/O so the unit tier covers them: secrets and config maps come in as callables,
volumes' host directories as a mapping.
"""

from __future__ import annotations

import json
import posixpath
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
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


# -- volumes -------------------------------------------------------------------------------------

BytesLookup = Callable[[str, str], Mapping[str, bytes] | None]

# The volume types the stand-in can back with a host directory; anything else is refused.
VOLUME_TYPES = ("persistentVolumeClaim", "emptyDir", "configMap", "secret", "projected",
                "hostPath")
# Written by the stand-in, so mounted read-only, as a kubelet does.
_FILE_VOLUMES = frozenset({"configMap", "secret", "projected"})
DEFAULT_FILE_MODE = 0o644
# Set, in the rewrite fallback only, to a JSON object {mountPath: host path}.
MOUNTS_ENV = "SMARTID_TESTBED_MOUNTS"


@dataclass(frozen=True)
class Mount:
    """One bind: ``source`` (a host directory or file) seen by the process at ``target``."""

    source: Path
    target: str
    read_only: bool


def volume_type(volume: Mapping[str, Any]) -> str:
    for kind in VOLUME_TYPES:
        if kind in volume:
            return kind
    other = next((k for k in volume if k != "name"), "unknown")
    raise PodSpecError(f'volume "{volume["name"]}": {other} volumes are not supported by the '
                       f"test bed (only {', '.join(VOLUME_TYPES)})")


def pod_claims(pod: Pod) -> dict[str, str]:
    """Volume name -> claim name, for the pod's PersistentVolumeClaim volumes."""
    return {v["name"]: v["persistentVolumeClaim"]["claimName"]
            for v in pod["spec"].get("volumes") or [] if v.get("persistentVolumeClaim")}


def _relative(path: str, what: str) -> str:
    """A path inside a volume: relative, no ``..`` (the API server's and kubelet's rule)."""
    if path.startswith("/") or ".." in PurePosixPath(path).parts:
        raise PodSpecError(f"{what} {path!r} must be a relative path without '..'")
    return path


def mount_plan(pod: Pod, container: Mapping[str, Any], env: Mapping[str, str],
               volume_dirs: Mapping[str, Path]) -> list[Mount]:
    """The container's volumeMounts as binds of host paths (``volume_dirs``: volume -> host
    directory), with ``subPath``/``subPathExpr`` and ``readOnly`` applied."""
    volumes = {v["name"]: v for v in pod["spec"].get("volumes") or []}
    plan: list[Mount] = []
    for mount in container.get("volumeMounts") or []:
        name = mount["name"]
        if name not in volumes or name not in volume_dirs:
            raise PodSpecError(f'volumeMount "{name}" names no volume of the pod')
        target = posixpath.normpath(mount["mountPath"])
        if not target.startswith("/") or target == "/":
            raise PodSpecError(f"mountPath {mount['mountPath']!r} must be absolute, not /")
        sub = mount.get("subPath") or expand(mount.get("subPathExpr") or "", env)
        source = volume_dirs[name] / _relative(sub, "subPath") if sub else volume_dirs[name]
        kind = volume_type(volumes[name])
        read_only = (bool(mount.get("readOnly")) or kind in _FILE_VOLUMES
                     or bool(volumes[name].get(kind, {}).get("readOnly")))
        plan.append(Mount(source, target, read_only))
    return plan


def _key_files(kind: str, name: str, spec: Mapping[str, Any], namespace: str,
               read: BytesLookup, default_mode: int) -> dict[str, tuple[bytes, int]]:
    data = read(namespace, name)
    optional = bool(spec.get("optional"))
    if data is None:
        if optional:
            return {}
        raise PodSpecError(f'{kind} "{name}" not found')
    items = spec.get("items")
    if not items:
        return {key: (value, default_mode) for key, value in data.items()}
    files: dict[str, tuple[bytes, int]] = {}
    for item in items:
        if item["key"] not in data:
            if optional:
                continue
            raise PodSpecError(f"couldn't find key {item['key']} in {kind} {namespace}/{name}")
        files[_relative(item["path"], "item path")] = (data[item["key"]],
                                                      item.get("mode", default_mode))
    return files


def _downward_value(pod: Pod, field_path: str) -> str:
    if field_path in ("metadata.labels", "metadata.annotations"):
        values = pod["metadata"].get(field_path.split(".")[1]) or {}
        return "\n".join(f"{k}={json.dumps(v)}" for k, v in sorted(values.items()))
    match = re.fullmatch(r"metadata\.(labels|annotations)\['([^']+)'\]", field_path)
    if match:
        return str((pod["metadata"].get(match.group(1)) or {}).get(match.group(2), ""))
    getter = _FIELD_PATHS.get(field_path)
    if getter is None:
        raise PodSpecError(f"fieldRef {field_path} is not supported by the test bed")
    return str(getter(pod) or "")


def volume_files(volume: Mapping[str, Any], pod: Pod, *, secrets: BytesLookup,
                 configmaps: BytesLookup, token: str | None) -> dict[str, tuple[bytes, int]]:
    """The files (relative path -> content, mode) of a configMap, secret or projected volume.

    ``token`` is the pod's ServiceAccount token, for a projected ``serviceAccountToken`` (the
    ``kube-api-access-*`` volume the API server adds to every pod); without one it is left out.
    """
    namespace = pod["metadata"]["namespace"]
    kind = volume_type(volume)
    spec = volume[kind] or {}
    mode = spec.get("defaultMode", DEFAULT_FILE_MODE)
    if kind == "configMap":
        return _key_files("configmap", spec["name"], spec, namespace, configmaps, mode)
    if kind == "secret":
        return _key_files("secret", spec["secretName"], spec, namespace, secrets, mode)
    if kind != "projected":
        return {}
    files: dict[str, tuple[bytes, int]] = {}
    for source in spec.get("sources") or []:
        if ref := source.get("configMap"):
            files.update(_key_files("configmap", ref["name"], ref, namespace, configmaps, mode))
        elif ref := source.get("secret"):
            files.update(_key_files("secret", ref["name"], ref, namespace, secrets, mode))
        elif ref := source.get("downwardAPI"):
            for item in ref.get("items") or []:
                if "fieldRef" not in item:
                    raise PodSpecError("downwardAPI resourceFieldRef is not supported by the "
                                       "test bed")
                value = _downward_value(pod, item["fieldRef"]["fieldPath"])
                files[_relative(item["path"], "item path")] = (value.encode(),
                                                              item.get("mode", mode))
        elif (ref := source.get("serviceAccountToken")) and token is not None:
            files[_relative(ref["path"], "token path")] = (token.encode(), mode)
    return files


# -- termination messages -----------------------------------------------------------------------

DEFAULT_TERMINATION_PATH = "/dev/termination-log"
TERMINATION_LIMIT = 4096  # bytes a kubelet keeps of the file
LOG_FALLBACK_LINES, LOG_FALLBACK_BYTES = 80, 2048  # FallbackToLogsOnError: what kubelet takes


def termination_path(container: Mapping[str, Any]) -> str:
    return str(container.get("terminationMessagePath") or DEFAULT_TERMINATION_PATH)


def termination_message(container: Mapping[str, Any], written: bytes, log_tail: bytes,
                        exit_code: int) -> str:
    """What a kubelet puts in ``state.terminated.message``: the file the container wrote (at
    most 4096 bytes); with ``FallbackToLogsOnError``, an empty file and a failed container,
    the end of its log instead (the last 80 lines, at most 2048 bytes)."""
    text = written[:TERMINATION_LIMIT]
    if not text.strip() and exit_code != 0 and \
            container.get("terminationMessagePolicy") == "FallbackToLogsOnError":
        lines = log_tail.splitlines(keepends=True)[-LOG_FALLBACK_LINES:]
        text = b"".join(lines)[-LOG_FALLBACK_BYTES:]
    return text.decode("utf-8", errors="replace")


def rewrite_for_mounts(argv: Sequence[str], env: Mapping[str, str], mounts: Sequence[Mount],
                       working_dir: str | None = None
                       ) -> tuple[list[str], dict[str, str], str | None]:
    """The fallback where no mount namespace can be made: every occurrence of a mountPath, as a
    whole path prefix, in the args, the env values and the working directory becomes the host
    path (longest mountPath first, one pass, so a replaced path is never replaced again), and
    ``SMARTID_TESTBED_MOUNTS`` names the map for paths a program builds itself."""
    table = {m.target: str(m.source) for m in mounts}
    if not table:
        return list(argv), dict(env), working_dir
    targets = sorted(table, key=len, reverse=True)
    # A mountPath starts a path (not preceded by a name character) and ends at / or a non-name
    # character: /data matches "/data", "/data/x", "--out=/data" but not "/database", "/x/data".
    pattern = re.compile(r"(?<![\w.-])(" + "|".join(map(re.escape, targets)) + r")(?![\w.-])")

    def sub(value: str) -> str:
        return pattern.sub(lambda m: table[m.group(1)], value)

    new_env = {k: sub(v) for k, v in env.items()}
    new_env[MOUNTS_ENV] = json.dumps(table, sort_keys=True)
    return [sub(a) for a in argv], new_env, sub(working_dir) if working_dir else None
