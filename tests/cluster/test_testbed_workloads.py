"""Jobs, CronJobs and RBAC on the test bed behave as on a real cluster."""

from __future__ import annotations

import pytest
from kubernetes import client, config

from smartid_testbed.cluster import wait_for
from smartid_testbed.testbed import TestBed

OPERATOR_IMAGE = "smartid-operator:dev"
EXIT_WITH_SECRET = "import os, sys; print('exit', os.environ['EXIT_CODE']); " \
                   "sys.exit(int(os.environ['EXIT_CODE']))"


def job_manifest(name: str, command: list[str], env: list[dict] | None = None) -> dict:
    return {
        "apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": name},
        "spec": {"backoffLimit": 0, "template": {"spec": {
            "restartPolicy": "Never",
            "containers": [{"name": "main", "image": OPERATOR_IMAGE, "command": command,
                            "env": env or []}]}}},
    }


def job_condition(batch: client.BatchV1Api, namespace: str, name: str) -> str | None:
    job = batch.read_namespaced_job(name, namespace)
    for cond in job.status.conditions or []:
        if cond.type in ("Complete", "Failed") and cond.status == "True":
            return str(cond.type)
    return None


@pytest.mark.parametrize(("code", "outcome"), [("0", "Complete"), ("1", "Failed")])
def test_job_of_operator_image_ends_by_exit_code(
        testbed: TestBed, api_client: client.ApiClient, core: client.CoreV1Api, namespace: str,
        code: str, outcome: str) -> None:
    batch = client.BatchV1Api(api_client)
    core.create_namespaced_secret(namespace, client.V1Secret(
        metadata=client.V1ObjectMeta(name="exit"), string_data={"code": code}))
    env = [{"name": "EXIT_CODE",
            "valueFrom": {"secretKeyRef": {"name": "exit", "key": "code"}}}]
    batch.create_namespaced_job(namespace, job_manifest(
        "exit", ["python", "-c", EXIT_WITH_SECRET], env))
    assert wait_for(lambda: job_condition(batch, namespace, "exit"), timeout=60,
                    what=f"Job {outcome}") == outcome
    pods = core.list_namespaced_pod(namespace, label_selector="job-name=exit").items
    assert len(pods) == 1
    terminated = pods[0].status.container_statuses[0].state.terminated
    assert terminated.exit_code == int(code)
    assert pods[0].status.phase == ("Succeeded" if code == "0" else "Failed")


def test_pod_of_unknown_image_stays_pending_with_event(
        api_client: client.ApiClient, core: client.CoreV1Api, namespace: str) -> None:
    core.create_namespaced_pod(namespace, {
        "apiVersion": "v1", "kind": "Pod", "metadata": {"name": "nginx"},
        "spec": {"containers": [{"name": "nginx", "image": "nginx:1.27"}]}})

    def event() -> bool:
        events = core.list_namespaced_event(
            namespace, field_selector="involvedObject.name=nginx").items
        return any(e.reason == "ImageNotRunnable" for e in events)

    wait_for(event, timeout=30, what="ImageNotRunnable event")
    pod = core.read_namespaced_pod("nginx", namespace)
    assert pod.spec.node_name  # the real scheduler bound it to the stand-in's Node
    assert pod.status.phase == "Pending"


def test_cronjob_spawns_job_on_schedule(
        api_client: client.ApiClient, core: client.CoreV1Api, namespace: str) -> None:
    batch = client.BatchV1Api(api_client)
    batch.create_namespaced_cron_job(namespace, {
        "apiVersion": "batch/v1", "kind": "CronJob", "metadata": {"name": "tick"},
        "spec": {"schedule": "* * * * *", "jobTemplate": {"spec": job_manifest(
            "ignored", ["python", "-c", "print('tick')"])["spec"]}}})

    def completed_job() -> str | None:
        for job in batch.list_namespaced_job(namespace).items:
            owners = job.metadata.owner_references or []
            if any(o.kind == "CronJob" and o.name == "tick" for o in owners) and \
                    job_condition(batch, namespace, job.metadata.name) == "Complete":
                return str(job.metadata.name)
        return None

    # Every minute on the minute: at most ~60 s plus the controller's sync.
    job_name = wait_for(completed_job, timeout=100, interval=1, what="a CronJob-made Job")
    cron = batch.read_namespaced_cron_job("tick", namespace)
    assert cron.status.last_schedule_time is not None
    assert job_name.startswith("tick-")


def test_service_account_is_refused_what_its_role_does_not_grant(
        testbed: TestBed, api_client: client.ApiClient, core: client.CoreV1Api,
        namespace: str) -> None:
    rbac = client.RbacAuthorizationV1Api(api_client)
    core.create_namespaced_service_account(namespace, {"metadata": {"name": "reader"}})
    rbac.create_namespaced_role(namespace, {
        "metadata": {"name": "configmap-reader"},
        "rules": [{"apiGroups": [""], "resources": ["configmaps"], "verbs": ["get", "list"]}]})
    rbac.create_namespaced_role_binding(namespace, {
        "metadata": {"name": "reader"},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role",
                    "name": "configmap-reader"},
        "subjects": [{"kind": "ServiceAccount", "name": "reader", "namespace": namespace}]})
    core.create_namespaced_config_map(namespace, {"metadata": {"name": "c"}, "data": {"k": "v"}})
    kubeconfig = testbed.cluster.service_account_kubeconfig(namespace, "reader")
    as_sa = client.CoreV1Api(config.new_client_from_config(config_file=str(kubeconfig)))

    # RBAC is cached briefly by the authorizer's informers: wait for the grant to apply.
    wait_for(lambda: as_sa.read_namespaced_config_map("c", namespace).data == {"k": "v"},
             timeout=10, what="the Role's grant")
    with pytest.raises(client.ApiException) as denied:
        as_sa.list_namespaced_secret(namespace)
    assert denied.value.status == 403
    assert f"system:serviceaccount:{namespace}:reader" in denied.value.body
    with pytest.raises(client.ApiException) as other_ns:
        as_sa.read_namespaced_config_map("kube-root-ca.crt", "default")
    assert other_ns.value.status == 403
