"""The chart installed for real with Helm v4 on the test bed: one release for the module,
namespaced, in a namespace of its own. The samples go Ready under the chart's RBAC and an
outage test passes; `helm upgrade` with a changed value rolls the operator; `helm uninstall`
removes the operator and its RBAC and leaves the CRDs, the database, its data and its backups.

The only values set for the test bed are the ones testbed/smartid_testbed/install.py adjusts
for the kustomize install: free ports for metrics and liveness on 127.0.0.1 (the stand-in runs
the operator's pod as a local process on the shared host) and a faster health interval."""

from __future__ import annotations

import contextlib
import json
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass

import pymongo
import pytest
from kubernetes import client, config

from smartid_operator.backup import scan
from smartid_testbed.cluster import wait_for
from smartid_testbed.install import apply, render
from smartid_testbed.kubelet import MONGO_PORT
from smartid_testbed.processes import free_port
from smartid_testbed.testbed import TestBed
from tests.cluster.backups import backup_job
from tests.cluster.helm import CHART, Helm, HelmError, built_helm
from tests.cluster.helpers import create_run, get_db, wait_phase, wait_run

RELEASE = "smartid-operator"
OPERATOR = "app.kubernetes.io/name=smartid-operator"
CRDS = ("smartiddatabases.smartid.io", "smartidoutagetests.smartid.io",
        "smartidrestores.smartid.io")


@dataclass
class Release:
    helm: Helm
    namespace: str
    ports: dict[str, int]
    uri: str


def live(port: int) -> bool:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2) as resp:
        return bool(resp.status == 200)


def operator_pods(core: client.CoreV1Api, namespace: str) -> list[client.V1Pod]:
    return list(core.list_namespaced_pod(namespace, label_selector=OPERATOR).items)


@pytest.fixture(scope="module")
def release(testbed: TestBed, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Release]:
    helm = built_helm(tmp_path_factory.mktemp("helm"), testbed.kubeconfig)
    namespace = f"helm-{uuid.uuid4().hex[:8]}"
    ports = {"metrics": free_port(), "liveness": free_port()}
    helm("install", RELEASE, str(CHART), "--namespace", namespace, "--create-namespace",
         "--set", "liveness.bindAddress=127.0.0.1",
         "--set", f"liveness.port={ports['liveness']}",
         "--set", f"metrics.port={ports['metrics']}",
         "--set", "healthInterval=2", "--wait", "--timeout=3m")
    wait_for(lambda: live(ports["liveness"]), timeout=60, what="the operator's liveness probe")
    # The samples, in the release's namespace (deploy/samples names `smartid`), the Secret's
    # URI naming the address the kubelet stand-in publishes for mongo-0.
    uri = f"mongodb://{testbed.mongo_address(namespace, 'mongo-0')}:{MONGO_PORT}/smartid"
    samples = render(testbed, "deploy/samples")
    for doc in samples:
        doc["metadata"]["namespace"] = namespace
        if doc["kind"] == "Secret":
            doc["stringData"]["uri"] = uri
    apply(testbed, samples)
    try:
        yield Release(helm, namespace, ports, uri)
    finally:
        with contextlib.suppress(HelmError):  # the last test uninstalls it
            helm("uninstall", RELEASE, "--namespace", namespace, "--wait", "--timeout=2m")
        testbed.kubectl("delete", "namespace", namespace, "--wait=false")


def test_samples_go_ready_under_the_charts_rbac(
        release: Release, testbed: TestBed, core: client.CoreV1Api,
        custom: client.CustomObjectsApi) -> None:
    ns = release.namespace
    obj = wait_phase(custom, ns, "Ready", timeout=120)
    assert obj["status"]["schema"]["version"] == "v3", obj["status"]

    # The operator runs as the chart's ServiceAccount, bound by the chart's Role, which Helm
    # owns; nothing cluster-wide but the CRDs.
    (pod,) = operator_pods(core, ns)
    assert pod.spec.service_account_name == "smartid-operator"
    for kind in ("role", "rolebinding", "serviceaccount", "deployment"):
        meta = json.loads(testbed.kubectl("get", kind, "smartid-operator", "-n", ns,
                                          "-o", "json"))["metadata"]
        assert meta["labels"]["app.kubernetes.io/managed-by"] == "Helm", (kind, meta)
        assert meta["annotations"]["meta.helm.sh/release-name"] == RELEASE, (kind, meta)
    manifest = release.helm("get", "manifest", RELEASE, "--namespace", ns)
    assert "kind: ClusterRole" not in manifest
    # ... and holds no more than it should: no listing of Secrets, nothing elsewhere.
    as_operator = client.CoreV1Api(config.new_client_from_config(config_file=str(
        testbed.cluster.service_account_kubeconfig(ns, "smartid-operator"))))
    assert as_operator.read_namespaced_secret("smartid-mongo", ns).data["uri"]
    for forbidden in (lambda: as_operator.list_namespaced_secret(ns),
                      lambda: as_operator.list_namespaced_pod("default")):
        with pytest.raises(client.ApiException) as denied:
            forbidden()
        assert denied.value.status == 403


def test_an_outage_test_passes(release: Release, custom: client.CustomObjectsApi) -> None:
    ns = release.namespace
    wait_phase(custom, ns, "Ready", timeout=120)
    create_run(custom, ns, "helm-outage", outageSeconds=5, recordings=3,
               segmentsPerRecording=5)
    status = wait_run(custom, ns, "helm-outage", timeout=240)
    assert status["phase"] == "Passed", status
    assert (status["written"], status["reindexed"], status["lost"],
            status["duplicated"]) == (18, 18, 0, 0)


def test_an_upgrade_with_a_changed_value_rolls_the_operator(
        release: Release, core: client.CoreV1Api, custom: client.CustomObjectsApi) -> None:
    ns = release.namespace
    (before,) = operator_pods(core, ns)
    assert "--health-interval=2" in before.spec.containers[0].args
    release.helm("upgrade", RELEASE, str(CHART), "--namespace", ns, "--reuse-values",
                 "--set", "healthInterval=3", "--wait", "--timeout=3m")

    def rolled() -> client.V1Pod | None:
        pods = operator_pods(core, ns)
        new = [p for p in pods if p.metadata.uid != before.metadata.uid]
        return new[0] if len(pods) == 1 and new else None

    after = wait_for(rolled, timeout=90, what="the old operator pod replaced by a new one")
    assert "--health-interval=3" in after.spec.containers[0].args
    assert "--health-interval=2" not in after.spec.containers[0].args
    wait_for(lambda: live(release.ports["liveness"]), timeout=60, what="the new operator live")
    history = json.loads(release.helm("history", RELEASE, "--namespace", ns, "-o", "json"))
    assert [r["revision"] for r in history] == [1, 2]
    # The new operator takes the database over.
    wait_for(lambda: get_db(custom, ns)["status"].get("phase") == "Ready", timeout=60,
             what="the database Ready under the upgraded operator")


def documents(uri: str) -> dict[str, int]:
    with pymongo.MongoClient(uri, serverSelectionTimeoutMS=5000) as mc:
        db = mc.get_default_database()
        return {name: db[name].count_documents({}) for name in db.list_collection_names()}


def test_uninstall_leaves_the_crds_the_database_its_data_and_backups(
        release: Release, testbed: TestBed, api_client: client.ApiClient,
        core: client.CoreV1Api, custom: client.CustomObjectsApi) -> None:
    ns = release.namespace
    batch = client.BatchV1Api(api_client)
    assert backup_job(testbed, batch, ns, "before-uninstall") == "Complete", \
        testbed.pod_logs(ns, "before-uninstall")
    root = testbed.claim_path(ns, "smartid-backups")
    dumps = [d.name for d in scan(root).dumps]
    assert dumps, list(root.iterdir())
    data = documents(release.uri)
    assert data.get("recordings", 0) >= 3, data  # the outage test's recordings at least

    release.helm("uninstall", RELEASE, "--namespace", ns, "--wait", "--timeout=2m")

    # The operator and its RBAC are gone ...
    apps = client.AppsV1Api(api_client)
    wait_for(lambda: not operator_pods(core, ns), timeout=60, what="the operator pod gone")
    for read in (lambda: apps.read_namespaced_deployment("smartid-operator", ns),
                 lambda: core.read_namespaced_service_account("smartid-operator", ns),
                 lambda: client.RbacAuthorizationV1Api(api_client).read_namespaced_role(
                     "smartid-operator", ns)):
        with pytest.raises(client.ApiException) as gone:
            read()
        assert gone.value.status == 404
    assert not json.loads(release.helm("list", "--namespace", ns, "-o", "json"))
    # ... the CRDs, the database, its Mongo and volumes, its data and its backups are not.
    for crd in CRDS:
        testbed.kubectl("get", "crd", crd)
    assert get_db(custom, ns)["metadata"]["name"] == "smartid"
    assert apps.read_namespaced_stateful_set("mongo", ns).spec.replicas == 1
    claims = {c.metadata.name for c in core.list_namespaced_persistent_volume_claim(ns).items}
    assert {"smartid-backups", "smartid-recordings", "data-mongo-0"} <= claims, claims
    assert [d.name for d in scan(root).dumps] == dumps
    assert documents(release.uri) == data
