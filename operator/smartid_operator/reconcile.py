"""The reconcile service: observe, converge children, and say what the status should be.

One pass for one SmartIDDatabase, run only by that database's worker (``worker.py``), so the
result is level-based (it depends on what is there now, not on which event woke the worker)
and never races another pass over the same object.
"""

from __future__ import annotations

import datetime
import functools
import hashlib
import json
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

from smartid_operator import clock, mongo
from smartid_operator import promises as installed
from smartid_operator import status as cond
from smartid_operator.errors import ConfigError, KubeError
from smartid_operator.kube import Kube, Manifest
from smartid_operator.manifests.settings import settings_config_map
from smartid_operator.promise import Event, Look, Promise
from smartid_operator.spec import DatabaseSpec, invalid_fields, parse
from smartid_operator.status import Observation, Transition

T = TypeVar("T")
Blocking = Callable[[Callable[[], T]], Awaitable[T]]


@dataclass
class Context:
    """What a pass may touch: the two I/O seams and the pools that run blocking calls."""

    kube: Kube
    pool: mongo.Pool
    in_kube_pool: Blocking[Any]
    in_blocking_pool: Blocking[Any]
    owner: str = "smartid-operator"
    image: str = "smartid-operator"  # the operator's own image, for the agents it runs
    promises: Sequence[Promise] = field(default_factory=installed.load)


@dataclass
class Children:
    """What this worker last applied, per child: skip the write when nothing changed.

    ``applied`` maps (kind, name) to (digest of the manifest, resourceVersion, uid); a watch
    event with another resourceVersion (someone edited the child) or a deletion drops the
    entry, and the next pass applies it again.
    """

    applied: dict[tuple[str, str], tuple[str, str, str]] = field(default_factory=dict)

    def needs_apply(self, manifest: Manifest) -> bool:
        entry = self.applied.get(_key(manifest))
        return entry is None or entry[0] != _digest(manifest)

    def needs_delete(self, kind: str, name: str) -> bool:
        entry = self.applied.get((kind, name))
        return entry is None or entry[0] != ABSENT

    def record_absent(self, kind: str, name: str) -> None:
        self.applied[(kind, name)] = (ABSENT, "", "")

    def record(self, manifest: Manifest, live: Manifest) -> None:
        meta = live.get("metadata") or {}
        self.applied[_key(manifest)] = (_digest(manifest), _version(meta),
                                        str(meta.get("uid", "")))

    def observed(self, kind: str, name: str, meta: Mapping[str, Any] | None) -> bool:
        """A watch event for a child (``meta`` None: deleted); True if it is not what this
        worker wrote last, and the entry is dropped so the next pass applies it again."""
        entry = self.applied.get((kind, name))
        if entry is None or (meta is not None and entry[1] == _version(meta)):
            return False
        del self.applied[(kind, name)]
        return True

    def listed(self) -> list[dict[str, str]]:
        return [{"kind": kind, "name": name, "uid": uid}
                for (kind, name), (digest, _, uid) in sorted(self.applied.items())
                if digest != ABSENT]


ABSENT = "absent"  # a child the spec does not ask for, deleted (or never there)


def _version(meta: Mapping[str, Any]) -> str:
    """What says a child's declared content changed: its generation where it has one (a
    controller's status updates do not move it), else its resourceVersion (ConfigMaps)."""
    generation = meta.get("generation")
    return f"g{generation}" if generation else f"rv{meta.get('resourceVersion', '')}"


def _key(manifest: Manifest) -> tuple[str, str]:
    return manifest["kind"], manifest["metadata"]["name"]


def _digest(value: Any) -> str:
    return hashlib.sha256(json.dumps(value, sort_keys=True).encode()).hexdigest()


@dataclass
class Result:
    status: dict[str, Any]
    transitions: list[Transition]
    config_error: ConfigError | None = None
    unavailable: str | None = None  # a transient failure worth retrying soon
    latency_ms: float | None = None
    recheck_after: float | None = None  # something is settling: look again this soon
    events: list[Event] = field(default_factory=list)  # the promises', once status shows why


def desired_children(name: str, namespace: str, spec: DatabaseSpec, image: str,
                     promises: Sequence[Promise] | None = None
                     ) -> list[tuple[str, str, Manifest | None]]:
    """(kind, name, manifest) per child; None: the spec does not ask for it, delete it."""
    promises = installed.load() if promises is None else promises
    settings = settings_config_map(name, namespace, spec, promises)
    return [("ConfigMap", settings["metadata"]["name"], settings),
            *(child for promise in promises
              for child in promise.children(name, namespace, spec, image))]


async def reconcile(ctx: Context, body: Mapping[str, Any], current: Mapping[str, Any],
                    children: Children, *, adopt: Callable[[Manifest], None],
                    memory: Callable[[Promise], Any] = lambda promise: promise.memory(),
                    now: datetime.datetime | None = None) -> Result:
    """One pass. ``current`` is the status as this worker last wrote it; ``memory`` gives
    each promise its memory of this database."""
    moment = now or clock.utcnow()
    meta = body["metadata"]
    namespace, name = meta["namespace"], meta["name"]
    generation = meta.get("generation")
    old_conditions = list(current.get("conditions") or [])
    required = cond.REQUIRED
    must_fix = cond.CONFIG_ERRORS.union(*(p.must_fix for p in ctx.promises))

    observations: list[Observation] = []
    config_error: ConfigError | None = None
    unavailable: str | None = None
    health: mongo.Health | None = None
    # What a pass cannot look at (an invalid spec) keeps what was last seen.
    sections: dict[str, Mapping[str, Any] | None] = {
        p.section: current.get(p.section) for p in ctx.promises}
    recheck: float | None = None
    events: list[Event] = []
    try:
        spec = parse(body["spec"])
    except ConfigError as exc:
        config_error = exc
        observations += [Observation(t, False, exc.reason, exc.message)
                         for t in (cond.RESOURCES_READY, cond.MONGO_REACHABLE)]
    else:
        resources, unavailable = await _converge(ctx, namespace, name, spec, children, adopt)
        observations.append(resources)
        reach, health, handle = await _reach(ctx, f"{namespace}/{name}", namespace, spec)
        observations.append(reach)
        for promise in ctx.promises:
            view = await promise.observe(Look(
                key=(namespace, name), uid=str(meta.get("uid", "")), spec=spec,
                previous=current, memory=memory(promise), handle=handle if reach.ok else None,
                resources=resources, now=moment,
                owner=f"{ctx.owner}/{namespace}/{name}", in_blocking_pool=ctx.in_blocking_pool))
            if view is None:  # switched off: a capability leaves no condition behind
                old_conditions = [c for c in old_conditions
                                  if c.get("type") not in promise.conditions]
                sections[promise.section] = None
                continue
            observations += view.observations
            required = (*required, *view.required)
            sections[promise.section] = view.section
            unavailable = unavailable or view.unavailable
            if view.recheck_after is not None:
                recheck = min(recheck or view.recheck_after, view.recheck_after)
            events += view.events
        failed = [o for o in observations if not o.ok and o.reason in must_fix]
        if failed:
            config_error = ConfigError(failed[0].reason, failed[0].message)
        elif not reach.ok:
            unavailable = unavailable or reach.message

    stamp = clock.iso(moment)
    conditions = cond.apply_observations(old_conditions, observations, now=stamp,
                                         generation=generation, required=required)
    status = cond.compose(phase=cond.phase(conditions, must_fix), generation=generation,
                          conditions=conditions, children=children.listed(),
                          mongo=None if health is None else
                          {"reachable": health.reachable, "version": health.version},
                          sections=sections)
    return Result(status, cond.transitions(old_conditions, conditions),
                  config_error=config_error, unavailable=unavailable,
                  latency_ms=health.latency_ms if health else None, recheck_after=recheck,
                  events=events)


async def _converge(ctx: Context, namespace: str, name: str, spec: DatabaseSpec,
                    children: Children,
                    adopt: Callable[[Manifest], None]) -> tuple[Observation, str | None]:
    invalid = invalid_fields(spec)
    if invalid is not None:  # no child is applied from a spec a person must fix first
        return Observation(cond.RESOURCES_READY, False, "InvalidSpec", invalid), None
    kind, child = "", ""
    try:
        for kind, child, manifest in desired_children(name, namespace, spec, ctx.image,
                                                      ctx.promises):
            if manifest is None:
                if children.needs_delete(kind, child):
                    await ctx.in_kube_pool(
                        functools.partial(ctx.kube.delete, kind, namespace, child))
                    children.record_absent(kind, child)
                continue
            adopt(manifest)
            if children.needs_apply(manifest):
                live = await ctx.in_kube_pool(functools.partial(ctx.kube.apply, manifest))
                children.record(manifest, live)
        kind, child = "", ""
        workload = await ctx.in_kube_pool(
            lambda: ctx.kube.workload(namespace, spec.mongo.workload))
    except KubeError as exc:
        if exc.status == 422 and kind:  # Invalid: retrying the same manifest cannot help
            return Observation(cond.RESOURCES_READY, False, "ChildRejected",
                               f"the API server refused {kind} {namespace}/{child}, made "
                               f"from this spec: {exc.message}"), None
        message = f"applying children failed: {exc}"
        return Observation(cond.RESOURCES_READY, False, "ApplyFailed", message), message
    ref = spec.mongo.workload
    if workload is None:
        return Observation(cond.RESOURCES_READY, False, "WorkloadNotFound",
                           f"{ref.kind} {namespace}/{ref.name} (spec.mongo.workload) does not "
                           f"exist"), None
    kinds = ", ".join(f"{c['kind']}/{c['name']}" for c in children.listed())
    return Observation(cond.RESOURCES_READY, True, "Applied",
                       f"{ref.kind}/{ref.name} found; children as declared: {kinds}"), None


async def _reach(ctx: Context, key: str, namespace: str, spec: DatabaseSpec
                 ) -> tuple[Observation, mongo.Health | None, mongo.Handle | None]:
    try:
        uri = await ctx.in_kube_pool(
            lambda: ctx.kube.secret_value(namespace, spec.mongo.uri_secret))
        handle = await ctx.pool.handle(key, uri, spec.mongo.connect_timeout_seconds)
    except ConfigError as exc:
        where = " (the Secret of spec.mongo.uriSecretRef)" if exc.reason == "InvalidURI" else ""
        return Observation(cond.MONGO_REACHABLE, False, exc.reason, exc.message + where), \
            None, None
    except KubeError as exc:
        return Observation(cond.MONGO_REACHABLE, False, "SecretUnreadable",
                           f"reading the Secret failed: {exc}"), None, None
    health = await mongo.check(handle)
    if health.reachable:
        return Observation(cond.MONGO_REACHABLE, True, "Pinged",
                           f"MongoDB {health.version or '?'} answers ping"), health, handle
    if health.failure == "refused":
        return Observation(cond.MONGO_REACHABLE, False, "CredentialsRefused",
                           f"MongoDB answered and refused the credentials of the URI in "
                           f"spec.mongo.uriSecretRef: {health.error}"), health, handle
    if health.failure == "error":
        return Observation(cond.MONGO_REACHABLE, False, "PingFailed",
                           f"MongoDB answered ping with an error: {health.error}"), health, handle
    return Observation(cond.MONGO_REACHABLE, False, "Unreachable",
                       f"MongoDB did not answer: {health.error}"), health, handle
