"""Benchmark: time from `create SmartIDDatabase` to phase Ready, and from a spec change to
observedGeneration advancing, on the local control plane with the operator deployed from the
shipped cluster-wide overlay (its pod run by the kubelet stand-in). Prints JSON.

    python bench/apply_to_ready.py [--rounds 7]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from collections.abc import Callable
from typing import Any

from kubernetes import client, config

from smartid_testbed.cluster import wait_for
from smartid_testbed.install import install_operator, mongo_statefulset
from smartid_testbed.kubelet import MONGO_PORT
from smartid_testbed.testbed import TestBed

GROUP, VERSION, PLURAL = "smartid.io", "v1alpha1", "smartiddatabases"


def poll(check: Callable[[], bool], timeout: float = 60) -> float:
    """Seconds until ``check`` holds, polled every 20 ms."""
    started = time.monotonic()
    while not check():
        if time.monotonic() - started > timeout:
            raise TimeoutError("benchmark round timed out")
        time.sleep(0.02)
    return time.monotonic() - started


def summary(samples: list[float]) -> dict[str, Any]:
    return {"median_s": round(statistics.median(samples), 3), "min_s": round(min(samples), 3),
            "max_s": round(max(samples), 3), "samples_s": [round(s, 3) for s in samples]}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=7)
    args = parser.parse_args()
    with TestBed.start() as bed:
        install_operator(bed, "deploy/overlays/cluster-wide")
        api = config.new_client_from_config(config_file=str(bed.kubeconfig))
        core, apps, custom = client.CoreV1Api(api), client.AppsV1Api(api), \
            client.CustomObjectsApi(api)
        to_ready: list[float] = []
        to_observed: list[float] = []
        for i in range(args.rounds):
            ns = f"bench-{i}"
            core.create_namespace({"metadata": {"name": ns}})
            uri = f"mongodb://{bed.mongo_address(ns, 'mongo-0')}:{MONGO_PORT}/smartid"
            core.create_namespaced_secret(ns, {"metadata": {"name": "smartid-mongo"},
                                               "stringData": {"uri": uri}})
            apps.create_namespaced_stateful_set(ns, mongo_statefulset())
            wait_for(lambda ns=ns: any(
                c.type == "Ready" and c.status == "True"
                for c in core.read_namespaced_pod("mongo-0", ns).status.conditions or []),
                timeout=60, what="mongo-0 Ready")

            def db(ns: str = ns) -> dict[str, Any]:
                obj: dict[str, Any] = custom.get_namespaced_custom_object(
                    GROUP, VERSION, ns, PLURAL, "smartid")
                return obj

            custom.create_namespaced_custom_object(GROUP, VERSION, ns, PLURAL, {
                "apiVersion": f"{GROUP}/{VERSION}", "kind": "SmartIDDatabase",
                "metadata": {"name": "smartid"},
                "spec": {"mongo": {"uriSecretRef": {"name": "smartid-mongo"},
                                   "workload": {"name": "mongo"}}}})
            to_ready.append(poll(lambda: (db().get("status") or {}).get("phase") == "Ready"))
            custom.patch_namespaced_custom_object(GROUP, VERSION, ns, PLURAL, "smartid",
                                                  {"spec": {"recovery": {"batchSize": 100}}})
            to_observed.append(poll(lambda: db()["status"].get("observedGeneration") == 2))
    print(json.dumps({
        "benchmark": "apply_to_ready",
        "setup": "local control plane (kube-apiserver v1.34.4), operator pod from "
                 "deploy/overlays/cluster-wide, FerretDB per mongo pod, 2 cores",
        "rounds": args.rounds,
        "create_to_ready": summary(to_ready),
        "spec_change_to_observed_generation": summary(to_observed),
    }, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
