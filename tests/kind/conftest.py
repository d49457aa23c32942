"""Tier 3: a kind cluster that `make e2e-kind` (tests/kind/deploy.sh) has set up.

Opt-in by name, never by guess: the tests run only when ``SMARTID_KIND_CONTEXT`` names the
kube context of that cluster, and they talk to it through that context alone (the current
context is never read nor switched), so another kind cluster on the machine is left alone.
"""

from __future__ import annotations

import os
import subprocess

import pytest
from kubernetes import client, config

CONTEXT_ENV = "SMARTID_KIND_CONTEXT"
NAMESPACE = "smartid"


def kind_context() -> str | None:
    return os.environ.get(CONTEXT_ENV) or None


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    skip = pytest.mark.skip(reason=f"tier 3: set {CONTEXT_ENV} to a kind cluster's context "
                                   "(make e2e-kind does; needs Docker and kind)")
    for item in items:
        # Tests that use the cluster (the ``context`` fixture, directly or not); the rest of
        # this folder checks the tier's own scripts and runs everywhere.
        if "/tests/kind/" in str(item.path) and "context" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.kind)
            if kind_context() is None:
                item.add_marker(skip)


@pytest.fixture(scope="session")
def context() -> str:
    name = kind_context()
    assert name is not None
    return name


@pytest.fixture(scope="session")
def api(context: str) -> client.ApiClient:
    return config.new_client_from_config(context=context)


class Kubectl:
    """kubectl bound to the kind context (``--context``, never the current one)."""

    def __init__(self, context: str) -> None:
        self.context = context

    def __call__(self, *args: str, timeout: float = 60) -> str:
        return subprocess.run(["kubectl", "--context", self.context, *args],
                              capture_output=True, text=True, timeout=timeout,
                              check=True).stdout


@pytest.fixture(scope="session")
def kubectl(context: str) -> Kubectl:
    return Kubectl(context)
