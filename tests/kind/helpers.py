"""Waits shared by the kind tests; each says what it waited for when it gives up."""

from __future__ import annotations

import time
from typing import Any, cast

from kubernetes import client

from tests.kind.conftest import NAMESPACE

GROUP, VERSION, PLURAL = "smartid.io", "v1alpha1", "smartiddatabases"


def get_database(custom: client.CustomObjectsApi, name: str = "smartid") -> dict[str, Any]:
    return cast(dict[str, Any],
                custom.get_namespaced_custom_object(GROUP, VERSION, NAMESPACE, PLURAL, name))


def wait_status(custom: client.CustomObjectsApi, what: str, timeout: float,
                done: Any) -> dict[str, Any]:
    """Poll the sample SmartIDDatabase until ``done(status)`` holds."""
    deadline = time.monotonic() + timeout
    status: dict[str, Any] = {}
    while time.monotonic() < deadline:
        status = get_database(custom).get("status") or {}
        if done(status):
            return status
        time.sleep(2)
    raise AssertionError(f"no {what} after {timeout} s: {status}")


def wait_phase(custom: client.CustomObjectsApi, phase: str, timeout: float) -> dict[str, Any]:
    return wait_status(custom, f"phase {phase}", timeout, lambda s: s.get("phase") == phase)
