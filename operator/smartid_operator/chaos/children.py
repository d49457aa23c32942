"""Pure builders for what a run creates: the writer Job, the report ConfigMap, owner references,
and the runs a schedule creates."""

from __future__ import annotations

import base64
import datetime
from collections.abc import Mapping
from typing import Any

from smartid_operator import GROUP, VERSION
from smartid_operator import KIND as DATABASE_KIND
from smartid_operator.chaos import COMPONENT, KIND
from smartid_operator.chaos.engine.model import WRITER_START_WAIT, Settings
from smartid_operator.chaos.schedule import SCHEDULED_LABEL, run_name
from smartid_operator.manifests import labels, owner_reference
from smartid_operator.manifests.pods import Container, operator_pod
from smartid_operator.spec import DatabaseSpec

STORAGE = "/recordings"  # where the writer sees the recovery volume, as the agent does
RUN_LABEL = "smartid.io/outage-test-run"
REPORT_JSON, TIMELINE_PNG = "report.json", "timeline.png"


def with_owner(owners: list[dict[str, Any]],
               owner: Mapping[str, Any]) -> list[dict[str, Any]] | None:
    """``owners`` plus a reference to ``owner``; None when it is there already."""
    ref = owner_reference(owner)
    if any(o.get("uid") == ref["uid"] for o in owners):
        return None
    # One controller per object: ours is the database unless someone else claimed it.
    if any(o.get("controller") for o in owners):
        ref["controller"] = False
    return [*owners, ref]


def writer_name(run: str) -> str:
    return f"{run}-writer"


def report_name(run: str) -> str:
    return f"{run}-report"


def writer_job(run: Mapping[str, Any], database: str, spec: DatabaseSpec, settings: Settings,
               image: str) -> dict[str, Any]:
    """The Job that writes the run's recordings and segments through the recovery writer
    library while Mongo is down: the operator image, the recovery volume at /recordings, the
    URI from the Secret and the database's settings ConfigMap, as the recovery agent has."""
    assert spec.recovery.claim is not None  # a precondition of every run
    meta = run["metadata"]
    name = meta["name"]
    selector = {**labels(database, COMPONENT), RUN_LABEL: name}
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": writer_name(name), "namespace": meta["namespace"],
                     "labels": selector, "ownerReferences": [owner_reference(run)]},
        "spec": {
            # One attempt: a second pod would write the same ids again (a no-op), but a
            # failure must fail the run, not hide behind a retry.
            "backoffLimit": 0,
            "activeDeadlineSeconds": int(WRITER_START_WAIT + settings.writer_seconds),
            "template": {
                "metadata": {"labels": selector},
                "spec": operator_pod(database, spec, image, Container(
                    name="writer", claim=spec.recovery.claim, mount_path=STORAGE,
                    args=["chaos", "write", f"--storage={STORAGE}", f"--run={name}",
                          f"--recordings={settings.recordings}",
                          f"--segments-per-recording={settings.segments_per_recording}"]),
                    restartPolicy="Never",
                    # Beside the recovery agent when it can be: a ReadWriteOnce claim the
                    # agent holds mounts only on its node.
                    affinity={"podAffinity": {
                        "preferredDuringSchedulingIgnoredDuringExecution": [{
                            "weight": 100, "podAffinityTerm": {
                                "labelSelector": {"matchLabels": labels(database, "recovery")},
                                "topologyKey": "kubernetes.io/hostname"}}]}}),
            },
        },
    }


def report_config_map(run: Mapping[str, Any], database: str, report_json: bytes,
                      png: bytes | None) -> dict[str, Any]:
    """``<run>-report``: report.json, and the timeline picture as binaryData, so
    ``kubectl get cm <run>-report -o jsonpath='{.binaryData.timeline\\.png}' | base64 -d``
    fetches it. Owned by the run."""
    meta = run["metadata"]
    cm: dict[str, Any] = {
        "apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": report_name(meta["name"]), "namespace": meta["namespace"],
                     "labels": {**labels(database, COMPONENT), RUN_LABEL: meta["name"]},
                     "ownerReferences": [owner_reference(run)]},
        "data": {REPORT_JSON: report_json.decode()},
    }
    if png is not None:
        cm["binaryData"] = {TIMELINE_PNG: base64.b64encode(png).decode()}
    return cm


def scheduled_run(database: Mapping[str, Any], fire: datetime.datetime) -> dict[str, Any]:
    """A run created by ``spec.chaos.schedule``: the database's own settings, owned by it."""
    meta = database["metadata"]
    return {
        "apiVersion": f"{GROUP}/{VERSION}", "kind": KIND,
        "metadata": {"name": run_name(meta["name"], fire), "namespace": meta["namespace"],
                     "labels": {SCHEDULED_LABEL: "true",
                                "app.kubernetes.io/instance": meta["name"][:63]},
                     "ownerReferences": [owner_reference(
                         {**database, "apiVersion": f"{GROUP}/{VERSION}",
                          "kind": DATABASE_KIND})]},
        "spec": {"database": meta["name"]},
    }
