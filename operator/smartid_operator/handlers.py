"""Every Kopf handler of the operator; each hands a watch event to the workers (worker.py).

Only watch-event handlers: they put no finalizer and no annotation on any object, and one
worker per database does the work, so nothing here can run two passes over one object.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar, cast

import kopf

from smartid_operator import GROUP, PLURAL, VERSION, __version__, metrics, mongo
from smartid_operator.backup.restores import Restores
from smartid_operator.kube import Kube, load_api_client
from smartid_operator.manifests import MANAGED_BY, owner_reference
from smartid_operator.manifests.restore import PLURAL as RESTORE_PLURAL
from smartid_operator.options import OPTIONS
from smartid_operator.reconcile import Context
from smartid_operator.worker import Hooks, Registry

T = TypeVar("T")
MANAGED = {"app.kubernetes.io/managed-by": MANAGED_BY}
KUBE_THREADS, MIGRATION_THREADS = 16, 4


def _in(pool: ThreadPoolExecutor) -> Callable[[Callable[[], T]], Any]:
    async def run(fn: Callable[[], T]) -> T:
        return await asyncio.get_running_loop().run_in_executor(pool, fn)
    return run


def _body(body: Mapping[str, Any]) -> kopf.Body:
    return kopf.Body(cast(kopf.RawBody, dict(body)))


def _adopt(child: dict[str, Any], owner: Mapping[str, Any]) -> None:
    child["metadata"]["ownerReferences"] = [owner_reference(owner)]


def _event(body: Mapping[str, Any], type_: str, reason: str, message: str) -> None:
    kopf.event(_body(body), type=type_, reason=reason, message=message)


@kopf.on.startup()
def configure(settings: kopf.OperatorSettings, memo: kopf.Memo, **_: Any) -> None:
    # Reconnect watches well before proxies or load balancers cut idle connections.
    settings.watching.server_timeout = 300
    settings.watching.client_timeout = 330
    settings.watching.connect_timeout = 10
    settings.networking.request_timeout = 60
    settings.posting.level = logging.INFO
    settings.posting.reporting_component = "smartid-operator"
    settings.posting.reporting_instance = OPTIONS.identity
    # Namespaces named literally need a Role only: no cluster-wide watch of CRDs and
    # namespaces. Globs ("smartid-*") and -A do need it (the cluster-wide overlay grants it).
    settings.scanning.disabled = not (OPTIONS.clusterwide or any(
        set(pattern) & set("*?[!,") for pattern in OPTIONS.namespaces))
    # Kubernetes calls are short and bounded (kube.TIMEOUT); health checks are async and
    # hold no thread; migrations (a blocking engine) get their own pool so a slow database
    # never takes the threads every other database needs to read its Secret.
    kube = Kube(load_api_client())
    context = Context(kube=kube, pool=mongo.Pool(),
                      in_kube_pool=_in(ThreadPoolExecutor(KUBE_THREADS, "kube")),
                      in_migration_pool=_in(ThreadPoolExecutor(MIGRATION_THREADS, "migrations")),
                      owner=OPTIONS.identity, image=_own_image(kube))
    hooks = Hooks(adopt=_adopt, event=_event)
    memo.registry = Registry(context, hooks, OPTIONS.health_interval)
    metrics.serve(OPTIONS.metrics_port)


def _own_image(kube: Kube) -> str:
    """The agents run the operator's own image, so the two never drift apart (outside a pod,
    the CLI requires ``--agent-image``)."""
    if OPTIONS.image:
        return OPTIONS.image
    return kube.container_image(os.environ["POD_NAMESPACE"], os.environ["POD_NAME"])


@kopf.on.cleanup()
async def close(memo: kopf.Memo, **_: Any) -> None:
    # Outage-test runs first: they restore replicas and report to the workers, which must
    # still be there to write it.
    if getattr(memo, "chaos", None) is not None:
        await memo.chaos.stop()
    await memo.registry.stop()


@kopf.on.probe(id="version")
def version(**_: Any) -> str:
    return __version__


@kopf.on.probe(id="databases")
def databases(memo: kopf.Memo, **_: Any) -> int:
    return len(memo.registry.workers)


# Async, so they run on the loop (the workers live there) and hold no executor thread.
@kopf.on.event(GROUP, VERSION, PLURAL)
async def database(type: str | None, body: kopf.Body, memo: kopf.Memo, **_: Any) -> None:
    memo.registry.observe(type, body)


@kopf.on.event("", "v1", "pods")
async def pod(body: kopf.Body, memo: kopf.Memo, **_: Any) -> None:
    # The Mongo workload's pods: an outage or a return shows within a second, not an interval.
    memo.registry.pod_changed(body)
    # A backup or restore Job's pod: its termination message is the run's outcome.
    memo.registry.job_pod_changed(body)
    _restores(memo).pod_changed(body)


@kopf.on.event("", "v1", "configmaps", labels=MANAGED)
@kopf.on.event("apps", "v1", "deployments", labels=MANAGED)
async def child(type: str | None, body: kopf.Body, memo: kopf.Memo, **_: Any) -> None:
    memo.registry.child_changed(type, body)


@kopf.on.event("batch", "v1", "cronjobs", labels=MANAGED)
async def cronjob(type: str | None, body: kopf.Body, memo: kopf.Memo, **_: Any) -> None:
    memo.registry.child_changed(type, body)
    memo.registry.cronjob_changed(type, body)  # its lastScheduleTime, lastSuccessfulTime


@kopf.on.event("batch", "v1", "jobs", labels=MANAGED)
async def job(type: str | None, body: kopf.Body, memo: kopf.Memo, **_: Any) -> None:
    # The backup CronJob's Jobs, scheduled or made by hand: what status.backup is made of;
    # and the SmartIDRestores' Jobs.
    memo.registry.job_changed(type, body)
    _restores(memo).job_changed(type, body)


@kopf.on.startup()
def start_restores(memo: kopf.Memo, **_: Any) -> None:
    # In a start-up handler: the operator-wide memo (each object's handlers get a copy of it).
    # After configure, which made the registry.
    memo.restores = Restores(memo.registry)


def _restores(memo: kopf.Memo) -> Restores:
    restores: Restores = memo.restores
    return restores


@kopf.on.event(GROUP, VERSION, RESTORE_PLURAL)
async def restore(type: str | None, body: kopf.Body, memo: kopf.Memo, **_: Any) -> None:
    _restores(memo).observe(type, body)


from smartid_operator.chaos import handlers as _chaos  # noqa: E402,F401  (outage-test runs)
