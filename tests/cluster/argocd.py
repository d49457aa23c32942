"""Argo CD 3.6.0 on the test bed's API server, for the cluster-tier Argo CD tests: its CRDs
served (the vendored fixtures, or ``$SMARTID_ARGOCD_FIXTURES``) and a strict server-side dry
run of a manifest against them."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import yaml

from smartid_testbed.install import wait_established
from smartid_testbed.testbed import TestBed

ROOT = Path(__file__).resolve().parents[2]
FIXTURES_ENV = "SMARTID_ARGOCD_FIXTURES"
FIXTURE_FILES = ("application-crd.yaml", "appproject-crd.yaml", "argocd-cm.yaml")


def fixtures_dir() -> Path:
    return Path(os.environ.get(FIXTURES_ENV) or ROOT / "tests/fixtures/argocd-3.6.0")


def serve_argocd(testbed: TestBed) -> Path:
    """Argo CD's CRDs applied and served, and its namespace; returns the fixtures folder (a
    module's ``argocd`` fixture: the test is skipped where the fixtures are not found)."""
    folder = fixtures_dir()
    missing = [name for name in FIXTURE_FILES if not (folder / name).is_file()]
    if missing:
        pytest.skip(f"Argo CD fixtures not found: {', '.join(missing)} in {folder} "
                    f"(set {FIXTURES_ENV} to a folder holding {', '.join(FIXTURE_FILES)})")
    testbed.kubectl("apply", "--server-side", "-f", str(folder / "application-crd.yaml"),
                    "-f", str(folder / "appproject-crd.yaml"))
    wait_established(testbed, ["applications.argoproj.io", "appprojects.argoproj.io"])
    # Argo CD's own namespace, and the Applications' destination (CreateNamespace=true there;
    # a dry run creates nothing, so it must exist for the namespaced objects' dry run).
    for name in ("argocd", "smartid"):
        testbed.kubectl("apply", "--server-side", "-f", "-", input=yaml.safe_dump(
            {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}}))
    return folder


def strict_dry_run(bed: TestBed, path: Path) -> str:
    return bed.kubectl("apply", "--server-side", "--dry-run=server", "--validate=strict",
                       "--field-manager=smartid-argocd-test", "-f", str(path))
