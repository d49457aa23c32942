"""After a restart: a workload left scaled down is given its replicas back from its
annotation, and a run left Running with no task is marked Aborted."""

from __future__ import annotations

import json
import logging
from typing import Any

from smartid_operator.chaos import ANNOTATION, KIND, PLURAL
from smartid_operator.chaos.engine.env import Body, Env, describe
from smartid_operator.chaos.engine.model import ABORTED, Timings, last_outage_test
from smartid_operator.spec import WorkloadRef, parse, parse_outage_test

log = logging.getLogger(__name__)


async def restore_from_annotation(env: Env, namespace: str, ref: WorkloadRef,
                                  run: str | None = None) -> dict[str, Any] | None:
    """Give ``ref`` the replicas its annotation records, then drop the annotation; only if
    the annotation names ``run`` (any run when None). Returns the annotation, or None."""
    workload = await env.call(env.kube.workload, namespace, ref)
    note = ((workload or {}).get("metadata") or {}).get("annotations", {}).get(ANNOTATION) \
        if workload else None
    if not note:
        return None
    try:
        data = json.loads(note)
        replicas = int(data["replicas"])
    except (ValueError, KeyError, TypeError):
        log.error("%s on %s/%s is not ours to read (%r): left alone", ANNOTATION, namespace,
                  describe(ref), note)
        return None
    if run is not None and data.get("run") != run:
        return None
    await env.call(env.kube.scale, namespace, ref, replicas)
    await env.call(env.kube.annotate_workload, namespace, ref, ANNOTATION, None)
    log.warning("restored %s/%s to %d replicas (left by run %s)", namespace, describe(ref),
                replicas, data.get("run"))
    return dict(data)


async def recover(env: Env, run: Body) -> None:
    """A run found Running with no task (the operator restarted mid-run): restore the
    replicas its annotation recorded and mark it Aborted."""
    meta = run["metadata"]
    namespace, name = meta["namespace"], meta["name"]
    database = parse_outage_test(run["spec"]).database
    status = dict(run.get("status") or {})
    body = await env.database_body((namespace, database))
    restored = "the workload carried no outage annotation (nothing to restore)"
    if body is not None:
        ref = parse(body["spec"]).mongo.workload
        note = await restore_from_annotation(env, namespace, ref, name)
        if note is not None:
            restored = f"{describe(ref)} restored to {note['replicas']} replicas"
    timings = Timings.from_document(status.get("timings") or {})
    timings.mark("finished", env.now())
    status.update(phase=ABORTED, reason="OperatorRestarted", step="Done",
                  message=f"the operator restarted during step {status.get('step', '?')}; "
                          f"{restored}", timings=timings.document())
    await env.call(env.kube.apply_custom_status, PLURAL, KIND, namespace, name, status)
    env.event(run, "Warning", ABORTED, status["message"])
    env.report((namespace, database), last_outage_test(name, status), None)
