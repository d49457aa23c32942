"""Tier 3: runs only when the current kube context is a kind cluster (``make e2e-kind``)."""

from __future__ import annotations

import pytest
from kubernetes import config


def _kind_context() -> str | None:
    try:
        _, current = config.list_kube_config_contexts()
    except Exception:
        return None
    name = str(current["name"]) if current else ""
    return name if name.startswith("kind-") else None


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    context = _kind_context()
    for item in items:
        if "/tests/kind/" in str(item.path):
            item.add_marker(pytest.mark.kind)
            if context is None:
                item.add_marker(pytest.mark.skip(
                    reason="tier 3: the current kube context is not a kind cluster"))
