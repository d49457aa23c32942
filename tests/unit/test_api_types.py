"""The CRDs in crds/ and the types in spec.py say the same: the same spec fields, each default
and each enum equal, a field the types require required by the schema too. A default is
written in both places (the API server applies the CRD's, the parsers the types'), so this
test is what keeps them one."""

from __future__ import annotations

import dataclasses
import typing
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any, Literal

import pytest
import yaml

from smartid_operator.backup import jobs, restores
from smartid_operator.chaos.engine import model, scenario
from smartid_operator.errors import ConfigError
from smartid_operator.spec import (
    ONE_OF,
    ConditionStatus,
    DatabasePhase,
    DatabaseSpec,
    OutageTestPhase,
    OutageTestSpec,
    RestorePhase,
    RestoreSpec,
    S3Spec,
    crd_path,
    hints,
    invalid_fields,
    parse,
    parse_outage_test,
    parse_restore,
)

CRDS = Path(__file__).resolve().parents[2] / "crds"
KINDS: dict[str, type] = {"smartid.io_smartiddatabases.yaml": DatabaseSpec,
                          "smartid.io_smartidrestores.yaml": RestoreSpec,
                          "smartid.io_smartidoutagetests.yaml": OutageTestSpec}
# Typed defaults the CRD leaves out, each with its reason. A default of None needs no entry:
# it is "not given" (the schema has no null default for it to match).
ABSENT = {(S3Spec, name): "'' is 'not given': the S3 tools' own default applies"
          for name in ("prefix", "endpoint", "region", "server_side_encryption", "kms_key_id")}
STATUS_ENUMS: dict[tuple[type, str], Any] = {
    (DatabaseSpec, "status.phase"): DatabasePhase,
    (DatabaseSpec, "status.conditions[].status"): ConditionStatus,
    (RestoreSpec, "status.phase"): RestorePhase,
    (OutageTestSpec, "status.phase"): OutageTestPhase}
SCENARIO_ONLY = {"cycles"}  # a scenario's own setting: runs one after the other


def crd(file: str) -> dict[str, Any]:
    doc = yaml.safe_load((CRDS / file).read_text())
    schema: dict[str, Any] = doc["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    return schema


def schema_nodes(node: Mapping[str, Any], path: str = "") -> Iterator[tuple[str, Any]]:
    """Every property of the schema by its dotted path (``[]`` for an array's items)."""
    for key, sub in (node.get("properties") or {}).items():
        yield f"{path}{key}", sub
        yield from schema_nodes(sub, f"{path}{key}.")
    if "items" in node:
        yield f"{path[:-1]}[]", node["items"]
        yield from schema_nodes(node["items"], f"{path[:-1]}[].")


@dataclasses.dataclass(frozen=True)
class Typed:
    owner: type
    prefix: str  # the path of the owner's object
    field: dataclasses.Field[Any]
    hint: Any

    @property
    def options(self) -> tuple[Any, ...]:
        union = typing.get_origin(self.hint) in (typing.Union, type(int | None))
        return typing.get_args(self.hint) if union else (self.hint,)

    @property
    def nested(self) -> type | None:
        found = [o for o in self.options if dataclasses.is_dataclass(o)]
        return found[0] if found else None

    @property
    def default(self) -> Any:
        return self.field.default

    @property
    def absent(self) -> str | None:
        """Why this field's default is no default the CRD should carry."""
        if self.default is None:
            return "None: not given"
        return ABSENT.get((self.owner, self.field.name))

    @property
    def enum(self) -> list[Any]:
        values = [v for o in self.options if typing.get_origin(o) is Literal
                  for v in typing.get_args(o)]
        return [v for v in values if not (self.absent and v == self.default)]


def typed_nodes(cls: type, prefix: str = "spec",
                given: Mapping[str, Any] | None = None) -> dict[str, Typed]:
    """Every field of ``cls`` and of the types it nests, by its path in the CRD."""
    nodes: dict[str, Typed] = {}
    for f in dataclasses.fields(cls):
        if f.name in (given or {}):
            continue  # implied by which object of a choice is given
        path = f"{prefix}.{crd_path(f)}"
        node = nodes[path] = Typed(cls, prefix, f, hints(cls)[f.name])
        if node.nested is not None:
            for key, implied in (f.metadata.get(ONE_OF) or {"": None}).items():
                nodes.update(typed_nodes(node.nested, f"{path}.{key}" if key else path,
                                         implied))
    return nodes


def disagreements(cls: type, schema: Mapping[str, Any]) -> list[str]:
    """Where the CRD ``schema`` and the type ``cls`` differ, one line each."""
    found: list[str] = []
    nodes = dict(schema_nodes(schema))
    typed = typed_nodes(cls)
    for path, node in nodes.items():
        t = typed.get(path)
        leaf = "properties" not in node and path.startswith("spec.")
        if leaf and t is None:
            found.append(f"{path}: in the CRD, not in {cls.__name__}")
        if "enum" in node:
            want = (t.enum if t is not None
                    else typing.get_args(STATUS_ENUMS.get((cls, path), Literal[None])))
            if list(node["enum"]) != list(want):
                found.append(f"{path}: enum {node['enum']} in the CRD, {list(want)} typed")
        if "default" not in node:
            continue
        if node["default"] == {} and "properties" in node:  # an object filled by defaults
            if t is not None and (t.nested is None or t.default != _empty(t.nested)):
                typed_default = "required" if t.default is dataclasses.MISSING else t.default
                found.append(f"{path}: default {{}} in the CRD, {typed_default!r} typed")
            inner = {p: n for p, n in typed.items() if p.startswith(f"{path}.")}
            required = [p for p, n in inner.items() if n.default is dataclasses.MISSING
                        and not f"{n.prefix}.".startswith(f"{path}.")]  # owned above it
            if t is None and required:
                found.append(f"{path}: default {{}} in the CRD, but {required} required")
        elif t is None:
            found.append(f"{path}: default {node['default']!r} in the CRD, no typed field")
        elif t.default != node["default"] or type(t.default) is not type(node["default"]):
            found.append(f"{path}: default {node['default']!r} in the CRD, "
                         f"{t.default!r} typed")
    for path, t in typed.items():
        node = nodes.get(path)
        if node is None:
            found.append(f"{path}: typed ({t.owner.__name__}.{t.field.name}), not in the CRD")
            continue
        if t.default is dataclasses.MISSING:
            found.extend(_not_required(nodes, t))
        elif "default" not in node and t.absent is None:
            found.append(f"{path}: default {t.default!r} typed, none in the CRD")
        if t.enum and "enum" not in node:
            found.append(f"{path}: typed as one of {t.enum}, no enum in the CRD")
    return found


def _empty(cls: type) -> Any:
    """``cls`` from an empty object, as the API server's ``default: {}`` makes it."""
    try:
        return cls()
    except TypeError:  # it has required fields
        return None


def _not_required(nodes: Mapping[str, Any], t: Typed) -> list[str]:
    """A field its type requires must be required in the CRD too, at each step below the
    type's object: else the API server admits a spec the parser refuses."""
    parent, missing = t.prefix, []
    for key in crd_path(t.field).split("."):
        if key not in (nodes[parent].get("required") or []):
            missing.append(f"{parent}.{key}: required by {t.owner.__name__}, not by the CRD")
        parent = f"{parent}.{key}"
    return missing


# -- the CRDs and the types ---------------------------------------------------------------------

@pytest.mark.parametrize("file", sorted(KINDS))
def test_the_crd_and_the_type_have_the_same_fields_defaults_and_enums(file: str) -> None:
    assert disagreements(KINDS[file], crd(file)) == []


def test_every_crd_in_crds_has_a_type() -> None:
    assert sorted(p.name for p in CRDS.glob("*.yaml") if p.name != "kustomization.yaml") \
        == sorted(KINDS)


def test_a_default_changed_on_either_side_is_named() -> None:
    schema = crd("smartid.io_smartiddatabases.yaml")
    retention = schema["properties"]["spec"]["properties"]["backup"]["properties"]["retention"]
    retention["properties"]["days"]["default"] = 8
    del retention["properties"]["keepLast"]["default"]
    workload = schema["properties"]["spec"]["properties"]["mongo"]["properties"]["workload"]
    workload["properties"]["kind"]["enum"].append("DaemonSet")
    schema["properties"]["status"]["properties"]["phase"]["enum"].remove("Degraded")
    schema["properties"]["spec"]["properties"]["extra"] = {"type": "integer", "default": 1}
    assert sorted(disagreements(DatabaseSpec, schema)) == [
        "spec.backup.retention.days: default 8 in the CRD, 7 typed",
        "spec.backup.retention.keepLast: default 3 typed, none in the CRD",
        "spec.extra: default 1 in the CRD, no typed field",
        "spec.extra: in the CRD, not in DatabaseSpec",
        "spec.mongo.workload.kind: enum ['StatefulSet', 'Deployment', 'DaemonSet'] in the "
        "CRD, ['StatefulSet', 'Deployment'] typed",
        "status.phase: enum ['Pending', 'Progressing', 'Ready', 'Failed'] in the CRD, "
        "['Pending', 'Progressing', 'Ready', 'Degraded', 'Failed'] typed"]


def test_the_phases_the_code_writes_are_the_typed_ones() -> None:
    assert {model.PENDING, model.RUNNING, model.PASSED, model.FAILED, model.REFUSED,
            model.ABORTED} == set(typing.get_args(OutageTestPhase))
    assert {restores.PENDING, restores.RUNNING, jobs.SUCCEEDED, jobs.FAILED} \
        == set(typing.get_args(RestorePhase))


def test_the_scenario_bounds_are_the_run_crds() -> None:
    spec = crd("smartid.io_smartidoutagetests.yaml")["properties"]["spec"]["properties"]
    for key, bounds in scenario.BOUNDS.items():
        if key not in SCENARIO_ONLY:
            assert bounds == (spec[key]["minimum"], spec[key]["maximum"]), key
    assert set(scenario.BOUNDS) - SCENARIO_ONLY == {
        k for k, v in spec.items() if v.get("type") == "integer"}


# -- parsing ------------------------------------------------------------------------------------

S3 = {"bucket": "b", "credentialsSecretRef": {"name": "keys"},
      "caBundle": {"secretKeyRef": {"name": "ca"}}}
FULL: dict[type, tuple[Any, dict[str, Any]]] = {
    DatabaseSpec: (parse, {"mongo": {"uriSecretRef": {"name": "s"}, "workload": {"name": "m"}},
                           "backup": {"storage": {"s3": S3}}}),
    RestoreSpec: (parse_restore, {"database": "db", "targetDatabase": "copy",
                                  "source": {"s3": S3}}),
    OutageTestSpec: (parse_outage_test, {"database": "db"})}


def _required(cls: type) -> list[str]:
    return [p for p, t in typed_nodes(cls).items() if t.default is dataclasses.MISSING]


def _given(doc: Any, path: str) -> bool:
    for key in path.split(".")[1:]:
        if not isinstance(doc, Mapping) or key not in doc:
            return False
        doc = doc[key]
    return True


@pytest.mark.parametrize("cls", list(FULL), ids=lambda c: c.__name__)
def test_a_missing_required_field_is_named(cls: type) -> None:
    read, doc = FULL[cls]
    read(doc)
    required = [p for p in _required(cls) if _given(doc, p)]
    # The docs above give every required field but those of the choice not taken.
    assert required and all("configMapKeyRef" in p for p in set(_required(cls)) - set(required))
    for path in required:
        broken: Any = yaml.safe_load(yaml.safe_dump(doc))
        *parents, last = path.split(".")[1:]
        target = broken
        for key in parents:
            target = target[key]
        del target[last]
        with pytest.raises(ConfigError) as err:
            read(broken)
        assert (err.value.reason, err.value.message) == ("InvalidSpec", f"{path} is required")


def test_defaults_come_from_the_types_and_choices_imply_their_kind() -> None:
    read, doc = FULL[DatabaseSpec]
    spec = read(doc)
    assert spec.backup == dataclasses.replace(type(spec.backup)(), s3=spec.backup.s3)
    s3 = spec.backup.s3
    assert s3 is not None and s3.ca_bundle is not None
    assert (s3.ca_bundle.kind, s3.ca_bundle.name, s3.ca_bundle.key) == ("Secret", "ca", "ca.crt")
    restore = parse_restore(FULL[RestoreSpec][1])
    assert (restore.dump, restore.drop, restore.source_s3) == ("latest-verified", False, s3)


def test_a_wrong_type_or_enum_value_is_named() -> None:
    _, doc = FULL[DatabaseSpec]
    for mongo, message in (
            ({"workload": {"name": "m", "kind": "Pod"}},
             "spec.mongo.workload.kind must be one of 'StatefulSet', 'Deployment', not 'Pod'"),
            ({"connectTimeoutSeconds": "5"},
             "spec.mongo.connectTimeoutSeconds must be an integer, not '5'"),
            ({"uriSecretRef": "s"}, "spec.mongo.uriSecretRef must be an object")):
        with pytest.raises(ConfigError) as err:
            parse({**doc, "mongo": {**doc["mongo"], **mongo}})
        assert err.value.message == message


def test_a_time_zone_outside_the_iana_database_is_named() -> None:
    _, doc = FULL[DatabaseSpec]

    def zone(name: str, enabled: bool = True) -> str | None:
        return invalid_fields(parse({**doc, "backup": {**doc["backup"], "enabled": enabled,
                                                       "timeZone": name}}))

    assert zone("Mars/Olympus") == ("spec.backup.timeZone: 'Mars/Olympus' is not a time zone "
                                    "of the IANA database")
    assert zone("Europe/Berlin") is None
    assert zone("Mars/Olympus", enabled=False) is None  # no CronJob carries it
