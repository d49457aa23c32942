"""The operator's one seam for Kubernetes I/O (besides Kopf's own watching and patching)."""

from __future__ import annotations

import base64
import logging
import os
from collections.abc import Callable, Mapping
from typing import Any

from kubernetes import client, config
from kubernetes.client.exceptions import ApiException

from smartid_operator.spec import SecretRef, SpecError, WorkloadRef

log = logging.getLogger(__name__)

MERGE_PATCH = "application/merge-patch+json"
Manifest = dict[str, Any]


def load_api_client() -> client.ApiClient:
    """In a pod: the ServiceAccount; elsewhere: ``KUBECONFIG`` / ``~/.kube/config``."""
    if os.environ.get("KUBERNETES_SERVICE_HOST") and not os.environ.get("KUBECONFIG"):
        config.load_incluster_config()
    else:
        config.load_kube_config()
    return client.ApiClient()


class Kube:
    def __init__(self, api_client: client.ApiClient) -> None:
        self.api_client = api_client
        self.core = client.CoreV1Api(api_client)
        self.apps = client.AppsV1Api(api_client)
        self.batch = client.BatchV1Api(api_client)

    def secret_value(self, namespace: str, ref: SecretRef) -> str:
        try:
            secret = self.core.read_namespaced_secret(ref.name, namespace)
        except ApiException as exc:
            if exc.status == 404:
                raise SpecError("SecretNotFound",
                                f"Secret {namespace}/{ref.name} (spec.mongo.uriSecretRef.name) "
                                f"does not exist") from None
            raise
        raw = (secret.data or {}).get(ref.key)
        if raw is None:
            raise SpecError("SecretKeyMissing",
                            f"Secret {namespace}/{ref.name} has no key {ref.key!r} "
                            f"(spec.mongo.uriSecretRef.key)")
        return base64.b64decode(raw).decode()

    def workload(self, namespace: str, ref: WorkloadRef) -> Manifest | None:
        """The Mongo workload as a dict, or None when it does not exist."""
        read: Callable[[str, str], Any] = (
            self.apps.read_namespaced_stateful_set if ref.kind == "StatefulSet"
            else self.apps.read_namespaced_deployment)
        try:
            obj = read(ref.name, namespace)
        except ApiException as exc:
            if exc.status == 404:
                return None
            raise
        result: Manifest = self.api_client.sanitize_for_serialization(obj)
        return result

    def apply(self, manifest: Mapping[str, Any]) -> Manifest:
        """Create the object; if it exists (409), merge-patch it in place (same UID)."""
        kind = manifest["kind"]
        create, patch = self._verbs(kind)
        namespace = manifest["metadata"]["namespace"]
        name = manifest["metadata"]["name"]
        try:
            obj = create(namespace, manifest)
        except ApiException as exc:
            if exc.status != 409:
                raise
            obj = patch(name, namespace, manifest, _content_type=MERGE_PATCH)
        result: Manifest = self.api_client.sanitize_for_serialization(obj)
        return result

    def _verbs(self, kind: str) -> tuple[Callable[..., Any], Callable[..., Any]]:
        api, suffix = {
            "ConfigMap": (self.core, "config_map"),
            "ServiceAccount": (self.core, "service_account"),
            "CronJob": (self.batch, "cron_job"),
            "Job": (self.batch, "job"),
            "Deployment": (self.apps, "deployment"),
        }[kind]
        return (getattr(api, f"create_namespaced_{suffix}"),
                getattr(api, f"patch_namespaced_{suffix}"))
