"""The three CRDs' specs as types: SmartIDDatabase, SmartIDRestore and SmartIDOutageTest.

Each default is written once, as the field's default here; the parsers read a spec through
the fields (``dataclasses.fields``), so a key the API server did not fill (a spec read in a
unit test, or before defaulting) gets that same default. A field is read at its name in
camelCase, or at ``at(path)`` where the CRD nests it. tests/unit/test_api_types.py checks that
the CRDs in crds/ have exactly these fields, defaults and enums.

The API server's schema has already applied defaults and refused bad input; parsing here is
for types and for the few rules only the operator can check (``invalid_fields``, the Secret,
the workload).
"""

from __future__ import annotations

import dataclasses
import functools
import typing
import zoneinfo
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import NoneType, UnionType
from typing import Any, Literal, TypeVar

from smartid_operator.errors import ConfigError

T = TypeVar("T")

# Metadata keys of a field: where the CRD has it, below its parent object (dotted), and, for
# a choice of one of several objects, which object supplies which value of the type's fields.
PATH, ONE_OF = "crd", "oneOf"


def at(path: str, **one_of: dict[str, Any]) -> dict[str, Any]:
    """A field's metadata: its ``path`` in the CRD below its parent, and for a field that is
    exactly one of several objects, each object's key with the values it implies."""
    return {PATH: path, ONE_OF: one_of} if one_of else {PATH: path}


# -- enums --------------------------------------------------------------------------------------

WorkloadKind = Literal["StatefulSet", "Deployment"]
KeyKind = Literal["ConfigMap", "Secret"]
SSEAlgorithm = Literal["AES256", "aws:kms"]
# The status enums, so that the CRDs' are checked against the code's too.
DatabasePhase = Literal["Pending", "Progressing", "Ready", "Degraded", "Failed"]
ConditionStatus = Literal["True", "False", "Unknown"]
RestorePhase = Literal["Pending", "Running", "Succeeded", "Failed"]
OutageTestPhase = Literal["Pending", "Running", "Passed", "Failed", "Refused", "Aborted"]


# -- SmartIDDatabase ----------------------------------------------------------------------------

@dataclass(frozen=True)
class SecretRef:
    name: str
    key: str = "uri"


@dataclass(frozen=True)
class WorkloadRef:
    name: str
    kind: WorkloadKind = "StatefulSet"


@dataclass(frozen=True)
class MongoSpec:
    uri_secret: SecretRef = field(metadata=at("uriSecretRef"))
    workload: WorkloadRef
    database: str = "smartid"
    connect_timeout_seconds: int = 5


@dataclass(frozen=True)
class KeyRef:
    """A key of a ConfigMap or a Secret (``kind``)."""

    kind: KeyKind
    name: str
    key: str = "ca.crt"


@dataclass(frozen=True)
class S3Spec:
    """``spec.backup.storage.s3`` (and a SmartIDRestore's ``source.s3``). The keys live in a
    Secret; only its name and key names are here. ``""``: not given."""

    bucket: str
    credentials_secret: str = field(metadata=at("credentialsSecretRef.name"))
    access_key_id_key: str = field(default="AWS_ACCESS_KEY_ID",
                                   metadata=at("credentialsSecretRef.accessKeyIdKey"))
    secret_access_key_key: str = field(default="AWS_SECRET_ACCESS_KEY",
                                       metadata=at("credentialsSecretRef.secretAccessKeyKey"))
    prefix: str = ""
    endpoint: str = ""
    region: str = ""
    force_path_style: bool = False
    server_side_encryption: SSEAlgorithm | Literal[""] = field(
        default="", metadata=at("serverSideEncryption.algorithm"))
    kms_key_id: str = field(default="", metadata=at("serverSideEncryption.kmsKeyId"))
    ca_bundle: KeyRef | None = field(default=None, metadata=at(
        "caBundle", configMapKeyRef={"kind": "ConfigMap"}, secretKeyRef={"kind": "Secret"}))

    @property
    def url(self) -> str:
        return f"s3://{self.bucket}" + (f"/{self.prefix.strip('/')}" if self.prefix else "")


@dataclass(frozen=True)
class BackupSpec:
    enabled: bool = False
    schedule: str = "0 2 * * *"
    time_zone: str | None = None
    retention_days: int = field(default=7, metadata=at("retention.days"))
    keep_last: int = field(default=3, metadata=at("retention.keepLast"))
    claim: str | None = field(default=None, metadata=at("storage.persistentVolumeClaim"))
    s3: S3Spec | None = field(default=None, metadata=at("storage.s3"))
    gzip: bool = True
    suspend: bool = False
    starting_deadline_seconds: int = 600
    active_deadline_seconds: int = 14400
    backoff_limit: int = 1
    successful_jobs_history_limit: int = 3
    failed_jobs_history_limit: int = 3


@dataclass(frozen=True)
class RecoverySpec:
    enabled: bool = False
    claim: str | None = field(default=None, metadata=at("storage.persistentVolumeClaim"))
    scan_interval_seconds: int = 5
    batch_size: int = 500


@dataclass(frozen=True)
class ChaosSpec:
    allow_disruption: bool = False
    schedule: str | None = None
    outage_seconds: int = 30
    recordings: int = 50
    segments_per_recording: int = 20


@dataclass(frozen=True)
class DatabaseSpec:
    mongo: MongoSpec
    schema_version: str = field(default="latest", metadata=at("schema.version"))
    backup: BackupSpec = BackupSpec()
    recovery: RecoverySpec = RecoverySpec()
    chaos: ChaosSpec = ChaosSpec()


# -- SmartIDRestore -----------------------------------------------------------------------------

@dataclass(frozen=True)
class RestoreSpec:
    database: str  # the SmartIDDatabase whose Secret and (without source_s3) storage are used
    target_database: str
    dump: str = "latest-verified"  # or a dump's name, or "latest"
    source_s3: S3Spec | None = field(default=None, metadata=at("source.s3"))
    drop: bool = False


# -- SmartIDOutageTest --------------------------------------------------------------------------

@dataclass(frozen=True)
class OutageTestSpec:
    """A run; ``None``: the database's ``spec.chaos`` value (see ``chaos.engine.model``)."""

    database: str
    outage_seconds: int | None = None
    recordings: int | None = None
    segments_per_recording: int | None = None
    recovery_timeout_seconds: int = 300
    abort: bool = False


# -- parsing ------------------------------------------------------------------------------------

def parse(spec: Mapping[str, Any]) -> DatabaseSpec:
    """A SmartIDDatabase's ``spec``."""
    return read(DatabaseSpec, spec, "spec")


def parse_restore(spec: Mapping[str, Any]) -> RestoreSpec:
    """A SmartIDRestore's ``spec``."""
    return read(RestoreSpec, spec, "spec")


def parse_outage_test(spec: Mapping[str, Any]) -> OutageTestSpec:
    """A SmartIDOutageTest's ``spec``."""
    return read(OutageTestSpec, spec, "spec")


def parse_s3(doc: Mapping[str, Any] | None) -> S3Spec | None:
    return read(S3Spec, doc, "s3") if doc else None


def crd_path(f: dataclasses.Field[Any]) -> str:
    """Where the CRD has field ``f``, below its parent object."""
    path = f.metadata.get(PATH)
    if path:
        return str(path)
    first, *rest = f.name.split("_")
    return first + "".join(word.title() for word in rest)


@functools.cache
def hints(cls: type) -> dict[str, Any]:
    """The fields' types, evaluated (this module's annotations are strings)."""
    return typing.get_type_hints(cls)


def read(cls: type[T], doc: Mapping[str, Any], where: str,
         given: Mapping[str, Any] | None = None) -> T:
    """An instance of dataclass ``cls`` from its CRD object ``doc`` at ``where``: each field
    at its ``crd_path``; one that is absent keeps its default, or, without one, is refused."""
    values: dict[str, Any] = dict(given or {})
    for f in dataclasses.fields(cls):  # type: ignore[arg-type]
        if f.name in values:
            continue
        path = crd_path(f)
        value: Any = doc
        for key in path.split("."):
            value = value.get(key) if isinstance(value, Mapping) else None
        if value is None:
            if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
                raise ConfigError("InvalidSpec", f"{where}.{path} is required")
            continue
        values[f.name] = _value(hints(typing.cast(type, cls))[f.name], value, f"{where}.{path}",
                                f.metadata.get(ONE_OF))
    return cls(**values)


def _value(hint: Any, value: Any, where: str, one_of: Mapping[str, Any] | None) -> Any:
    union = typing.get_origin(hint) in (typing.Union, UnionType)
    options = tuple(o for o in (typing.get_args(hint) if union else (hint,)) if o is not NoneType)
    nested = [o for o in options if isinstance(o, type) and dataclasses.is_dataclass(o)]
    if nested:
        if not isinstance(value, Mapping):
            raise ConfigError("InvalidSpec", f"{where} must be an object")
        if not one_of:
            return read(nested[0], value, where)
        for key, implied in one_of.items():
            if value.get(key) is not None:
                return read(nested[0], value[key], f"{where}.{key}", implied)
        return None
    allowed = [v for o in options if typing.get_origin(o) is Literal for v in typing.get_args(o)]
    if allowed and value not in allowed:
        raise ConfigError("InvalidSpec", f"{where} must be one of "
                                         f"{', '.join(map(repr, allowed))}, not {value!r}")
    kinds = {int: "an integer", bool: "true or false", str: "a string"}
    for kind, text in kinds.items():
        if kind in options and (not isinstance(value, kind)
                                or (kind is int and isinstance(value, bool))):
            raise ConfigError("InvalidSpec", f"{where} must be {text}, not {value!r}")
    return value


# -- what the CRD's schema cannot check -----------------------------------------------------------

def invalid_fields(spec: DatabaseSpec) -> str | None:
    """What the CRD's schema cannot check but a child's API server would refuse (422): said
    before applying, naming the field of the SmartIDDatabase."""
    zone = spec.backup.time_zone
    if spec.backup.enabled and zone is not None:
        try:
            zoneinfo.ZoneInfo(zone)
        except (zoneinfo.ZoneInfoNotFoundError, ValueError):
            return f"spec.backup.timeZone: {zone!r} is not a time zone of the IANA database"
    return None
