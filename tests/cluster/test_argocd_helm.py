"""The Argo CD Application that installs the Helm chart (deploy/argocd/helm/operator.yaml),
against Argo CD 3.6.0's own CRDs on a real API server, as tests/cluster/test_argocd.py checks
the others: the Application itself, and what Argo CD would render and apply from its two
sources (the chart without its CRDs, with the Application's values; the CRDs from
deploy/argocd/crds, never pruned nor deleted)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from smartid_testbed.testbed import TestBed
from tests.cluster.argocd import serve_argocd, strict_dry_run
from tests.cluster.helm import CHART, ROOT, Helm, built_helm

APP = ROOT / "deploy/argocd/helm/operator.yaml"


@pytest.fixture(scope="module")
def argocd(testbed: TestBed) -> Path:
    return serve_argocd(testbed)


@pytest.fixture(scope="module")
def helm(tmp_path_factory: pytest.TempPathFactory) -> Helm:
    return built_helm(tmp_path_factory.mktemp("helm"))


def application() -> dict[str, Any]:
    app: dict[str, Any] = yaml.safe_load(APP.read_text())
    return app


def sources() -> tuple[dict[str, Any], dict[str, Any]]:
    chart, crds = application()["spec"]["sources"]
    return chart, crds


def test_argocd_accepts_the_application(testbed: TestBed, argocd: Path) -> None:
    out = strict_dry_run(testbed, APP)
    assert "serverside-applied (server dry run)" in out, out


def test_strict_validation_refuses_a_misspelt_helm_field(
        testbed: TestBed, argocd: Path, tmp_path: Path) -> None:
    """The same check fails on a misspelt field, so the pass above means something."""
    app = application()
    helm_source = app["spec"]["sources"][0]["helm"]
    helm_source["skipCRDs"] = helm_source.pop("skipCrds")
    path = tmp_path / "app.yaml"
    path.write_text(yaml.safe_dump(app))
    with pytest.raises(RuntimeError, match="skipCRDs: field not declared in schema"):
        strict_dry_run(testbed, path)


def test_the_sources_are_the_chart_without_crds_and_the_kept_crds() -> None:
    chart, crds = sources()
    assert ROOT / chart["path"] == CHART
    assert chart["helm"]["skipCrds"] is True
    assert (ROOT / crds["path"] / "kustomization.yaml").is_file()
    assert application()["spec"]["destination"]["namespace"] == "smartid"
    # The project allows this repository only: both sources are it.
    project = yaml.safe_load((ROOT / "deploy/argocd/apps/project.yaml").read_text())
    assert {chart["repoURL"], crds["repoURL"]} <= set(project["spec"]["sourceRepos"])


def test_what_argocd_renders_from_the_chart_is_accepted(
        testbed: TestBed, argocd: Path, helm: Helm, tmp_path: Path) -> None:
    """`helm template` as Argo CD runs it: release name, destination namespace, the
    Application's values, no CRDs; then a strict server-side dry run."""
    chart, _ = sources()
    values = tmp_path / "values.yaml"
    values.write_text(yaml.safe_dump(chart["helm"]["valuesObject"]))
    out = helm("template", chart["helm"]["releaseName"], str(CHART), "--namespace", "smartid",
               "--values", str(values))
    docs = [d for d in yaml.safe_load_all(out) if d]
    assert "CustomResourceDefinition" not in {d["kind"] for d in docs}
    deployment = next(d for d in docs if d["kind"] == "Deployment")
    image = chart["helm"]["valuesObject"]["image"]
    assert deployment["spec"]["template"]["spec"]["containers"][0]["image"] == \
        f"{image['repository']}:{image['tag']}"
    # Only what the AppProject admits: namespaced objects, in namespace smartid.
    assert {d["metadata"]["namespace"] for d in docs} == {"smartid"}
    applied = testbed.kubectl("apply", "--server-side", "--dry-run=server", "--validate=strict",
                              "--field-manager=smartid-argocd-test", "-f", "-",
                              input=yaml.safe_dump_all(docs))
    assert applied.count("serverside-applied (server dry run)") == len(docs), applied


def test_the_crds_source_keeps_every_crd(testbed: TestBed, argocd: Path) -> None:
    _, crds = sources()
    docs = [d for d in yaml.safe_load_all(testbed.kubectl("kustomize", str(ROOT / crds["path"])))
            if d]
    names = sorted(d["metadata"]["name"] for d in docs)
    ours = sorted(yaml.safe_load(p.read_text())["metadata"]["name"]
                  for p in (CHART / "crds").glob("*.yaml"))
    assert names == ours
    for doc in docs:
        annotations = doc["metadata"]["annotations"]
        assert annotations["argocd.argoproj.io/sync-options"] == "Prune=false,Delete=false"
        assert annotations["argocd.argoproj.io/sync-wave"] == "-1"
    out = testbed.kubectl("apply", "--server-side", "--dry-run=server", "--validate=strict",
                          "--field-manager=smartid-argocd-test", "-f", "-",
                          input=json.dumps({"apiVersion": "v1", "kind": "List", "items": docs}))
    assert out.count("serverside-applied (server dry run)") == len(docs), out
