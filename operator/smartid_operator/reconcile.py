"""The reconcile service: observe, converge children, and say what the status should be.

Called alike by the change handlers (create/update/resume) and the health timer, so the
result is level-based: it depends on what is there now, not on which event arrived.
"""

from __future__ import annotations

import datetime
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from kubernetes.client.exceptions import ApiException

from smartid_operator import mongo
from smartid_operator import status as cond
from smartid_operator.kube import Kube, Manifest
from smartid_operator.manifests.settings import settings_config_map
from smartid_operator.schema import converge_schema
from smartid_operator.spec import DatabaseSpec, SpecError, parse
from smartid_operator.status import Observation, Transition

# Status fields that change on every check; a patch carrying only these is skipped.
_VOLATILE = ("lastCheckTime", "latencyMilliseconds")


def utcnow() -> str:
    return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass
class Result:
    status: dict[str, Any]
    transitions: list[Transition]
    spec_error: SpecError | None = None
    unavailable: str | None = None  # a transient failure worth retrying soon
    migrated: list[str] = field(default_factory=list)  # migrations applied by this pass

    def changed(self, current: Mapping[str, Any]) -> bool:
        return bool(_stable(self.status) != _stable({k: current.get(k) for k in self.status}))


def _stable(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {k: _stable(v) for k, v in value.items() if k not in _VOLATILE}
    if isinstance(value, list):
        return [_stable(v) for v in value]
    return value


def desired_children(name: str, namespace: str, spec: DatabaseSpec) -> list[Manifest]:
    return [settings_config_map(name, namespace, spec)]


def reconcile(kube: Kube, body: Mapping[str, Any], *, adopt: Callable[[Manifest], None],
              owner: str = "smartid-operator", now: str | None = None) -> Result:
    now = now or utcnow()
    meta = body["metadata"]
    namespace, name = meta["namespace"], meta["name"]
    generation = meta.get("generation")
    current = dict(body.get("status") or {})
    old_conditions = list(current.get("conditions") or [])

    observations: list[Observation] = []
    spec_error: SpecError | None = None
    unavailable: str | None = None
    applied: list[Manifest] = []
    health: mongo.Health | None = None
    schema_status: dict[str, Any] = {}
    migrated: list[str] = []
    try:
        spec = parse(body["spec"])
    except SpecError as exc:
        spec_error = exc
        observations += [Observation(t, False, exc.reason, exc.message)
                         for t in (cond.RESOURCES_READY, cond.MONGO_REACHABLE)]
    else:
        resources, applied, unavailable = _converge(kube, namespace, name, spec, adopt)
        observations.append(resources)
        reach, health, uri = _reach(kube, namespace, spec)
        observations.append(reach)
        if uri is not None and reach.ok:
            # Unreachable: no observation, SchemaReady keeps what it last saw.
            schema = converge_schema(uri, spec, owner=f"{owner}/{namespace}/{name}")
            observations.append(schema.observation)
            schema_status = schema.status
            migrated = schema.applied
            unavailable = unavailable or schema.transient
        failed = [o for o in observations if not o.ok and o.reason in cond.CONFIG_ERRORS]
        if failed:
            spec_error = SpecError(failed[0].reason, failed[0].message)
        elif not reach.ok:
            unavailable = unavailable or reach.message

    conditions = cond.apply_observations(old_conditions, observations, now=now,
                                         generation=generation)
    new_status: dict[str, Any] = {
        "phase": cond.phase(conditions),
        "observedGeneration": generation,
        "conditions": conditions,
        "children": [{"kind": c["kind"], "name": c["metadata"]["name"],
                      "uid": c["metadata"].get("uid", "")} for c in applied],
    }
    if schema_status:
        new_status["schema"] = schema_status
    if health is not None:
        new_status["mongo"] = {"reachable": health.reachable, "lastCheckTime": now}
        if health.version:
            new_status["mongo"]["version"] = health.version
        if health.latency_ms is not None:
            new_status["mongo"]["latencyMilliseconds"] = health.latency_ms
    return Result(new_status, cond.transitions(old_conditions, conditions),
                  spec_error=spec_error, unavailable=unavailable,
                  migrated=migrated)


def _converge(kube: Kube, namespace: str, name: str, spec: DatabaseSpec,
              adopt: Callable[[Manifest], None]) -> tuple[Observation, list[Manifest], str | None]:
    applied: list[Manifest] = []
    try:
        for manifest in desired_children(name, namespace, spec):
            adopt(manifest)
            applied.append(kube.apply(manifest))
        workload = kube.workload(namespace, spec.mongo.workload)
    except ApiException as exc:
        message = f"applying children failed: {exc.status} {exc.reason}"
        return Observation(cond.RESOURCES_READY, False, "ApplyFailed", message), applied, message
    ref = spec.mongo.workload
    if workload is None:
        return Observation(cond.RESOURCES_READY, False, "WorkloadNotFound",
                           f"{ref.kind} {namespace}/{ref.name} (spec.mongo.workload) does not "
                           f"exist"), applied, None
    kinds = ", ".join(f"{c['kind']}/{c['metadata']['name']}" for c in applied)
    return Observation(cond.RESOURCES_READY, True, "Applied",
                       f"{ref.kind}/{ref.name} found; children as declared: {kinds}"), applied, None


def _reach(kube: Kube, namespace: str,
           spec: DatabaseSpec) -> tuple[Observation, mongo.Health | None, str | None]:
    try:
        uri = kube.secret_value(namespace, spec.mongo.uri_secret)
        health = mongo.check(uri, spec.mongo.connect_timeout_seconds)
    except SpecError as exc:
        return Observation(cond.MONGO_REACHABLE, False, exc.reason, exc.message), None, None
    except ApiException as exc:
        return Observation(cond.MONGO_REACHABLE, False, "SecretUnreadable",
                           f"reading the Secret failed: {exc.status} {exc.reason}"), None, None
    if health.reachable:
        return Observation(cond.MONGO_REACHABLE, True, "Pinged",
                           f"MongoDB {health.version or '?'} answered ping in "
                           f"{health.latency_ms} ms"), health, uri
    return Observation(cond.MONGO_REACHABLE, False, "Unreachable",
                       f"MongoDB did not answer: {health.error}"), health, uri
