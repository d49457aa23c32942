"""The recovery agent: one Deployment per SmartIDDatabase with recovery enabled.

Why a long-running agent and not a Job started when Mongo returns: the writes of an outage
must be indexed within seconds of Mongo's return. The agent is already running beside the
volume, probes Mongo every quarter second while it is down, and starts its pass the moment
Mongo answers; a Job would first wait for a pod to be scheduled and its interpreter to start.
It needs no Kubernetes API access at all: it reads the volume, writes Mongo, and reports into
Mongo, where the operator reads its report.
"""

from __future__ import annotations

from typing import Any

from smartid_operator.manifests import child_name, labels
from smartid_operator.manifests.pods import Container, operator_pod
from smartid_operator.spec import DatabaseSpec

COMPONENT = "recovery"
STORAGE = "/recordings"
METRICS_PORT = 8080


def agent_name(instance: str) -> str:
    return child_name(instance, COMPONENT)


def recovery_agent(instance: str, namespace: str, spec: DatabaseSpec,
                   image: str) -> dict[str, Any]:
    assert spec.recovery.claim is not None  # the CRD requires it when recovery is enabled
    selector = labels(instance, COMPONENT)
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": agent_name(instance), "namespace": namespace, "labels": selector},
        "spec": {
            # One agent; Recreate so a rollout never runs two (two would still be safe:
            # indexing is insert-if-absent by id, and the checkpoint only moves forward).
            "replicas": 1,
            "strategy": {"type": "Recreate"},
            "selector": {"matchLabels": selector},
            "template": {
                "metadata": {"labels": selector, "annotations": {
                    "prometheus.io/scrape": "true", "prometheus.io/port": str(METRICS_PORT)}},
                "spec": operator_pod(instance, spec, image, Container(
                    name="agent", claim=spec.recovery.claim, mount_path=STORAGE,
                    args=["recovery", "agent", f"--storage={STORAGE}",
                          f"--metrics-port={METRICS_PORT}"],
                    ports=[{"name": "metrics", "containerPort": METRICS_PORT}],
                    requests={"cpu": "20m", "memory": "64Mi"})),
            },
        },
    }


def with_settings_hash(deployment: dict[str, Any], settings_digest: str) -> dict[str, Any]:
    """Roll the agent when its settings change (envFrom is read at start only)."""
    template = deployment["spec"]["template"]["metadata"]
    template["annotations"]["smartid.io/settings-hash"] = settings_digest
    return deployment
