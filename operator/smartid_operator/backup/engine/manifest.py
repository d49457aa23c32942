"""The manifest each dump carries: what was dumped, from where, by which engine, the checksum
of every file and the content hash of every collection, and how its verification went.

It lives inside the dump directory (``<name>/smartid-manifest.json``), so the one rename that
publishes a dump publishes its manifest with it: no dump is ever seen without one. The
official ``mongorestore`` skips files it does not know at the top of a dump ("don't know what
to do with file"), so the directory stays a plain mongodump dump for it.
"""

from __future__ import annotations

import datetime
import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from smartid_operator import clock
from smartid_operator.backup.engine.digest import ALGORITHM

FORMAT = "smartid-backup/v1"
MANIFEST_FILE = "smartid-manifest.json"
TEMP_PREFIX = ".tmp-"
PASSED, FAILED = "Passed", "Failed"


class ManifestError(Exception):
    """A manifest is missing or unreadable."""


@dataclass(frozen=True)
class FileEntry:
    path: str          # relative to the dump directory, "/"-separated
    size: int
    sha256: str


@dataclass(frozen=True)
class CollectionEntry:
    name: str
    kind: str          # "collection" or "view" (views carry no documents)
    count: int
    bson_bytes: int
    content_hash: str
    indexes: tuple[str, ...] = ()


@dataclass(frozen=True)
class Verification:
    result: str                      # PASSED or FAILED
    time: datetime.datetime
    reason: str | None
    engine: str
    scratch_database: str
    duration_seconds: float
    collections: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)


@dataclass(frozen=True)
class Manifest:
    name: str
    database: str
    started_at: datetime.datetime     # the dump reads the source from here on: its age
    completed_at: datetime.datetime
    engine: str
    engine_version: str
    server_version: str
    gzip: bool
    collections: tuple[CollectionEntry, ...]
    files: tuple[FileEntry, ...]
    verification: Verification | None = None

    @property
    def size_bytes(self) -> int:
        return sum(f.size for f in self.files)

    @property
    def documents(self) -> int:
        return sum(c.count for c in self.collections)

    @property
    def counts(self) -> dict[str, int]:
        return {c.name: c.count for c in self.collections if c.kind != "view"}

    @property
    def verified(self) -> bool | None:
        """True once a restore of it matched, False if one did not, None if never tried."""
        return None if self.verification is None else self.verification.result == PASSED

    def with_verification(self, verification: Verification) -> Manifest:
        return replace(self, verification=verification)

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": FORMAT,
            "name": self.name,
            "database": self.database,
            "startedAt": clock.iso(self.started_at, ms=True),
            "completedAt": clock.iso(self.completed_at, ms=True),
            "engine": {"name": self.engine, "version": self.engine_version},
            "serverVersion": self.server_version,
            "gzip": self.gzip,
            "totals": {"collections": len(self.collections), "documents": self.documents,
                       "sizeBytes": self.size_bytes},
            "contentHashAlgorithm": ALGORITHM,
            "collections": {c.name: {"type": c.kind, "count": c.count,
                                     "bsonBytes": c.bson_bytes, "contentHash": c.content_hash,
                                     "indexes": list(c.indexes)} for c in self.collections},
            "files": {f.path: {"size": f.size, "sha256": f.sha256} for f in self.files},
            "verification": None if self.verification is None else {
                "result": self.verification.result,
                "time": clock.iso(self.verification.time, ms=True),
                "reason": self.verification.reason,
                "engine": self.verification.engine,
                "scratchDatabase": self.verification.scratch_database,
                "durationSeconds": self.verification.duration_seconds,
                "collections": {k: dict(v) for k, v in self.verification.collections.items()},
            },
        }

    @classmethod
    def from_dict(cls, doc: Mapping[str, Any]) -> Manifest:
        if doc.get("format") != FORMAT:
            raise ManifestError(f"unknown manifest format {doc.get('format')!r}")
        ver = doc.get("verification")
        return cls(
            name=doc["name"], database=doc["database"],
            started_at=clock.parse_iso(doc["startedAt"]),
            completed_at=clock.parse_iso(doc["completedAt"]),
            engine=doc["engine"]["name"], engine_version=doc["engine"]["version"],
            server_version=doc.get("serverVersion", ""), gzip=bool(doc["gzip"]),
            collections=tuple(
                CollectionEntry(name, c["type"], int(c["count"]), int(c["bsonBytes"]),
                                c["contentHash"], tuple(c.get("indexes", ())))
                for name, c in doc["collections"].items()),
            files=tuple(FileEntry(path, int(f["size"]), f["sha256"])
                        for path, f in doc["files"].items()),
            verification=None if ver is None else Verification(
                result=ver["result"], time=clock.parse_iso(ver["time"]), reason=ver.get("reason"),
                engine=ver["engine"], scratch_database=ver["scratchDatabase"],
                duration_seconds=float(ver["durationSeconds"]),
                collections=ver.get("collections") or {}),
        )


def dump_name(database: str, when: datetime.datetime) -> str:
    """``<database>-<UTC time>``: sorts by time, says what it holds."""
    return f"{database}-{when.astimezone(datetime.UTC):%Y%m%dT%H%M%SZ}"


def write(manifest: Manifest, dump_dir: Path) -> None:
    """Write or replace the manifest atomically (temp file, fsync, rename)."""
    target = dump_dir / MANIFEST_FILE
    temp = dump_dir / f".{MANIFEST_FILE}.tmp"
    with open(temp, "w", encoding="utf-8") as handle:
        json.dump(manifest.to_dict(), handle, indent=2)
        handle.write("\n")
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(temp, target)


def read(dump_dir: Path) -> Manifest:
    path = dump_dir / MANIFEST_FILE
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
        return Manifest.from_dict(doc)
    except FileNotFoundError:
        raise ManifestError(f"{dump_dir.name}: no {MANIFEST_FILE}") from None
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise ManifestError(f"{dump_dir.name}: unreadable {MANIFEST_FILE}: {exc!r}") from None


@dataclass(frozen=True)
class Scan:
    """What a backup directory holds."""

    dumps: list[Manifest]                    # complete dumps, oldest first
    broken: list[tuple[str, str]]            # (directory, why) not counted as dumps
    partial: list[Path]                      # temp directories of unfinished runs


def scan(backup_dir: Path) -> Scan:
    dumps, broken, partial = [], [], []
    for entry in sorted(backup_dir.iterdir()) if backup_dir.is_dir() else []:
        if not entry.is_dir():
            continue
        if entry.name.startswith(TEMP_PREFIX):
            partial.append(entry)
        elif not entry.name.startswith("."):
            try:
                dumps.append(read(entry))
            except ManifestError as exc:
                broken.append((entry.name, str(exc)))
    dumps.sort(key=lambda m: (m.started_at, m.name))
    return Scan(dumps, broken, partial)
