"""Tier 3 on kind: an outage test through the operator image on the official mongo:7 image,
run by `smartid-operator chaos run` exactly as a user's CI would; its report and picture are
kept for the workflow to upload (reports/chaos/, or $SMARTID_CHAOS_ARTIFACTS)."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pytest
from kubernetes import client

from smartid_operator.chaos.engine import runner
from smartid_operator.chaos.engine.model import REACHABLE_WAIT
from smartid_operator.chaos.engine.scenario import load
from tests.kind.conftest import NAMESPACE, Kubectl
from tests.kind.helpers import run_chaos_or_abort, wait_status

REPO = Path(__file__).resolve().parents[2]
ARTIFACTS = Path(os.environ.get("SMARTID_CHAOS_ARTIFACTS", REPO / "reports" / "chaos"))
SHORT = load("short")
# The recovery agent's first pass; then the runner, given more than it allows itself (each
# cycle's bound, and a minute to start, create the runs and download reports), so its own
# timeout and abort act first; past ours the test aborts the run and waits for Mongo's
# replicas and rollout (a mongod start, as the operator allows for it).
READY_S = 240
RUN_S = SHORT.cycles * runner._bound(SHORT) + 60
RESTORE_S = REACHABLE_WAIT + 60


@pytest.mark.timeout(READY_S + RUN_S + RESTORE_S + 60)
def test_short_scenario_passes_on_mongo_7_and_leaves_report_and_picture(
        api: client.ApiClient, kubectl: Kubectl) -> None:
    custom = client.CustomObjectsApi(api)
    wait_status(custom, "Ready with recovery running", READY_S,
                lambda s: s.get("phase") == "Ready" and any(
                    c["type"] == "Recovered" and c["status"] == "True"
                    for c in s.get("conditions") or []))
    proc = run_chaos_or_abort(
        [sys.executable, "-m", "smartid_operator", "chaos", "run", "short", "--context",
         kubectl.context, "-n", NAMESPACE, "-d", "smartid", "-o", str(ARTIFACTS)],
        cwd=REPO, timeout=RUN_S, kubectl=kubectl, database="smartid",
        workload="statefulset/mongo", restore_timeout=RESTORE_S)
    print(proc.stdout, proc.stderr)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    reports = sorted(ARTIFACTS.glob("smartid-short-*/report.json"))
    assert reports, proc.stdout
    report = json.loads(reports[-1].read_text())
    assert (report["result"], report["lost"], report["duplicated"]) == ("Passed", 0, 0)
    assert report["written"] == report["reindexed"] == 55
    assert (reports[-1].parent / "timeline.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    apps = client.AppsV1Api(api)
    sts = apps.read_namespaced_stateful_set("mongo", NAMESPACE)
    assert sts.spec.replicas == 1
    assert "smartid.io/outage-test" not in (sts.metadata.annotations or {})
    last = custom.get_namespaced_custom_object("smartid.io", "v1alpha1", NAMESPACE,
                                               "smartiddatabases", "smartid")
    assert last["status"]["lastOutageTest"]["result"] == "Passed"
