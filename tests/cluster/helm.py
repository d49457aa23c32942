"""Helm v4 on the test bed: the binary built from its Go module into the test bed's cache
(smartid_testbed.binaries, like kube-apiserver), with its own cache, config and data folders,
so nothing of a person's Helm setup is read or written."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from smartid_testbed import binaries

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "charts" / "smartid-operator"
# Helm's own labels: the only difference the chart may have from the kustomize install.
HELM_LABELS = ("helm.sh/chart", "app.kubernetes.io/managed-by", "app.kubernetes.io/instance",
               "app.kubernetes.io/version")


class HelmError(RuntimeError):
    """helm exited non-zero; the message holds its stderr."""


class Helm:
    def __init__(self, home: Path, kubeconfig: Path | None = None) -> None:
        self.binary = binaries.find("helm")
        self.env = {**os.environ, "HELM_CACHE_HOME": str(home / "cache"),
                    "HELM_CONFIG_HOME": str(home / "config"),
                    "HELM_DATA_HOME": str(home / "data")}
        if kubeconfig is not None:
            self.env["KUBECONFIG"] = str(kubeconfig)

    def __call__(self, *args: str, timeout: float = 240) -> str:
        proc = subprocess.run([str(self.binary), *args], capture_output=True, text=True,
                              env=self.env, timeout=timeout)
        if proc.returncode != 0:
            raise HelmError(f"helm {' '.join(args)} failed: {proc.stderr.strip()}")
        return proc.stdout

    def template(self, *args: str, namespace: str = "smartid") -> list[dict[str, Any]]:
        """``helm template`` of the chart, CRDs included, as a list of objects."""
        out = self("template", "smartid-operator", str(CHART), "--namespace", namespace,
                   "--include-crds", *args)
        return [doc for doc in yaml.safe_load_all(out) if doc]


def built_helm(home: Path, kubeconfig: Path | None = None) -> Helm:
    """Helm, built first if need be; as for the test bed's binaries, a Helm that cannot be
    built fails the run on CI (CI=true) and skips the test elsewhere."""
    try:
        return Helm(home, kubeconfig)
    except binaries.BuildError as exc:
        if os.environ.get("CI") == "true":
            pytest.fail(f"Helm could not be built: {exc}")
        pytest.skip(f"Helm could not be built: {exc}")
