"""The kubelet stand-in: a Node, a hostPath volume provisioner, and two kinds of pod.

No container runtime runs on these machines, so this plays kubelet for the pods the test bed
needs, with real processes:

* ``mongo`` image: a FerretDB process (MongoDB wire protocol, SQLite) on a stable loopback
  address per pod (``127.B.C.N:27017``, see ``AddressBook``), its data in the directory of the
  pod's PersistentVolume, so data survives scale 0 -> 1.  Ready once it answers ``ping``;
  SIGTERM then SIGKILL when the pod is deleted, so an outage is real: connections are refused.
* the operator's image: the container's command and args run locally in the project's
  environment, with the pod's env (Secrets and ConfigMaps resolved) and ``KUBECONFIG`` for the
  pod's ServiceAccount, so RBAC holds; the exit code becomes the pod's phase, and what the
  container wrote to its ``terminationMessagePath`` (a file of the pod's bound there; default
  ``/dev/termination-log``) becomes ``state.terminated.message`` (at most 4096 bytes; with
  ``FallbackToLogsOnError``, the end of its log when it failed and wrote nothing).
* any other image stays Pending with an ``ImageNotRunnable`` event.

Volumes of operator-image pods, each backed by a host directory: a PersistentVolumeClaim by its
hostPath PV's directory (the pod waits until the claim is bound, with a ``FailedMount`` event
if that takes long); an emptyDir by a directory of the pod, removed with the pod; configMap,
secret and projected volumes (the ``kube-api-access-*`` one included) by files per key, written
at start and mounted read-only; hostPath as is.  ``subPath``, ``subPathExpr`` and ``readOnly``
are honoured.  A missing ConfigMap or Secret holds the container in
``CreateContainerConfigError`` until it appears.  The pod's kubeconfig is mounted at
``POD_KUBECONFIG`` so no mountPath hides it.

How the process sees the mountPaths is chosen once at start (``choose_volume_mode``):

* ``namespace`` (wherever a private mount namespace can be made, i.e. as root on Linux: our
  build machines and the CI machine): ``mountns`` gives each pod its own mount namespace whose
  ``/`` mirrors the host's, binds each volume at its mountPath and execs the command: the
  program really opens ``/recordings``, read-only mounts refuse writes, and the host's ``/``
  gains nothing.  As in a container, a mountPath over a host directory hides it from the pod.
* ``rewrite`` (the fallback, e.g. as a non-root user, as on GitHub's hosted runners):
  mountPaths in the args, env values and workingDir become host paths,
  ``SMARTID_TESTBED_MOUNTS`` holds the map (``podspec.rewrite_for_mounts``), and readOnly is
  not enforced.  A program that builds a mounted path itself must consult that map (the
  operator's Jobs name their termination file in their args, which are rewritten).

``SMARTID_TESTBED_VOLUMES=namespace|rewrite`` overrides the choice.
"""

from __future__ import annotations

import base64
import datetime
import json
import logging
import os
import random
import shutil
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import yaml
from kubernetes import client, config, watch
from kubernetes.client.rest import ApiException

from smartid_testbed import binaries, mountns, podspec
from smartid_testbed.mongo_server import answers_ping, ferretdb_argv
from smartid_testbed.processes import Child

log = logging.getLogger("smartid_testbed.kubelet")

NODE_NAME = "smartid-testbed"
PROVISIONER = "smartid.io/testbed-hostpath"
STORAGE_CLASS = "standard"
MONGO_PORT = 27017
Obj = dict[str, Any]
# "namespace" or "rewrite" forces how operator-image pods see their volumes; unset: probe.
VOLUMES_ENV = "SMARTID_TESTBED_VOLUMES"
# A claim not bound after this long gets a FailedMount event (kubelet waits 2 min; we are
# impatient); the pod keeps waiting for it.
CLAIM_PATIENCE = 2.0
# Where a pod finds its ServiceAccount kubeconfig (KUBECONFIG), mounted like a volume so that
# no mountPath of the pod (an emptyDir on /tmp, say) can hide it.
POD_KUBECONFIG = "/var/run/secrets/smartid-testbed/kubeconfig"


def _now() -> str:
    return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class AddressBook:
    """Stable loopback addresses per pod (``namespace/name``), like a StatefulSet pod's DNS name.

    The map is a JSON file (``addresses.json`` in the test bed's work directory), so a person or
    a test can look up, or reserve before the pod exists, where a pod's server listens.  The
    block ``127.B.C.0/24`` is picked at random per test bed so two test beds on one machine do
    not collide.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()
        if path.exists():
            state = json.loads(path.read_text())
        else:
            state = {"block": f"127.{random.randint(2, 250)}.{random.randint(0, 255)}",
                     "pods": {}}
        self._block: str = state["block"]
        self._pods: dict[str, str] = state["pods"]
        self._save()

    def address(self, namespace: str, name: str) -> str:
        key = f"{namespace}/{name}"
        with self._lock:
            if key not in self._pods:
                used = set(self._pods.values())
                for n in range(2, 255):
                    candidate = f"{self._block}.{n}"
                    if candidate not in used and _port_free(candidate, MONGO_PORT):
                        self._pods[key] = candidate
                        break
                else:
                    raise RuntimeError(f"no free loopback address left in {self._block}.0/24")
                self._save()
            return self._pods[key]

    def release(self, namespace: str, name: str) -> None:
        """Give a pod's address back (pods of the operator's image: their names do not come
        back, unlike a StatefulSet's)."""
        with self._lock:
            if self._pods.pop(f"{namespace}/{name}", None) is not None:
                self._save()

    def _save(self) -> None:
        self.path.write_text(json.dumps({"block": self._block, "pods": self._pods}, indent=2))


def _port_free(host: str, port: int) -> bool:
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
        return True


class KubeletStandIn:
    def __init__(self, kubeconfig: Path, workdir: Path, *, node_name: str = NODE_NAME,
                 operator_images: frozenset[str] = podspec.OPERATOR_IMAGES,
                 mint_kubeconfig: Callable[[str, str, Path], Path] | None = None) -> None:
        self.kubeconfig = kubeconfig
        self.workdir = workdir
        self.node_name = node_name
        self.operator_images = operator_images
        self.mint_kubeconfig = mint_kubeconfig
        self.addresses = AddressBook(workdir / "addresses.json")
        self.volumes = workdir / "volumes"
        self.volume_mode = "rewrite"
        self.volume_mode_reason = "not started"
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._pods: dict[str, _PodWorker] = {}
        self._pods_lock = threading.Lock()
        self._ready_since = _now()  # conditions never flip here: one transition time

    def api(self) -> client.CoreV1Api:
        return client.CoreV1Api(config.new_client_from_config(config_file=str(self.kubeconfig)))

    # -- lifecycle ------------------------------------------------------------------------------

    def start(self) -> None:
        self.volumes.mkdir(parents=True, exist_ok=True)
        self.volume_mode, self.volume_mode_reason = choose_volume_mode()
        log.info("operator-image pods see their volumes by %s (%s)", self.volume_mode,
                 self.volume_mode_reason)
        self._ensure_storage_class()
        self._register_node()
        for target, name in ((self._heartbeat, "heartbeat"), (self._watch_pods, "pods"),
                             (self._watch_claims, "claims")):
            thread = threading.Thread(target=target, name=f"kubelet-{name}", daemon=True)
            thread.start()
            self._threads.append(thread)

    def stop(self) -> None:
        self._stop.set()
        with self._pods_lock:
            workers = list(self._pods.values())
        for worker in workers:
            worker.shutdown(delete_pod=False, grace=2)
        for thread in self._threads:
            # Watch threads leave at their next event or when the API server goes away.
            thread.join(timeout=0.5)

    # -- node -----------------------------------------------------------------------------------

    def _node_status(self) -> Obj:
        now, since = _now(), self._ready_since
        resources = {"cpu": "8", "memory": "32Gi", "pods": "110", "ephemeral-storage": "100Gi"}
        conditions = [
            {"type": t, "status": "False", "reason": r, "message": "test bed",
             "lastHeartbeatTime": now, "lastTransitionTime": since}
            for t, r in (("MemoryPressure", "KubeletHasSufficientMemory"),
                         ("DiskPressure", "KubeletHasNoDiskPressure"),
                         ("PIDPressure", "KubeletHasSufficientPID"))
        ]
        conditions.append({"type": "Ready", "status": "True", "reason": "KubeletReady",
                           "message": "smartid test-bed kubelet stand-in is posting ready status",
                           "lastHeartbeatTime": now, "lastTransitionTime": since})
        return {"capacity": resources, "allocatable": resources, "conditions": conditions,
                "addresses": [{"type": "InternalIP", "address": "127.0.0.1"},
                              {"type": "Hostname", "address": self.node_name}],
                "nodeInfo": {"kubeletVersion": binaries.KUBERNETES_VERSION,
                             "kubeProxyVersion": binaries.KUBERNETES_VERSION,
                             "containerRuntimeVersion": "smartid-testbed://1",
                             "operatingSystem": "linux", "architecture": "amd64",
                             "osImage": "smartid test bed", "kernelVersion": os.uname().release,
                             "machineID": "", "systemUUID": "", "bootID": ""}}

    def _register_node(self) -> None:
        api = self.api()
        labels = {"kubernetes.io/hostname": self.node_name, "kubernetes.io/os": "linux",
                  "kubernetes.io/arch": "amd64", "smartid.io/testbed": "true"}
        try:
            api.create_node({"apiVersion": "v1", "kind": "Node",
                             "metadata": {"name": self.node_name, "labels": labels}})
        except ApiException as exc:
            if exc.status != 409:
                raise
        api.patch_node_status(self.node_name, {"status": self._node_status()})

    def _heartbeat(self) -> None:
        api = self.api()
        coordination = client.CoordinationV1Api(api.api_client)
        while True:
            try:
                self._renew_lease(coordination)
                api.patch_node_status(self.node_name, {"status": self._node_status()})
            except Exception:  # the API server may be going away at shutdown
                log.debug("heartbeat failed", exc_info=True)
            if self._stop.wait(10):
                return

    def _renew_lease(self, coordination: client.CoordinationV1Api) -> None:
        now = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        body = {"metadata": {"name": self.node_name, "namespace": "kube-node-lease"},
                "spec": {"holderIdentity": self.node_name, "leaseDurationSeconds": 40,
                         "renewTime": now}}
        try:
            coordination.patch_namespaced_lease(self.node_name, "kube-node-lease", body)
        except ApiException as exc:
            if exc.status != 404:
                raise
            coordination.create_namespaced_lease("kube-node-lease", body)

    # -- volumes: a minimal hostPath provisioner, as kind's local-path-provisioner ---------------

    def _ensure_storage_class(self) -> None:
        storage = client.StorageV1Api(self.api().api_client)
        body = {"apiVersion": "storage.k8s.io/v1", "kind": "StorageClass",
                "metadata": {"name": STORAGE_CLASS, "annotations": {
                    "storageclass.kubernetes.io/is-default-class": "true"}},
                "provisioner": PROVISIONER, "reclaimPolicy": "Retain",
                "volumeBindingMode": "Immediate"}
        try:
            storage.create_storage_class(body)
        except ApiException as exc:
            if exc.status != 409:
                raise

    def _watch_claims(self) -> None:
        api = self.api()
        for kind, claim in _watch_forever(api.list_persistent_volume_claim_for_all_namespaces,
                                          self._stop, api.api_client):
            if kind == "DELETED" or (claim.get("spec") or {}).get("volumeName"):
                continue
            class_name = claim["spec"].get("storageClassName")
            if class_name not in (None, STORAGE_CLASS):
                continue
            try:
                self._provision(api, claim)
            except ApiException as exc:
                if exc.status != 409:
                    log.warning("provisioning %s failed: %s", claim["metadata"]["name"], exc)

    def _provision(self, api: client.CoreV1Api, claim: Obj) -> None:
        meta = claim["metadata"]
        path = self.volumes / meta["namespace"] / f"{meta['name']}-{meta['uid'][:8]}"
        path.mkdir(parents=True, exist_ok=True)
        size = ((claim["spec"].get("resources") or {}).get("requests") or {}).get("storage", "1Gi")
        api.create_persistent_volume({
            "apiVersion": "v1", "kind": "PersistentVolume",
            "metadata": {"name": f"pvc-{meta['uid']}",
                         "annotations": {"pv.kubernetes.io/provisioned-by": PROVISIONER}},
            "spec": {"capacity": {"storage": size},
                     "accessModes": claim["spec"].get("accessModes") or ["ReadWriteOnce"],
                     "persistentVolumeReclaimPolicy": "Retain",
                     "storageClassName": STORAGE_CLASS,
                     "hostPath": {"path": str(path), "type": "DirectoryOrCreate"},
                     "claimRef": {"apiVersion": "v1", "kind": "PersistentVolumeClaim",
                                  "namespace": meta["namespace"], "name": meta["name"],
                                  "uid": meta["uid"]}},
        })
        log.info("provisioned %s for claim %s/%s", path, meta["namespace"], meta["name"])

    def claim_path(self, api: client.CoreV1Api, namespace: str, claim: str) -> Path | None:
        return self.claim_state(api, namespace, claim)[0]

    def claim_state(self, api: client.CoreV1Api, namespace: str,
                    claim: str) -> tuple[Path | None, str]:
        """The host directory of a bound claim, or None and why not."""
        try:
            pvc = api.read_namespaced_persistent_volume_claim(claim, namespace)
            if not pvc.spec.volume_name:
                return None, f'persistentvolumeclaim "{claim}" is not bound'
            pv = api.read_persistent_volume(pvc.spec.volume_name)
        except ApiException as exc:
            if exc.status == 404:
                return None, f'persistentvolumeclaim "{claim}" or its volume not found'
            return None, f'persistentvolumeclaim "{claim}": {exc.reason}'
        if not pv.spec.host_path:
            return None, f"volume {pv.metadata.name} of claim {claim!r} is not a hostPath volume"
        return Path(pv.spec.host_path.path), "bound"

    # -- pods -----------------------------------------------------------------------------------

    def _watch_pods(self) -> None:
        api = self.api()
        for kind, pod in _watch_forever(api.list_pod_for_all_namespaces, self._stop,
                                        api.api_client,
                                        field_selector=f"spec.nodeName={self.node_name}"):
            uid = pod["metadata"]["uid"]
            with self._pods_lock:
                worker = self._pods.get(uid)
            if kind == "DELETED":
                if worker:
                    worker.shutdown(delete_pod=False)
                # emptyDir and file volumes go with the pod, as on a node.
                _remove_pod_dir(self.pod_dir(pod["metadata"]["namespace"], uid))
                continue
            if pod["metadata"].get("deletionTimestamp"):
                if worker:
                    worker.shutdown(delete_pod=True)
                else:
                    _force_delete(api, pod)
                continue
            phase = (pod.get("status") or {}).get("phase")
            if worker is None and phase not in ("Succeeded", "Failed"):
                worker = _PodWorker(self, pod)
                with self._pods_lock:
                    self._pods[uid] = worker
                worker.start()

    def pod_dir(self, namespace: str, uid: str) -> Path:
        """Per-pod scratch: emptyDir and file volumes, the mount namespace's root, kubeconfig."""
        return self.workdir / "pods" / namespace / uid

    def forget(self, uid: str) -> None:
        with self._pods_lock:
            self._pods.pop(uid, None)


def choose_volume_mode() -> tuple[str, str]:
    """How operator-image pods will see their volumes: (mode, why)."""
    forced = os.environ.get(VOLUMES_ENV, "")
    if forced in ("namespace", "rewrite"):
        return forced, f"{VOLUMES_ENV}={forced}"
    proc = subprocess.run([sys.executable, "-I", mountns.__file__, "--probe"],
                          capture_output=True, text=True, timeout=60, check=False)
    if proc.returncode == 0:
        return "namespace", "a private mount namespace works here"
    why = proc.stderr.strip().splitlines()[-1:] or [f"probe exit {proc.returncode}"]
    return "rewrite", f"no mount namespace here ({why[0]})"


def _under(path: str, parent: str) -> bool:
    return path == parent or path.startswith(parent.rstrip("/") + "/")


def _mount_points() -> list[str]:
    with open("/proc/self/mountinfo") as info:
        # Field 5 is the mount point, with spaces and the like octal-escaped.
        return [line.split()[4].encode().decode("unicode_escape") for line in info]


def _remove_pod_dir(path: Path) -> None:
    """``rm -r`` the pod's scratch directory, unless something is mounted below it.

    Pods' mounts live in their own namespaces, so none should show here; if one ever did,
    deleting through it would delete the files it binds (a claim's, or the host's).
    """
    if not path.exists():
        return
    inside = [m for m in _mount_points() if m == str(path) or m.startswith(f"{path}/")]
    if inside:
        log.warning("not removing %s: mounted below it: %s", path, inside)
        return
    shutil.rmtree(path, ignore_errors=True)


def _watch_forever(list_fn: Callable[..., Any], stop: threading.Event,
                   api_client: client.ApiClient, **kwargs: Any) -> Iterator[tuple[str, Obj]]:
    """List then watch, relisting on expiry or error, until ``stop`` is set; yields dicts."""
    while not stop.is_set():
        try:
            listing = list_fn(**kwargs)
            for item in listing.items:
                yield "ADDED", api_client.sanitize_for_serialization(item)
            w = watch.Watch()
            for event in w.stream(list_fn, resource_version=listing.metadata.resource_version,
                                  timeout_seconds=30, **kwargs):
                if stop.is_set():
                    w.stop()
                    return
                yield event["type"], api_client.sanitize_for_serialization(event["object"])
        except Exception as exc:
            if stop.is_set():
                return
            log.debug("watch restarts after: %s", exc)
            stop.wait(0.5)


def _force_delete(api: client.CoreV1Api, pod: Obj) -> None:
    """What the kubelet does once containers are gone: the final, zero-grace delete."""
    meta = pod["metadata"]
    try:
        api.delete_namespaced_pod(meta["name"], meta["namespace"], grace_period_seconds=0,
                                  body=client.V1DeleteOptions(
                                      grace_period_seconds=0,
                                      preconditions=client.V1Preconditions(uid=meta["uid"])))
    except ApiException as exc:
        if exc.status not in (404, 409):
            raise


def _self_contained(path: Path) -> str | None:
    """Inline the CA file of a minted kubeconfig (the pod may not see the test bed's work
    directory); return its bearer token, for the pod's ``kube-api-access-*`` volume."""
    kubeconfig = yaml.safe_load(path.read_text()) or {}
    for cluster in kubeconfig.get("clusters") or []:
        ca = cluster.get("cluster", {}).pop("certificate-authority", None)
        if ca:
            cluster["cluster"]["certificate-authority-data"] = base64.b64encode(
                Path(ca).read_bytes()).decode()
    path.write_text(yaml.safe_dump(kubeconfig, sort_keys=False))
    users = kubeconfig.get("users") or []
    return next((u["user"]["token"] for u in users if (u.get("user") or {}).get("token")), None)


def _read_from(path: Path, offset: int) -> bytes:
    try:
        with path.open("rb") as f:
            f.seek(offset)
            return f.read()
    except OSError:
        return b""


def _write_files(directory: Path, files: Mapping[str, tuple[bytes, int]]) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    for relative, (content, mode) in files.items():
        path = directory / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content)
        path.chmod(mode)


class _PodWorker:
    """Runs one pod's first container until it exits or the pod is deleted."""

    def __init__(self, kubelet: KubeletStandIn, pod: Obj) -> None:
        self.kubelet = kubelet
        self.pod = pod
        self.meta = pod["metadata"]
        self.container = pod["spec"]["containers"][0]
        self.kind = podspec.workload_kind(self.container.get("image", ""),
                                          kubelet.operator_images)
        self._stop = threading.Event()
        self._delete = False
        self._child: Child | None = None
        self._thread = threading.Thread(target=self._run, daemon=True,
                                        name=f"pod-{self.meta['namespace']}/{self.meta['name']}")
        self.api = kubelet.api()
        self.restarts = 0
        # SIGTERM, then SIGKILL after the pod's grace period (capped: a test bed is impatient).
        self._grace = min(10.0, float(pod["spec"].get("terminationGracePeriodSeconds") or 30))
        self.address: str | None = None  # the pod's IP, for pods of the operator's image

    def start(self) -> None:
        self._thread.start()

    def shutdown(self, *, delete_pod: bool, grace: float | None = None) -> None:
        self._delete = self._delete or delete_pod
        if grace is not None:
            self._grace = grace
        self._stop.set()
        if threading.current_thread() is not self._thread:
            self._thread.join(timeout=20)

    # -- the pod's life ---------------------------------------------------------------------------

    def _run(self) -> None:
        try:
            if self.kind == "mongo":
                self._run_mongo()
            elif self.kind == "command":
                self._run_command()
            else:
                self._event("Warning", "ImageNotRunnable",
                            f"the test-bed kubelet runs only the mongo and operator images, not "
                            f"{self.container.get('image')!r}; the pod stays Pending")
                self._stop.wait()
        except Exception as exc:
            log.exception("pod %s/%s failed in the kubelet stand-in", self.meta["namespace"],
                          self.meta["name"])
            self._event("Warning", "Failed", f"test-bed kubelet: {exc}")
        finally:
            if self._child is not None:
                self._child.stop(grace=self._grace)
            if self._delete:
                _force_delete(self.api, self.pod)
            if self.kind == "command" and self.address is not None:
                self.kubelet.addresses.release(self.meta["namespace"], self.meta["name"])
            self.kubelet.forget(self.meta["uid"])

    def _log_path(self) -> Path:
        return (self.kubelet.workdir / "pods" / self.meta["namespace"]
                / f"{self.meta['name']}-{self.meta['uid'][:8]}.log")

    def _run_mongo(self) -> None:
        address = self.kubelet.addresses.address(self.meta["namespace"], self.meta["name"])
        claim = podspec.data_claim(self.pod)
        if claim:
            volume = next(v for v, c in podspec.pod_claims(self.pod).items() if c == claim)
            data = self._wait_for_claim(volume, claim)
            if data is None:
                return
        else:  # an emptyDir: gone with the pod
            data = self._pod_dir() / "volumes" / "empty-dir" / "data"
        data.mkdir(parents=True, exist_ok=True)
        while not self._stop.is_set():
            started = _now()
            self._child = Child("ferretdb", ferretdb_argv(address, MONGO_PORT, data),
                                self._log_path())
            self._event("Normal", "Started", f"started mongod stand-in (FerretDB) on "
                                             f"{address}:{MONGO_PORT}, data in {data}")
            deadline = time.monotonic() + 30
            while not answers_ping(address, MONGO_PORT) and time.monotonic() < deadline:
                if self._stop.wait(0.1) or not self._child.alive():
                    break
            if self._stop.is_set():
                return
            ready = self._child.alive()
            self._report(address, running=started, ready=ready)
            while self._child.alive() and not self._stop.wait(0.5):
                pass
            if self._stop.is_set():
                self._event("Normal", "Killing", "stopping container mongo")
                return
            # It crashed: restartPolicy Always, as kubelet would (with a short back-off).
            self.restarts += 1
            self._report(address, running=None, ready=False,
                         terminated={"exitCode": self._child.proc.returncode,
                                     "reason": "Error"})
            self._stop.wait(1)

    def _pod_dir(self) -> Path:
        return self.kubelet.pod_dir(self.meta["namespace"], self.meta["uid"])

    def _wait_for_claim(self, volume: str, claim: str) -> Path | None:
        """The claim's host directory once bound; None if the pod goes first.  A claim still
        unbound after CLAIM_PATIENCE gets a FailedMount event; the pod stays Pending."""
        deadline = time.monotonic() + CLAIM_PATIENCE
        told = False
        while not self._stop.is_set():
            path, why = self.kubelet.claim_state(self.api, self.meta["namespace"], claim)
            if path is not None:
                return path
            if not told and time.monotonic() >= deadline:
                self._event("Warning", "FailedMount",
                            f'Unable to attach or mount volumes: unmounted volumes=[{volume}]: '
                            f"{why}; waiting for it")
                told = True
            self._stop.wait(0.5)
        return None

    def _volume_dirs(self, token: str | None) -> dict[str, Path] | None:
        """Each pod volume's host directory, claims waited for and file volumes written;
        None if the pod is deleted while waiting.  Raises PodSpecError (missing ConfigMap...)."""
        dirs: dict[str, Path] = {}
        base = self._pod_dir() / "volumes"
        for volume in self.pod["spec"].get("volumes") or []:
            name, kind = volume["name"], podspec.volume_type(volume)
            if kind == "persistentVolumeClaim":
                claim = self._wait_for_claim(name, volume[kind]["claimName"])
                if claim is None:
                    return None
                dirs[name] = claim
            elif kind == "hostPath":
                dirs[name] = Path(volume[kind]["path"])
                if volume[kind].get("type") == "DirectoryOrCreate":
                    dirs[name].mkdir(parents=True, exist_ok=True)
            elif kind == "emptyDir":
                dirs[name] = base / "empty-dir" / name
                dirs[name].mkdir(parents=True, exist_ok=True)
            else:
                files = podspec.volume_files(volume, self.pod, secrets=self._secret_bytes,
                                             configmaps=self._configmap_bytes, token=token)
                dirs[name] = base / kind / name
                _write_files(dirs[name], files)
        return dirs

    def _run_command(self) -> None:
        namespace = self.meta["namespace"]
        if self.container.get("ports"):
            # Pods share the host's network here: a pod that serves a port gets its own
            # loopback address, as a pod its IP, and the operator's programs serve their
            # metrics there (SMARTID_METRICS_ADDRESS), so two agents never fight over 8080.
            self.address = self.kubelet.addresses.address(namespace, self.meta["name"])
            taken = [p["containerPort"] for p in self.container["ports"]
                     if not _port_free(self.address, p["containerPort"])]
            if taken:  # a process on 0.0.0.0:<port> would answer for the pod: publish no IP
                self._event("Warning", "PortTaken",
                            f"port(s) {taken} taken on {self.address} by another process on "
                            f"this host (one listening on all addresses?): no pod IP")
                self.kubelet.addresses.release(namespace, self.meta["name"])
                self.address = None
        address = self.address
        self._report(address, running=None, ready=False, waiting={"reason": "ContainerCreating"})
        kubeconfig: Path | None = None
        token: str | None = None
        if self.kubelet.mint_kubeconfig is not None:
            account = self.pod["spec"].get("serviceAccountName") or "default"
            path = self._pod_dir() / "kubeconfig"
            path.parent.mkdir(parents=True, exist_ok=True)
            kubeconfig = self.kubelet.mint_kubeconfig(namespace, account, path)
            token = _self_contained(kubeconfig)
        # A missing Secret or ConfigMap (env or volume) holds the container in
        # CreateContainerConfigError; like kubelet, retry, so it starts once the object exists
        # (kube-root-ca.crt, in every pod's kube-api-access volume, lands just after its
        # namespace is made).
        error = ""
        while True:
            try:
                dirs = self._volume_dirs(token)
                if dirs is None:  # deleted while waiting for a claim
                    return
                env = podspec.container_env(self.pod, self.container, secrets=self._secret,
                                            configmaps=self._configmap)
                argv = podspec.container_argv(self.container, env)
                mounts = podspec.mount_plan(self.pod, self.container, env, dirs)
                if kubeconfig is not None:
                    mounts.append(podspec.Mount(kubeconfig, POD_KUBECONFIG, True))
                break
            except podspec.PodSpecError as exc:
                if str(exc) != error:
                    error = str(exc)
                    self._event("Warning", "Failed", f"Error: {exc}")
                    self._report(address, running=None, ready=False, waiting={
                        "reason": "CreateContainerConfigError", "message": error})
            if self._stop.wait(1):
                return
        for mount in mounts:  # a subPath that is not there yet is made, as kubelet does
            if not mount.source.exists():
                mount.source.mkdir(parents=True)
        # The termination message: a file of the pod's, bound at terminationMessagePath.
        termination = self._pod_dir() / f"termination-{self.container['name']}"
        termination.touch(mode=0o666)
        mounts.append(podspec.Mount(termination, podspec.termination_path(self.container),
                                    False))
        bindir = str(Path(sys.executable).parent)
        env = {"PATH": f"{bindir}:{os.environ.get('PATH', '')}",
               "HOME": os.environ.get("HOME", "/tmp"), "HOSTNAME": self.meta["name"],
               **({"SMARTID_METRICS_ADDRESS": address} if address else {}), **env}
        if kubeconfig is not None:
            env["KUBECONFIG"] = POD_KUBECONFIG
        shown = " ".join(argv)
        run, cwd = self._with_volumes(argv, env, mounts)
        policy = self.pod["spec"].get("restartPolicy", "Always")
        while not self._stop.is_set():
            started = _now()
            termination.write_bytes(b"")  # each run of the container writes its own
            log_path = self._log_path()
            offset = log_path.stat().st_size if log_path.exists() else 0
            self._child = Child(self.container["name"], run, log_path, env=env, cwd=cwd)
            self._event("Normal", "Started", f"started {shown}")
            self._report(address, running=started, ready=True)
            while self._child.alive() and not self._stop.wait(0.2):
                pass
            if self._stop.is_set():
                return
            code = self._child.proc.returncode
            terminated = {"exitCode": code, "reason": "Completed" if code == 0 else "Error",
                          "startedAt": started, "finishedAt": _now()}
            if message := podspec.termination_message(
                    self.container, termination.read_bytes(), _read_from(log_path, offset),
                    code):
                terminated["message"] = message
            if (code == 0 and policy != "Always") or (code != 0 and policy == "Never"):
                self._report(address, running=None, ready=False, terminated=terminated,
                             phase="Succeeded" if code == 0 else "Failed")
                return
            self.restarts += 1
            self._report(address, running=None, ready=False, terminated=terminated)
            self._stop.wait(min(10, 2 ** self.restarts / 2))

    def _with_volumes(self, argv: list[str], env: dict[str, str],
                      mounts: list[podspec.Mount]) -> tuple[list[str], Path | None]:
        """The argv to start, and its working directory, so that the process sees ``mounts``.

        ``namespace`` mode: ``mountns`` builds a private mount namespace and execs ``argv``.
        ``rewrite`` mode: mountPaths in ``argv``, ``env`` (updated in place) and workingDir
        become host paths (see ``podspec.rewrite_for_mounts``).
        """
        working_dir = self.container.get("workingDir")
        if not mounts:
            return argv, Path(working_dir) if working_dir else None
        if self.kubelet.volume_mode == "namespace":
            root = self._pod_dir() / "root"
            root.mkdir(parents=True, exist_ok=True)
            # What stands in for the image's root filesystem stays visible under any volume.
            image = sorted({sys.prefix, sys.base_prefix, str(binaries.repo_root()),
                            os.getcwd()})
            plan = {"root": str(root), "cwd": working_dir or os.getcwd(), "argv": argv,
                    "mounts": [[str(m.source), m.target, m.read_only] for m in mounts],
                    "image": image}
            return [sys.executable, "-I", mountns.__file__, json.dumps(plan)], None
        argv, new_env, working_dir = podspec.rewrite_for_mounts(argv, env, mounts, working_dir)
        env.clear()
        env.update(new_env)
        return argv, Path(working_dir) if working_dir else None

    # -- API helpers ---------------------------------------------------------------------------

    def _read_data(self, read: Callable[[str, str], Any], namespace: str,
                   name: str) -> dict[str, str] | None:
        try:
            return dict(read(name, namespace).data or {})
        except ApiException as exc:
            if exc.status == 404:
                return None
            raise

    def _secret(self, namespace: str, name: str) -> Mapping[str, str] | None:
        data = self._read_data(self.api.read_namespaced_secret, namespace, name)
        return None if data is None else {k: base64.b64decode(v).decode()
                                          for k, v in data.items()}

    def _configmap(self, namespace: str, name: str) -> Mapping[str, str] | None:
        return self._read_data(self.api.read_namespaced_config_map, namespace, name)

    def _secret_bytes(self, namespace: str, name: str) -> Mapping[str, bytes] | None:
        data = self._read_data(self.api.read_namespaced_secret, namespace, name)
        return None if data is None else {k: base64.b64decode(v) for k, v in data.items()}

    def _configmap_bytes(self, namespace: str, name: str) -> Mapping[str, bytes] | None:
        try:
            cm = self.api.read_namespaced_config_map(name, namespace)
        except ApiException as exc:
            if exc.status == 404:
                return None
            raise
        files = {k: v.encode() for k, v in (cm.data or {}).items()}
        files.update({k: base64.b64decode(v) for k, v in (cm.binary_data or {}).items()})
        return files

    def _report(self, address: str | None, *, running: str | None, ready: bool,
                terminated: Obj | None = None, waiting: Obj | None = None,
                phase: str | None = None) -> None:
        now = _now()
        if terminated is not None:
            state: Obj = {"terminated": terminated}
        elif waiting is not None:
            state = {"waiting": waiting}
        else:
            state = {"running": {"startedAt": running}}
        flag = "True" if ready else "False"
        status: Obj = {
            "phase": phase or ("Pending" if waiting else "Running"),
            "hostIP": "127.0.0.1",
            "conditions": [{"type": t, "status": s, "lastTransitionTime": now}
                           for t, s in (("PodReadyToStartContainers", "True"),
                                        ("Initialized", "True"), ("ContainersReady", flag),
                                        ("Ready", flag))],
            "containerStatuses": [{
                "name": self.container["name"], "image": self.container.get("image", ""),
                "imageID": "", "ready": ready, "started": running is not None,
                "restartCount": self.restarts, "state": state}],
        }
        if self.pod.get("status", {}).get("startTime") is None:
            status["startTime"] = now
        if address:
            status["podIP"] = address
            status["podIPs"] = [{"ip": address}]
        try:
            self.api.patch_namespaced_pod_status(self.meta["name"], self.meta["namespace"],
                                                 {"status": status})
        except ApiException as exc:
            if exc.status != 404:
                raise

    def _event(self, type_: str, reason: str, message: str) -> None:
        now = datetime.datetime.now(datetime.UTC)
        try:
            self.api.create_namespaced_event(self.meta["namespace"], client.CoreV1Event(
                metadata=client.V1ObjectMeta(generate_name=f"{self.meta['name']}."),
                involved_object=client.V1ObjectReference(
                    kind="Pod", name=self.meta["name"], namespace=self.meta["namespace"],
                    uid=self.meta["uid"], api_version="v1"),
                reason=reason, message=message, type=type_, first_timestamp=now,
                last_timestamp=now, count=1,
                source=client.V1EventSource(component="kubelet", host=self.kubelet.node_name)))
        except ApiException:
            log.debug("event %s not posted", reason, exc_info=True)
