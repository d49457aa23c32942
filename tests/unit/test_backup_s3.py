"""S3 storage, pure parts: the spec, the Job's pod (keys by reference only), the restore's
source, the environment the commands read, retention that may not delete, and status."""

from __future__ import annotations

import contextlib
import json
from pathlib import Path
from typing import Any

import pytest

from smartid_operator.backup import observe
from smartid_operator.backup.children import backup_cronjob, restore_job
from smartid_operator.backup.engine.manifest import Manifest
from smartid_operator.backup.engine.prune import prune
from smartid_operator.backup.engine.retention import Policy
from smartid_operator.backup.engine.s3 import S3Config, config_from_env, parse_url
from smartid_operator.backup.engine.storage import DeleteDenied, Partial, Scan, StorageError
from smartid_operator.backup.engine.summary import termination_message
from smartid_operator.backup.jobs import BackupMemory
from smartid_operator.spec import parse
from tests.unit.backup_fakes import NOW, at, job, pod, view
from tests.unit.backup_fakes import manifest as make_manifest

S3 = {"bucket": "smartid-backups", "prefix": "prod/smartid",
      "endpoint": "https://minio.storage.svc:9000", "region": "eu-west-1",
      "forcePathStyle": True, "credentialsSecretRef": {"name": "s3-keys"},
      "serverSideEncryption": {"algorithm": "aws:kms", "kmsKeyId": "alias/backups"},
      "caBundle": {"configMapKeyRef": {"name": "minio-ca"}}}


def spec(s3: dict[str, Any] | None = None) -> dict[str, Any]:
    return {"mongo": {"uriSecretRef": {"name": "smartid-mongo"}, "workload": {"name": "mongo"}},
            "backup": {"enabled": True, "storage": {"s3": s3 or S3}}}


def test_the_backup_pod_gets_the_bucket_as_env_and_the_keys_by_reference_only() -> None:
    cron = backup_cronjob("db", "ns", parse(spec()), "img:1")
    pod_spec = cron["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    container = pod_spec["containers"][0]
    env = {e["name"]: e.get("value", e.get("valueFrom")) for e in container["env"]}
    assert env["SMARTID_BACKUP_S3_URL"] == "s3://smartid-backups/prod/smartid"
    assert env["AWS_ENDPOINT_URL"] == "https://minio.storage.svc:9000"
    assert env["AWS_REGION"] == "eu-west-1"
    assert env["SMARTID_BACKUP_S3_FORCE_PATH_STYLE"] == "true"
    assert (env["SMARTID_BACKUP_S3_SSE"], env["SMARTID_BACKUP_S3_SSE_KMS_KEY_ID"]) == \
        ("aws:kms", "alias/backups")
    assert env["AWS_ACCESS_KEY_ID"] == {"secretKeyRef": {"name": "s3-keys",
                                                         "key": "AWS_ACCESS_KEY_ID"}}
    assert env["AWS_SECRET_ACCESS_KEY"] == {"secretKeyRef": {"name": "s3-keys",
                                                             "key": "AWS_SECRET_ACCESS_KEY"}}
    assert env["AWS_CA_BUNDLE"] == "/etc/smartid/s3-ca/ca.crt"
    assert "SMARTID_BACKUP_DIR" not in env and container["args"] == [
        "backup", "run", "--termination-log=/dev/termination-log"]
    volumes = {v["name"]: v for v in pod_spec["volumes"]}
    assert "data" not in volumes  # no claim
    assert volumes["s3-ca"]["configMap"] == {"name": "minio-ca",
                                             "items": [{"key": "ca.crt", "path": "ca.crt"}]}
    assert {"name": "s3-ca", "mountPath": "/etc/smartid/s3-ca", "readOnly": True} in \
        container["volumeMounts"]


def test_a_volume_claim_still_mounts_at_backups() -> None:
    body = spec()
    body["backup"]["storage"] = {"persistentVolumeClaim": "backups"}
    pod_spec = backup_cronjob("db", "ns", parse(body), "img:1")["spec"]["jobTemplate"][
        "spec"]["template"]["spec"]
    assert {"name": "data", "persistentVolumeClaim": {"claimName": "backups"}} in \
        pod_spec["volumes"]
    assert not any(e["name"].startswith("AWS_") for e in pod_spec["containers"][0]["env"])


def test_a_restore_reads_its_own_source_bucket_when_it_names_one() -> None:
    body = spec()
    body["backup"]["storage"] = {"persistentVolumeClaim": "backups"}
    restore = {"apiVersion": "smartid.io/v1alpha1", "kind": "SmartIDRestore",
               "metadata": {"name": "r", "namespace": "ns", "uid": "u"},
               "spec": {"database": "db", "targetDatabase": "t",
                        "source": {"s3": {**S3, "bucket": "other-cluster", "prefix": ""}}}}
    pod_spec = restore_job(restore, parse(body), "img:1")["spec"]["template"]["spec"]
    env = {e["name"]: e.get("value") for e in pod_spec["containers"][0]["env"]}
    assert env["SMARTID_BACKUP_S3_URL"] == "s3://other-cluster"
    assert not any("persistentVolumeClaim" in v for v in pod_spec["volumes"])


@pytest.mark.parametrize(("url", "expected"), [
    ("s3://b", ("b", "")), ("s3://b/", ("b", "")), ("s3://b/a/b/", ("b", "a/b"))])
def test_s3_urls(url: str, expected: tuple[str, str]) -> None:
    assert parse_url(url) == expected


def test_the_environment_as_the_aws_tools_take_it() -> None:
    env = {"AWS_ACCESS_KEY_ID": "AKID", "AWS_SECRET_ACCESS_KEY": "s3cr3t",
           "AWS_ENDPOINT_URL": "http://127.0.0.1:9000", "AWS_DEFAULT_REGION": "eu-north-1"}
    config = config_from_env("s3://bucket/pre", env)
    assert (config.bucket, config.prefix, config.endpoint, config.region) == \
        ("bucket", "pre", "http://127.0.0.1:9000", "eu-north-1")
    assert "s3cr3t" not in repr(config) and "AKID" not in repr(config)
    with pytest.raises(StorageError, match="AWS_SECRET_ACCESS_KEY"):
        config_from_env("s3://bucket", {"AWS_ACCESS_KEY_ID": "AKID"})
    with pytest.raises(StorageError, match="not an S3 URL"):
        config_from_env("gs://bucket", env)


class NoDelete:
    """A storage whose credentials may not delete (an in-process stand-in)."""

    location = "s3://locked"

    def __init__(self, dumps: list[Manifest]) -> None:
        self.dumps = dumps

    def scan(self) -> Scan:
        return Scan(self.dumps, [], [Partial("orphan", 0.0)])

    def delete(self, name: str) -> None:
        raise DeleteDenied("S3 delete on s3://locked failed: AccessDenied: Access Denied")

    remove_partial = delete

    def staging(self, name: str) -> contextlib.AbstractContextManager[Path]:
        raise NotImplementedError

    def publish(self, staged: Path, manifest: Manifest) -> None:
        raise NotImplementedError

    def fetch(self, manifest: Manifest) -> contextlib.AbstractContextManager[Path]:
        raise NotImplementedError

    def save_manifest(self, manifest: Manifest) -> None:
        raise NotImplementedError


def test_retention_that_may_not_delete_is_reported_not_raised() -> None:
    dumps = [make_manifest("a", 20, True, {"c": 1}), make_manifest("b", 0.1, True, {"c": 1})]
    report = prune(NoDelete(dumps), Policy(days=7, keep_last=1), NOW)
    assert report.due == ["a"] and report.deleted == []
    assert report.not_applied is not None and "may not delete" in report.not_applied
    assert "AccessDenied" in report.not_applied


def test_status_carries_whether_retention_was_applied() -> None:
    message = termination_message("Succeeded", None, None, None, {
        "applied": False, "deleted": 0, "reason": "the storage credentials may not delete"})
    assert json.loads(message)["retention"]["applied"] is False
    memory = BackupMemory()
    memory.job_event("ADDED", job("b1", "Complete", end=3))
    memory.pod_event(pod("b1", exit_code=0, message=message))
    section = view(memory, 4).section
    assert section["retention"] == {"applied": False, "deleted": 0, "job": "b1",
                                    "reason": "the storage credentials may not delete"}
    assert section["lastSuccessfulTime"] == at(3)
    # Kept when the Job is gone.
    assert view(BackupMemory(), 5, previous=section).section["retention"] == \
        section["retention"]


def test_s3_config_defaults() -> None:
    config = S3Config("b")
    assert config.location == "s3://b" and not config.force_path_style
    assert observe.BACKUP_HEALTHY == "BackupHealthy"
