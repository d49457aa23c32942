"""Every Kopf handler of the operator; each hands a watch event to the workers (worker.py).

Only watch-event handlers: they put no finalizer and no annotation on any object, and one
worker per database does the work, so nothing here can run two passes over one object. The
kinds watched besides the databases are the core's (the Mongo workload's pods, the settings
ConfigMap) and those the installed promises ask for (``Promise.watches`` and ``owns``).
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar, cast

import kopf

from smartid_operator import GROUP, PLURAL, VERSION, __version__, metrics, mongo, promises
from smartid_operator.kube import Kube, load_api_client
from smartid_operator.manifests import MANAGED_BY, MANAGED_LABEL, owner_reference
from smartid_operator.options import OPTIONS
from smartid_operator.reconcile import Context
from smartid_operator.worker import Hooks, Registry

T = TypeVar("T")
MANAGED = {MANAGED_LABEL: MANAGED_BY}
KUBE_THREADS, BLOCKING_THREADS = 16, 4


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
    # hold no thread; a promise's blocking engine (the migrations) gets its own pool so a
    # slow database never takes the threads every other database needs to read its Secret.
    kube = Kube(load_api_client())
    context = Context(kube=kube, pool=mongo.Pool(),
                      in_kube_pool=_in(ThreadPoolExecutor(KUBE_THREADS, "kube")),
                      in_blocking_pool=_in(ThreadPoolExecutor(BLOCKING_THREADS, "blocking")),
                      owner=OPTIONS.identity, image=_own_image(kube))
    hooks = Hooks(adopt=_adopt, event=_event)
    memo.registry = Registry(context, hooks, OPTIONS.health_interval)
    metrics.serve(OPTIONS.metrics_port)


@kopf.on.startup()
async def start_promises(memo: kopf.Memo, **_: Any) -> None:
    # After configure (start-up handlers run in the order they are registered), on the loop
    # (their services run tasks there); in a start-up handler, as each object's handlers get
    # a copy of the memo.
    for promise in memo.registry.context.promises:
        await promise.start(memo.registry)


def _own_image(kube: Kube) -> str:
    """The agents run the operator's own image, so the two never drift apart (outside a pod,
    the CLI requires ``--agent-image``)."""
    if OPTIONS.image:
        return OPTIONS.image
    return kube.container_image(os.environ["POD_NAMESPACE"], os.environ["POD_NAME"])


@kopf.on.cleanup()
async def close(memo: kopf.Memo, **_: Any) -> None:
    # The promises first: an outage test restores the replicas it took and reports to the
    # workers, which must still be there to write it.
    for promise in reversed(memo.registry.context.promises):
        await promise.stop()
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


def _watched() -> dict[tuple[str, str, str], bool]:
    """Each kind to watch, and whether only the operator's own objects (by label)."""
    kinds = {("", "v1", "pods"): False,  # the Mongo workload's: an outage shows within a second
             ("", "v1", "configmaps"): True}  # the settings ConfigMap, a child
    for promise in promises.load():
        for watch in (*promise.watches, *promise.owns):
            kind = (watch.group, watch.version, watch.plural)
            kinds[kind] = kinds.get(kind, True) and watch.managed
    return kinds


def _register(group: str, version: str, plural: str, managed: bool) -> None:
    async def heard(type: str | None, body: kopf.Body, memo: kopf.Memo, **_: Any) -> None:
        memo.registry.heard(group, version, plural, type, body)

    kopf.on.event(group, version, plural, id=f"heard-{plural}",
                  labels=MANAGED if managed else None)(heard)


for _kind, _managed in _watched().items():
    _register(*_kind, _managed)
