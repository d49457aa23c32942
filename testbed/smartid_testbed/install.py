"""Install the operator on the test bed from the shipped kustomize manifests, as a user would.

The operator's pod is run by the kubelet stand-in as a local process (its image is the
project's own), so the only changes to the shipped manifests are the ones a shared host
forces: free ports for metrics and liveness, and optionally a faster health interval or a
narrower namespace selection.  RBAC, ServiceAccount and args are otherwise as shipped.
"""

from __future__ import annotations

import json
import urllib.request
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import yaml

from smartid_testbed.cluster import wait_for
from smartid_testbed.kubelet import MONGO_PORT
from smartid_testbed.processes import free_port
from smartid_testbed.testbed import TestBed

REPO = Path(__file__).resolve().parents[2]


def mongo_statefulset(name: str = "mongo", replicas: int = 1) -> dict[str, Any]:
    """A minimal StatefulSet of the official mongo image with a data volume claim."""
    labels = {"app": name}
    return {
        "apiVersion": "apps/v1", "kind": "StatefulSet",
        "metadata": {"name": name},
        "spec": {
            "serviceName": name, "replicas": replicas, "selector": {"matchLabels": labels},
            "template": {"metadata": {"labels": labels}, "spec": {"containers": [{
                "name": "mongo", "image": "mongo:7",
                "ports": [{"containerPort": MONGO_PORT}],
                "volumeMounts": [{"name": "data", "mountPath": "/data/db"}]}]}},
            "volumeClaimTemplates": [{"metadata": {"name": "data"}, "spec": {
                "accessModes": ["ReadWriteOnce"],
                "resources": {"requests": {"storage": "1Gi"}}}}],
        },
    }


def apply_samples(bed: TestBed, namespace: str = "smartid") -> str:
    """``kubectl apply -k deploy/samples``, with the Secret's URI naming the address the
    kubelet stand-in publishes for mongo-0 (no Service endpoints on loopback; on kind the
    sample's own Service DNS name is used). Returns that URI."""
    uri = f"mongodb://{bed.mongo_address(namespace, 'mongo-0')}:{MONGO_PORT}/smartid"
    samples = render(bed, "deploy/samples")
    for doc in samples:
        if doc["kind"] == "Secret":
            doc["stringData"]["uri"] = uri
    apply(bed, samples)
    return uri


def render(bed: TestBed, path: str) -> list[dict[str, Any]]:
    """``kubectl kustomize <path>`` (kustomize as built into the pinned kubectl)."""
    return [doc for doc in yaml.safe_load_all(bed.kubectl("kustomize", str(REPO / path))) if doc]


def apply(bed: TestBed, docs: Iterable[dict[str, Any]], namespace: str | None = None) -> str:
    args = ["apply", "--server-side", "--field-manager=smartid-testbed", "-f", "-"]
    if namespace:
        args[1:1] = ["-n", namespace]
    return bed.kubectl(*args, input=yaml.safe_dump_all(list(docs)))


def operator_args(docs: list[dict[str, Any]], *, namespace_arg: str | None = None,
                  health_interval: float | None = None) -> dict[str, int]:
    """Point the operator Deployment at free ports (and optional test settings) in place."""
    ports = {"metrics": free_port(), "liveness": free_port()}
    for doc in docs:
        if doc["kind"] != "Deployment" or doc["metadata"]["name"] != "smartid-operator":
            continue
        container = doc["spec"]["template"]["spec"]["containers"][0]
        for port in container.get("ports") or []:  # what a PodMonitor scrapes, as served
            if port.get("name") == "metrics":
                port["containerPort"] = ports["metrics"]
        # All interfaces, not only the pod's address: the tests read 127.0.0.1:<port>.
        container.setdefault("env", []).append(
            {"name": "SMARTID_METRICS_ADDRESS", "value": "0.0.0.0"})
        args: list[str] = []
        for arg in container["args"]:
            if arg.startswith("--metrics-port="):
                arg = f"--metrics-port={ports['metrics']}"
            elif arg.startswith("--liveness="):
                arg = f"--liveness=http://127.0.0.1:{ports['liveness']}/healthz"
            elif namespace_arg and (arg.startswith("--namespace") or arg == "--all-namespaces"):
                arg = namespace_arg
            args.append(arg)
        if health_interval is not None:
            args.append(f"--health-interval={health_interval}")
        container["args"] = args
    return ports


def install_operator(bed: TestBed, overlay: str = "deploy", *,
                     namespace_arg: str | None = None,
                     health_interval: float | None = None) -> tuple[str, dict[str, int]]:
    """Apply an overlay, CRDs first, and wait until the operator answers its liveness endpoint.

    Returns the operator's namespace and its ports.
    """
    docs = render(bed, overlay)
    ports = operator_args(docs, namespace_arg=namespace_arg, health_interval=health_interval)
    # The CRDs go first and must be served before the operator starts: Kopf reads the API's
    # resource list once at start-up and would never watch a kind that appeared later.
    crds = [d for d in docs if d["kind"] == "CustomResourceDefinition"]
    if crds:
        apply(bed, crds)
        wait_established(bed, [d["metadata"]["name"] for d in crds])
    apply(bed, [d for d in docs if d["kind"] != "CustomResourceDefinition"])
    namespace = next(d["metadata"]["namespace"] for d in docs if d["kind"] == "Deployment")
    wait_for(lambda: _live(ports["liveness"]), timeout=60, what="the operator's liveness probe")
    return namespace, ports


def _live(port: int) -> bool:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2) as resp:
        return bool(resp.status == 200)


def wait_established(bed: TestBed, names: list[str], timeout: float = 60) -> None:
    """Until every named CRD is served (``kubectl wait`` errors while conditions are unset)."""
    wait_for(lambda: all(_crd_established(bed, name) for name in names), timeout=timeout,
             what=f"CRD {', '.join(names)} to be established")


def _crd_established(bed: TestBed, name: str) -> bool:
    crd = json.loads(bed.kubectl("get", "crd", name, "-o", "json"))
    return any(c["type"] == "Established" and c["status"] == "True"
               for c in crd.get("status", {}).get("conditions", []))
