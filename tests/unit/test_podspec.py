"""The kubelet stand-in's pure rules: which image runs how, and the env it gets."""

from __future__ import annotations

from typing import Any

import pytest

from smartid_testbed import podspec

SECRETS = {("ns", "mongo"): {"uri": "mongodb://127.9.0.2:27017/smartid"}}
CONFIGMAPS = {("ns", "cfg"): {"LEVEL": "debug", "MODE": "fast"}}


def secrets(ns: str, name: str) -> dict[str, str] | None:
    return SECRETS.get((ns, name))


def configmaps(ns: str, name: str) -> dict[str, str] | None:
    return CONFIGMAPS.get((ns, name))


def pod(container: dict[str, Any], volumes: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    return {"metadata": {"name": "p-0", "namespace": "ns", "uid": "u-1"},
            "spec": {"containers": [container], "volumes": volumes or [],
                     "serviceAccountName": "sa", "nodeName": "n"},
            "status": {"podIP": "127.9.0.2"}}


@pytest.mark.parametrize(("image", "kind"), [
    ("mongo:7", "mongo"), ("docker.io/library/mongo:7.0.14", "mongo"),
    ("mongo@sha256:abc", "mongo"), ("ghcr.io/smartid/smartid-operator:0.1.0", "command"),
    ("smartid-operator", "command"), ("nginx:1.27", "unsupported"),
    ("registry:5000/mongo-express:1", "unsupported"),
])
def test_workload_kind_by_image(image: str, kind: str) -> None:
    assert podspec.workload_kind(image) == kind


def test_env_resolves_values_secrets_configmaps_fields_in_order() -> None:
    container = {
        "name": "c",
        "envFrom": [{"configMapRef": {"name": "cfg"}, "prefix": "CFG_"}],
        "env": [
            {"name": "URI", "valueFrom": {"secretKeyRef": {"name": "mongo", "key": "uri"}}},
            {"name": "POD", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
            {"name": "IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}},
            {"name": "GREETING", "value": "pod $(POD) at $(IP), $$(POD) kept, $(NOPE) kept"},
            {"name": "OPT", "valueFrom": {"secretKeyRef": {"name": "gone", "key": "k",
                                                           "optional": True}}},
        ],
    }
    env = podspec.container_env(pod(container), container, secrets=secrets,
                                configmaps=configmaps)
    assert env == {
        "CFG_LEVEL": "debug", "CFG_MODE": "fast",
        "URI": "mongodb://127.9.0.2:27017/smartid", "POD": "p-0", "IP": "127.9.0.2",
        "GREETING": "pod p-0 at 127.9.0.2, $(POD) kept, $(NOPE) kept",
    }


@pytest.mark.parametrize(("ref", "message"), [
    ({"name": "gone", "key": "uri"}, 'secret "gone" not found'),
    ({"name": "mongo", "key": "password"}, "couldn't find key password in secret ns/mongo"),
])
def test_missing_secret_or_key_is_a_clear_error(ref: dict[str, str], message: str) -> None:
    container = {"name": "c", "env": [{"name": "X", "valueFrom": {"secretKeyRef": ref}}]}
    with pytest.raises(podspec.PodSpecError, match=message):
        podspec.container_env(pod(container), container, secrets=secrets, configmaps=configmaps)


def test_argv_uses_image_entrypoint_when_no_command_and_expands_args() -> None:
    container = {"name": "c", "args": ["backup", "--uri", "$(URI)"]}
    assert podspec.container_argv(container, {"URI": "mongodb://x"}) == [
        "smartid-operator", "backup", "--uri", "mongodb://x"]
    container = {"name": "c", "command": ["python", "-c"], "args": ["print(1)"]}
    assert podspec.container_argv(container, {}) == ["python", "-c", "print(1)"]


def test_data_claim_prefers_the_volume_at_data_db() -> None:
    volumes = [{"name": "logs", "persistentVolumeClaim": {"claimName": "logs-0"}},
               {"name": "data", "persistentVolumeClaim": {"claimName": "data-mongo-0"}},
               {"name": "tmp", "emptyDir": {}}]
    container = {"name": "mongo", "volumeMounts": [{"name": "logs", "mountPath": "/var/log"},
                                                   {"name": "data", "mountPath": "/data/db/"}]}
    assert podspec.data_claim(pod(container, volumes)) == "data-mongo-0"
    assert podspec.data_claim(pod({"name": "m"}, volumes[:1])) == "logs-0"
    assert podspec.data_claim(pod({"name": "m"}, volumes[2:])) is None
