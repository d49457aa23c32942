"""The monitoring component's PodMonitors and PrometheusRule, as a kustomize overlay renders
them, accepted by the Prometheus Operator's own CRDs (a pinned release, vendored under
tests/fixtures with its LICENSE) in a strict server-side dry run on the test bed's API server.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest
import yaml

from smartid_operator.monitoring import render
from smartid_testbed.install import wait_established
from smartid_testbed.testbed import TestBed

ROOT = Path(__file__).resolve().parents[2]
CRDS_ENV = "SMARTID_PROMETHEUS_OPERATOR_CRDS"
CRD_FILES = ("monitoring.coreos.com_podmonitors.yaml", "monitoring.coreos.com_prometheusrules.yaml")
NAMESPACE = "smartid-system"


@pytest.fixture(scope="module")
def crds(testbed: TestBed) -> Path:
    folder = Path(os.environ.get(CRDS_ENV) or ROOT / "tests/fixtures/prometheus-operator-0.85.0")
    missing = [name for name in CRD_FILES if not (folder / name).is_file()]
    if missing:
        pytest.skip(f"Prometheus Operator CRDs not found: {', '.join(missing)} in {folder}")
    testbed.kubectl("apply", "--server-side", *(a for n in CRD_FILES
                                                 for a in ("-f", str(folder / n))))
    wait_established(testbed, ["podmonitors.monitoring.coreos.com",
                               "prometheusrules.monitoring.coreos.com"])
    testbed.kubectl("apply", "--server-side", "-f", "-", input=yaml.safe_dump(
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NAMESPACE}}))
    return folder


def overlay(bed: TestBed, tmp_path: Path, components: list[str],
            resources: list[str] | None = None) -> str:
    """`kubectl kustomize` of an overlay in ``tmp_path`` using our components."""
    base = os.path.relpath(ROOT / "deploy/components", tmp_path)
    (tmp_path / "kustomization.yaml").write_text(yaml.safe_dump({
        "namespace": NAMESPACE, "resources": resources or [],
        "components": [f"{base}/{c}" for c in components]}))
    return bed.kubectl("kustomize", str(tmp_path))


def dry_run(bed: TestBed, manifests: str) -> str:
    return bed.kubectl("apply", "--server-side", "--dry-run=server", "--validate=strict",
                       "--field-manager=smartid-monitoring-test", "-f", "-", input=manifests)


def test_the_component_passes_a_strict_server_side_dry_run(crds: Path, testbed: TestBed,
                                                            tmp_path: Path) -> None:
    out = dry_run(testbed, overlay(testbed, tmp_path, ["monitoring"]))
    assert out.count("(server dry run)") == 3, out
    for name in ("podmonitor.monitoring.coreos.com/smartid-operator",
                 "podmonitor.monitoring.coreos.com/smartid-recovery-agents",
                 "prometheusrule.monitoring.coreos.com/smartid-operator-alerts"):
        assert name in out, out


def test_with_thresholds_from_a_configmap_too(crds: Path, testbed: TestBed,
                                              tmp_path: Path) -> None:
    example = (ROOT / "deploy/components/monitoring-thresholds/thresholds.example.yaml")
    (tmp_path / "thresholds.yaml").write_text(example.read_text().replace(
        "mongoUnreachableFor: 2m", "mongoUnreachableFor: 30s"))
    manifests = overlay(testbed, tmp_path, ["monitoring", "monitoring-thresholds"],
                        ["thresholds.yaml"])
    assert "kind: ConfigMap" not in manifests  # local-config: read, never applied
    rule = next(d for d in yaml.safe_load_all(manifests) if d["kind"] == "PrometheusRule")
    fors = {r["alert"]: r["for"] for r in rule["spec"]["groups"][0]["rules"] if "alert" in r}
    assert fors["SmartIDMongoUnreachable"] == "30s"
    assert dry_run(testbed, manifests).count("(server dry run)") == 3


def test_strict_validation_refuses_what_the_crds_do_not_know(crds: Path,
                                                             testbed: TestBed) -> None:
    """The dry run has teeth: a misspelt field and a bad duration are refused."""
    monitor: dict[str, Any] = render.pod_monitors()[0]
    monitor["metadata"]["namespace"] = NAMESPACE
    monitor["spec"]["podMetricsEndpoints"][0]["honourLabels"] = True
    with pytest.raises(RuntimeError, match="honourLabels"):
        dry_run(testbed, yaml.safe_dump(monitor))
    rule = render.prometheus_rule(render.rules({"mongoUnreachableFor": "two minutes"}))
    rule["metadata"]["namespace"] = NAMESPACE
    with pytest.raises(RuntimeError, match="for"):
        dry_run(testbed, yaml.safe_dump(rule))
