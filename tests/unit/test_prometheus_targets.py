"""The test bed's stand-in for the Prometheus Operator's pod discovery: what a PodMonitor
selects among pods, with its relabelings applied (pure)."""

from __future__ import annotations

from typing import Any

from smartid_operator.monitoring import render
from smartid_testbed.prometheus_server import pod_targets

OPERATOR, AGENTS = render.pod_monitors()


def pod(namespace: str, name: str, labels: dict[str, str], *, ip: str | None = "127.5.5.2",
        phase: str = "Running", port: int = 8080) -> dict[str, Any]:
    return {"metadata": {"namespace": namespace, "name": name, "labels": labels},
            "spec": {"containers": [{"name": "c", "ports": [
                {"name": "metrics", "containerPort": port}, {"name": "other",
                                                             "containerPort": 9}]}]},
            "status": {"phase": phase, **({"podIP": ip} if ip else {})}}


AGENT = {"app.kubernetes.io/name": "smartid", "app.kubernetes.io/component": "recovery",
         "app.kubernetes.io/instance": "orders"}


def test_agents_in_any_namespace_named_after_their_database() -> None:
    pods = [pod("shop", "orders-recovery-x", AGENT),
            pod("shop", "orders-backup-y", {**AGENT, "app.kubernetes.io/component": "backup"}),
            pod("other", "orders-recovery-z", AGENT, phase="Pending"),
            pod("other", "orders-recovery-w", AGENT, ip=None)]
    assert pod_targets(AGENTS, pods, "smartid-system") == [{
        "targets": ["127.5.5.2:8080"],
        "labels": {"namespace": "shop", "pod": "orders-recovery-x", "container": "c",
                   "endpoint": "metrics", "name": "orders", "job": "smartid-recovery-agent"}}]


def test_the_operator_only_in_the_monitors_namespace() -> None:
    labels = {"app.kubernetes.io/name": "smartid-operator"}
    pods = [pod("smartid-system", "op", labels, port=4321), pod("smartid", "op2", labels)]
    groups = pod_targets(OPERATOR, pods, "smartid-system")
    assert [g["targets"] for g in groups] == [["127.5.5.2:4321"]]
    assert groups[0]["labels"]["job"] == "smartid-operator"
