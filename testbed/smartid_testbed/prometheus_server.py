"""A real Prometheus on the test bed: the alerting rules loaded, the operator's and the
recovery agents' pods scraped, its HTTP API on a free loopback port.

On a cluster the Prometheus Operator turns the PodMonitors of ``deploy/components/monitoring``
into Kubernetes service discovery. This Prometheus is built without remote discoveries, so the
test bed plays that part: it reads the same PodMonitor objects, lists pods through the API
server every half second, and writes what they select (Running, a pod IP, the named port) with
the PodMonitor's relabelings applied as ``file_sd`` target files, which Prometheus rereads.
"""

from __future__ import annotations

import json
import logging
import re
import threading
import time
import urllib.parse
import urllib.request
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml
from kubernetes import client, config

from smartid_testbed import binaries
from smartid_testbed.cluster import wait_for
from smartid_testbed.processes import Child, free_port

log = logging.getLogger(__name__)

Obj = dict[str, Any]


def _meta_label(label: str) -> str:
    return "__meta_kubernetes_pod_label_" + re.sub(r"[^a-zA-Z0-9_]", "_", label)


def pod_targets(monitor: Mapping[str, Any], pods: Sequence[Obj],
                namespace: str) -> list[Obj]:
    """The ``file_sd`` target groups a PodMonitor selects among ``pods`` (pure). ``namespace``:
    where the PodMonitor lives (its pods' namespace unless ``namespaceSelector`` says more)."""
    spec = monitor["spec"]
    wanted = spec["selector"].get("matchLabels") or {}
    names = spec.get("namespaceSelector") or {}
    endpoint = spec["podMetricsEndpoints"][0]
    groups = []
    for pod in pods:
        meta, status = pod["metadata"], pod.get("status") or {}
        labels = meta.get("labels") or {}
        if not (names.get("any") or meta["namespace"] in names.get("matchNames", [namespace])):
            continue
        if any(labels.get(k) != v for k, v in wanted.items()):
            continue
        if status.get("phase") != "Running" or not status.get("podIP"):
            continue
        for container in pod["spec"]["containers"]:
            port = next((p["containerPort"] for p in container.get("ports") or []
                         if p.get("name") == endpoint["port"]), None)
            if port is None:
                continue
            meta_labels = {_meta_label(k): v for k, v in labels.items()}
            target = {"namespace": meta["namespace"], "pod": meta["name"],
                      "container": container["name"], "endpoint": endpoint["port"]}
            for rule in endpoint.get("relabelings") or []:
                sources = [meta_labels.get(s, "") for s in rule.get("sourceLabels") or []]
                target[rule["targetLabel"]] = rule.get("replacement", ";".join(sources))
            groups.append({"targets": [f"{status['podIP']}:{port}"], "labels": target})
    return groups


class PrometheusServer:
    """``with PrometheusServer(kubeconfig, workdir, rules, monitors) as prom: prom.query(...)``."""

    def __init__(self, kubeconfig: Path, workdir: Path, rules: Mapping[str, Any],
                 monitors: Sequence[Mapping[str, Any]], *, namespace: str = "smartid-system",
                 interval: float = 1.0) -> None:
        self.kubeconfig = kubeconfig
        self.workdir = workdir
        self.rules = rules
        self.monitors = list(monitors)
        self.namespace = namespace
        self.interval = interval
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self._child: Child | None = None
        self._api: client.CoreV1Api | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._discover, daemon=True,
                                        name="prometheus-discovery")

    def _config(self) -> Obj:
        every = f"{self.interval:g}s"
        return {
            "global": {"scrape_interval": every, "scrape_timeout": every,
                       "evaluation_interval": every},
            "rule_files": [str(self.workdir / "rules.yaml")],
            "scrape_configs": [{
                "job_name": m["metadata"]["name"],
                "honor_labels": bool(m["spec"]["podMetricsEndpoints"][0].get("honorLabels")),
                "file_sd_configs": [{"files": [str(self._targets_file(m))],
                                     "refresh_interval": every}],
            } for m in self.monitors],
        }

    def _targets_file(self, monitor: Mapping[str, Any]) -> Path:
        return self.workdir / f"targets-{monitor['metadata']['name']}.json"

    def start(self) -> PrometheusServer:
        self.workdir.mkdir(parents=True, exist_ok=True)
        (self.workdir / "rules.yaml").write_text(yaml.safe_dump(dict(self.rules)))
        (self.workdir / "prometheus.yml").write_text(yaml.safe_dump(self._config()))
        self._write_targets(self._pods())
        self._thread.start()
        self._child = Child("prometheus", [
            str(binaries.find("prometheus")),
            f"--config.file={self.workdir / 'prometheus.yml'}",
            f"--storage.tsdb.path={self.workdir / 'data'}",
            f"--web.listen-address=127.0.0.1:{self.port}",
            "--log.level=warn"], self.workdir / "prometheus.log")
        wait_for(self._ready, timeout=60, what="Prometheus ready")
        return self

    def _ready(self) -> bool:
        if self._child is not None and not self._child.alive():
            raise RuntimeError(f"Prometheus exited:\n{self._child.tail()}")
        try:
            with urllib.request.urlopen(f"{self.url}/-/ready", timeout=2) as resp:
                return bool(resp.status == 200)
        except OSError:
            return False

    def stop(self) -> None:
        self._stop.set()
        if self._child is not None:
            self._child.stop()
        if self._thread.is_alive():
            self._thread.join(timeout=10)

    def wait_for_targets(self, timeout: float = 60) -> None:
        """Until every PodMonitor has a target and each is up (scraped once at least)."""
        jobs = {m["metadata"]["name"] for m in self.monitors}

        def all_up() -> bool:
            active = self.api("targets", state="active")["activeTargets"]
            if {t["scrapePool"] for t in active} >= jobs and \
                    all(t["health"] == "up" for t in active):
                return True
            raise AssertionError("; ".join(f"{t['scrapePool']} {t['scrapeUrl']}: "
                                           f"{t['health']} {t['lastError']}" for t in active)
                                 or "no targets")

        wait_for(all_up, timeout=timeout, what="every PodMonitor's targets up", interval=0.5)

    def __enter__(self) -> PrometheusServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- discovery ---------------------------------------------------------------------------------

    def _pods(self) -> list[Obj]:
        if self._api is None:
            api_client = config.new_client_from_config(config_file=str(self.kubeconfig))
            api_client.configuration.retries = False  # the next poll is the retry
            self._api = client.CoreV1Api(api_client)
        listed = self._api.list_pod_for_all_namespaces(_preload_content=False, _request_timeout=5)
        pods: list[Obj] = json.loads(listed.data)["items"]
        return pods

    def _write_targets(self, pods: list[Obj]) -> None:
        for monitor in self.monitors:
            path = self._targets_file(monitor)
            text = json.dumps(pod_targets(monitor, pods, self.namespace), indent=1)
            if not path.exists() or path.read_text() != text:
                path.with_suffix(".tmp").write_text(text)
                path.with_suffix(".tmp").rename(path)  # never a half-written file

    def _discover(self) -> None:
        while not self._stop.wait(self.interval / 2):
            try:
                self._write_targets(self._pods())
            except Exception:  # the API server may be stopping with the test bed
                log.debug("pod discovery failed", exc_info=True)

    # -- the HTTP API ------------------------------------------------------------------------------

    def api(self, path: str, **params: str | float) -> Any:
        query = urllib.parse.urlencode(params)
        with urllib.request.urlopen(f"{self.url}/api/v1/{path}?{query}", timeout=10) as resp:
            body = json.load(resp)
        if body.get("status") != "success":
            raise RuntimeError(f"Prometheus {path}: {body}")
        return body["data"]

    def query(self, expr: str, at: float | None = None) -> list[Obj]:
        params: dict[str, str | float] = {"query": expr}
        if at is not None:
            params["time"] = at
        result: list[Obj] = self.api("query", **params)["result"]
        return result

    def query_range(self, expr: str, start: float, end: float, step: float = 1.0) -> list[Obj]:
        result: list[Obj] = self.api("query_range", query=expr, start=start, end=end,
                                     step=step)["result"]
        return result

    def alerts(self, alertname: str | None = None, state: str | None = None,
               **labels: str) -> list[Obj]:
        """Prometheus' active alerts (pending or firing), optionally by name, state, labels."""
        found: list[Obj] = self.api("alerts")["alerts"]
        return [a for a in found if alertname in (None, a["labels"].get("alertname"))
                and (state is None or a["state"] == state)
                and all(a["labels"].get(k) == v for k, v in labels.items())]

    def targets_up(self, job: str) -> list[Obj]:
        return [t for t in self.api("targets", state="active")["activeTargets"]
                if t["labels"].get("job") == job and t["health"] == "up"]

    def alert_history(self, alertname: str, since: float,
                      **labels: str) -> list[tuple[float, str]]:
        """(timestamp, pending|firing) of every ``ALERTS`` sample of the alert since ``since``,
        in time order: what Prometheus itself recorded of the alert's life."""
        matchers = ", ".join([f'alertname="{alertname}"',
                              *(f'{k}="{v}"' for k, v in labels.items())])
        window = max(1, int(time.time() - since) + 1)
        samples = [(float(ts), series["metric"]["alertstate"])
                   for series in self.query(f"ALERTS{{{matchers}}}[{window}s]")
                   for ts, _ in series["values"]]
        return sorted(samples)
