"""Two engines, one format, one interface.

* ``tools``: the official ``mongodump``/``mongorestore`` (MongoDB Database Tools), used
  whenever both are on PATH (the operator image installs them).
* ``builtin``: pymongo's ``bson`` writing and reading the same layout, for where the tools
  cannot be had (these machines, the test bed).

Each restores the other's dumps: both read and write ``layout``'s format. An engine dumps
one database into a directory and restores one dumped database into a target database;
manifests, atomic publication, verification and retention are the callers', the same for
both.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from smartid_operator.backup.engine import layout
from smartid_operator.backup.engine.client import BackupError
from smartid_operator.backup.engine.digest import ContentDigest
from smartid_operator.backup.engine.manifest import CollectionEntry
from smartid_operator.backup.engine.progress import Progress

ENGINE_ENV = "SMARTID_BACKUP_ENGINE"
CHOICES = ("auto", "builtin", "tools")


@dataclass(frozen=True)
class DumpResult:
    server_version: str
    collections: tuple[CollectionEntry, ...]


class Engine(Protocol):
    name: str

    def version(self) -> str:
        """What wrote or restored a dump, for the manifest."""

    def dump(self, uri: str, database: str, out: Path, gzip: bool,
             progress: Progress) -> DumpResult:
        """Write ``out/<database>/...`` (and ``out/prelude.json[.gz]``); ``out`` exists and
        is empty. Raise on any failure; the caller discards ``out``."""

    def restore(self, uri: str, dump_dir: Path, source: str, target: str, drop: bool,
                progress: Progress) -> None:
        """Restore ``dump_dir/<source>/`` into database ``target``, indexes included;
        ``drop`` drops each dumped collection in the target first."""


def collection_kind(metadata: dict[str, object]) -> str:
    """A dumped collection's type: the metadata's ``type``, or a view by its options
    (dumps older than the ``type`` field)."""
    kind = metadata.get("type")
    if isinstance(kind, str) and kind:
        return kind
    options = metadata.get("options")
    return "view" if isinstance(options, dict) and "viewOn" in options else "collection"


def read_back(out: Path, database: str, progress: Progress) -> tuple[CollectionEntry, ...]:
    """Count and hash what a dump holds by reading its files: the manifest's numbers for a
    dump the official tools wrote (whose bytes are the source's bytes)."""
    db_dir = out / database
    if not db_dir.is_dir():
        return ()
    entries = []
    for files in layout.database_collections(db_dir):
        metadata = files.read_metadata()
        kind = collection_kind(metadata)
        names = tuple(str(i.get("name")) for i in metadata.get("indexes", []))
        digest = ContentDigest()
        for frame in files.frames():
            digest.add(frame)
            if digest.count % 10_000 == 0:
                progress.update("reading back", f"{database}.{files.name}", digest.count,
                                None, digest.bson_bytes)
        entries.append(CollectionEntry(files.name, kind, digest.count, digest.bson_bytes,
                                       digest.hexdigest if kind != "view" else "", names))
    return tuple(entries)


def tools_available() -> bool:
    return all(shutil.which(tool) for tool in ("mongodump", "mongorestore"))


def select(choice: str = "auto") -> Engine:
    """``auto`` takes the official tools when both are on PATH, else the built-in engine."""
    # Imported here: both engines import this module's DumpResult.
    from smartid_operator.backup.engine.builtin_engine import BuiltinEngine
    from smartid_operator.backup.engine.tools_engine import ToolsEngine

    if choice not in CHOICES:
        raise BackupError(f"unknown engine {choice!r}: one of {', '.join(CHOICES)}")
    if choice == "tools" or (choice == "auto" and tools_available()):
        if not tools_available():
            raise BackupError("engine 'tools' needs mongodump and mongorestore on PATH")
        return ToolsEngine()
    return BuiltinEngine()
