"""The README's main job on the embedded default: the local control plane, the operator
installed with `deploy/` (namespaced, its own ServiceAccount and Role), the samples applied
(Mongo, the recordings volume, a SmartIDDatabase with recovery and outage tests enabled),
then one real outage test run through the operator with `smartid-operator chaos run`: Mongo
scaled to 0, recordings written while it is down, Mongo scaled back, every write proven
reindexed; the result table, the report and the timeline picture. A real Prometheus scrapes
the operator and the recovery agent with the alerting rules loaded; the demo prints the
Mongo-unreachable alert going pending, firing and resolved, and draws the outage as Prometheus
recorded it."""

from __future__ import annotations

import json
import subprocess
import sys
import time

from smartid_testbed import demo_prometheus
from smartid_testbed.cluster import wait_for
from smartid_testbed.install import REPO, apply_samples, install_operator
from smartid_testbed.testbed import TestBed

NS = "smartid"
SCENARIO = REPO / "operator" / "smartid_operator" / "chaos" / "scenarios" / "demo.yaml"
REPORTS = REPO / "reports" / "chaos"


def _say(message: str) -> None:
    print(f"[demo] {message}", flush=True)


def _status(bed: TestBed) -> dict[str, object]:
    obj = json.loads(bed.kubectl("get", "sidb", "smartid", "-n", NS, "-o", "json"))
    status: dict[str, object] = obj.get("status") or {}
    return status


def _wait_phase(bed: TestBed, phase: str, timeout: float = 90) -> float:
    started = time.monotonic()
    wait_for(lambda: _status(bed).get("phase") == phase, timeout=timeout,
             what=f"SmartIDDatabase phase {phase}", interval=0.2)
    return time.monotonic() - started


def run_demo(bed: TestBed) -> None:
    _say("installing the operator: kubectl apply -k deploy/")
    operator_namespace, _ = install_operator(bed, "deploy", health_interval=3)
    _say("applying the samples: kubectl apply -k deploy/samples (mongo:7, the recordings "
         "volume, a SmartIDDatabase with recovery and outage tests enabled)")
    apply_samples(bed, NS)
    took = _wait_phase(bed, "Ready")
    _say(f"SmartIDDatabase Ready {took:.1f} s after the samples were applied "
         f"(schema migrated, recovery agent running)")
    print(bed.kubectl("get", "sidb,statefulset,deployment,pods,pvc", "-n", NS), flush=True)
    prom = demo_prometheus.start(bed, operator_namespace)
    _say(f"Prometheus {prom.url} (its API; alerts: {prom.url}/api/v1/alerts) scrapes the "
         f"operator and the recovery agent, with deploy/monitoring/smartid-alerts.rules.yaml "
         f"loaded (SmartIDMongoUnreachable's `for` shortened to "
         f"{demo_prometheus.THRESHOLDS['mongoUnreachableFor']} for the demo)")
    try:
        prom.wait_for_targets(timeout=30)
    except TimeoutError as exc:  # e.g. another process on 0.0.0.0:8080 (the pod's PortTaken)
        _say(f"WARNING: not every target is scraped, the picture will miss them: {exc}")
    time.sleep(8)  # some samples from before the outage, for the picture

    _say(f"outage test through the operator: smartid-operator chaos run "
         f"{SCENARIO.relative_to(REPO)} (a SmartIDOutageTest: scale StatefulSet/mongo to 0, "
         f"write 50 recordings and 1,000 segments while it is down, scale it back, prove "
         f"each one reindexed)")
    started = time.time() - 8
    with demo_prometheus.AlertPrinter(prom, NS, _say) as printer:
        code = subprocess.call(
            [sys.executable, "-m", "smartid_operator", "chaos", "run", str(SCENARIO),
             "--kubeconfig", str(bed.kubeconfig), "-n", NS, "-d", "smartid", "-o",
             str(REPORTS)], timeout=600)
        # The alert resolves once the operator's next ping answers and Prometheus evaluates.
        wait_for(lambda: not prom.alerts("SmartIDMongoUnreachable", namespace=NS),
                 timeout=30, what="the Mongo alert resolved", interval=0.5)
        time.sleep(6)  # the printer's last poll; the reindex rate's last samples
    lifecycle = [state for _, name, state in printer.changes
                 if name == "SmartIDMongoUnreachable"]
    _say(f"SmartIDMongoUnreachable during the outage test: {' -> '.join(lifecycle) or 'none'}")
    runs = sorted((p for p in REPORTS.glob("*/report.json")), key=lambda p: p.stat().st_mtime)
    folder = runs[-1].parent if runs else REPORTS
    png = demo_prometheus.picture(prom, NS, started, time.time(), folder / "prometheus.png")
    _say(f"the outage as Prometheus recorded it: {png}")
    _say("the run as kubectl shows it:")
    print(bed.kubectl("get", "sidbtest,sidb", "-n", NS), flush=True)
    print(bed.kubectl("get", "events", "-n", NS, "--field-selector",
                      "involvedObject.kind=SmartIDOutageTest"), flush=True)
    _say("the outage test passed" if code == 0 else f"the outage test did not pass (exit {code})")
    _say(f"report and picture: {REPORTS}/<run>/report.json and timeline.png (also in the "
         f"ConfigMap <run>-report: kubectl get cm -n {NS} -l smartid.io/outage-test-run)")
