"""A run's preconditions, checked before anything is touched: each missing one refuses the
run with a reason and a sentence saying what to change."""

from __future__ import annotations

import logging
from dataclasses import dataclass

from smartid_operator import mongo
from smartid_operator.chaos import ANNOTATION, PLURAL
from smartid_operator.chaos.children import with_owner
from smartid_operator.chaos.engine.env import Body, Env, Key, Refusal, describe
from smartid_operator.chaos.engine.model import Settings, resolve
from smartid_operator.chaos.engine.probe import Probe
from smartid_operator.errors import ConfigError, KubeError
from smartid_operator.spec import DatabaseSpec, WorkloadRef, parse, parse_outage_test

log = logging.getLogger(__name__)


@dataclass
class Plan:
    """What the preconditions established."""

    spec: DatabaseSpec
    settings: Settings
    ref: WorkloadRef
    replicas: int
    probe: Probe
    sampler: Probe


def _run_key(run: Body) -> Key:
    return run["metadata"]["namespace"], run["metadata"]["name"]


def _db_key(run: Body) -> Key:
    return run["metadata"]["namespace"], parse_outage_test(run["spec"]).database


async def adopt(env: Env, run: Body) -> None:
    """The run is owned by its database (garbage-collected with it)."""
    try:
        body = await env.database_body(_db_key(run))
    except KubeError:
        body = None
    if body is None:
        return
    owners = list(run["metadata"].get("ownerReferences") or [])
    refs = with_owner(owners, {"apiVersion": body.get("apiVersion", "smartid.io/v1alpha1"),
                               "kind": body.get("kind", "SmartIDDatabase"),
                               "metadata": body["metadata"]})
    if refs is None:
        return
    try:
        await env.call(env.kube.patch_custom, PLURAL, *_run_key(run),
                       {"metadata": {"ownerReferences": refs}})
    except KubeError as exc:
        log.warning("run %s/%s: could not set its owner: %s", *_run_key(run), exc)


async def check(env: Env, run: Body) -> Plan:
    """What a run needs before it may touch anything; a Refusal says what is missing."""
    run_spec = parse_outage_test(run["spec"])
    (ns, name), db = _run_key(run), run_spec.database
    db_key = (ns, db)
    other = env.active_run(db_key, name)
    if other is not None:
        raise Refusal("RunActive", f"run {other} is still active for SmartIDDatabase "
                                   f"{db}: one outage test at a time")
    try:
        body = await env.database_body(db_key)
    except KubeError as exc:
        raise Refusal("CheckFailed", f"reading SmartIDDatabase {db} failed: {exc}") from None
    if body is None:
        raise Refusal("DatabaseNotFound",
                      f"SmartIDDatabase {ns}/{db} (spec.database) does not exist")
    try:
        spec = parse(body["spec"])
    except ConfigError as exc:
        raise Refusal(exc.reason, exc.message) from None
    if not spec.chaos.allow_disruption:
        raise Refusal("DisruptionNotAllowed",
                      f"SmartIDDatabase {db} has spec.chaos.allowDisruption false: set it "
                      f"to true to allow outage tests to scale {describe(spec.mongo.workload)}"
                      f" to 0")
    if not spec.recovery.enabled:
        raise Refusal("RecoveryDisabled",
                      f"SmartIDDatabase {db} has spec.recovery.enabled false: nothing would "
                      f"index the writes made during the outage")
    settings = resolve(run_spec, spec.chaos)
    ref = spec.mongo.workload
    try:
        workload = await env.call(env.kube.workload, ns, ref)
        if workload is None:
            raise Refusal("WorkloadNotFound", f"{describe(ref)} (spec.mongo.workload of "
                                              f"{db}) does not exist in {ns}")
        note = ((workload.get("metadata") or {}).get("annotations") or {}).get(ANNOTATION)
        if note:
            raise Refusal("RestorePending",
                          f"{describe(ref)} still carries {ANNOTATION} ({note}): an "
                          f"earlier run's replicas are being restored")
        uri = await env.call(env.kube.secret_value, ns, spec.mongo.uri_secret)
        replicas = await env.call(env.kube.replicas, ns, ref)
    except ConfigError as exc:
        raise Refusal(exc.reason, exc.message) from None
    except KubeError as exc:
        raise Refusal("CheckFailed", f"checking the preconditions failed: {exc}") from None
    timeout = float(spec.mongo.connect_timeout_seconds)
    probe = env.probe(env.pool, f"{ns}/{db}/chaos", uri, spec.mongo.database, timeout)
    sampler = env.probe(env.pool, f"{ns}/{db}/chaos-sampler", uri, spec.mongo.database,
                        timeout)
    try:
        up, error = await probe.reachable()
        if not up:
            raise Refusal("MongoUnreachable",
                          f"MongoDB does not answer ({error}): an outage test starts only "
                          f"from a healthy database")
        if not replicas:
            raise Refusal("WorkloadScaledDown",
                          f"{describe(ref)} has 0 replicas although Mongo answers: the URI "
                          f"does not point at it, so scaling it would prove nothing")
        if any(await probe.tagged(name)):
            raise Refusal("IdsInUse",
                          f"Mongo already holds documents of a run named {name} (one "
                          f"of that name ran before): give this run another name")
    except mongo.MongoError as exc:
        await probe.close()
        await sampler.close()
        raise Refusal("MongoUnreachable", f"MongoDB failed a query: {exc}") from None
    except Refusal:
        await probe.close()
        await sampler.close()
        raise
    return Plan(spec, settings, ref, int(replicas), probe, sampler)
