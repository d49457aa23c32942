"""Spec parsing and the pure manifest builders."""

from __future__ import annotations

import pytest

from smartid_operator import promises
from smartid_operator.errors import ConfigError
from smartid_operator.manifests import child_name, labels
from smartid_operator.manifests.settings import settings_config_map
from smartid_operator.spec import parse

DEFAULTED = {
    "mongo": {"uriSecretRef": {"name": "smartid-mongo", "key": "uri"}, "database": "smartid",
              "workload": {"kind": "StatefulSet", "name": "mongo"}, "connectTimeoutSeconds": 5},
    "schema": {"version": "v2"},
    "backup": {"enabled": True, "schedule": "@daily", "retention": {"days": 30, "keepLast": 5},
               "storage": {"persistentVolumeClaim": "backups"}, "gzip": True},
    "recovery": {"enabled": True, "storage": {"persistentVolumeClaim": "recordings"},
                 "scanIntervalSeconds": 5, "batchSize": 200},
    "chaos": {"allowDisruption": True, "outageSeconds": 10, "recordings": 5,
              "segmentsPerRecording": 3},
}


def test_parse_reads_every_section() -> None:
    spec = parse(DEFAULTED)
    assert spec.mongo.uri_secret.name == "smartid-mongo"
    assert spec.mongo.workload.kind == "StatefulSet"
    assert spec.schema_version == "v2"
    assert (spec.backup.enabled, spec.backup.claim, spec.backup.retention_days) == (
        True, "backups", 30)
    assert (spec.recovery.claim, spec.recovery.batch_size) == ("recordings", 200)
    assert spec.chaos.allow_disruption and spec.chaos.recordings == 5


def test_parse_fills_defaults_for_sections_left_out() -> None:
    spec = parse({"mongo": {"uriSecretRef": {"name": "s"}, "workload": {"name": "m"}}})
    assert spec.mongo.uri_secret.key == "uri"
    assert spec.mongo.database == "smartid"
    assert not spec.backup.enabled and not spec.chaos.allow_disruption


def test_parse_refuses_incomplete_mongo() -> None:
    with pytest.raises(ConfigError) as err:
        parse({"mongo": {"workload": {"name": "m"}}})
    assert err.value.reason == "InvalidSpec"
    assert "uriSecretRef" in err.value.message


def test_settings_config_map_is_namespaced_labelled_and_carries_the_spec() -> None:
    cm = settings_config_map("smartid", "prod", parse(DEFAULTED), promises.load())
    assert cm["metadata"] == {"name": "smartid-settings", "namespace": "prod",
                              "labels": labels("smartid", "settings")}
    assert cm["data"]["SMARTID_DATABASE"] == "smartid"
    assert cm["data"]["SMARTID_RECOVERY_BATCH_SIZE"] == "200"
    assert set(cm["data"]) == {"SMARTID_DATABASE", "SMARTID_BACKUP_RETENTION_DAYS",
                               "SMARTID_BACKUP_KEEP_LAST", "SMARTID_BACKUP_GZIP",
                               "SMARTID_RECOVERY_BATCH_SIZE",
                               "SMARTID_RECOVERY_SCAN_INTERVAL_SECONDS"}  # each one read
    assert all(isinstance(v, str) for v in cm["data"].values())


def test_child_names_fit_label_values() -> None:
    assert child_name("smartid", "settings") == "smartid-settings"
    long = child_name("x" * 70, "settings")
    assert len(long) <= 63 and long.endswith("-settings")


def test_every_operator_image_pod_runs_without_api_token_or_writable_root() -> None:
    from smartid_operator.backup.children import backup_cronjob
    from smartid_operator.recovery.children import recovery_agent

    spec = parse(DEFAULTED)
    pods = [recovery_agent("db", "ns", spec, "img")["spec"]["template"]["spec"],
            backup_cronjob("db", "ns", spec, "img")["spec"]["jobTemplate"]["spec"]["template"]
            ["spec"]]
    for pod in pods:
        assert pod["automountServiceAccountToken"] is False
        assert pod["securityContext"]["runAsNonRoot"] is True
        container = pod["containers"][0]
        assert container["securityContext"]["readOnlyRootFilesystem"] is True
        assert container["env"][0]["valueFrom"]["secretKeyRef"]["name"] == "smartid-mongo"
        assert {"name": "tmp", "mountPath": "/tmp"} in container["volumeMounts"]
