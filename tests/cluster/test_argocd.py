"""The Argo CD manifests against a real API server that knows Argo CD's own CRDs.

Argo CD's Application and AppProject CRDs and its stock argocd-cm come from
``tests/fixtures/argocd-3.6.0`` (Argo CD 3.6.0, unmodified, vendored with its Apache-2.0
LICENSE); ``SMARTID_ARGOCD_FIXTURES``
points at another Argo CD's (a folder with application-crd.yaml, appproject-crd.yaml and
argocd-cm.yaml, e.g. from ``kubectl get crd applications.argoproj.io -o yaml``).
"""

from __future__ import annotations

import json
import os
import shlex
import tempfile
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes import client

from smartid_testbed.cluster import wait_for
from smartid_testbed.testbed import TestBed
from tests.argocd_lua import ARGOCD, KEY, SCRIPT, argocd_health
from tests.cluster.argocd import serve_argocd, strict_dry_run
from tests.cluster.conftest import Operator
from tests.cluster.helpers import GROUP, PLURAL, VERSION, condition, database

ROOT = Path(__file__).resolve().parents[2]
# Every Kubernetes manifest we ship for Argo CD (the rest are patches and values).
MANIFESTS = sorted([ARGOCD / "smartid.yaml", *(ARGOCD / "apps").glob("*.yaml")])


@pytest.fixture(scope="module")
def argocd(testbed: TestBed) -> Path:
    return serve_argocd(testbed)


def test_the_manifests_are_the_ones_we_mean() -> None:
    kinds = sorted(d["kind"] for p in MANIFESTS for d in yaml.safe_load_all(p.read_text()))
    assert kinds == ["AppProject", "Application", "Application", "Application"]


@pytest.mark.parametrize("path", MANIFESTS, ids=[p.name for p in MANIFESTS])
def test_argocd_accepts_the_manifest(testbed: TestBed, argocd: Path, path: Path) -> None:
    out = strict_dry_run(testbed, path)
    assert "serverside-applied (server dry run)" in out, out


def test_strict_validation_refuses_an_unknown_field(testbed: TestBed, argocd: Path) -> None:
    """The same check fails on a misspelt field, so the passes above mean something."""
    app = yaml.safe_load((ARGOCD / "apps/operator.yaml").read_text())
    app["spec"]["syncPolicy"]["retry"]["backof"] = app["spec"]["syncPolicy"]["retry"].pop(
        "backoff")
    with tempfile.NamedTemporaryFile("w", suffix=".yaml") as handle:
        yaml.safe_dump(app, handle)
        handle.flush()
        with pytest.raises(RuntimeError, match="backof: field not declared in schema"):
            strict_dry_run(testbed, Path(handle.name))


def test_each_application_source_renders(testbed: TestBed) -> None:
    """Every path an Application syncs exists here and builds with kustomize."""
    apps = [d for p in MANIFESTS for d in yaml.safe_load_all(p.read_text())
            if d["kind"] == "Application"]
    for app in apps:
        path = ROOT / app["spec"]["source"]["path"]
        assert path.is_dir(), app["metadata"]["name"]
        if (path / "kustomization.yaml").exists():
            assert testbed.kubectl("kustomize", str(path)).strip()


def test_operator_application_overrides_the_image_and_keeps_crd_and_namespace(
        testbed: TestBed, argocd: Path) -> None:
    """What Argo CD renders for smartid-operator: its kustomize.images on deploy/argocd/operator."""
    app = yaml.safe_load((ARGOCD / "apps/operator.yaml").read_text())
    (image,) = app["spec"]["source"]["kustomize"]["images"]
    name, ref = image.split("=")
    new_name, new_tag = ref.rsplit(":", 1)
    with tempfile.TemporaryDirectory() as tmp:
        Path(tmp, "kustomization.yaml").write_text(yaml.safe_dump({
            # kustomize takes a base outside the folder only by a relative path
            "resources": [os.path.relpath(ROOT / app["spec"]["source"]["path"], tmp)],
            "images": [{"name": name, "newName": new_name, "newTag": new_tag}]}))
        docs = list(yaml.safe_load_all(testbed.kubectl("kustomize", tmp)))
        out = testbed.kubectl("apply", "--server-side", "--dry-run=server", "--validate=strict",
                              "--field-manager=smartid-argocd-test", "-k", tmp)
    assert "serverside-applied (server dry run)" in out, out
    by_kind = {d["kind"]: d for d in docs}
    container = by_kind["Deployment"]["spec"]["template"]["spec"]["containers"][0]
    assert container["image"] == ref
    keep = "Prune=false,Delete=false"
    crds = [d["metadata"] for d in docs if d["kind"] == "CustomResourceDefinition"]
    assert "smartiddatabases.smartid.io" in [crd["name"] for crd in crds]
    for crd in crds:
        assert crd["annotations"]["argocd.argoproj.io/sync-options"] == keep, crd["name"]
        # Established before the operator starts
        assert crd["annotations"]["argocd.argoproj.io/sync-wave"] == "-1", crd["name"]
    ns = by_kind["Namespace"]["metadata"]["annotations"]
    assert ns["argocd.argoproj.io/sync-options"] == keep


def documented_patch_step() -> list[str]:
    """The kubectl command the patch file's own header tells a user to run."""
    lines = [line.lstrip("#").strip() for line in
             (ARGOCD / "argocd-cm-patch.yaml").read_text().splitlines() if line.startswith("#")]
    start = next(i for i, line in enumerate(lines) if line.startswith("kubectl "))
    command = ""
    for line in lines[start:]:
        command += " " + line.removesuffix("\\").strip()
        if not line.endswith("\\"):
            break
    args = shlex.split(command)[1:]  # without "kubectl"
    return [str(ROOT / a) if a.startswith("deploy/") else a for a in args]


def test_documented_health_check_step_keeps_every_stock_key(
        testbed: TestBed, argocd: Path) -> None:
    stock: dict[str, Any] = yaml.safe_load((argocd / "argocd-cm.yaml").read_text())
    testbed.kubectl("apply", "--server-side", "-n", "argocd", "-f",
                    str(argocd / "argocd-cm.yaml"))
    step = documented_patch_step()
    assert step[:6] == ["-n", "argocd", "patch", "configmap", "argocd-cm", "--type"], step
    testbed.kubectl(*step)

    live = json.loads(testbed.kubectl("get", "configmap", "argocd-cm", "-n", "argocd",
                                      "-o", "json"))
    assert set(live["data"]) == set(stock["data"]) | {KEY}
    for key, value in stock["data"].items():
        assert live["data"][key] == value, key
    assert live["data"][KEY] == SCRIPT
    assert stock["metadata"]["labels"].items() <= live["metadata"]["labels"].items()


def _phase(custom: client.CustomObjectsApi, namespace: str, name: str,
           phase: str) -> dict[str, Any]:
    def check() -> dict[str, Any] | None:
        obj: dict[str, Any] = custom.get_namespaced_custom_object(
            GROUP, VERSION, namespace, PLURAL, name)
        return obj if (obj.get("status") or {}).get("phase") == phase else None

    result: dict[str, Any] = wait_for(check, timeout=90, what=f"{name} in phase {phase}")
    return result


def test_health_of_live_objects(operator: Operator, mongo: str, namespace: str,
                                custom: client.CustomObjectsApi) -> None:
    """The script on what the operator really writes: Ready is Healthy, Failed is Degraded."""
    custom.create_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, database())
    ready = _phase(custom, namespace, "smartid", "Ready")
    ready_condition = condition(ready, "Ready")
    assert ready_condition is not None
    assert argocd_health(SCRIPT, ready) == {"status": "Healthy",
                                            "message": ready_condition["message"]}
    # What lets the Applications do without ignoreDifferences: the operator adds nothing to
    # the object Git owns, neither a finalizer nor an annotation.
    assert not ready["metadata"].get("finalizers"), ready["metadata"]
    assert not ready["metadata"].get("annotations"), ready["metadata"]

    broken = database("broken")
    broken["spec"]["mongo"]["uriSecretRef"]["name"] = "no-such-secret"
    custom.create_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, broken)
    failed = _phase(custom, namespace, "broken", "Failed")
    verdict = argocd_health(SCRIPT, failed)
    assert verdict["status"] == "Degraded"
    assert "no-such-secret" in verdict["message"]
