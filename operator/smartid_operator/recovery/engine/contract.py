"""The storage contract (version 1): how recordings and segments lie on the shared volume, so
that any pipeline, not only our writer library, can produce them and the recovery agent can
index them after an outage. docs/recovery.md is the prose form of this module.

Layout under the storage root (the recovery claim)::

    recordings/**/<id>.<ext>                 a recording's data (any bytes), at any depth
    recordings/**/<id>.json                  its sidecar metadata, beside the data
    spool/<name>.jsonl.open                  segments a live writer spools (holds flock on it)
    spool/<name>.jsonl                       a sealed spool file, ready to replay and retire
    spool/rejected/<name>.jsonl              a replayed spool file that held corrupt lines

* Any directory layout under ``recordings/`` is indexed: flat (``recordings/<id>.dat``, the
  PZ-13687 seed's), by the minute of publishing (``<YYYYMMDD>/<HHMM>/``, what our writer
  library does), by the recording's own time, by tenant, at any depth. The agent finds new
  files by the directories whose mtime moved, not by the current minute.
* A recording's id is its file name up to the first dot; the sidecar is ``<id>.json`` in the
  same directory as the data, and names it (``data_file``, default ``<id>.dat``). It must hold
  ``tenant_id`` and ``recorded_at`` (ISO 8601 with a zone); ``recording_id`` if present must
  equal the file name's id.
* Write each file under a name starting with ``.`` in its final directory, fsync, then rename;
  names starting with ``.`` are never read. Data first, sidecar last. A pipeline that writes in
  place (as the seed does) is indexed too: a sidecar that does not parse or names data not yet
  there is pending for ``orphan_grace`` seconds (a writer may still be at it), then skipped.
* Anything else at the storage root than ``recordings/``, ``spool/`` (and a filesystem's own
  ``lost+found``) is input at a place the contract does not name: skipped, reported by path.
* Ids are chosen by the writer, never by the database: a recording's ``_id`` is its id, a
  segment's is ``<recording_id>:<sequence>``. Indexing is therefore an insert-if-absent keyed
  by ``_id`` (backed by v3's unique ``storage_key`` and ``recording_id``+``sequence``), and
  replaying anything twice changes nothing. Records are immutable once written; one id in two
  places is a conflict, reported (``duplicate-id``), never indexed twice.
"""

from __future__ import annotations

import contextlib
import datetime
import json
import os
import re
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from smartid_operator import clock

CONTRACT = 1
RECORDINGS = "recordings"
SPOOL = "spool"
REJECTED = "spool/rejected"
SIDECAR_SUFFIX = ".json"
DATA_SUFFIX = ".dat"
SEALED_SUFFIX = ".jsonl"
OPEN_SUFFIX = ".jsonl.open"
TEMP_PREFIX = "."

# Ids become file names and Mongo keys: no dots (the stem ends at the first one), no slashes.
_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,127}$")


class ContractError(ValueError):
    """Input that does not follow the contract: ``reason`` is a short keyword for reports."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


def parse_time(value: Any, name: str) -> datetime.datetime:
    if not isinstance(value, str):
        raise ContractError("invalid-metadata", f"{name} must be an ISO 8601 string")
    try:
        moment = datetime.datetime.fromisoformat(value)
    except ValueError:
        raise ContractError("invalid-metadata", f"{name} is not ISO 8601: {value!r}") from None
    if moment.tzinfo is None:
        raise ContractError("invalid-metadata", f"{name} needs a time zone: {value!r}")
    moment = moment.astimezone(datetime.UTC)
    return moment.replace(microsecond=moment.microsecond // 1000 * 1000)


# -- ids and paths ------------------------------------------------------------------------------

def valid_id(value: object) -> bool:
    return isinstance(value, str) and bool(_ID.match(value))


def new_recording_id(now: datetime.datetime | None = None) -> str:
    """Time-ordered and unique: ``20251020T130501-<16 hex>``."""
    return f"{(now or clock.utcnow()):%Y%m%dT%H%M%S}-{uuid.uuid4().hex[:16]}"


def segment_id(recording_id: str, sequence: int) -> str:
    return f"{recording_id}:{sequence}"


def partition(moment: datetime.datetime) -> str:
    """Our writer's directory (relative to ``recordings/``) for a sidecar published now: the
    UTC minute, which keeps directories small. Any other layout is read as well."""
    return f"{moment.astimezone(datetime.UTC):%Y%m%d/%H%M}"


def stem(name: str) -> str:
    return name.split(".", 1)[0]


def hidden(name: str) -> bool:
    return name.startswith(TEMP_PREFIX)


# -- durable writes -----------------------------------------------------------------------------

def fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_atomic(path: Path, data: bytes) -> None:
    """Write under a hidden temporary name in the same directory, fsync, rename, fsync the
    directory: a reader sees the whole file or nothing, also after a crash."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temp = path.with_name(f"{TEMP_PREFIX}tmp-{path.name}-{uuid.uuid4().hex[:8]}")
    try:
        with temp.open("wb") as out:
            out.write(data)
            out.flush()
            os.fsync(out.fileno())
        os.replace(temp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            temp.unlink()
        raise
    fsync_dir(path.parent)


# -- recordings ---------------------------------------------------------------------------------

@dataclass(frozen=True)
class Sidecar:
    """A recording's metadata as the sidecar states it."""

    recording_id: str
    tenant_id: str
    recorded_at: datetime.datetime
    data_file: str
    size_bytes: int | None = None
    sha256: str | None = None
    written_at: datetime.datetime | None = None
    metadata: Mapping[str, Any] = field(default_factory=dict)

    def to_json(self) -> bytes:
        body: dict[str, Any] = {
            "contract": CONTRACT, "recording_id": self.recording_id,
            "tenant_id": self.tenant_id, "recorded_at": clock.iso(self.recorded_at, ms=True),
            "data_file": self.data_file}
        if self.size_bytes is not None:
            body["size_bytes"] = self.size_bytes
        if self.sha256 is not None:
            body["sha256"] = self.sha256
        if self.written_at is not None:
            body["written_at"] = clock.iso(self.written_at, ms=True)
        if self.metadata:
            body["metadata"] = dict(self.metadata)
        return dumps(body)


def parse_sidecar(raw: bytes, name_stem: str) -> Sidecar:
    """The sidecar named ``<name_stem>.json``; ContractError says what is wrong with it."""
    try:
        body = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ContractError("invalid-json", f"{exc} ({len(raw)} bytes)") from None
    if not isinstance(body, dict):
        raise ContractError("invalid-metadata", "the sidecar is not a JSON object")
    if body.get("contract", CONTRACT) != CONTRACT:
        raise ContractError("unknown-contract", f"contract {body.get('contract')!r}")
    rid = body.get("recording_id", name_stem)
    if rid != name_stem or not valid_id(rid):
        raise ContractError("invalid-metadata",
                            f"recording_id {rid!r} must equal the file name {name_stem!r}")
    tenant = body.get("tenant_id")
    if not isinstance(tenant, str) or not tenant:
        raise ContractError("invalid-metadata", "tenant_id must be a non-empty string")
    data_file = body.get("data_file", rid + DATA_SUFFIX)
    if not (isinstance(data_file, str) and stem(data_file) == rid
            and not data_file.endswith(SIDECAR_SUFFIX) and "/" not in data_file):
        raise ContractError("invalid-metadata",
                            f"data_file {data_file!r} must be {rid}.<ext> beside the sidecar")
    size = body.get("size_bytes")
    if size is not None and (not isinstance(size, int) or isinstance(size, bool) or size < 0):
        raise ContractError("invalid-metadata", "size_bytes must be a non-negative integer")
    sha = body.get("sha256")
    if sha is not None and not isinstance(sha, str):
        raise ContractError("invalid-metadata", "sha256 must be a string")
    metadata = body.get("metadata", {})
    if not isinstance(metadata, dict):
        raise ContractError("invalid-metadata", "metadata must be a JSON object")
    written = body.get("written_at")
    return Sidecar(
        recording_id=rid, tenant_id=tenant,
        recorded_at=parse_time(body.get("recorded_at"), "recorded_at"),
        data_file=data_file, size_bytes=size, sha256=sha,
        written_at=parse_time(written, "written_at") if written is not None else None,
        metadata=metadata)


def recording_document(sidecar: Sidecar, storage_key: str, indexed_by: str,
                       now: datetime.datetime) -> dict[str, Any]:
    """The ``recordings`` document for a sidecar whose data file is at ``storage_key``."""
    doc: dict[str, Any] = {
        "_id": sidecar.recording_id, "storage_key": storage_key,
        "tenant_id": sidecar.tenant_id, "recorded_at": sidecar.recorded_at,
        "size_bytes": sidecar.size_bytes, "sha256": sidecar.sha256,
        "metadata": dict(sidecar.metadata), "written_at": sidecar.written_at,
        "indexed_at": now, "indexed_by": indexed_by, "contract": CONTRACT}
    return {k: v for k, v in doc.items() if v is not None}  # absent, not null


# -- segments -----------------------------------------------------------------------------------

@dataclass(frozen=True)
class Segment:
    """One segment of a recording; ``attributes`` is free-form JSON."""

    sequence: int
    start_ms: int | None = None
    end_ms: int | None = None
    text: str | None = None
    attributes: Mapping[str, Any] = field(default_factory=dict)


def dumps(body: Mapping[str, Any]) -> bytes:
    """Compact JSON, refusing NaN and infinities (not JSON; another reader would choke)."""
    return json.dumps(body, separators=(",", ":"), ensure_ascii=False,
                      allow_nan=False).encode()


def segment_record(recording_id: str, segment: Segment, tenant_id: str | None,
                   written_at: datetime.datetime) -> dict[str, Any]:
    """A segment as a JSON object: one spool line, and the source of its Mongo document."""
    if not valid_id(recording_id):
        raise ContractError("invalid-record", f"recording_id {recording_id!r} is not a valid id")
    record: dict[str, Any] = {
        "contract": CONTRACT, "kind": "segment",
        "id": segment_id(recording_id, segment.sequence),
        "recording_id": recording_id, "sequence": segment.sequence,
        "start_ms": segment.start_ms, "end_ms": segment.end_ms, "text": segment.text,
        "attributes": dict(segment.attributes), "written_at": clock.iso(written_at, ms=True)}
    if tenant_id is not None:
        record["tenant_id"] = tenant_id
    segment_document(record, "check", written_at)  # the same validation a replay applies
    dumps(record)  # and JSON itself: no NaN, nothing json cannot write
    return record


def _optional_int(record: Mapping[str, Any], name: str) -> int | None:
    value = record.get(name)
    if value is not None and (not isinstance(value, int) or isinstance(value, bool)):
        raise ContractError("invalid-record", f"{name} must be an integer")
    return value


def segment_document(record: Mapping[str, Any], indexed_by: str,
                     now: datetime.datetime) -> dict[str, Any]:
    """The ``recording_segments`` document for a segment record; ContractError if invalid."""
    if record.get("contract", CONTRACT) != CONTRACT or record.get("kind", "segment") != "segment":
        raise ContractError("invalid-record",
                            f"unknown kind/contract {record.get('kind')!r}/"
                            f"{record.get('contract')!r}")
    rid = record.get("recording_id")
    seq = record.get("sequence")
    if not valid_id(rid):
        raise ContractError("invalid-record", f"recording_id {rid!r} is not a valid id")
    if not isinstance(seq, int) or isinstance(seq, bool) or seq < 0:
        raise ContractError("invalid-record", f"sequence {seq!r} must be an integer >= 0")
    assert isinstance(rid, str)
    sid = segment_id(rid, seq)
    if record.get("id", sid) != sid:
        raise ContractError("invalid-record", f"id {record.get('id')!r} must be {sid!r}")
    text = record.get("text")
    if text is not None and not isinstance(text, str):
        raise ContractError("invalid-record", "text must be a string")
    attributes = record.get("attributes") or {}
    if not isinstance(attributes, dict):
        raise ContractError("invalid-record", "attributes must be a JSON object")
    tenant = record.get("tenant_id")
    if tenant is not None and not isinstance(tenant, str):
        raise ContractError("invalid-record", "tenant_id must be a string")
    doc: dict[str, Any] = {
        "_id": sid, "recording_id": rid, "sequence": seq, "tenant_id": tenant,
        "start_ms": _optional_int(record, "start_ms"), "end_ms": _optional_int(record, "end_ms"),
        "text": text, "attributes": attributes or None,
        "written_at": (parse_time(record["written_at"], "written_at")
                       if record.get("written_at") is not None else None),
        "indexed_at": now, "indexed_by": indexed_by, "contract": CONTRACT}
    return {k: v for k, v in doc.items() if v is not None}  # absent, not null


def parse_spool_line(line: bytes) -> dict[str, Any]:
    """One spool line (without its newline) as a JSON object; ContractError if it is not."""
    try:
        record = json.loads(line)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ContractError("corrupt-line", str(exc)) from None
    if not isinstance(record, dict):
        raise ContractError("corrupt-line", "not a JSON object")
    return record
