"""The kind outage test's guard (``run_chaos_or_abort``) against a stand-in runner that outlives
its limit and a stand-in kubectl playing the API server and the operator: past the limit the
runner is killed, the database's unfinished run is aborted (no other run), and the test waits
until the operator has ended it and Mongo's StatefulSet is back before it fails. Runs
everywhere; no Docker needed."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from smartid_operator.chaos import ANNOTATION
from tests.kind.conftest import NAMESPACE, Kubectl
from tests.kind.helpers import run_chaos_or_abort

CONTEXT = "kind-smartid-e2e"
# The operator's part, played by kubectl: an aborted run ends (and Mongo's replicas come
# back) only after it has been looked at POLLS times, so the caller must wait to see it.
POLLS = 3
KUBECTL = r"""#!{python}
import json, os, sys
args = sys.argv[1:]
with open(os.environ["LOG"], "a") as log:
    log.write("kubectl " + " ".join(args) + "\n")
assert args[:4] == ["--context", "{context}", "-n", "{namespace}"], args
args = args[4:]
path = os.environ["STATE"]
with open(path) as f:
    state = json.load(f)
runs, sts = state["runs"], state["sts"]
if args[:2] == ["get", "smartidoutagetests"] and args[2:] == ["-o", "json"]:
    print(json.dumps({{"items": [
        {{"metadata": {{"name": name}}, "spec": {{"database": run["database"]}},
          "status": {{"phase": run["phase"]}} if run["phase"] else {{}}}}
        for name, run in runs.items()]}}))
elif args[:2] == ["patch", "smartidoutagetests"]:
    assert args[3:] == ["--type=merge", "-p", '{{"spec": {{"abort": true}}}}'], args
    runs[args[2]]["abort"] = True
elif args[:2] == ["get", "smartidoutagetests"]:
    run = runs[args[2]]
    if run.get("abort"):
        run["polls"] = run.get("polls", 0) + 1
        if run["polls"] >= {polls}:
            run["phase"] = "Aborted"
            sts["replicas"], sts["annotations"] = 1, {{}}
    print(run["phase"], end="")
elif args == ["get", "statefulset/mongo", "-o", "json"]:
    print(json.dumps({{"metadata": {{"annotations": sts["annotations"]}},
                       "spec": {{"replicas": sts["replicas"]}}}}))
elif args[:3] == ["rollout", "status", "statefulset/mongo"]:
    if sts["replicas"] < 1:
        sys.exit("Waiting for 1 pods to be ready...")
else:
    sys.exit(f"stand-in kubectl: unexpected {{args}}")
with open(path, "w") as f:
    json.dump(state, f)
"""
# The runner's part: it creates its run (an outage under way: Mongo at 0), then hangs.
RUNNER = """
import json, os, sys, time
annotation, sleep = sys.argv[1], float(sys.argv[2])
with open(os.environ["STATE"]) as f:
    state = json.load(f)
state["runs"]["smartid-short-1206-c1"] = {"database": "smartid", "phase": "Running"}
state["sts"] = {"replicas": 0, "annotations": {annotation: "{}"}}
with open(os.environ["STATE"], "w") as f:
    json.dump(state, f)
print("run 1/1: smartid/smartid-short-1206-c1", flush=True)
time.sleep(sleep)
"""


@pytest.fixture
def standin(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    kubectl = bin_dir / "kubectl"
    kubectl.write_text(KUBECTL.format(python=sys.executable, context=CONTEXT,
                                      namespace=NAMESPACE, polls=POLLS))
    kubectl.chmod(0o755)
    state = tmp_path / "state.json"
    # Runs of before: one finished, one of another database (neither may be touched).
    state.write_text(json.dumps({
        "runs": {"smartid-short-1205-c1": {"database": "smartid", "phase": "Passed"},
                 "other-short-1206-c1": {"database": "other", "phase": "Running"}},
        "sts": {"replicas": 1, "annotations": {}}}))
    monkeypatch.setenv("PATH", f"{bin_dir}:{os.environ['PATH']}")
    monkeypatch.setenv("STATE", str(state))
    monkeypatch.setenv("LOG", str(tmp_path / "log"))
    (tmp_path / "log").write_text("")
    return tmp_path


def guard(folder: Path, sleep: float, timeout: float) -> subprocess.CompletedProcess[str]:
    return run_chaos_or_abort(
        [sys.executable, "-c", RUNNER, ANNOTATION, str(sleep)], cwd=folder,
        timeout=timeout, kubectl=Kubectl(CONTEXT), database="smartid",
        workload="statefulset/mongo", restore_timeout=30)


def test_a_runner_past_its_limit_is_killed_its_run_aborted_and_mongo_waited_for(
        standin: Path) -> None:
    started = time.monotonic()
    with pytest.raises(AssertionError, match=r"did not finish in 2 s; aborted "
                                             r"\['smartid-short-1206-c1'\]") as failure:
        guard(standin, sleep=600, timeout=2)
    assert time.monotonic() - started < 60  # killed, not waited for
    assert "run 1/1: smartid/smartid-short-1206-c1" in str(failure.value)  # its output kept
    assert "statefulset/mongo is back" in str(failure.value)

    calls = (standin / "log").read_text().splitlines()
    patches = [c for c in calls if " patch " in c]
    assert patches == [f"kubectl --context {CONTEXT} -n {NAMESPACE} patch smartidoutagetests "
                       "smartid-short-1206-c1 --type=merge -p {\"spec\": {\"abort\": true}}"]
    state = json.loads((standin / "state.json").read_text())
    # Waited until the operator ended the run and Mongo was back, then for its rollout.
    assert state["runs"]["smartid-short-1206-c1"] == {
        "database": "smartid", "phase": "Aborted", "abort": True, "polls": POLLS}
    assert state["sts"] == {"replicas": 1, "annotations": {}}
    assert calls[-1].startswith(f"kubectl --context {CONTEXT} -n {NAMESPACE} rollout status "
                                "statefulset/mongo --timeout=")
    assert calls.index(patches[0]) < len(calls) - 1 - POLLS


def test_a_runner_within_its_limit_is_left_alone(standin: Path) -> None:
    proc = guard(standin, sleep=0, timeout=60)
    assert proc.returncode == 0 and "run 1/1" in proc.stdout
    assert (standin / "log").read_text() == ""  # no kubectl call at all
