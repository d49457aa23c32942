"""Every Kopf handler of the operator; each is a few lines around the reconcile service."""

from __future__ import annotations

import logging
import time
from typing import Any

import kopf

from smartid_operator import GROUP, PLURAL, VERSION, __version__, metrics, mongo
from smartid_operator.kube import Kube, load_api_client
from smartid_operator.options import OPTIONS
from smartid_operator.reconcile import Result, reconcile

RESOURCE = (GROUP, VERSION, PLURAL)
PREFIX = "smartid.io"


@kopf.on.startup()
def configure(settings: kopf.OperatorSettings, memo: kopf.Memo, **_: Any) -> None:
    settings.persistence.finalizer = f"{PREFIX}/finalizer"
    # Progress and diff-base live in our own annotations, never in status: the status schema
    # is ours alone, and Argo CD ignores annotations it does not manage.
    settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(prefix=PREFIX)
    settings.persistence.diffbase_storage = kopf.AnnotationsDiffBaseStorage(
        prefix=PREFIX, key="last-handled-configuration")
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
    settings.execution.max_workers = 8
    memo.kube = Kube(load_api_client())
    metrics.serve(OPTIONS.metrics_port)


@kopf.on.cleanup()
def close(**_: Any) -> None:
    mongo.close_all()


@kopf.on.probe(id="version")
def version(**_: Any) -> str:
    return __version__


def _publish(handler: str, body: kopf.Body, patch: kopf.Patch, result: Result,
             started: float) -> None:
    """Status through Kopf's patch, one Event per transition, and the metrics."""
    if result.changed(body.status):
        patch.status.update(result.status)
    for migration in result.migrated:
        kopf.info(body, reason="MigrationApplied", message=f"applied migration {migration}")
    for change in result.transitions:
        message = f"{change.type} is {change.status}: {change.message}"
        if change.status == "True":
            kopf.info(body, reason=change.reason, message=message)
        else:
            kopf.warn(body, reason=change.reason, message=message)
    metrics.observe(handler, body.metadata.namespace or "", body.metadata.name or "",
                    body.spec.get("mongo", {}).get("database", ""), result,
                    time.monotonic() - started)


@kopf.on.resume(*RESOURCE)
@kopf.on.create(*RESOURCE)
@kopf.on.update(*RESOURCE)
def converge(body: kopf.Body, patch: kopf.Patch, memo: kopf.Memo, retry: int,
             **_: Any) -> None:
    started = time.monotonic()
    result = reconcile(memo.kube, body, adopt=lambda child: kopf.adopt(child, owner=body),
                       owner=OPTIONS.identity)
    _publish("converge", body, patch, result, started)
    if result.spec_error:
        # A person must fix the spec or what it points at; the health timer notices the fix.
        raise kopf.PermanentError(result.spec_error.message)
    if result.unavailable:
        raise kopf.TemporaryError(result.unavailable, delay=min(60, 5 * 2 ** min(retry, 4)))


@kopf.timer(*RESOURCE, interval=OPTIONS.health_interval, initial_delay=OPTIONS.health_interval)
def health(body: kopf.Body, patch: kopf.Patch, memo: kopf.Memo, **_: Any) -> None:
    started = time.monotonic()
    result = reconcile(memo.kube, body, adopt=lambda child: kopf.adopt(child, owner=body),
                       owner=OPTIONS.identity)
    _publish("health", body, patch, result, started)


@kopf.on.delete(*RESOURCE, optional=True)
def forget(body: kopf.Body, **_: Any) -> None:
    # optional=True: no finalizer; children go with the real garbage collector.
    metrics.forget(body.metadata.namespace or "", body.metadata.name or "")
