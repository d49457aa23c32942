"""The README's main job on the embedded default: the local control plane, the operator
installed with `deploy/` (namespaced, its own ServiceAccount and Role), the samples applied,
then a Mongo outage watched from the SmartIDDatabase's status."""

from __future__ import annotations

import json
import time

from smartid_testbed.cluster import wait_for
from smartid_testbed.install import apply_samples, install_operator
from smartid_testbed.testbed import TestBed

NS = "smartid"


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
    install_operator(bed, "deploy", health_interval=3)
    _say("applying the samples: kubectl apply -k deploy/samples (mongo:7 + SmartIDDatabase)")
    apply_samples(bed, NS)
    took = _wait_phase(bed, "Ready")
    _say(f"SmartIDDatabase Ready {took:.1f} s after the samples were applied")
    print(bed.kubectl("get", "sidb,statefulset,pods,configmap", "-n", NS), flush=True)

    _say("outage: scaling StatefulSet/mongo to 0")
    bed.kubectl("scale", "statefulset/mongo", "-n", NS, "--replicas=0")
    took = _wait_phase(bed, "Degraded", timeout=60)
    _say(f"phase Degraded after {took:.1f} s: "
         f"{json.dumps(_status(bed).get('conditions'), indent=None)[:300]}")
    _say("recovery: scaling StatefulSet/mongo back to 1")
    bed.kubectl("scale", "statefulset/mongo", "-n", NS, "--replicas=1")
    took = _wait_phase(bed, "Ready", timeout=90)
    _say(f"phase Ready again after {took:.1f} s")
    print(bed.kubectl("get", "sidb", "-n", NS), flush=True)
    print(bed.kubectl("get", "events", "-n", NS, "--field-selector",
                      "involvedObject.kind=SmartIDDatabase"), flush=True)
