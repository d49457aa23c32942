"""Jobs, CronJobs, RBAC and pod volumes on the test bed behave as on a real cluster."""

from __future__ import annotations

import json
import os
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client, config

from smartid_testbed import binaries
from smartid_testbed.cluster import wait_for
from smartid_testbed.kubelet import NODE_NAME, VOLUMES_ENV
from smartid_testbed.testbed import TestBed
from tests.cluster.helpers import job_outcome

OPERATOR_IMAGE = "smartid-operator:dev"
EXIT_WITH_SECRET = "import os, sys; print('exit', os.environ['EXIT_CODE']); " \
                   "sys.exit(int(os.environ['EXIT_CODE']))"


def job_manifest(name: str, command: list[str], env: list[dict] | None = None,
                 volumes: list[dict] | None = None, mounts: list[dict] | None = None) -> dict:
    return {
        "apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": name},
        "spec": {"backoffLimit": 0, "template": {"spec": {
            "restartPolicy": "Never", "volumes": volumes or [],
            "containers": [{"name": "main", "image": OPERATOR_IMAGE, "command": command,
                            "env": env or [], "volumeMounts": mounts or []}]}}},
    }


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
    assert wait_for(lambda: job_outcome(batch, namespace, "exit"), timeout=60,
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
                    job_outcome(batch, namespace, job.metadata.name) == "Complete":
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


# -- volumes ---------------------------------------------------------------------------------

def claim(core: client.CoreV1Api, namespace: str, name: str,
          storage_class: str | None = None) -> None:
    spec: dict[str, Any] = {"accessModes": ["ReadWriteOnce"],
                            "resources": {"requests": {"storage": "1Gi"}}}
    if storage_class is not None:
        spec["storageClassName"] = storage_class
    core.create_namespaced_persistent_volume_claim(
        namespace, {"metadata": {"name": name}, "spec": spec})


def events(core: client.CoreV1Api, namespace: str, pod: str) -> list[client.CoreV1Event]:
    return list(core.list_namespaced_event(
        namespace, field_selector=f"involvedObject.name={pod}").items)


def container_waiting(core: client.CoreV1Api, namespace: str, pod: str) -> Any:
    statuses = core.read_namespaced_pod(pod, namespace).status.container_statuses or []
    return statuses[0].state.waiting if statuses else None


def python_job(name: str, program: str, mounts: list[dict]) -> dict:
    return job_manifest(name, ["python", "-c", textwrap.dedent(program)],
                        volumes=[{"name": "work", "persistentVolumeClaim": {"claimName": "work"}}],
                        mounts=mounts)


def test_jobs_share_files_through_a_claim_with_the_test(
        testbed: TestBed, api_client: client.ApiClient, core: client.CoreV1Api,
        namespace: str) -> None:
    batch = client.BatchV1Api(api_client)
    claim(core, namespace, "work")
    host = testbed.claim_path(namespace, "work")
    (host / "in.txt").write_text("from the test")
    mount = [{"name": "work", "mountPath": "/data"}]

    # A pod reads what the test dropped and writes beside it, at its mountPath.
    batch.create_namespaced_job(namespace, python_job("writer", """
        import os, sys
        text = open("/data/in.txt").read()
        os.makedirs("/data/out", exist_ok=True)
        open("/data/out/result.txt", "w").write(text.upper())
        sys.exit(0 if text == "from the test" else 3)
    """, mount))
    assert wait_for(lambda: job_outcome(batch, namespace, "writer"), timeout=60,
                    what="writer Job") == "Complete", testbed.pod_logs(namespace, "writer")
    assert (host / "out" / "result.txt").read_text() == "FROM THE TEST"

    # A second pod sees the first one's file; the exit code still decides the Job.
    check = """
        import sys
        try:
            sys.exit(0 if open("/out/{name}").read() == "FROM THE TEST" else 1)
        except FileNotFoundError:
            sys.exit(1)
    """
    sub = [{"name": "work", "mountPath": "/out", "subPath": "out"}]
    batch.create_namespaced_job(namespace, python_job(
        "reader", check.format(name="result.txt"), sub))
    batch.create_namespaced_job(namespace, python_job(
        "missing", check.format(name="absent.txt"), sub))
    assert wait_for(lambda: job_outcome(batch, namespace, "reader"), timeout=60,
                    what="reader Job") == "Complete"
    assert wait_for(lambda: job_outcome(batch, namespace, "missing"), timeout=60,
                    what="missing Job") == "Failed"


def test_pod_sees_each_volume_at_its_mount_path(
        testbed: TestBed, core: client.CoreV1Api, namespace: str) -> None:
    if testbed.volume_mode != "namespace":
        reason = f"volumes by {testbed.volume_mode}: {testbed.kubelet.volume_mode_reason}"
        # As root a mount namespace should work: failing to make one is a regression, unless
        # the rewrite was asked for (SMARTID_TESTBED_VOLUMES=rewrite).
        if os.geteuid() == 0 and not os.environ.get(VOLUMES_ENV):
            pytest.fail(reason)
        pytest.skip(reason)
    claim(core, namespace, "recordings")
    host = testbed.claim_path(namespace, "recordings")
    (host / "old").mkdir()
    (host / "old" / "2024.wav").write_text("riff")
    core.create_namespaced_config_map(namespace, {"metadata": {"name": "cfg"},
                                                  "data": {"level": "debug"}})
    core.create_namespaced_secret(namespace, client.V1Secret(
        metadata=client.V1ObjectMeta(name="mongo"), string_data={"uri": "mongodb://m/db"}))
    # Paths built at run time: only a real mount, not a rewrite of the args, can serve them.
    program = textwrap.dedent("""
        import json, os
        def attempt(fn):
            try:
                fn()
                return "ok"
            except OSError as exc:
                return exc.strerror
        root = "/" + "recordings"
        sa = "/var/run/secrets/kubernetes.io/serviceaccount"
        report = {
            "recordings": sorted(os.listdir(root)),
            "backups": sorted(os.listdir("/" + "backups")),
            "write_backups": attempt(lambda: open("/backups/x", "w")),
            "level": open("/etc/smartid/level").read(),
            "write_config": attempt(lambda: open("/etc/smartid/x", "w")),
            "uri": open("/etc/mongo-uri").read(),
            "scratch": attempt(lambda: open("/scratch/tmp", "w").write("t")),
            "namespace": open(sa + "/namespace").read(),
            "token": bool(open(sa + "/token").read()),
        }
        with open(root + "/report.json", "w") as out:
            json.dump(report, out)
    """)
    before = set(os.listdir("/"))
    core.create_namespaced_pod(namespace, {
        "apiVersion": "v1", "kind": "Pod", "metadata": {"name": "viewer"},
        "spec": {"restartPolicy": "Never", "volumes": [
            {"name": "rec", "persistentVolumeClaim": {"claimName": "recordings"}},
            {"name": "scratch", "emptyDir": {}},
            {"name": "cfg", "configMap": {"name": "cfg"}},
            {"name": "mongo", "secret": {"secretName": "mongo"}}],
            "containers": [{"name": "main", "image": OPERATOR_IMAGE,
                            "command": ["python", "-c", program], "volumeMounts": [
                                {"name": "rec", "mountPath": "/recordings"},
                                {"name": "rec", "mountPath": "/backups", "subPath": "old",
                                 "readOnly": True},
                                {"name": "scratch", "mountPath": "/scratch"},
                                {"name": "cfg", "mountPath": "/etc/smartid"},
                                {"name": "mongo", "mountPath": "/etc/mongo-uri",
                                 "subPath": "uri"}]}]}})
    wait_for(lambda: core.read_namespaced_pod("viewer", namespace).status.phase
             in ("Succeeded", "Failed"), timeout=60, what="viewer pod to finish")
    pod = core.read_namespaced_pod("viewer", namespace)
    assert pod.status.phase == "Succeeded", testbed.pod_logs(namespace, "viewer")
    assert json.loads((host / "report.json").read_text()) == {
        "recordings": ["old"], "backups": ["2024.wav"],
        "write_backups": "Read-only file system", "level": "debug",
        "write_config": "Read-only file system", "uri": "mongodb://m/db", "scratch": "ok",
        "namespace": namespace, "token": True}
    # The mount points were made inside the pod's namespace, never on the host.
    assert set(os.listdir("/")) == before
    assert not Path("/etc/smartid").exists() and not Path("/etc/mongo-uri").exists()

    # The emptyDir lives as long as the pod, not the container.
    pod_dir = testbed.kubelet.pod_dir(namespace, pod.metadata.uid)
    assert (pod_dir / "volumes" / "empty-dir" / "scratch" / "tmp").read_text() == "t"
    core.delete_namespaced_pod("viewer", namespace)
    wait_for(lambda: not pod_dir.exists(), timeout=30, what="the pod's emptyDir removed")
    assert (host / "report.json").exists()  # the claim's files outlive the pod


def test_pod_with_empty_dir_on_tmp_still_acts_as_its_service_account(
        testbed: TestBed, api_client: client.ApiClient, namespace: str) -> None:
    # The operator's own Deployment mounts an emptyDir at /tmp, where the test bed keeps the
    # pod's kubeconfig on the host: the pod must still reach the API server as itself.
    batch = client.BatchV1Api(api_client)
    # Fresh: nothing of the host's /tmp, but where the project itself lives under /tmp (a CI
    # checkout), its files, which stand in for the image's, are bound back at their paths.
    image = {Path(p).relative_to("/tmp").parts[0] for p in (sys.prefix, str(binaries.repo_root()))
             if p.startswith("/tmp/")}
    fresh_tmp = (f"set(os.listdir('/tmp')) <= {image!r}" if testbed.volume_mode == "namespace"
                 else "True")
    program = f"""
        import os, sys
        from kubernetes import client, config
        assert {fresh_tmp}, os.listdir('/tmp')
        config.load_kube_config()
        try:
            client.CoreV1Api().list_namespaced_secret(os.environ["NS"])
        except client.ApiException as exc:
            who = "system:serviceaccount:" + os.environ["NS"] + ":default"
            sys.exit(0 if exc.status == 403 and who in exc.body else 4)
        sys.exit(5)
    """
    job = job_manifest("as-sa", ["python", "-c", textwrap.dedent(program)],
                       env=[{"name": "NS", "valueFrom": {"fieldRef": {
                           "fieldPath": "metadata.namespace"}}}],
                       volumes=[{"name": "tmp", "emptyDir": {}}],
                       mounts=[{"name": "tmp", "mountPath": "/tmp"}])
    batch.create_namespaced_job(namespace, job)
    assert wait_for(lambda: job_outcome(batch, namespace, "as-sa"), timeout=60,
                    what="as-sa Job") == "Complete", testbed.pod_logs(namespace, "as-sa")


def test_pod_whose_claim_never_binds_stays_pending_with_event(
        core: client.CoreV1Api, namespace: str) -> None:
    claim(core, namespace, "never", storage_class="no-such-class")
    # Bound to the Node by hand: the scheduler would not place a pod with an unbound claim,
    # but a kubelet must still wait rather than run it without its volume.
    core.create_namespaced_pod(namespace, {
        "apiVersion": "v1", "kind": "Pod", "metadata": {"name": "stuck"},
        "spec": {"nodeName": NODE_NAME, "restartPolicy": "Never",
                 "volumes": [{"name": "data", "persistentVolumeClaim": {"claimName": "never"}}],
                 "containers": [{"name": "main", "image": OPERATOR_IMAGE,
                                 "command": ["python", "-c", "print('ran')"],
                                 "volumeMounts": [{"name": "data", "mountPath": "/data"}]}]}})

    def failed_mount() -> str | None:
        return next((e.message for e in events(core, namespace, "stuck")
                     if e.reason == "FailedMount"), None)

    message = wait_for(failed_mount, timeout=30, what="FailedMount event")
    assert 'persistentvolumeclaim "never" is not bound' in message
    assert "unmounted volumes=[data]" in message
    pod = core.read_namespaced_pod("stuck", namespace)
    assert pod.status.phase == "Pending"
    assert container_waiting(core, namespace, "stuck").reason == "ContainerCreating"


def test_missing_config_map_volume_is_a_config_error_until_it_appears(
        testbed: TestBed, core: client.CoreV1Api, namespace: str) -> None:
    core.create_namespaced_pod(namespace, {
        "apiVersion": "v1", "kind": "Pod", "metadata": {"name": "cfg"},
        "spec": {"restartPolicy": "Never",
                 "volumes": [{"name": "cfg", "configMap": {"name": "late"}}],
                 "containers": [{"name": "main", "image": OPERATOR_IMAGE,
                                 "command": ["python", "-c",
                                             "print(open('/cfg/k').read())"],
                                 "volumeMounts": [{"name": "cfg", "mountPath": "/cfg"}]}]}})

    def config_error() -> Any:
        waiting = container_waiting(core, namespace, "cfg")
        return waiting if waiting and waiting.reason == "CreateContainerConfigError" else None

    waiting = wait_for(config_error, timeout=30, what="CreateContainerConfigError")
    assert waiting.message == 'configmap "late" not found'
    assert core.read_namespaced_pod("cfg", namespace).status.phase == "Pending"

    core.create_namespaced_config_map(namespace, {"metadata": {"name": "late"},
                                                  "data": {"k": "arrived"}})
    wait_for(lambda: core.read_namespaced_pod("cfg", namespace).status.phase == "Succeeded",
             timeout=30, what="the pod to run once its ConfigMap exists")
    assert "arrived" in testbed.pod_logs(namespace, "cfg")


@pytest.mark.parametrize(("program", "policy", "code", "message"), [
    ("open('/dev/termination-log', 'w').write('{\"result\": \"done\"}')", "File", 0,
     '{"result": "done"}'),
    ("open('/var/msg', 'w').write('custom path'); raise SystemExit(3)", "File", 3,
     "custom path"),
    ("print('last words', flush=True); raise SystemExit(1)", "FallbackToLogsOnError", 1,
     "last words\n"),
])
def test_termination_message_reaches_the_pod_status(
        testbed: TestBed, api_client: client.ApiClient, core: client.CoreV1Api, namespace: str,
        program: str, policy: str, code: int, message: str) -> None:
    batch = client.BatchV1Api(api_client)
    job = job_manifest("msg", ["python", "-c", program])
    container = job["spec"]["template"]["spec"]["containers"][0]
    container["terminationMessagePolicy"] = policy
    if "/var/msg" in program:
        container["terminationMessagePath"] = "/var/msg"
    batch.create_namespaced_job(namespace, job)
    wait_for(lambda: job_outcome(batch, namespace, "msg"), timeout=60, what="Job finished")
    pod = core.list_namespaced_pod(namespace, label_selector="job-name=msg").items[0]
    terminated = pod.status.container_statuses[0].state.terminated
    assert (terminated.exit_code, terminated.message) == (code, message), \
        testbed.pod_logs(namespace, pod.metadata.name)
    # The file is the pod's own: the host's /dev and /var gained nothing.
    assert not Path("/dev/termination-log").exists() and not Path("/var/msg").exists()
