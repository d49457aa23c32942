"""Tier 2: a real local control plane (etcd, kube-apiserver, controller-manager, scheduler)
and the kubelet stand-in, started once per session; a fresh namespace per test.

On CI (``CI=true``) a test-bed binary that cannot be built fails the run; elsewhere the tier is
skipped with the reason.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pymongo
import pymongo.database
import pytest
from kubernetes import client, config

from smartid_testbed import binaries
from smartid_testbed.install import install_operator
from smartid_testbed.mongo_server import MongoServer
from smartid_testbed.testbed import TestBed
from tests.cluster.helpers import new_namespace, require_ferretdb, start_mongo


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
    with new_namespace(core, f"t-{uuid.uuid4().hex[:8]}") as name:
        yield name


@pytest.fixture(scope="session")
def custom(api_client: client.ApiClient) -> client.CustomObjectsApi:
    return client.CustomObjectsApi(api_client)


@dataclass
class Operator:
    namespace: str
    pod: str
    ports: dict[str, int]
    bed: TestBed

    def logs(self) -> str:
        return self.bed.pod_logs(self.namespace, self.pod)


@pytest.fixture(scope="session")
def operator(testbed: TestBed, core: client.CoreV1Api) -> Operator:
    """The cluster-wide overlay, as shipped, under its own ServiceAccount and ClusterRole.

    Narrowed to the tests' namespaces (``t-*``) so a test may install the namespaced
    overlay into ``smartid`` beside it; the health check keeps its default interval (15 s),
    so what the tests see within seconds came from watch events, not the timer.
    """
    namespace, ports = install_operator(testbed, "deploy/overlays/cluster-wide",
                                        namespace_arg="--namespace=t-*")
    pod = core.list_namespaced_pod(
        namespace, label_selector="app.kubernetes.io/name=smartid-operator").items[0]
    return Operator(namespace, pod.metadata.name, ports, testbed)


@pytest.fixture
def mongo(testbed: TestBed, api_client: client.ApiClient, core: client.CoreV1Api,
          namespace: str) -> str:
    """A ready mongo StatefulSet and its URI Secret in the test's namespace; returns the URI."""
    return start_mongo(testbed, api_client, core, namespace)


@pytest.fixture(scope="session")
def mongo_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MongoServer]:
    """One real wire-protocol server process (FerretDB) for engine-level tests."""
    require_ferretdb()
    with MongoServer(tmp_path_factory.mktemp("mongo") / "data") as server:
        yield server


@pytest.fixture
def db(mongo_server: MongoServer) -> Iterator[pymongo.database.Database[dict[str, Any]]]:
    """A fresh database per test on the shared server."""
    name = f"t_{uuid.uuid4().hex[:10]}"
    with pymongo.MongoClient[dict[str, Any]](mongo_server.uri) as mc:
        yield mc[name]
        mc.drop_database(name)
