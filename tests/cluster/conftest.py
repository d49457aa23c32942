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
from smartid_testbed.cluster import wait_for
from smartid_testbed.install import install_operator, mongo_statefulset
from smartid_testbed.kubelet import MONGO_PORT
from smartid_testbed.mongo_server import MongoServer
from smartid_testbed.testbed import TestBed
from tests.cluster.helpers import pod_ready


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
    uri = f"mongodb://{testbed.mongo_address(namespace, 'mongo-0')}:{MONGO_PORT}/smartid"
    core.create_namespaced_secret(namespace, client.V1Secret(
        metadata=client.V1ObjectMeta(name="smartid-mongo"), string_data={"uri": uri}))
    client.AppsV1Api(api_client).create_namespaced_stateful_set(namespace, mongo_statefulset())
    wait_for(lambda: pod_ready(core, namespace, "mongo-0"), timeout=60, what="mongo-0 Ready")
    return uri


@pytest.fixture(scope="session")
def mongo_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MongoServer]:
    """One real wire-protocol server process (FerretDB) for engine-level tests."""
    try:
        binaries.find("ferretdb")
    except binaries.BuildError as exc:
        if os.environ.get("CI") == "true":
            pytest.fail(f"FerretDB could not be built: {exc}")
        pytest.skip(f"FerretDB could not be built: {exc}")
    with MongoServer(tmp_path_factory.mktemp("mongo") / "data") as server:
        yield server


@pytest.fixture
def db(mongo_server: MongoServer) -> Iterator[pymongo.database.Database[dict[str, Any]]]:
    """A fresh database per test on the shared server."""
    name = f"t_{uuid.uuid4().hex[:10]}"
    with pymongo.MongoClient[dict[str, Any]](mongo_server.uri) as mc:
        yield mc[name]
        mc.drop_database(name)
