"""Waits shared by the kind tests; each says what it waited for when it gives up."""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path
from typing import Any, cast

from kubernetes import client

from smartid_operator.chaos import ANNOTATION
from smartid_operator.chaos.engine.model import TERMINAL
from tests.kind.conftest import NAMESPACE, Kubectl

GROUP, VERSION, PLURAL = "smartid.io", "v1alpha1", "smartiddatabases"


def get_database(custom: client.CustomObjectsApi, name: str = "smartid") -> dict[str, Any]:
    return cast(dict[str, Any],
                custom.get_namespaced_custom_object(GROUP, VERSION, NAMESPACE, PLURAL, name))


def wait_status(custom: client.CustomObjectsApi, what: str, timeout: float,
                done: Any) -> dict[str, Any]:
    """Poll the sample SmartIDDatabase until ``done(status)`` holds."""
    deadline = time.monotonic() + timeout
    status: dict[str, Any] = {}
    while time.monotonic() < deadline:
        status = get_database(custom).get("status") or {}
        if done(status):
            return status
        time.sleep(2)
    raise AssertionError(f"no {what} after {timeout} s: {status}")


def wait_phase(custom: client.CustomObjectsApi, phase: str, timeout: float) -> dict[str, Any]:
    return wait_status(custom, f"phase {phase}", timeout, lambda s: s.get("phase") == phase)


def run_chaos_or_abort(command: list[str], *, cwd: Path, timeout: float, kubectl: Kubectl,
                       database: str, workload: str, restore_timeout: float
                       ) -> subprocess.CompletedProcess[str]:
    """``smartid-operator chaos run`` under ``timeout`` (above the runner's own limit). Past
    it the runner is killed, so its own abort path never runs: do what it would, set
    ``spec.abort`` on the database's unfinished runs, then wait until the operator has ended
    them and ``workload`` (kind/name) is back and rolled out, so that Mongo is not left at 0
    replicas for the tests after this one; then fail."""
    try:
        return subprocess.run(command, cwd=cwd, capture_output=True, text=True,
                              timeout=timeout)
    except subprocess.TimeoutExpired as exc:
        out = exc.stdout.decode() if isinstance(exc.stdout, bytes) else exc.stdout or ""
    runs = json.loads(kubectl("-n", NAMESPACE, "get", "smartidoutagetests", "-o", "json"))
    unfinished = [r["metadata"]["name"] for r in runs["items"]
                  if r["spec"].get("database") == database
                  and (r.get("status") or {}).get("phase") not in TERMINAL]
    for name in unfinished:
        kubectl("-n", NAMESPACE, "patch", "smartidoutagetests", name, "--type=merge",
                "-p", '{"spec": {"abort": true}}')
    deadline = time.monotonic() + restore_timeout
    ended: dict[str, str] = {}
    restored = False
    while time.monotonic() < deadline:
        for name in unfinished:
            ended[name] = kubectl("-n", NAMESPACE, "get", "smartidoutagetests", name,
                                  "-o", "jsonpath={.status.phase}")
        held = json.loads(kubectl("-n", NAMESPACE, "get", workload, "-o", "json"))
        restored = (held["spec"].get("replicas", 1) > 0 and ANNOTATION not in
                    (held["metadata"].get("annotations") or {}))
        if restored and all(phase in TERMINAL for phase in ended.values()):
            break
        time.sleep(2)
    else:
        raise AssertionError(f"chaos run did not finish in {timeout:.0f} s; aborted "
                             f"{unfinished}, but after {restore_timeout:.0f} s the runs are "
                             f"{ended}, {workload} {'' if restored else 'not '}restored"
                             f"\n{out}")
    left = max(deadline - time.monotonic(), 1.0)
    kubectl("-n", NAMESPACE, "rollout", "status", workload, f"--timeout={left:.0f}s",
            timeout=left + 30)
    raise AssertionError(f"chaos run did not finish in {timeout:.0f} s; aborted {unfinished} "
                         f"({ended}) and {workload} is back\n{out}")
