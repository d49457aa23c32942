"""Tier 3 on kind: each backup engine restores the other's dump, with the official MongoDB
Database Tools that the operator image installs, against real MongoDB 7.

Each step is a Job made from the sample's backup CronJob (its pod, volume, Secret and settings
as the operator declared them), with only the arguments changed:

1. ``backup run --engine builtin``, then ``backup verify latest --engine tools``: the official
   ``mongorestore`` restores the built-in engine's dump into a scratch database, and the counts
   and content hashes must match the source's;
2. ``backup run --engine tools`` (``mongodump``), then ``backup verify latest --engine
   builtin``: the built-in engine restores the official tools' dump the same way.
"""

from __future__ import annotations

import copy
import json
import time
from typing import Any

import pytest
from kubernetes import client

from tests.kind.conftest import NAMESPACE

CRONJOB = "smartid-backup"
JOB_S = 240


def run_job(batch: client.BatchV1Api, core: client.CoreV1Api, name: str,
            args: list[str]) -> dict[str, Any]:
    """A Job from the CronJob's template with ``args``; its JSON outcome (termination
    message) once it ends. Fails the test, with the pod's log, if the Job fails."""
    cron = batch.read_namespaced_cron_job(CRONJOB, NAMESPACE)
    template = copy.deepcopy(batch.api_client.sanitize_for_serialization(cron.spec.job_template))
    template["spec"]["backoffLimit"] = 0
    template["spec"]["template"]["spec"]["containers"][0]["args"] = args
    batch.create_namespaced_job(NAMESPACE, {
        "apiVersion": "batch/v1", "kind": "Job",
        "metadata": {"name": name, "labels": {"smartid.io/kind-test": "backup"}},
        "spec": template["spec"]})
    deadline = time.monotonic() + JOB_S
    while time.monotonic() < deadline:
        job = batch.read_namespaced_job(name, NAMESPACE)
        if job.status.succeeded or job.status.failed:
            break
        time.sleep(2)
    pods = core.list_namespaced_pod(NAMESPACE, label_selector=f"job-name={name}").items
    assert pods, f"Job {name} made no pod"
    state = pods[0].status.container_statuses[0].state
    message = state.terminated.message if state.terminated else None
    if not job.status.succeeded:
        log = core.read_namespaced_pod_log(pods[0].metadata.name, NAMESPACE, tail_lines=40)
        raise AssertionError(f"Job {name} ({' '.join(args)}) did not succeed:\n{log}")
    return json.loads(message) if message else {}


@pytest.mark.timeout(4 * JOB_S + 60)
def test_each_engine_restores_the_others_dump(api: client.ApiClient) -> None:
    batch, core = client.BatchV1Api(api), client.CoreV1Api(api)
    suffix = str(int(time.time()))
    for dump_engine, verify_engine in (("builtin", "tools"), ("tools", "builtin")):
        made = run_job(batch, core, f"kind-dump-{dump_engine}-{suffix}",
                       ["backup", "run", f"--engine={dump_engine}", "--no-verify",
                        "--termination-log=/dev/termination-log"])
        assert made.get("result") == "Succeeded", made
        # Exit 0 only when the restored counts and content hashes equal the source's (3 when
        # they differ): run_job fails the test, with the log, on anything but success.
        run_job(batch, core, f"kind-verify-{verify_engine}-{suffix}",
                ["backup", "verify", "latest", f"--engine={verify_engine}"])
