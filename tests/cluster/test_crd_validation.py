"""Bad SmartIDDatabases are refused by the API server itself, each with a message that names
the field, and the operator never sees them."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest
from kubernetes import client

from tests.cluster.conftest import Operator
from tests.cluster.helpers import GROUP, PLURAL, VERSION, database

VALID: dict[str, Any] = database("bad")["spec"]


def with_(path: str, value: Any) -> dict[str, Any]:
    """The valid spec with ``path`` (dotted) set to ``value``; ``...`` deletes it."""
    spec = copy.deepcopy(VALID)
    *parents, leaf = path.split(".")
    node = spec
    for key in parents:
        node = node.setdefault(key, {})
    if value is ...:
        node.pop(leaf, None)
    else:
        node[leaf] = value
    return spec


PVC = {"persistentVolumeClaim": "smartid-backups"}
CASES: list[tuple[str, dict[str, Any] | None, str]] = [
    ("no spec", None, "spec: Required value"),
    ("no mongo", with_("mongo", ...), "spec.mongo: Required value"),
    ("no secret ref", with_("mongo.uriSecretRef", ...), "spec.mongo.uriSecretRef: Required value"),
    ("no workload", with_("mongo.workload", ...), "spec.mongo.workload: Required value"),
    ("empty secret name", with_("mongo.uriSecretRef.name", ""), "spec.mongo.uriSecretRef.name"),
    ("uppercase secret", with_("mongo.uriSecretRef.name", "SmartID"),
     "spec.mongo.uriSecretRef.name"),
    ("underscore secret", with_("mongo.uriSecretRef.name", "smart_id"),
     "spec.mongo.uriSecretRef.name"),
    ("slash in key", with_("mongo.uriSecretRef.key", "a/b"), "spec.mongo.uriSecretRef.key"),
    ("dot in database", with_("mongo.database", "smart.id"), "spec.mongo.database"),
    ("dollar in database", with_("mongo.database", "smart$id"), "spec.mongo.database"),
    ("space in database", with_("mongo.database", "smart id"), "spec.mongo.database"),
    ("database too long", with_("mongo.database", "d" * 64), "spec.mongo.database: Too long"),
    ("empty database", with_("mongo.database", ""), "spec.mongo.database"),
    ("workload kind", with_("mongo.workload.kind", "DaemonSet"),
     'spec.mongo.workload.kind: Unsupported value: "DaemonSet"'),
    ("no workload name", with_("mongo.workload.name", ...),
     "spec.mongo.workload.name: Required value"),
    ("bad workload name", with_("mongo.workload.name", "Mongo_0"), "spec.mongo.workload.name"),
    ("timeout zero", with_("mongo.connectTimeoutSeconds", 0), "spec.mongo.connectTimeoutSeconds"),
    ("timeout too big", with_("mongo.connectTimeoutSeconds", 61),
     "spec.mongo.connectTimeoutSeconds"),
    ("timeout a string", with_("mongo.connectTimeoutSeconds", "5"),
     "spec.mongo.connectTimeoutSeconds: Invalid value"),
    ("schema v0", with_("schema.version", "v0"), "spec.schema.version"),
    ("schema bare number", with_("schema.version", "2"), "spec.schema.version"),
    ("schema word", with_("schema.version", "newest"), "spec.schema.version"),
    ("backup without storage", with_("backup.enabled", True),
     "backup.storage.persistentVolumeClaim is required when backups are enabled"),
    ("backup schedule words", with_("backup.schedule", "every day"), "spec.backup.schedule"),
    ("backup schedule 3 fields", with_("backup.schedule", "* * *"), "spec.backup.schedule"),
    ("retention zero days", with_("backup.retention.days", 0), "spec.backup.retention.days"),
    ("retention too long", with_("backup.retention.days", 4000), "spec.backup.retention.days"),
    ("keepLast zero", with_("backup.retention.keepLast", 0), "spec.backup.retention.keepLast"),
    ("empty backup claim", with_("backup.storage", {"persistentVolumeClaim": ""}),
     "spec.backup.storage.persistentVolumeClaim"),
    ("time zone with space", with_("backup.timeZone", "Europe Berlin"), "spec.backup.timeZone"),
    ("gzip a string", with_("backup.gzip", "yes"), "spec.backup.gzip: Invalid value"),
    ("recovery without storage", with_("recovery.enabled", True),
     "recovery.storage.persistentVolumeClaim is required when recovery is enabled"),
    ("scan interval zero", with_("recovery.scanIntervalSeconds", 0),
     "spec.recovery.scanIntervalSeconds"),
    ("batch too big", with_("recovery.batchSize", 10001), "spec.recovery.batchSize"),
    ("chaos schedule not allowed", with_("chaos.schedule", "@daily"),
     "chaos.schedule needs chaos.allowDisruption set to true"),
    ("outage too short", with_("chaos.outageSeconds", 4), "spec.chaos.outageSeconds"),
    ("no recordings", with_("chaos.recordings", 0), "spec.chaos.recordings"),
    ("negative segments", with_("chaos.segmentsPerRecording", -1),
     "spec.chaos.segmentsPerRecording"),
    ("same volume twice", {**with_("backup.storage", PVC), "recovery": {"storage": PVC}},
     "backup.storage and recovery.storage must be different volumes"),
    ("system database admin", with_("mongo.database", "admin"),
     "must not be a MongoDB system database"),
    ("system database local", with_("mongo.database", "local"),
     "must not be a MongoDB system database"),
    ("system database config", with_("mongo.database", "config"),
     "must not be a MongoDB system database"),
    ("minute 60", with_("backup.schedule", "60 2 * * *"), "minute 0-59"),
    ("hour 24", with_("backup.schedule", "0 24 * * *"), "hour 0-23"),
    ("day of month 32", with_("backup.schedule", "0 2 32 * *"), "spec.backup.schedule"),
    ("day of month 0", with_("backup.schedule", "0 2 0 * *"), "spec.backup.schedule"),
    ("month 13", with_("backup.schedule", "0 2 * 13 *"), "spec.backup.schedule"),
    ("weekday 7", with_("backup.schedule", "0 2 * * 7"), "day of week 0-6"),
    ("step zero", with_("backup.schedule", "*/0 * * * *"), "spec.backup.schedule"),
    ("chaos hour 25", {**with_("chaos.schedule", "0 25 * * *"),
                       "chaos": {"allowDisruption": True, "schedule": "0 25 * * *"}},
     "spec.chaos.schedule"),
    ("password in the resource", with_("mongo.uri", "mongodb://u:secret@db/smartid"),
     'unknown field "spec.mongo.uri"'),
]


@pytest.mark.parametrize(("spec", "expected"), [(s, e) for _, s, e in CASES],
                         ids=[name for name, _, _ in CASES])
def test_invalid_spec_is_refused_naming_the_field(
        operator: Operator, custom: client.CustomObjectsApi, namespace: str,
        spec: dict[str, Any] | None, expected: str) -> None:
    body = database("bad")
    if spec is None:
        del body["spec"]
    else:
        body["spec"] = spec
    with pytest.raises(client.ApiException) as refused:
        # Strict, as kubectl and Argo CD send it: unknown fields are errors, not dropped.
        custom.create_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, body,
                                               field_validation="Strict")
    assert refused.value.status in (400, 422)
    message = json.loads(refused.value.body)["message"]
    assert expected in message, message


def test_a_name_too_long_for_the_children_is_refused(
        operator: Operator, custom: client.CustomObjectsApi, namespace: str) -> None:
    with pytest.raises(client.ApiException) as refused:
        custom.create_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL,
                                               database("n" * 41))
    assert refused.value.status == 422
    message = json.loads(refused.value.body)["message"]
    assert "metadata.name must be at most 40 characters" in message, message
    custom.create_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL,
                                           database("n" * 40), dry_run="All")


@pytest.mark.parametrize("schedule", ["0 2 * * *", "*/15 * * * *", "0 0 1,15 * MON-FRI",
                                      "30 23 31 12 6", "5-10/2 0-23 1-31 1-12 0-6",
                                      "0 3 ? * sun", "@daily", "@hourly"])
def test_valid_schedules_are_accepted(operator: Operator, custom: client.CustomObjectsApi,
                                      namespace: str, schedule: str) -> None:
    custom.create_namespaced_custom_object(
        GROUP, VERSION, namespace, PLURAL,
        database("cron", backup={"schedule": schedule},
                 chaos={"allowDisruption": True, "schedule": schedule}), dry_run="All")


def test_database_name_is_immutable(operator: Operator, custom: client.CustomObjectsApi,
                                    namespace: str) -> None:
    custom.create_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, database("db"))
    with pytest.raises(client.ApiException) as refused:
        custom.patch_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, "db",
                                              {"spec": {"mongo": {"database": "other"}}})
    assert refused.value.status == 422
    assert "mongo.database is immutable" in json.loads(refused.value.body)["message"]


def test_valid_spec_gets_defaults(operator: Operator, custom: client.CustomObjectsApi,
                                  namespace: str) -> None:
    created = custom.create_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL,
                                                     database("good"))
    spec = created["spec"]
    assert spec["mongo"]["database"] == "smartid"
    assert spec["mongo"]["uriSecretRef"]["key"] == "uri"
    assert spec["mongo"]["workload"]["kind"] == "StatefulSet"
    assert spec["schema"]["version"] == "latest"
    assert spec["backup"]["retention"] == {"days": 7, "keepLast": 3}
    assert spec["chaos"]["allowDisruption"] is False


def test_operator_logged_no_exception_while_refusing(operator: Operator) -> None:
    logs = operator.logs()
    assert "Traceback" not in logs, logs[-3000:]
