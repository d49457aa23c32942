"""The operator's one seam for Kubernetes I/O (besides Kopf's own watching and Events).

Blocking calls of the official client, each with a bounded request timeout; the worker runs
them in a small thread pool. Every failure leaves as the project's own error: ``ConfigError``
when a person must fix what the spec points at, ``KubeError`` otherwise.
"""

from __future__ import annotations

import base64
import logging
import os
from collections.abc import Callable, Mapping
from typing import Any

from kubernetes import client, config
from kubernetes.client.exceptions import ApiException

from smartid_operator import GROUP, KIND, PLURAL, VERSION
from smartid_operator.errors import ConfigError, KubeError
from smartid_operator.spec import SecretRef, WorkloadRef

log = logging.getLogger(__name__)

APPLY_PATCH = "application/apply-patch+yaml"
MERGE_PATCH = "application/merge-patch+json"
FIELD_MANAGER = "smartid-operator"
TIMEOUT = 15.0  # seconds per request: a slow API server delays one database, never all
Manifest = dict[str, Any]


def load_api_client() -> client.ApiClient:
    """In a pod: the ServiceAccount; elsewhere: ``KUBECONFIG`` / ``~/.kube/config``."""
    if os.environ.get("KUBERNETES_SERVICE_HOST") and not os.environ.get("KUBECONFIG"):
        config.load_incluster_config()
    else:
        config.load_kube_config()
    return client.ApiClient()


def _error(exc: ApiException) -> KubeError:
    return KubeError(int(exc.status or 0), str(exc.reason or ""), _message(exc))


def _message(exc: ApiException) -> str:
    import json

    try:
        return str(json.loads(exc.body or "{}").get("message") or exc.reason)
    except ValueError:
        return str(exc.reason)


def _read_or_none(call: Callable[..., Any], *args: Any) -> Any:
    """One GET: the object, None when it does not exist, ``KubeError`` for anything else."""
    try:
        return call(*args, _request_timeout=TIMEOUT)
    except ApiException as exc:
        if exc.status == 404:
            return None
        raise _error(exc) from None


class Kube:
    def __init__(self, api_client: client.ApiClient) -> None:
        self.api_client = api_client
        self.core = client.CoreV1Api(api_client)
        self.apps = client.AppsV1Api(api_client)
        self.batch = client.BatchV1Api(api_client)
        self.custom = client.CustomObjectsApi(api_client)

    def secret_value(self, namespace: str, ref: SecretRef) -> str:
        try:
            secret = self.core.read_namespaced_secret(ref.name, namespace,
                                                      _request_timeout=TIMEOUT)
        except ApiException as exc:
            if exc.status == 404:
                raise ConfigError("SecretNotFound",
                                  f"Secret {namespace}/{ref.name} (spec.mongo.uriSecretRef.name) "
                                  f"does not exist") from None
            raise _error(exc) from None
        raw = (secret.data or {}).get(ref.key)
        if raw is None:
            raise ConfigError("SecretKeyMissing",
                              f"Secret {namespace}/{ref.name} has no key {ref.key!r} "
                              f"(spec.mongo.uriSecretRef.key)")
        return base64.b64decode(raw).decode()

    def container_image(self, namespace: str, pod: str) -> str:
        """The image of a pod's first container (the operator's own, for its agents)."""
        try:
            obj = self.core.read_namespaced_pod(pod, namespace, _request_timeout=TIMEOUT)
        except ApiException as exc:
            raise _error(exc) from None
        return str(obj.spec.containers[0].image) if obj.spec else ""

    def workload(self, namespace: str, ref: WorkloadRef) -> Manifest | None:
        """The Mongo workload as a dict, or None when it does not exist."""
        read: Callable[..., Any] = (
            self.apps.read_namespaced_stateful_set if ref.kind == "StatefulSet"
            else self.apps.read_namespaced_deployment)
        return self._plain(_read_or_none(read, ref.name, namespace))

    def apply(self, manifest: Mapping[str, Any]) -> Manifest:
        """Server-side apply under the operator's field manager: one request creates or
        updates the object in place (same UID), and a field the manifest no longer declares
        is removed. ``force``: the operator is the owner of what it declares."""
        patch = self._patcher(manifest["kind"])
        meta = manifest["metadata"]
        try:
            obj = patch(meta["name"], meta["namespace"], manifest, field_manager=FIELD_MANAGER,
                        force=True, _content_type=APPLY_PATCH, _request_timeout=TIMEOUT)
        except ApiException as exc:
            raise _error(exc) from None
        result: Manifest = self.api_client.sanitize_for_serialization(obj)
        return result

    def apply_status(self, namespace: str, name: str, status: Mapping[str, Any]) -> None:
        """Server-side apply of a SmartIDDatabase's status: what the operator stops saying
        disappears (it owned the field), and nothing else is touched."""
        self.apply_custom_status(PLURAL, KIND, namespace, name, status)

    def delete(self, kind: str, namespace: str, name: str) -> bool:
        """Delete a child the spec no longer asks for; False if it was not there."""
        api, suffix = self._api(kind)
        try:
            getattr(api, f"delete_namespaced_{suffix}")(
                name, namespace, propagation_policy="Background", _request_timeout=TIMEOUT)
        except ApiException as exc:
            if exc.status == 404:
                return False
            raise _error(exc) from None
        return True

    def _patcher(self, kind: str) -> Callable[..., Any]:
        api, suffix = self._api(kind)
        patch: Callable[..., Any] = getattr(api, f"patch_namespaced_{suffix}")
        return patch

    def _api(self, kind: str) -> tuple[Any, str]:
        return {
            "ConfigMap": (self.core, "config_map"),
            "ServiceAccount": (self.core, "service_account"),
            "CronJob": (self.batch, "cron_job"),
            "Job": (self.batch, "job"),
            "Deployment": (self.apps, "deployment"),
        }[kind]

    # -- chaos outage tests (smartid_operator/chaos) -------------------------------------------

    def apply_custom_status(self, plural: str, kind: str, namespace: str, name: str,
                            status: Mapping[str, Any]) -> None:
        """Server-side apply of the status of one of our custom resources."""
        body = {"apiVersion": f"{GROUP}/{VERSION}", "kind": kind,
                "metadata": {"name": name, "namespace": namespace}, "status": dict(status)}
        try:
            self.custom.patch_namespaced_custom_object_status(
                GROUP, VERSION, namespace, plural, name, body, field_manager=FIELD_MANAGER,
                force=True, _content_type=APPLY_PATCH, _request_timeout=TIMEOUT)
        except ApiException as exc:
            raise _error(exc) from None

    def custom_object(self, plural: str, namespace: str, name: str) -> Manifest | None:
        obj = _read_or_none(self.custom.get_namespaced_custom_object, GROUP, VERSION,
                            namespace, plural, name)
        return None if obj is None else dict(obj)

    def create_custom(self, plural: str, namespace: str, body: Mapping[str, Any]) -> Manifest:
        try:
            obj: Any = self.custom.create_namespaced_custom_object(
                GROUP, VERSION, namespace, plural, dict(body), _request_timeout=TIMEOUT)
        except ApiException as exc:
            raise _error(exc) from None
        return dict(obj)

    def patch_custom(self, plural: str, namespace: str, name: str,
                     patch: Mapping[str, Any]) -> Manifest:
        """JSON merge patch of one of our custom resources (e.g. its ownerReferences)."""
        try:
            obj: Any = self.custom.patch_namespaced_custom_object(
                GROUP, VERSION, namespace, plural, name, dict(patch),
                _content_type=MERGE_PATCH, _request_timeout=TIMEOUT)
        except ApiException as exc:
            raise _error(exc) from None
        return dict(obj)

    def delete_custom(self, plural: str, namespace: str, name: str) -> bool:
        try:
            self.custom.delete_namespaced_custom_object(
                GROUP, VERSION, namespace, plural, name, _request_timeout=TIMEOUT)
        except ApiException as exc:
            if exc.status == 404:
                return False
            raise _error(exc) from None
        return True

    def _scale_call(self, ref: WorkloadRef, action: str) -> Callable[..., Any]:
        suffix = "stateful_set" if ref.kind == "StatefulSet" else "deployment"
        call: Callable[..., Any] = getattr(self.apps, f"{action}_namespaced_{suffix}_scale")
        return call

    def replicas(self, namespace: str, ref: WorkloadRef) -> int | None:
        """``spec.replicas`` from the workload's scale subresource; None if it does not exist."""
        obj = _read_or_none(self._scale_call(ref, "read"), ref.name, namespace)
        return None if obj is None else int(obj.spec.replicas or 0)

    def scale(self, namespace: str, ref: WorkloadRef, replicas: int) -> None:
        """Set replicas through the scale subresource (the only write to the workload's spec)."""
        try:
            self._scale_call(ref, "patch")(ref.name, namespace, {"spec": {"replicas": replicas}},
                                           _content_type=MERGE_PATCH, _request_timeout=TIMEOUT)
        except ApiException as exc:
            raise _error(exc) from None

    def annotate_workload(self, namespace: str, ref: WorkloadRef, key: str,
                          value: str | None) -> None:
        """Set (or, with None, remove) one annotation on the workload, nothing else."""
        suffix = "stateful_set" if ref.kind == "StatefulSet" else "deployment"
        patch = getattr(self.apps, f"patch_namespaced_{suffix}")
        try:
            patch(ref.name, namespace, {"metadata": {"annotations": {key: value}}},
                  _content_type=MERGE_PATCH, _request_timeout=TIMEOUT)
        except ApiException as exc:
            raise _error(exc) from None

    def create_job(self, manifest: Mapping[str, Any]) -> Manifest:
        """Create a Job; one of that name already there (a restarted run) is returned as is."""
        meta = manifest["metadata"]
        try:
            create: Callable[..., Any] = self.batch.create_namespaced_job  # takes a dict too
            obj = create(meta["namespace"], dict(manifest), _request_timeout=TIMEOUT)
        except ApiException as exc:
            if exc.status != 409:
                raise _error(exc) from None
            existing = self.job(meta["namespace"], meta["name"])
            if existing is None:
                raise _error(exc) from None
            return existing
        result: Manifest = self.api_client.sanitize_for_serialization(obj)
        return result

    def job(self, namespace: str, name: str) -> Manifest | None:
        return self._plain(_read_or_none(self.batch.read_namespaced_job, name, namespace))

    def config_map(self, namespace: str, name: str) -> Manifest | None:
        return self._plain(_read_or_none(self.core.read_namespaced_config_map, name,
                                         namespace))

    def _plain(self, obj: Any) -> Manifest | None:
        """A client model as the plain dict the rest of the operator works with."""
        if obj is None:
            return None
        result: Manifest = self.api_client.sanitize_for_serialization(obj)
        return result

    @classmethod
    def from_kubeconfig(cls, path: str | None = None, context: str | None = None) -> Kube:
        """For CLIs run by a person: a kubeconfig (default $KUBECONFIG) and a context."""
        return cls(config.new_client_from_config(config_file=path, context=context))
