"""Tier 2: a real local control plane (etcd, kube-apiserver, controller-manager, scheduler)
and the kubelet stand-in, started once per session; a fresh namespace per test.

On CI (``CI=true``) a test-bed binary that cannot be built fails the run; elsewhere the tier is
skipped with the reason.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator

import pytest
from kubernetes import client, config

from smartid_testbed import binaries
from smartid_testbed.testbed import TestBed


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "/tests/cluster/" in str(item.path):
            item.add_marker(pytest.mark.cluster)


@pytest.fixture(scope="session")
def testbed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestBed]:
    try:
        binaries.ensure_all()
    except binaries.BuildError as exc:
        if os.environ.get("CI") == "true":
            pytest.fail(f"test-bed binaries could not be built: {exc}")
        pytest.skip(f"test-bed binaries could not be built: {exc}")
    bed = TestBed.start(tmp_path_factory.mktemp("testbed"))
    try:
        yield bed
    finally:
        bed.stop()


@pytest.fixture(scope="session")
def api_client(testbed: TestBed) -> client.ApiClient:
    return config.new_client_from_config(config_file=str(testbed.kubeconfig))


@pytest.fixture(scope="session")
def core(api_client: client.ApiClient) -> client.CoreV1Api:
    return client.CoreV1Api(api_client)


@pytest.fixture
def namespace(core: client.CoreV1Api) -> Iterator[str]:
    name = f"t-{uuid.uuid4().hex[:8]}"
    core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=name)))
    try:
        yield name
    finally:
        core.delete_namespace(name)
