"""The kubelet stand-in's pure rules: which image runs how, and the env it gets."""

from __future__ import annotations

import json
import os
from pathlib import Path
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


# -- volumes -------------------------------------------------------------------------------------

DIRS = {"data": Path("/h/claim-1"), "scratch": Path("/h/pod/empty-dir/scratch"),
        "cfg": Path("/h/pod/configMap/cfg"), "ro-claim": Path("/h/claim-2")}
VOLUMES = [{"name": "data", "persistentVolumeClaim": {"claimName": "recordings"}},
           {"name": "ro-claim", "persistentVolumeClaim": {"claimName": "old", "readOnly": True}},
           {"name": "scratch", "emptyDir": {}},
           {"name": "cfg", "configMap": {"name": "cfg"}}]


def mounts_of(*volume_mounts: dict[str, Any], env: dict[str, str] | None = None
              ) -> list[podspec.Mount]:
    container = {"name": "c", "volumeMounts": list(volume_mounts)}
    return podspec.mount_plan(pod(container, VOLUMES), container, env or {}, DIRS)


def test_mount_plan_maps_mount_paths_to_volume_dirs_with_sub_paths() -> None:
    assert mounts_of(
        {"name": "data", "mountPath": "/recordings/"},
        {"name": "data", "mountPath": "/backups", "subPath": "dumps/daily"},
        {"name": "scratch", "mountPath": "/tmp/work", "subPathExpr": "$(POD)"},
        {"name": "cfg", "mountPath": "/etc/app.yaml", "subPath": "app.yaml"},
        env={"POD": "p-0"},
    ) == [podspec.Mount(Path("/h/claim-1"), "/recordings", False),
          podspec.Mount(Path("/h/claim-1/dumps/daily"), "/backups", False),
          podspec.Mount(Path("/h/pod/empty-dir/scratch/p-0"), "/tmp/work", False),
          podspec.Mount(Path("/h/pod/configMap/cfg/app.yaml"), "/etc/app.yaml", True)]


@pytest.mark.parametrize(("mount", "read_only"), [
    ({"name": "data", "mountPath": "/d"}, False),
    ({"name": "data", "mountPath": "/d", "readOnly": True}, True),
    ({"name": "ro-claim", "mountPath": "/d"}, True),  # the volume's readOnly wins
    ({"name": "cfg", "mountPath": "/d"}, True),  # file volumes are always read-only
])
def test_mount_plan_honours_read_only(mount: dict[str, Any], read_only: bool) -> None:
    assert mounts_of(mount)[0].read_only is read_only


@pytest.mark.parametrize(("mount", "message"), [
    ({"name": "data", "mountPath": "/d", "subPath": "../../etc"}, "relative path without"),
    ({"name": "data", "mountPath": "/d", "subPath": "/etc"}, "relative path without"),
    ({"name": "nope", "mountPath": "/d"}, 'volumeMount "nope" names no volume'),
    ({"name": "data", "mountPath": "relative"}, "must be absolute"),
    ({"name": "data", "mountPath": "/"}, "must be absolute, not /"),
])
def test_mount_plan_refuses_what_a_kubelet_refuses(mount: dict[str, Any], message: str) -> None:
    with pytest.raises(podspec.PodSpecError, match=message):
        mounts_of(mount)


def test_unsupported_volume_type_is_named() -> None:
    with pytest.raises(podspec.PodSpecError, match="nfs volumes are not supported"):
        podspec.volume_type({"name": "v", "nfs": {"server": "x", "path": "/"}})
    assert podspec.pod_claims(pod({"name": "c"}, VOLUMES)) == {"data": "recordings",
                                                               "ro-claim": "old"}


def bytes_of(table: dict[tuple[str, str], dict[str, str]]) -> podspec.BytesLookup:
    def read(ns: str, name: str) -> dict[str, bytes] | None:
        data = table.get((ns, name))
        return None if data is None else {k: v.encode() for k, v in data.items()}
    return read


def files_of(volume: dict[str, Any], token: str | None = None) -> dict[str, tuple[bytes, int]]:
    return podspec.volume_files(volume, pod({"name": "c"}), secrets=bytes_of(SECRETS),
                                configmaps=bytes_of(CONFIGMAPS), token=token)


def test_config_map_and_secret_volumes_are_files_per_key() -> None:
    assert files_of({"name": "v", "configMap": {"name": "cfg"}}) == {
        "LEVEL": (b"debug", 0o644), "MODE": (b"fast", 0o644)}
    assert files_of({"name": "v", "secret": {
        "secretName": "mongo", "defaultMode": 0o400,
        "items": [{"key": "uri", "path": "conn/uri"}]}}) == {
        "conn/uri": (b"mongodb://127.9.0.2:27017/smartid", 0o400)}
    assert files_of({"name": "v", "secret": {"secretName": "gone", "optional": True}}) == {}


@pytest.mark.parametrize(("volume", "message"), [
    ({"name": "v", "configMap": {"name": "gone"}}, 'configmap "gone" not found'),
    ({"name": "v", "secret": {"secretName": "mongo", "items": [{"key": "pw", "path": "pw"}]}},
     "couldn't find key pw in secret ns/mongo"),
    ({"name": "v", "configMap": {"name": "cfg", "items": [{"key": "MODE", "path": "../x"}]}},
     "relative path"),
])
def test_missing_config_map_or_key_for_a_volume_is_a_clear_error(
        volume: dict[str, Any], message: str) -> None:
    with pytest.raises(podspec.PodSpecError, match=message):
        files_of(volume)


def test_projected_service_account_volume_has_token_ca_and_namespace() -> None:
    # What the API server's ServiceAccount admission adds to every pod.
    CONFIGMAPS[("ns", "kube-root-ca.crt")] = {"ca.crt": "PEM"}
    try:
        volume = {"name": "kube-api-access-x", "projected": {"defaultMode": 0o644, "sources": [
            {"serviceAccountToken": {"expirationSeconds": 3607, "path": "token"}},
            {"configMap": {"name": "kube-root-ca.crt",
                           "items": [{"key": "ca.crt", "path": "ca.crt"}]}},
            {"downwardAPI": {"items": [{"path": "namespace", "fieldRef": {
                "apiVersion": "v1", "fieldPath": "metadata.namespace"}}]}}]}}
        assert files_of(volume, token="tok") == {
            "token": (b"tok", 0o644), "ca.crt": (b"PEM", 0o644), "namespace": (b"ns", 0o644)}
        assert "token" not in files_of(volume, token=None)
    finally:
        del CONFIGMAPS[("ns", "kube-root-ca.crt")]


def test_rewrite_fallback_replaces_whole_mount_path_prefixes_once() -> None:
    mounts = [podspec.Mount(Path("/h/rec"), "/recordings", False),
              podspec.Mount(Path("/h/rec-old"), "/recordings/old", True),
              podspec.Mount(Path("/h/data"), "/data", False)]
    argv, env, cwd = podspec.rewrite_for_mounts(
        ["backup", "--out=/recordings/x", "/recordings/old/y", "/database", "/x/data", "/data"],
        {"DIR": "/data", "URI": "file:///data/f", "OTHER": "/data.bak"}, mounts, "/data/work")
    assert argv == ["backup", "--out=/h/rec/x", "/h/rec-old/y", "/database", "/x/data", "/h/data"]
    assert env["DIR"] == "/h/data" and env["URI"] == "file:///h/data/f"
    assert env["OTHER"] == "/data.bak"
    assert json.loads(env[podspec.MOUNTS_ENV]) == {
        "/recordings": "/h/rec", "/recordings/old": "/h/rec-old", "/data": "/h/data"}
    assert cwd == "/h/data/work"
    # No mounts: nothing changes and no map is set.
    assert podspec.rewrite_for_mounts(["a"], {"K": "/data"}, []) == (["a"], {"K": "/data"}, None)


@pytest.mark.parametrize(("container", "written", "log", "code", "message"), [
    ({}, b'{"result":"Succeeded"}', b"noise\n", 0, '{"result":"Succeeded"}'),
    ({}, b"x" * 5000, b"", 1, "x" * 4096),  # a kubelet keeps 4096 bytes
    ({}, b"", b"Traceback\nboom\n", 1, ""),  # policy File: the log is not used
    ({"terminationMessagePolicy": "FallbackToLogsOnError"}, b"", b"Traceback\nboom\n", 1,
     "Traceback\nboom\n"),
    ({"terminationMessagePolicy": "FallbackToLogsOnError"}, b"", b"all fine\n", 0, ""),
    ({"terminationMessagePolicy": "FallbackToLogsOnError"}, b"own words", b"log\n", 2,
     "own words"),
    ({"terminationMessagePolicy": "FallbackToLogsOnError"}, b"",
     b"".join(b"line %d\n" % i for i in range(200)), 1,
     "".join(f"line {i}\n" for i in range(120, 200))),  # the last 80 lines
    ({"terminationMessagePolicy": "FallbackToLogsOnError"}, b"", b"y" * 3000, 1, "y" * 2048),
])
def test_termination_message_as_a_kubelet_reports_it(container: dict[str, Any], written: bytes,
                                                     log: bytes, code: int,
                                                     message: str) -> None:
    assert podspec.termination_message(container, written, log, code) == message
    assert podspec.termination_path(container) == "/dev/termination-log"
    assert podspec.termination_path({"terminationMessagePath": "/x/msg"}) == "/x/msg"


@pytest.mark.skipif(os.geteuid() != 0, reason="mount namespaces need root here")
def test_a_volume_over_the_image_files_parent_does_not_hide_them(tmp_path: Path) -> None:
    """The project checked out under /tmp while the pod mounts an emptyDir on /tmp (as CI may
    do): the image's files stay visible at their own paths inside the pod."""
    import json
    import subprocess
    import sys

    from smartid_testbed import mountns

    project = tmp_path / "checkout" / "project"
    project.mkdir(parents=True)
    (project / "code.py").write_text("print('image file')")
    volume, root = tmp_path / "emptydir", tmp_path / "root"
    volume.mkdir()
    root.mkdir()
    hidden_parent = str(tmp_path / "checkout")  # the mountPath hides the project's parent
    plan = {"root": str(root), "cwd": "/", "mounts": [[str(volume), hidden_parent, False]],
            "argv": ["/bin/sh", "-c", f"cat {project}/code.py; ls {hidden_parent}"]}
    bare = subprocess.run([sys.executable, "-I", mountns.__file__, json.dumps(plan)],
                          capture_output=True, text=True, timeout=30, check=False)
    if bare.returncode == mountns.START_ERROR and "unavailable" in bare.stderr:
        pytest.skip("no mount namespaces on this machine")
    assert "image file" not in bare.stdout  # hidden by the volume, as a mount would
    shown = subprocess.run([sys.executable, "-I", mountns.__file__,
                            json.dumps({**plan, "image": [str(project)]})],
                           capture_output=True, text=True, timeout=30, check=False)
    assert shown.returncode == 0, shown.stderr
    assert "image file" in shown.stdout
