"""Backups in an S3-compatible bucket, against a real S3 server (SeaweedFS ``weed mini``, from
the test bed's pinned wheel): the commands with credentials from the environment, the backup
CronJob's Jobs on the real control plane, the faults, and a disaster restore into a new test
bed from the bucket alone."""

from __future__ import annotations

import datetime
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pymongo
import pytest
from kubernetes import client, config

from smartid_operator.backup.engine.builtin_engine import BuiltinEngine
from smartid_operator.backup.engine.progress import Quiet
from smartid_operator.backup.engine.prune import STALE_AFTER, prune
from smartid_operator.backup.engine.retention import Policy
from smartid_operator.backup.engine.run import RunSettings, dump
from smartid_operator.backup.engine.s3 import S3Config, S3Storage
from smartid_operator.backup.engine.storage import Scan, StorageError
from smartid_operator.backup.engine.verify import collection_digest
from smartid_testbed.cluster import wait_for
from smartid_testbed.install import apply, install_operator, mongo_statefulset, render
from smartid_testbed.kubelet import MONGO_PORT
from smartid_testbed.mongo_server import MongoServer
from smartid_testbed.s3_server import Identity, S3Server, S3ServerError
from smartid_testbed.testbed import TestBed
from tests.cluster.backups import (
    CRONJOB,
    RESTORES,
    backup_job,
    backup_now,
    wait_backup,
    wait_backup_healthy,
    wait_restore,
)
from tests.cluster.conftest import Operator
from tests.cluster.helpers import (
    GROUP,
    PLURAL,
    VERSION,
    assert_no_exceptions,
    condition,
    database,
    get_db,
    job_outcome,
    pod_ready,
    scale,
)
from tests.cluster.helpers import wait_phase as _wait_phase

BUCKET, LOCKED = "smartid-backups", "smartid-locked"
CLI = [sys.executable, "-m", "smartid_operator", "backup"]


@pytest.fixture(scope="module")
def s3(tmp_path_factory: pytest.TempPathFactory) -> Iterator[S3Server]:
    try:
        server = S3Server(tmp_path_factory.mktemp("s3") / "data", buckets=(BUCKET, LOCKED),
                          tls=True)
        server.start()
    except S3ServerError as exc:
        if os.environ.get("CI") == "true":
            pytest.fail(f"the S3 server could not start: {exc}")
        pytest.skip(f"the S3 server could not start: {exc}")
    server.deny_delete(LOCKED)
    try:
        yield server
    finally:
        server.stop()


def storage(s3: S3Server, prefix: str, bucket: str = BUCKET,
            who: Identity | None = None) -> S3Storage:
    who = who or s3.admin
    return S3Storage(S3Config(bucket, prefix, s3.endpoint, "us-east-1", True, who.access_key,
                              who.secret_key))


def aws_env(s3: S3Server, who: Identity, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("SMARTID_", "AWS_"))}
    env.update(AWS_ACCESS_KEY_ID=who.access_key, AWS_SECRET_ACCESS_KEY=who.secret_key,
               AWS_ENDPOINT_URL=s3.endpoint, AWS_REGION="us-east-1",
               SMARTID_BACKUP_S3_FORCE_PATH_STYLE="true", SMARTID_BACKUP_ENGINE="builtin",
               **extra)
    return env


def cli(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*CLI, *args], env=env, capture_output=True, text=True, timeout=240,
                          check=False)


def content(uri: str, database: str) -> dict[str, tuple[int, str]]:
    """Per collection: count and content hash (order-independent, over the raw BSON)."""
    result = {}
    with pymongo.MongoClient[dict[str, Any]](uri) as mc:
        for name in sorted(mc[database].list_collection_names()):
            digest = collection_digest(mc, database, name)  # type: ignore[arg-type]
            result[name] = (digest.count, digest.hexdigest)
    return result


def seed(uri: str, database: str, documents: int = 300) -> None:
    with pymongo.MongoClient[dict[str, Any]](uri) as mc:
        db = mc[database]
        db.parsed_segments.insert_many([{"doc_id": f"d{i}", "tenant_id": f"t{i % 3}",
                                         "page_number": i % 7, "text": f"segment {i}"}
                                        for i in range(documents)])
        db.parsed_segments.create_index([("tenant_id", 1), ("doc_id", 1), ("page_number", 1)],
                                        name="tenant_id_1_doc_id_1")
        db.users.insert_many([{"email": f"u{i}@x", "tenant_id": "t"} for i in range(20)])


def wait_phase(custom: client.CustomObjectsApi, namespace: str, phase: str,
               timeout: float = 90) -> dict[str, Any]:
    try:
        return _wait_phase(custom, namespace, phase, timeout=timeout)
    except TimeoutError as exc:
        raise AssertionError(f"{exc}: {get_db(custom, namespace).get('status')}") from None


# -- the commands, anywhere -----------------------------------------------------------------------

def test_run_list_verify_restore_against_a_bucket_with_aws_environment(
        s3: S3Server, mongo_server: MongoServer, tmp_path: Path) -> None:
    source = f"s3src_{os.getpid()}"
    seed(mongo_server.uri, source)
    env = aws_env(s3, s3.writer, SMARTID_MONGO_URI=mongo_server.uri + source,
                  SMARTID_BACKUP_S3_SSE="AES256")
    url = f"s3://{BUCKET}/cli"
    ran = cli(["run", "--to", url, "--database", source], env)
    assert ran.returncode == 0, ran.stderr
    dumps = storage(s3, "cli").scan().dumps
    assert len(dumps) == 1 and dumps[0].verified is True, dumps
    name = dumps[0].name
    keys = {o.object_name for o in s3.client().list_objects(BUCKET, "cli/", recursive=True)}
    # mongodump's layout under <prefix>/<database>-<UTC time>/, the manifest beside it.
    assert f"cli/{name}/{source}/parsed_segments.bson.gz" in keys
    assert f"cli/{name}/{source}/parsed_segments.metadata.json.gz" in keys
    assert f"cli/{name}/smartid-manifest.json" in keys
    for key in keys:  # server-side encryption asked for every object, the manifest included
        stat = s3.client().stat_object(BUCKET, key)
        assert stat.metadata.get("x-amz-server-side-encryption") == "AES256", key
    assert s3.writer.secret_key not in ran.stderr + ran.stdout

    listed = cli(["list", "--from", url], env)
    assert listed.returncode == 0 and name in listed.stdout, listed
    verified = cli(["verify", "--from", url, name], env)
    assert verified.returncode == 0 and "Passed" in verified.stdout, verified
    target = f"{source}_restored"
    restored = cli(["restore", "--from", url, "latest-verified", "--target-database", target],
                   env)
    assert restored.returncode == 0, restored.stderr
    assert content(mongo_server.uri, target) == content(mongo_server.uri, source)

    # With the objects copied out as `aws s3 cp --recursive` would, the dump is a plain
    # directory that the directory storage (and mongorestore) reads.
    copy = tmp_path / "copy" / name
    for obj in s3.client().list_objects(BUCKET, f"cli/{name}/", recursive=True):
        out = copy / str(obj.object_name)[len(f"cli/{name}/"):]
        out.parent.mkdir(parents=True, exist_ok=True)
        s3.client().fget_object(BUCKET, str(obj.object_name), str(out))
    local = cli(["verify", "--dir", str(copy.parent), name], env)
    assert local.returncode == 0 and "Passed" in local.stdout, local


def test_an_upload_without_manifest_is_no_dump_and_is_pruned_after_the_grace(
        s3: S3Server, mongo_server: MongoServer) -> None:
    source = f"s3orphan_{os.getpid()}"
    seed(mongo_server.uri, source, 50)
    store = storage(s3, "orphans")
    good = dump(mongo_server.uri + source, store, RunSettings(source), BuiltinEngine(), Quiet())
    # What a cut upload leaves: objects of a dump whose manifest never went up.
    s3.client().fput_object(BUCKET, f"orphans/{source}-20200101T000000Z/prelude.json.gz",
                            __file__)
    scan = store.scan()
    assert [m.name for m in scan.dumps] == [good.name]
    assert [p.name for p in scan.partial] == [f"{source}-20200101T000000Z"]
    now = datetime.datetime.now(datetime.UTC)
    assert prune(store, Policy(days=7), now).stale_removed == []  # within the grace
    report = prune(store, Policy(days=7), now + STALE_AFTER + datetime.timedelta(minutes=1))
    assert report.stale_removed == [f"{source}-20200101T000000Z"]
    assert store.scan().partial == [] and [m.name for m in store.scan().dumps] == [good.name]



class Corrupting(S3Storage):
    """Uploads one file with a byte flipped, as a faulty proxy or disk would store it."""

    def publish(self, staged: Path, manifest: Any) -> None:
        upload = self.client.fput_object

        def flip(bucket: str, key: str, path: str, **kwargs: Any) -> Any:
            if key.endswith("prelude.json.gz"):
                data = bytearray(Path(path).read_bytes())
                data[-1] ^= 0xFF
                Path(path).write_bytes(bytes(data))
            return upload(bucket, key, path, **kwargs)

        self.client.fput_object = flip  # type: ignore[method-assign]
        super().publish(staged, manifest)


def test_an_object_that_differs_after_upload_is_caught_and_no_dump_is_published(
        s3: S3Server, mongo_server: MongoServer) -> None:
    source = f"s3corrupt_{os.getpid()}"
    seed(mongo_server.uri, source, 20)
    admin = storage(s3, "corrupt")
    with pytest.raises(StorageError, match=r"prelude.json.gz: stored sha256 differs"):
        dump(mongo_server.uri + source, Corrupting(admin.config), RunSettings(source),
             BuiltinEngine(), Quiet())
    scan = admin.scan()
    assert scan.dumps == [] and len(scan.partial) == 1  # objects, but no manifest


# -- the operator ---------------------------------------------------------------------------------

def s3_backup_spec(s3: S3Server, prefix: str, bucket: str = BUCKET,
                   **extra: Any) -> dict[str, Any]:
    return {"enabled": True, "schedule": "30 3 * * *", "retention": {"days": 7, "keepLast": 1},
            "storage": {"s3": {"bucket": bucket, "prefix": prefix, "endpoint": s3.endpoint,
                               "region": "us-east-1", "forcePathStyle": True,
                               "credentialsSecretRef": {"name": "s3-credentials"}}},
            "startingDeadlineSeconds": 120, "activeDeadlineSeconds": 600, "backoffLimit": 0,
            **extra}


def credentials_secret(core: client.CoreV1Api, namespace: str, who: Identity,
                       secret_key: str | None = None) -> None:
    body = client.V1Secret(metadata=client.V1ObjectMeta(name="s3-credentials"), string_data={
        "AWS_ACCESS_KEY_ID": who.access_key,
        "AWS_SECRET_ACCESS_KEY": secret_key or who.secret_key})
    try:
        core.create_namespaced_secret(namespace, body)
    except client.ApiException as exc:
        if exc.status != 409:
            raise
        core.replace_namespaced_secret("s3-credentials", namespace, body)


def no_secret_anywhere(secret: str, testbed: TestBed, core: client.CoreV1Api, namespace: str,
                       operator: Operator, obj: dict[str, Any], *pods: str) -> None:
    events = " ".join(str(e.message) for e in core.list_namespaced_event(namespace).items)
    logs = "".join(testbed.pod_logs(namespace, pod) for pod in pods)
    for where, text in (("status", str(obj.get("status"))), ("Events", events),
                        ("Job logs", logs), ("operator log", operator.logs())):
        assert secret not in text, f"the secret key appears in the {where}"


def test_a_job_from_the_cronjob_puts_a_verified_dump_in_the_bucket(
        operator: Operator, testbed: TestBed, api_client: client.ApiClient,
        core: client.CoreV1Api, custom: client.CustomObjectsApi, namespace: str, mongo: str,
        s3: S3Server) -> None:
    batch = client.BatchV1Api(api_client)
    seed(mongo, "smartid", 120)
    credentials_secret(core, namespace, s3.writer)
    custom.create_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL,
                                           database(backup=s3_backup_spec(s3, namespace)))
    wait_phase(custom, namespace, "Ready", timeout=90)
    cron = api_client.sanitize_for_serialization(
        batch.read_namespaced_cron_job(CRONJOB, namespace))
    pod = cron["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    container = pod["containers"][0]
    # Nothing secret on the command line.
    assert container["args"] == ["backup", "run", "--termination-log=/dev/termination-log"]
    env = {e["name"]: e for e in container["env"]}
    assert env["AWS_SECRET_ACCESS_KEY"]["valueFrom"] == {"secretKeyRef": {
        "name": "s3-credentials", "key": "AWS_SECRET_ACCESS_KEY"}}
    assert env["SMARTID_BACKUP_S3_URL"]["value"] == f"s3://{BUCKET}/{namespace}"
    assert env["AWS_ENDPOINT_URL"]["value"] == s3.endpoint
    assert not any("persistentVolumeClaim" in v for v in pod["volumes"])

    assert backup_job(testbed, batch, namespace, "to-s3") == "Complete", \
        testbed.pod_logs(namespace, "to-s3")
    dumps = storage(s3, namespace).scan().dumps
    assert len(dumps) == 1 and dumps[0].verified is True
    assert dumps[0].counts["parsed_segments"] == 120
    obj = wait_backup(custom, namespace, "status.backup from the bucket", lambda o: (
        o["status"].get("backup", {}).get("lastVerifiedDump", {}).get("name") == dumps[0].name
        and (condition(o, "BackupHealthy") or {}).get("reason") == "LastBackupSucceeded"))
    section = obj["status"]["backup"]
    assert section["latestDump"]["name"] == dumps[0].name and section["dumps"] == 1
    assert section["retention"]["applied"] is True
    no_secret_anywhere(s3.writer.secret_key, testbed, core, namespace, operator, obj, "to-s3")

    # A SmartIDRestore from the bucket (named as its source, as after a disaster).
    source = s3_backup_spec(s3, namespace)["storage"]
    custom.create_namespaced_custom_object(GROUP, VERSION, namespace, RESTORES, {
        "apiVersion": f"{GROUP}/{VERSION}", "kind": "SmartIDRestore",
        "metadata": {"name": "from-s3"},
        "spec": {"database": "smartid", "targetDatabase": "smartid_from_s3", "source": source}})
    status = wait_restore(custom, namespace, "from-s3")["status"]
    assert (status["phase"], status["dump"]) == ("Succeeded", dumps[0].name), \
        (status, testbed.pod_logs(namespace, "from-s3-restore"))
    restored = content(mongo, "smartid_from_s3")
    assert restored == {k: v for k, v in content(mongo, "smartid").items() if k in restored}
    assert restored["parsed_segments"][0] == 120
    assert_no_exceptions(operator)


def test_an_https_endpoint_with_a_private_ca_is_trusted_through_the_ca_bundle(
        operator: Operator, testbed: TestBed, api_client: client.ApiClient,
        core: client.CoreV1Api, custom: client.CustomObjectsApi, namespace: str, mongo: str,
        s3: S3Server) -> None:
    batch = client.BatchV1Api(api_client)
    assert s3.ca_cert is not None
    seed(mongo, "smartid", 40)
    credentials_secret(core, namespace, s3.writer)
    spec = s3_backup_spec(s3, namespace)
    spec["storage"]["s3"]["endpoint"] = s3.https_endpoint
    custom.create_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL,
                                           database(backup=spec))
    wait_phase(custom, namespace, "Ready", timeout=90)
    # Without the CA the certificate is refused, and status says so.
    assert backup_job(testbed, batch, namespace, "untrusted") == "Failed"
    obj = wait_backup_healthy(custom, namespace, "LastBackupFailed")
    assert "CERTIFICATE_VERIFY_FAILED" in obj["status"]["backup"]["lastFailure"]["reason"]

    core.create_namespaced_config_map(namespace, client.V1ConfigMap(
        metadata=client.V1ObjectMeta(name="s3-ca"), data={"ca.crt": s3.ca_cert.read_text()}))
    custom.patch_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, "smartid", {
        "spec": {"backup": {"storage": {"s3": {"caBundle": {
            "configMapKeyRef": {"name": "s3-ca"}}}}}}})
    wait_backup(custom, namespace, "generation 2", lambda o: (
        o["status"].get("observedGeneration") == 2))
    assert backup_job(testbed, batch, namespace, "trusted") == "Complete", \
        testbed.pod_logs(namespace, "trusted")
    dumps = storage(s3, namespace).scan().dumps
    assert len(dumps) == 1 and dumps[0].verified is True
    assert_no_exceptions(operator)


def test_wrong_credentials_and_a_missing_bucket_fail_the_job_and_status_says_why(
        operator: Operator, testbed: TestBed, api_client: client.ApiClient,
        core: client.CoreV1Api, custom: client.CustomObjectsApi, namespace: str, mongo: str,
        s3: S3Server) -> None:
    batch = client.BatchV1Api(api_client)
    seed(mongo, "smartid", 10)
    wrong = "not-the-secret-" + s3.writer.secret_key[:6]
    credentials_secret(core, namespace, s3.writer, secret_key=wrong)
    custom.create_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL,
                                           database(backup=s3_backup_spec(s3, namespace)))
    wait_phase(custom, namespace, "Ready", timeout=90)
    assert backup_job(testbed, batch, namespace, "wrong-keys") == "Failed"
    obj = wait_backup_healthy(custom, namespace, "LastBackupFailed")
    reason = obj["status"]["backup"]["lastFailure"]["reason"]
    assert "refused the credentials" in reason and "s3-credentials" in reason, reason
    no_secret_anywhere(wrong, testbed, core, namespace, operator, obj, "wrong-keys")

    credentials_secret(core, namespace, s3.writer)
    custom.patch_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, "smartid", {
        "spec": {"backup": {"storage": {"s3": {"bucket": "no-such-bucket"}}}}})
    wait_backup(custom, namespace, "generation 2", lambda o: (
        o["status"].get("observedGeneration") == 2))
    assert backup_job(testbed, batch, namespace, "no-bucket") == "Failed"
    obj = wait_backup(custom, namespace, "the missing bucket named", lambda o: (
        o["status"]["backup"].get("lastFailure", {}).get("job") == "no-bucket"))
    reason = obj["status"]["backup"]["lastFailure"]["reason"]
    assert "'no-such-bucket' does not exist" in reason, reason
    assert_no_exceptions(operator)


def test_credentials_that_cannot_delete_leave_retention_unapplied_not_the_backup_failed(
        operator: Operator, testbed: TestBed, api_client: client.ApiClient,
        core: client.CoreV1Api, custom: client.CustomObjectsApi, namespace: str, mongo: str,
        s3: S3Server) -> None:
    batch = client.BatchV1Api(api_client)
    seed(mongo, "smartid", 30)
    # A dump ten days old, past the 7 days and the newest 1 that retention keeps.
    old = dump(mongo, storage(s3, namespace, LOCKED), RunSettings("smartid"), BuiltinEngine(),
               Quiet(), lambda: datetime.datetime.now(datetime.UTC) - datetime.timedelta(days=10))
    credentials_secret(core, namespace, s3.writer)
    custom.create_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, database(
        backup=s3_backup_spec(s3, namespace, bucket=LOCKED)))
    wait_phase(custom, namespace, "Ready", timeout=90)
    assert backup_job(testbed, batch, namespace, "locked") == "Complete", \
        testbed.pod_logs(namespace, "locked")
    names = [m.name for m in storage(s3, namespace, LOCKED).scan().dumps]
    assert len(names) == 2 and names[0] == old.name  # nothing could be deleted
    # The pod's report (retention) may be seen a pass before the Job's completion: wait for
    # both, the backup counted a success although nothing could be deleted.
    obj = wait_backup(custom, namespace, "status.backup.retention and LastBackupSucceeded",
                      lambda o: "retention" in o["status"].get("backup", {}) and (
                          condition(o, "BackupHealthy") or {}).get("reason")
                      == "LastBackupSucceeded")
    retention = obj["status"]["backup"]["retention"]
    assert retention["applied"] is False and "may not delete" in retention["reason"], retention
    assert_no_exceptions(operator)


def test_the_s3_server_killed_mid_upload_leaves_no_dump_and_the_next_run_succeeds(
        operator: Operator, testbed: TestBed, api_client: client.ApiClient,
        core: client.CoreV1Api, custom: client.CustomObjectsApi, namespace: str, mongo: str,
        s3: S3Server) -> None:
    batch = client.BatchV1Api(api_client)
    with pymongo.MongoClient[dict[str, Any]](mongo) as mc:  # ~40 MB that gzip cannot shrink
        for start in range(0, 400, 100):
            mc.smartid.blobs.insert_many([{"n": i, "data": os.urandom(100_000)}
                                          for i in range(start, start + 100)])
    credentials_secret(core, namespace, s3.writer)
    custom.create_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL,
                                           database(backup=s3_backup_spec(s3, namespace)))
    wait_phase(custom, namespace, "Ready", timeout=90)
    backup_now(testbed, namespace, "cut")
    wait_for(lambda: "uploading" in testbed.pod_logs(namespace, "cut")
             or job_outcome(batch, namespace, "cut"), timeout=180, interval=0.05,
             what="the upload to start")
    assert job_outcome(batch, namespace, "cut") is None, "finished before the kill"
    s3.kill()
    try:
        assert wait_for(lambda: job_outcome(batch, namespace, "cut"), timeout=180,
                        what="the cut backup Job") == "Failed"
    finally:
        s3.start()
    assert storage(s3, namespace).scan().dumps == []  # objects maybe, a dump no
    obj = wait_backup_healthy(custom, namespace, "LastBackupFailed")
    reason = obj["status"]["backup"]["lastFailure"]["reason"]
    assert "S3" in reason and s3.endpoint in reason, reason

    assert backup_job(testbed, batch, namespace, "after-cut", timeout=240) == "Complete", \
        testbed.pod_logs(namespace, "after-cut")
    dumps = storage(s3, namespace).scan().dumps
    assert len(dumps) == 1 and dumps[0].verified is True and dumps[0].counts["blobs"] == 400
    assert_no_exceptions(operator)


def test_the_api_server_refuses_bad_s3_storage_with_field_messages(
        custom: client.CustomObjectsApi, namespace: str) -> None:
    good = {"bucket": "smartid-backups", "credentialsSecretRef": {"name": "keys"}}
    cases = [
        ({"persistentVolumeClaim": "b", "s3": good},
         "backup.storage must name exactly one of persistentVolumeClaim or s3"),
        ({}, "backup.storage must name exactly one of persistentVolumeClaim or s3"),
        ({"s3": {**good, "bucket": "Bad_Bucket"}}, "spec.backup.storage.s3.bucket"),
        ({"s3": {"bucket": "smartid-backups"}},
         "spec.backup.storage.s3.credentialsSecretRef: Required value"),
        ({"s3": {**good, "endpoint": "minio:9000"}}, "spec.backup.storage.s3.endpoint"),
        ({"s3": {**good, "endpoint": "https://u:p@minio:9000"}},
         "spec.backup.storage.s3.endpoint"),
        ({"s3": {**good, "prefix": "/lead"}}, "spec.backup.storage.s3.prefix"),
        ({"s3": {**good, "prefix": "a/../b"}}, "spec.backup.storage.s3.prefix"),
        ({"s3": {**good, "serverSideEncryption": {"algorithm": "AES256", "kmsKeyId": "k"}}},
         "kmsKeyId is only valid with algorithm aws:kms"),
        ({"s3": {**good, "serverSideEncryption": {"algorithm": "rot13"}}},
         "spec.backup.storage.s3.serverSideEncryption.algorithm: Unsupported value"),
        ({"s3": {**good, "caBundle": {}}},
         "caBundle must name exactly one of configMapKeyRef or secretKeyRef"),
    ]
    for storage_spec, message in cases:
        body = database(backup={"enabled": True, "storage": storage_spec})
        with pytest.raises(client.ApiException) as caught:
            custom.create_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, body)
        assert caught.value.status == 422 and message in caught.value.body, \
            (storage_spec, caught.value.body)
    accepted = database(backup={"enabled": True, "storage": {"s3": {
        **good, "prefix": "prod/smartid", "endpoint": "https://minio.storage.svc:9000",
        "serverSideEncryption": {"algorithm": "aws:kms", "kmsKeyId": "alias/backups"},
        "caBundle": {"configMapKeyRef": {"name": "ca"}}}}})
    created = custom.create_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, accepted)
    s3_spec = created["spec"]["backup"]["storage"]["s3"]
    assert s3_spec["forcePathStyle"] is False and s3_spec["caBundle"]["configMapKeyRef"][
        "key"] == "ca.crt"
    assert s3_spec["credentialsSecretRef"]["secretAccessKeyKey"] == "AWS_SECRET_ACCESS_KEY"


def test_the_s3_sample_backs_up_into_the_bucket(
        operator: Operator, testbed: TestBed, api_client: client.ApiClient,
        custom: client.CustomObjectsApi, namespace: str, mongo: str, s3: S3Server) -> None:
    """`kubectl apply -k deploy/samples-s3` with the keys and endpoint filled in."""
    rendered = render(testbed, "deploy/samples-s3")
    assert ("PersistentVolumeClaim", "smartid-backups") not in \
        [(d["kind"], d["metadata"]["name"]) for d in rendered]
    docs = [d for d in rendered if d["kind"] in ("SmartIDDatabase", "PersistentVolumeClaim")
            or d["metadata"]["name"] == "smartid-s3-credentials"]
    for doc in docs:
        doc["metadata"].pop("namespace", None)
        if doc["kind"] == "Secret":
            doc["stringData"] = {"AWS_ACCESS_KEY_ID": s3.writer.access_key,
                                 "AWS_SECRET_ACCESS_KEY": s3.writer.secret_key}
        elif doc["kind"] == "SmartIDDatabase":
            doc["spec"]["backup"]["storage"]["s3"].update(
                bucket=BUCKET, prefix=f"sample/{namespace}", endpoint=s3.endpoint)
    apply(testbed, docs, namespace=namespace)
    wait_backup(custom, namespace, "BackupScheduled True", lambda o: (
        (condition(o, "BackupScheduled") or {}).get("status") == "True"))
    batch = client.BatchV1Api(api_client)
    assert backup_job(testbed, batch, namespace, "sample") == "Complete", \
        testbed.pod_logs(namespace, "sample")
    dumps = storage(s3, f"sample/{namespace}").scan().dumps
    assert len(dumps) == 1 and dumps[0].verified is True
    assert_no_exceptions(operator)


def test_mongo_down_during_a_backup_to_s3_fails_the_job_and_publishes_nothing(
        operator: Operator, testbed: TestBed, api_client: client.ApiClient,
        custom: client.CustomObjectsApi, namespace: str, mongo: str, s3: S3Server,
        core: client.CoreV1Api) -> None:
    batch, apps = client.BatchV1Api(api_client), client.AppsV1Api(api_client)
    seed(mongo, "smartid", 20)
    credentials_secret(core, namespace, s3.writer)
    custom.create_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, database(
        backup=s3_backup_spec(s3, namespace), mongo={
            "uriSecretRef": {"name": "smartid-mongo"}, "workload": {"name": "mongo"},
            "connectTimeoutSeconds": 2}))
    wait_phase(custom, namespace, "Ready", timeout=90)
    scale(apps, namespace, "mongo", 0)
    wait_phase(custom, namespace, "Degraded", timeout=60)
    assert backup_job(testbed, batch, namespace, "mongo-down") == "Failed"
    assert storage(s3, namespace).scan() == Scan([], [], [])  # not even a partial
    obj = wait_backup_healthy(custom, namespace, "LastBackupFailed")
    assert "MongoDB" in obj["status"]["backup"]["lastFailure"]["reason"]
    scale(apps, namespace, "mongo", 1)
    wait_phase(custom, namespace, "Ready", timeout=90)
    assert backup_job(testbed, batch, namespace, "mongo-back") == "Complete"
    assert len(storage(s3, namespace).scan().dumps) == 1
    assert_no_exceptions(operator)


# -- the disaster ---------------------------------------------------------------------------------

def _bed_with_mongo(workdir: Path) -> tuple[TestBed, str]:
    bed = TestBed.start(workdir)
    api = config.new_client_from_config(config_file=str(bed.kubeconfig))
    core = client.CoreV1Api(api)
    core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name="t-prod")))
    uri = f"mongodb://{bed.mongo_address('t-prod', 'mongo-0')}:{MONGO_PORT}/smartid"
    core.create_namespaced_secret("t-prod", client.V1Secret(
        metadata=client.V1ObjectMeta(name="smartid-mongo"), string_data={"uri": uri}))
    client.AppsV1Api(api).create_namespaced_stateful_set("t-prod", mongo_statefulset())
    wait_for(lambda: pod_ready(core, "t-prod", "mongo-0"), timeout=90, what="mongo-0 Ready")
    return bed, uri


def test_disaster_restore_into_a_new_test_bed_from_the_bucket_alone(
        s3: S3Server, tmp_path: Path) -> None:
    first = tmp_path / "first"
    bed, uri = _bed_with_mongo(first)
    try:
        api = config.new_client_from_config(config_file=str(bed.kubeconfig))
        core, custom = client.CoreV1Api(api), client.CustomObjectsApi(api)
        install_operator(bed, "deploy/overlays/cluster-wide", namespace_arg="--namespace=t-*")
        seed(uri, "smartid", 500)
        credentials_secret(core, "t-prod", s3.writer)
        custom.create_namespaced_custom_object(GROUP, VERSION, "t-prod", PLURAL, database(
            backup=s3_backup_spec(s3, "disaster")))
        wait_phase(custom, "t-prod", "Ready", timeout=120)
        bed.kubectl("create", "job", f"--from=cronjob/{CRONJOB}", "last", "-n", "t-prod")
        batch = client.BatchV1Api(api)
        assert wait_for(lambda: job_outcome(batch, "t-prod", "last"), timeout=180,
                        what="the last backup") == "Complete", bed.pod_logs("t-prod", "last")
        before = content(uri, "smartid")  # schema migrations included
        assert before["parsed_segments"][0] == 500 and len(before) > 2
    finally:
        bed.stop()
    shutil.rmtree(first)  # the cluster, its volumes, its Mongo data: all gone

    bed, uri = _bed_with_mongo(tmp_path / "second")
    try:
        assert content(uri, "smartid") == {}
        env = aws_env(s3, s3.writer, SMARTID_MONGO_URI=uri)
        url = f"s3://{BUCKET}/disaster"
        listed = cli(["list", "--from", url, "--json"], env)
        assert listed.returncode == 0, listed.stderr
        restored = cli(["restore", "--from", url, "latest-verified", "--target-database",
                        "smartid"], env)
        assert restored.returncode == 0, restored.stderr
        assert content(uri, "smartid") == before
    finally:
        bed.stop()
