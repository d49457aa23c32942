"""Benchmark: N SmartIDDatabases (default 100) on one operator, all on one shared Mongo
stand-in server, on the local control plane with the operator deployed from the shipped
cluster-wide overlay (its pod run by the kubelet stand-in). Prints JSON.

    python bench/many_databases.py [--databases 100] [--rest-intervals 4]
                                   [--operator-tree DIR]

Layout: one namespace (``bench``) holds the one mongo StatefulSet (one FerretDB server), its
URI Secret and all N databases (``db-000`` ... with ``spec.mongo.database`` ``bench_000``
...): ``spec.mongo.uriSecretRef`` and ``spec.mongo.workload`` are namespace-local, so sharing
one server means sharing one namespace.

What it measures:

* create-to-Ready: all N created at once (16 client threads); from the moment each create is
  sent to the first watch event showing it ``phase: Ready`` (a watch, so the resolution is the
  event's arrival, not a poll period);
* a spec change (``spec.recovery.batchSize``) patched on all N at once, to the first watch
  event with ``status.observedGeneration`` at the new generation;
* at rest, over a quiet window of ``--rest-intervals`` health intervals (default 4 x 15 s):
  Kubernetes API requests per database per health interval by verb and resource. Two ways,
  both from the API server's own /metrics:
  - ``operator``: exact attribution. ``apiserver_request_total`` has no client label, so the
    bench adds API Priority and Fairness FlowSchemas that match only the operator's
    ServiceAccount, one per (verb, resource), on the priority level its requests get anyway
    (``workload-low``); ``apiserver_flowcontrol_dispatched_requests_total{flow_schema}`` then
    counts the operator's requests by verb and resource, and nobody else's.
  - ``all_clients_minus_baseline``: ``apiserver_request_total`` (verb, resource, response
    code) over the rest window minus the same counter over a baseline window of the same
    length taken before any database existed (operator running, Mongo up). Other clients'
    background traffic (controller-manager, scheduler, kubelet stand-in) cancels out only
    approximately; it shows response codes (a 409 answered to a create), which APF cannot.
  Also, independently of metrics: how many SmartIDDatabases and child ConfigMaps changed
  ``resourceVersion`` during the window (a write that changed nothing keeps it).
* the operator's RSS (``VmRSS``, sampled every 2 s over the rest window, and ``VmHWM``, the
  peak since it started) and CPU seconds per minute (``utime + stime`` of /proc/PID/stat over
  the window); the process is the bench's own descendant whose command line is
  ``smartid-operator run ... --metrics-port=<this install's port>``.

To explain the numbers (the machine is shared): CPU seconds per test-bed process (operator,
FerretDB, kube-apiserver, ...) and the whole machine's busy cores during each phase; each
database's migration time as the operator recorded it in its history; the operator's threads
and TCP connections to the Mongo server at rest; the load average.

``--operator-tree DIR`` runs another checkout's operator (its CRD, RBAC and Deployment from
``DIR/deploy``; its code from ``DIR/operator``, mounted into the pod by a hostPath volume and
put first on the pod's ``PYTHONPATH``, since the pod's own /tmp is an emptyDir) on this test
bed, for a before/after comparison with an older commit in a git worktree. The bench checks
that the pod sees that tree's package and the JSON shows the commit and what the operator left
on the objects (Kopf's annotations and finalizer are the old core's; the current core leaves
none).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import re
import subprocess
import sys
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pymongo
from kubernetes import client, config, watch
from prometheus_client.parser import text_string_to_metric_families

from smartid_testbed.cluster import wait_for
from smartid_testbed.install import (
    REPO,
    apply,
    install_operator,
    mongo_statefulset,
    operator_args,
    render,
    wait_established,
)
from smartid_testbed.kubelet import MONGO_PORT
from smartid_testbed.testbed import TestBed

GROUP, VERSION, PLURAL = "smartid.io", "v1alpha1", "smartiddatabases"
NAMESPACE = "bench"
OVERLAY = "deploy/overlays/cluster-wide"
DEFAULT_HEALTH_INTERVAL = 15.0  # the operator's default (--health-interval)
CLIENT_THREADS = 16
READS = {"get", "list"}
WRITES = {"create", "update", "patch", "delete", "deletecollection"}
# What the operator could touch (its ClusterRole, old and new), one FlowSchema per verb and
# resource; anything else it does lands in a catch-all schema and is reported as "other".
APF_VERBS = ("get", "list", "watch", "create", "update", "patch", "delete")
APF_RESOURCES = (("", "secrets"), ("", "configmaps"), ("", "events"), ("", "pods"),
                 ("", "namespaces"), ("apps", "statefulsets"), ("apps", "deployments"),
                 (GROUP, PLURAL), (GROUP, f"{PLURAL}/status"), ("events.k8s.io", "events"),
                 ("apiextensions.k8s.io", "customresourcedefinitions"),
                 ("coordination.k8s.io", "leases"))
TREE_MOUNT = "/opt/smartid-operator-tree"  # where --operator-tree is seen in the pod
APF_PREFIX = "bench-op-"
APF_OTHER = f"{APF_PREFIX}other"


# -- small helpers --------------------------------------------------------------------------

def percentile(samples: list[float], p: float) -> float:
    """Nearest-rank percentile."""
    ordered = sorted(samples)
    return ordered[max(0, math.ceil(p / 100 * len(ordered)) - 1)]


def summary(samples: list[float]) -> dict[str, Any]:
    if not samples:
        return {"count": 0}
    return {"count": len(samples), "p50_s": round(percentile(samples, 50), 3),
            "p95_s": round(percentile(samples, 95), 3), "max_s": round(max(samples), 3),
            "min_s": round(min(samples), 3)}


def api_client(bed: TestBed) -> client.ApiClient:
    cfg = client.Configuration()
    config.load_kube_config(config_file=str(bed.kubeconfig), client_configuration=cfg)
    cfg.connection_pool_maxsize = CLIENT_THREADS * 2
    return client.ApiClient(cfg)


def git_commit(tree: Path) -> str:
    proc = subprocess.run(["git", "-C", str(tree), "rev-parse", "--short", "HEAD"],
                          capture_output=True, text=True, check=False)
    return proc.stdout.strip() or "unknown"


# -- installing the operator ----------------------------------------------------------------

def install(bed: TestBed, tree: Path, health_interval: float | None) -> tuple[str, str, int]:
    """The operator from ``tree``'s cluster-wide overlay; returns its namespace, its
    ServiceAccount and its metrics port."""
    if tree == REPO:
        namespace, ports = install_operator(bed, OVERLAY, health_interval=health_interval)
        docs = render(bed, OVERLAY)
    else:
        # As install_operator, plus the tree's code first on the pod's PYTHONPATH: the pod runs
        # this environment's `smartid-operator` script, which imports whatever
        # `smartid_operator` comes first on sys.path. The tree is mounted into the pod (a
        # hostPath volume) because the pod sees its own /tmp (an emptyDir), not the host's.
        docs = render(bed, str(tree / OVERLAY))
        ports = operator_args(docs, health_interval=health_interval)
        deployment = next(d for d in docs if d["kind"] == "Deployment")
        pod = deployment["spec"]["template"]["spec"]
        pod.setdefault("volumes", []).append(
            {"name": "operator-tree", "hostPath": {"path": str(tree), "type": "Directory"}})
        container = pod["containers"][0]
        container.setdefault("volumeMounts", []).append(
            {"name": "operator-tree", "mountPath": TREE_MOUNT, "readOnly": True})
        container.setdefault("env", []).append(
            {"name": "PYTHONPATH", "value": f"{TREE_MOUNT}/operator"})
        crds = [d for d in docs if d["kind"] == "CustomResourceDefinition"]
        apply(bed, crds)
        wait_established(bed, [d["metadata"]["name"] for d in crds])
        apply(bed, [d for d in docs if d["kind"] != "CustomResourceDefinition"])
        namespace = deployment["metadata"]["namespace"]
        wait_for(lambda: port_answers(ports["liveness"]), timeout=90,
                 what="the operator's liveness probe")
    deployment = next(d for d in docs if d["kind"] == "Deployment")
    account = deployment["spec"]["template"]["spec"].get("serviceAccountName", "default")
    return namespace, account, ports["metrics"]


def port_answers(port: int) -> bool:
    import urllib.request

    with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2) as resp:
        return bool(resp.status == 200)


def flow_schemas(bed: TestBed, namespace: str, account: str) -> None:
    """FlowSchemas that match only the operator's ServiceAccount (see the module docstring)."""
    levels = json.loads(bed.kubectl("get", "prioritylevelconfigurations", "-o", "json"))
    names = {item["metadata"]["name"] for item in levels["items"]}
    level = "workload-low" if "workload-low" in names else "global-default"
    subject = {"kind": "ServiceAccount",
               "serviceAccount": {"name": account, "namespace": namespace}}

    def schema(name: str, precedence: int, rule: dict[str, Any]) -> dict[str, Any]:
        return {"apiVersion": "flowcontrol.apiserver.k8s.io/v1", "kind": "FlowSchema",
                "metadata": {"name": name},
                "spec": {"priorityLevelConfiguration": {"name": level},
                         "matchingPrecedence": precedence,
                         "distinguisherMethod": {"type": "ByUser"},
                         "rules": [{"subjects": [subject], **rule}]}}

    docs = [schema(apf_name(verb, group, resource), 90,
                   {"resourceRules": [{"verbs": [verb], "apiGroups": [group],
                                       "resources": [resource], "clusterScope": True,
                                       "namespaces": ["*"]}]})
            for verb in APF_VERBS for group, resource in APF_RESOURCES]
    docs.append(schema(APF_OTHER, 95, {
        "resourceRules": [{"verbs": ["*"], "apiGroups": ["*"], "resources": ["*"],
                           "clusterScope": True, "namespaces": ["*"]}],
        "nonResourceRules": [{"verbs": ["*"], "nonResourceURLs": ["*"]}]}))
    apply(bed, docs)


def apf_name(verb: str, group: str, resource: str) -> str:
    return f"{APF_PREFIX}{verb}-{group or 'core'}-{resource.replace('/', '-')}"


def resource_name(group: str, resource: str, subresource: str = "") -> str:
    """``configmaps``, ``statefulsets.apps``, ``smartiddatabases.smartid.io/status``."""
    return resource + (f".{group}" if group else "") + (f"/{subresource}" if subresource else "")


APF_NAMES = {apf_name(verb, group, resource): (verb, resource_name(group, *resource.split("/")))
             for verb in APF_VERBS for group, resource in APF_RESOURCES}


# -- the API server's counters --------------------------------------------------------------

@dataclass
class Counters:
    requests: dict[tuple[str, str, str], float]  # (verb, group/resource/sub, code) -> count
    operator: dict[tuple[str, str], float]  # (verb, resource) -> count, operator's SA only

    @classmethod
    def read(cls, bed: TestBed) -> Counters:
        text = bed.cluster.get("/metrics").decode()
        requests: dict[tuple[str, str, str], float] = defaultdict(float)
        operator: dict[tuple[str, str], float] = defaultdict(float)
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                labels = sample.labels
                if sample.name == "apiserver_request_total":
                    resource = resource_name(labels.get("group", ""),
                                             labels.get("resource", ""),
                                             labels.get("subresource", ""))
                    requests[(labels.get("verb", ""), resource or "(non-resource)",
                              labels.get("code", ""))] += sample.value
                elif sample.name == "apiserver_flowcontrol_dispatched_requests_total":
                    schema = labels.get("flow_schema", "")
                    if schema in APF_NAMES:
                        operator[APF_NAMES[schema]] += sample.value
                    elif schema == APF_OTHER:
                        operator[("*", "other")] += sample.value
        return cls(dict(requests), dict(operator))


def delta(after: dict[Any, float], before: dict[Any, float]) -> dict[Any, float]:
    return {k: v - before.get(k, 0.0) for k, v in after.items() if v - before.get(k, 0.0)}


def per_database(counts: dict[str, float], databases: int, intervals: float) -> dict[str, float]:
    return {k: round(v / databases / intervals, 3) for k, v in sorted(counts.items()) if v}


# -- the operator process -------------------------------------------------------------------

@dataclass
class Proc:
    pid: int

    @classmethod
    def find(cls, metrics_port: int) -> Proc:
        """Among this process's descendants, the operator (its metrics port is unique)."""
        def search() -> int | None:
            for pid in descendants(os.getpid()):
                try:
                    argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
                except OSError:
                    continue
                args = [a.decode(errors="replace") for a in argv]
                if any(a.endswith("smartid-operator") for a in args) and "run" in args and \
                        f"--metrics-port={metrics_port}" in args:
                    return pid
            return None
        pid: int = wait_for(search, timeout=30, what="the operator's process")
        return cls(pid)

    def status(self) -> dict[str, str]:
        lines = Path(f"/proc/{self.pid}/status").read_text().splitlines()
        return {k: v.strip() for k, _, v in (line.partition(":") for line in lines)}

    def rss_mb(self, key: str = "VmRSS") -> float:
        return int(self.status()[key].split()[0]) / 1024

    def cpu_seconds(self) -> float:
        return cpu_of(self.pid)

    def check_imports_from(self, tree: Path) -> None:
        """The pod's PYTHONPATH names ``tree``'s operator package, as the pod sees its files
        (/proc/PID/root: its mount namespace); else it would run this environment's."""
        path = self.environ("PYTHONPATH") or ""
        seen = Path(f"/proc/{self.pid}/root") / path.lstrip("/") / "smartid_operator"
        local = tree / "operator" / "smartid_operator"
        if not path or not (seen / "__init__.py").is_file() or \
                (seen / "handlers.py").read_bytes() != (local / "handlers.py").read_bytes():
            raise SystemExit(f"the operator pod does not import {local} (PYTHONPATH={path!r})")

    def connections(self, port: int) -> int:
        """Established TCP connections of the process to ``port`` (the Mongo server's)."""
        inodes = set()
        for fd in Path(f"/proc/{self.pid}/fd").iterdir():
            with contextlib.suppress(OSError):
                target = os.readlink(fd)
                if target.startswith("socket:["):
                    inodes.add(target[8:-1])
        count = 0
        for table in ("tcp", "tcp6"):
            with contextlib.suppress(OSError):
                for row in Path(f"/proc/{self.pid}/net/{table}").read_text().splitlines()[1:]:
                    cols = row.split()
                    if cols[3] == "01" and int(cols[2].rsplit(":", 1)[1], 16) == port \
                            and cols[9] in inodes:
                        count += 1
        return count

    def environ(self, name: str) -> str | None:
        for entry in Path(f"/proc/{self.pid}/environ").read_bytes().split(b"\0"):
            key, _, value = entry.decode(errors="replace").partition("=")
            if key == name:
                return value
        return None


def descendants(root: int) -> Iterable[int]:
    children: dict[int, list[int]] = defaultdict(list)
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        ppid = int(stat[stat.rindex(")") + 2:].split()[1])
        children[ppid].append(int(entry.name))
    stack = [root]
    while stack:
        for child in children.get(stack.pop(), []):
            yield child
            stack.append(child)


def cpu_of(pid: int) -> float:
    stat = Path(f"/proc/{pid}/stat").read_text()
    fields = stat[stat.rindex(")") + 2:].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def label(pid: int) -> str:
    """``operator``, ``ferretdb``, ``kube-apiserver``, ...; this process (the bench, its
    watch and the kubelet stand-in's threads) is ``bench+kubelet``."""
    if pid == os.getpid():
        return "bench+kubelet"
    args = [a.decode(errors="replace")
            for a in Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0") if a]
    if any(a.endswith("smartid-operator") for a in args):
        return "operator"
    name = Path(args[0]).name if args else "?"
    return re.sub(r"-v\d.*$", "", name)


def cpu_by_process() -> dict[str, float]:
    """CPU seconds so far of this process and its descendants, by label."""
    out: dict[str, float] = defaultdict(float)
    for pid in [os.getpid(), *descendants(os.getpid())]:
        try:
            out[label(pid)] += cpu_of(pid)
        except (OSError, ValueError, IndexError):
            continue
    return dict(out)


def machine_cpu() -> tuple[float, float]:
    """(busy, total) jiffies of the whole machine, from /proc/stat."""
    values = [int(v) for v in Path("/proc/stat").read_text().split("\n")[0].split()[1:]]
    idle = values[3] + values[4]  # idle + iowait
    return sum(values) - idle, sum(values)


@dataclass
class CpuSpan:
    """Who used the CPU between ``start()`` and ``stop()``: the test bed's processes and the
    whole machine (other users included), in cores busy on average."""

    began: float = 0.0
    procs: dict[str, float] = field(default_factory=dict)
    machine: tuple[float, float] = (0.0, 0.0)

    def start(self) -> None:
        self.began, self.procs, self.machine = time.monotonic(), cpu_by_process(), machine_cpu()

    def stop(self) -> dict[str, Any]:
        wall = time.monotonic() - self.began
        procs, (busy, total) = cpu_by_process(), machine_cpu()
        used = {k: v - self.procs.get(k, 0.0) for k, v in procs.items()}
        cores = os.cpu_count() or 1
        return {
            "wall_s": round(wall, 2),
            "cpu_s_by_process": {k: round(v, 2) for k, v in
                                 sorted(used.items(), key=lambda kv: -kv[1]) if v >= 0.05},
            "test_bed_cores_busy": round(sum(used.values()) / wall, 2),
            "machine_cores_busy": round((busy - self.machine[0]) /
                                        max(1.0, total - self.machine[1]) * cores, 2),
            "cores": cores}


def migration_ms(uri: str, names: list[str]) -> list[float]:
    """Per database, the sum of its migrations' ``duration_ms`` as the engine recorded them."""
    with pymongo.MongoClient[dict[str, Any]](uri, serverSelectionTimeoutMS=5000) as mc:
        return [sum(float(d.get("duration_ms") or 0) for d in
                    mc[name]["smartid_migrations"].find({}, {"duration_ms": 1}))
                for name in names]


# -- watching the databases -----------------------------------------------------------------

@dataclass
class Watcher:
    """First arrival, per database, of phase Ready and of each observedGeneration."""

    custom: client.CustomObjectsApi
    ready: dict[str, float] = field(default_factory=dict)
    observed: dict[str, dict[int, float]] = field(default_factory=lambda: defaultdict(dict))
    phases: dict[str, str] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)
    stopped: threading.Event = field(default_factory=threading.Event)
    changed: threading.Condition = field(init=False)

    def __post_init__(self) -> None:
        self.changed = threading.Condition(self.lock)

    def start(self) -> None:
        listing = self.custom.list_namespaced_custom_object(GROUP, VERSION, NAMESPACE, PLURAL)
        version = listing["metadata"]["resourceVersion"]
        threading.Thread(target=self._run, args=(version,), daemon=True,
                         name="bench-watch").start()

    def _run(self, version: str) -> None:
        while not self.stopped.is_set():
            try:
                self._follow(version)
            except Exception:  # the watch broke (or the test bed is going): list again
                if self.stopped.wait(0.2):
                    return
                try:
                    listing = self.custom.list_namespaced_custom_object(GROUP, VERSION,
                                                                        NAMESPACE, PLURAL)
                except Exception:
                    continue
                for obj in listing["items"]:
                    self._seen(obj, time.monotonic())
                version = listing["metadata"]["resourceVersion"]

    def _follow(self, version: str) -> None:
        stream = watch.Watch().stream(
            self.custom.list_namespaced_custom_object, GROUP, VERSION, NAMESPACE, PLURAL,
            resource_version=version, timeout_seconds=3600)
        for event in stream:
            if event["type"] == "ERROR":
                raise RuntimeError(str(event["object"]))
            self._seen(event["object"], time.monotonic())

    def _seen(self, obj: dict[str, Any], now: float) -> None:
        name = obj["metadata"]["name"]
        status = obj.get("status") or {}
        with self.changed:
            self.phases[name] = str(status.get("phase", ""))
            if status.get("phase") == "Ready":
                self.ready.setdefault(name, now)
            generation = status.get("observedGeneration")
            if isinstance(generation, int):
                self.observed[name].setdefault(generation, now)
            self.changed.notify_all()

    def wait(self, done: Callable[[], bool], timeout: float) -> bool:
        with self.changed:
            return self.changed.wait_for(done, timeout)

    def observed_at(self, name: str, generation: int) -> float | None:
        times = [t for g, t in self.observed.get(name, {}).items() if g >= generation]
        return min(times) if times else None


# -- the benchmark --------------------------------------------------------------------------

def database(i: int) -> dict[str, Any]:
    return {"apiVersion": f"{GROUP}/{VERSION}", "kind": "SmartIDDatabase",
            "metadata": {"name": f"db-{i:03d}"},
            "spec": {"mongo": {"uriSecretRef": {"name": "smartid-mongo", "key": "uri"},
                               "database": f"bench_{i:03d}",
                               "workload": {"kind": "StatefulSet", "name": "mongo"}}}}


def at_once(fn: Callable[[int], tuple[str, float, Any]], count: int
            ) -> list[tuple[str, float, Any]]:
    with ThreadPoolExecutor(CLIENT_THREADS) as pool:
        return list(pool.map(fn, range(count)))


def versions(custom: client.CustomObjectsApi, core: client.CoreV1Api) -> dict[str, str]:
    dbs = custom.list_namespaced_custom_object(GROUP, VERSION, NAMESPACE, PLURAL)["items"]
    maps = core.list_namespaced_config_map(NAMESPACE).items
    return {**{f"SmartIDDatabase/{d['metadata']['name']}": d["metadata"]["resourceVersion"]
               for d in dbs},
            **{f"ConfigMap/{m.metadata.name}": m.metadata.resource_version for m in maps
               if any(r.kind == "SmartIDDatabase" for r in m.metadata.owner_references or [])}}


def quiet_window(bed: TestBed, proc: Proc, seconds: float) -> dict[str, Any]:
    """Counters, CPU and RSS over ``seconds`` of doing nothing."""
    load_before = os.getloadavg()
    before, cpu_before, started = Counters.read(bed), proc.cpu_seconds(), time.monotonic()
    rss = [proc.rss_mb()]
    while time.monotonic() - started < seconds:
        time.sleep(min(2.0, seconds - (time.monotonic() - started)))
        rss.append(proc.rss_mb())
    after, cpu_after = Counters.read(bed), proc.cpu_seconds()
    elapsed = time.monotonic() - started
    return {"seconds": elapsed, "requests": delta(after.requests, before.requests),
            "operator": delta(after.operator, before.operator),
            "cpu_s_per_min": (cpu_after - cpu_before) / elapsed * 60,
            "rss_mb": rss, "load": [load_before, os.getloadavg()]}


def rates(window: dict[str, Any], baseline: dict[str, Any], databases: int,
          interval: float) -> dict[str, Any]:
    intervals = window["seconds"] / interval
    scale = baseline["seconds"] and window["seconds"] / baseline["seconds"]
    operator: dict[tuple[str, str], float] = window["operator"]
    by_verb_resource = {f"{verb} {resource}": n for (verb, resource), n in operator.items()}
    reads = sum(n for (verb, _), n in operator.items() if verb in READS)
    writes = {f"{verb} {resource}": n for (verb, resource), n in operator.items()
              if verb in WRITES}
    watches = sum(n for (verb, _), n in operator.items() if verb == "watch")
    all_clients: dict[str, float] = defaultdict(float)
    for (verb, resource, code), n in window["requests"].items():
        all_clients[f"{verb} {resource} {code}"] += n
    for (verb, resource, code), n in baseline["requests"].items():
        all_clients[f"{verb} {resource} {code}"] -= n * scale
    return {
        "window_s": round(window["seconds"], 1),
        "health_intervals": round(intervals, 2),
        "operator": {
            "per_database_per_interval": per_database(by_verb_resource, databases, intervals),
            "reads_per_database_per_interval": round(reads / databases / intervals, 3),
            "writes_in_window": {k: int(v) for k, v in sorted(writes.items())},
            "watch_requests_in_window": int(watches),
            "total_in_window": int(sum(operator.values())),
        },
        "all_clients_minus_baseline": {
            "how": "apiserver_request_total (verb resource code) over the window minus the "
                   "same over the baseline window (no databases); rows of at least one request",
            "in_window": {k: round(v, 1) for k, v in sorted(all_clients.items())
                          if abs(v) >= 1},
            "per_database_per_interval": {
                k: v for k, v in per_database(dict(all_clients), databases, intervals).items()
                if abs(all_clients[k]) >= 1},
        },
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--databases", type=int, default=100)
    parser.add_argument("--rest-intervals", type=float, default=4,
                        help="length of the baseline and rest windows, in health intervals")
    parser.add_argument("--health-interval", type=float, default=None,
                        help="pass --health-interval to the operator (default: its own, 15 s)")
    parser.add_argument("--operator-tree", type=Path, default=REPO,
                        help="checkout whose operator code and manifests to run")
    parser.add_argument("--timeout", type=float, default=600)
    args = parser.parse_args()
    tree: Path = args.operator_tree.resolve()
    n: int = args.databases
    interval = args.health_interval or DEFAULT_HEALTH_INTERVAL
    window = args.rest_intervals * interval
    started = time.monotonic()
    with TestBed.start() as bed:
        api = api_client(bed)
        core, apps, custom = client.CoreV1Api(api), client.AppsV1Api(api), \
            client.CustomObjectsApi(api)
        op_namespace, account, metrics_port = install(bed, tree, args.health_interval)
        flow_schemas(bed, op_namespace, account)
        proc = Proc.find(metrics_port)
        if tree != REPO:
            proc.check_imports_from(tree)

        core.create_namespace({"metadata": {"name": NAMESPACE}})
        uri = f"mongodb://{bed.mongo_address(NAMESPACE, 'mongo-0')}:{MONGO_PORT}/smartid"
        core.create_namespaced_secret(NAMESPACE, {"metadata": {"name": "smartid-mongo"},
                                                  "stringData": {"uri": uri}})
        apps.create_namespaced_stateful_set(NAMESPACE, mongo_statefulset())
        wait_for(lambda: any(
            c.type == "Ready" and c.status == "True"
            for c in core.read_namespaced_pod("mongo-0", NAMESPACE).status.conditions or []),
            timeout=90, what="mongo-0 Ready")
        time.sleep(3)  # the pod events of Mongo's start settle in the operator
        baseline = quiet_window(bed, proc, window)

        watcher = Watcher(custom)
        watcher.start()

        def create(i: int) -> tuple[str, float, Any]:
            body = database(i)
            sent = time.monotonic()
            custom.create_namespaced_custom_object(GROUP, VERSION, NAMESPACE, PLURAL, body)
            return body["metadata"]["name"], sent, None

        create_cpu = CpuSpan()
        create_cpu.start()
        burst_start = time.monotonic()
        created = at_once(create, n)
        burst = time.monotonic() - burst_start
        all_ready = watcher.wait(lambda: len(watcher.ready) >= n, args.timeout)
        create_usage = create_cpu.stop()
        last_ready = max(watcher.ready.values(), default=burst_start)
        to_ready = [watcher.ready[name] - sent for name, sent, _ in created
                    if name in watcher.ready]
        phases_now = dict(watcher.phases)

        def change(i: int) -> tuple[str, float, Any]:
            name = f"db-{i:03d}"
            sent = time.monotonic()
            obj = custom.patch_namespaced_custom_object(
                GROUP, VERSION, NAMESPACE, PLURAL, name, {"spec": {"recovery": {"batchSize": 100}}})
            return name, sent, obj["metadata"]["generation"]

        change_cpu = CpuSpan()
        change_cpu.start()
        changed = at_once(change, n)
        watcher.wait(lambda: all(watcher.observed_at(name, gen) is not None
                                 for name, _, gen in changed), args.timeout)
        change_usage = change_cpu.stop()
        to_observed = [t - sent for name, sent, gen in changed
                       if (t := watcher.observed_at(name, gen)) is not None]

        time.sleep(interval + 5)  # every worker or timer has had a pass since the change
        sample = custom.get_namespaced_custom_object(GROUP, VERSION, NAMESPACE, PLURAL, "db-000")
        rv_before = versions(custom, core)
        rest_cpu = CpuSpan()
        rest_cpu.start()
        rest = quiet_window(bed, proc, window)
        rest_usage = rest_cpu.stop()
        rv_after = versions(custom, core)
        migrations = migration_ms(uri, [f"bench_{i:03d}" for i in range(n)])
        rewritten = sorted(k for k, v in rv_after.items() if rv_before.get(k) != v)
        final_phases = {p: sum(1 for q in watcher.phases.values() if q == p)
                        for p in set(watcher.phases.values())}
        peak = proc.rss_mb("VmHWM")
        threads = int(proc.status()["Threads"])
        mongo_connections = proc.connections(MONGO_PORT)
        pythonpath = proc.environ("PYTHONPATH")
        watcher.stopped.set()

    meta = sample["metadata"]
    result = {
        "benchmark": "many_databases",
        "setup": "local control plane (kube-apiserver v1.34.4), operator pod from "
                 f"{OVERLAY} (one replica), one FerretDB v1.24.2 server (one mongo "
                 "StatefulSet) for all databases, 2 cores shared",
        "layout": f"one namespace ({NAMESPACE}): the mongo StatefulSet, its URI Secret and "
                  f"{n} SmartIDDatabases, each with its own spec.mongo.database",
        "operator": {"tree": str(tree), "commit": git_commit(tree),
                     "pythonpath": pythonpath,
                     "object_left_with": {
                         "finalizers": meta.get("finalizers", []),
                         "annotations": sorted(k for k in meta.get("annotations") or {}
                                               if "kopf" in k or k.startswith("smartid.io/"))}},
        "databases": n,
        "health_interval_s": interval,
        "create_to_ready": {
            **summary(to_ready), "all_ready": all_ready,
            "create_burst_s": round(burst, 3),
            "first_create_to_last_ready_s": round(last_ready - burst_start, 3),
            "phases_when_done_waiting": {p: sum(1 for q in phases_now.values() if q == p)
                                         for p in set(phases_now.values())},
            "how": f"{CLIENT_THREADS} threads create all at once; each from its create "
                   "request sent to the first watch event with phase Ready",
            "cpu": create_usage,
            "migrations_per_database_ms": {
                "p50": round(percentile(migrations, 50)), "p95": round(percentile(migrations, 95)),
                "sum_all_databases": round(sum(migrations)),
                "how": "sum of the three migrations' duration_ms in each database's "
                       "smartid_migrations history, as the operator recorded them"}},
        "spec_change_to_observed_generation": {
            **summary(to_observed),
            "how": "spec.recovery.batchSize patched on all at once; from each patch sent to "
                   "the first watch event with status.observedGeneration >= its new generation",
            "cpu": change_usage},
        "at_rest": {
            **rates(rest, baseline, n, interval),
            "objects_with_new_resource_version": {"count": len(rewritten),
                                                  "of": len(rv_before),
                                                  "examples": rewritten[:5]},
            "phases": final_phases,
            "operator_process": {
                "rss_mb_start": round(rest["rss_mb"][0], 1),
                "rss_mb_end": round(rest["rss_mb"][-1], 1),
                "rss_mb_max": round(max(rest["rss_mb"]), 1),
                "rss_mb_peak_since_start": round(peak, 1),
                "cpu_s_per_min": round(rest["cpu_s_per_min"], 2),
                "threads": threads,
                "connections_to_mongo": mongo_connections},
            "cpu": rest_usage,
            "baseline_before_databases": {
                "cpu_s_per_min": round(baseline["cpu_s_per_min"], 2),
                "rss_mb": round(baseline["rss_mb"][-1], 1),
                "operator_requests": {f"{v} {r}": int(c)
                                      for (v, r), c in baseline["operator"].items()}},
        },
        "load_average_1_5_15": {"baseline": [round(x, 2) for x in baseline["load"][0]],
                                "rest_start": [round(x, 2) for x in rest["load"][0]],
                                "rest_end": [round(x, 2) for x in rest["load"][1]]},
        "wall_s": round(time.monotonic() - started, 1),
    }
    result["targets"] = targets(result)
    print(json.dumps(result, indent=2))
    return 0


def targets(result: dict[str, Any]) -> dict[str, Any]:
    """The issue's targets (for 100 databases), each with the measured value."""
    ready = result["create_to_ready"]
    rest = result["at_rest"]
    writes: dict[str, int] = rest["operator"]["writes_in_window"]
    db_writes = {k: v for k, v in writes.items() if f"{PLURAL}" in k}
    child_writes = {k: v for k, v in writes.items() if "configmaps" in k}
    reads = rest["operator"]["reads_per_database_per_interval"]
    rss = rest["operator_process"]["rss_mb_max"]
    return {
        "all_ready": {"met": bool(ready["all_ready"]), "value": ready.get("count")},
        "p95_create_to_ready_under_3s": {"met": ready.get("p95_s", math.inf) < 3,
                                         "value": ready.get("p95_s")},
        "no_write_to_smartiddatabase_at_rest": {"met": not db_writes, "value": db_writes},
        "no_write_to_unchanged_child_at_rest": {"met": not child_writes,
                                                "value": child_writes},
        "at_most_two_reads_per_database_per_interval": {"met": reads <= 2, "value": reads},
        "rss_under_200_mb": {"met": rss < 200, "value": rss},
    }


if __name__ == "__main__":
    sys.exit(main())
