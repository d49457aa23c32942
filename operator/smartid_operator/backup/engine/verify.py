"""Proving a dump restores: checksums first, then a restore into a scratch database whose
counts, content hashes and indexes must equal what the manifest recorded from the source.

The scratch database is dropped afterwards, pass or fail. It is marked while in use, and a
scratch database holding data without that mark is refused, never dropped: pointing
``--scratch-database`` at real data cannot destroy it.
"""

from __future__ import annotations

import datetime
import time
from pathlib import Path
from typing import Any

from smartid_operator import clock, mongo
from smartid_operator.backup.engine import layout
from smartid_operator.backup.engine.client import BackupError, connect
from smartid_operator.backup.engine.digest import ContentDigest
from smartid_operator.backup.engine.engines import Engine
from smartid_operator.backup.engine.manifest import (
    FAILED,
    MANIFEST_FILE,
    PASSED,
    Manifest,
    Verification,
)
from smartid_operator.backup.engine.progress import Progress

MARKER = "smartid_backup_verify"
SCRATCH_ENV = "SMARTID_BACKUP_SCRATCH_DATABASE"
# A marked scratch database younger than this is another verification's, still running (one
# killed outright leaves its mark; after this long it is taken over).
IN_USE = datetime.timedelta(hours=2)


def default_scratch(database: str) -> str:
    return f"{database}_verify"


def check_files(manifest: Manifest, dump_dir: Path) -> list[str]:
    """Each file the manifest lists must be there with its size and sha256, and nothing else."""
    problems = []
    on_disk = {p.as_posix() for p in layout.list_files(dump_dir)}
    on_disk -= {MANIFEST_FILE, f".{MANIFEST_FILE}.tmp"}
    for entry in manifest.files:
        path = dump_dir / entry.path
        if entry.path not in on_disk:
            problems.append(f"{entry.path}: missing")
        elif path.stat().st_size != entry.size:
            problems.append(f"{entry.path}: {path.stat().st_size} bytes, the manifest says "
                            f"{entry.size} (tampered or truncated)")
        elif layout.file_sha256(path) != entry.sha256:
            problems.append(f"{entry.path}: sha256 differs from the manifest (tampered or "
                            f"corrupted)")
    problems += [f"{extra}: not in the manifest" for extra in
                 sorted(on_disk - {e.path for e in manifest.files})]
    return problems


def collection_digest(client: mongo.Client, database: str, name: str) -> ContentDigest:
    collection = mongo.raw_collection(client, database, name)
    return ContentDigest().update(d.raw for d in collection.find({}, batch_size=1000))


def _claim(client: mongo.Client, scratch: str, dump: str) -> None:
    names = [n for n in client[scratch].list_collection_names() if not n.startswith("system.")]
    if names and MARKER not in names:
        raise BackupError(f"scratch database {scratch!r} holds collections that no "
                          f"verification made ({', '.join(names[:5])}); refusing to use or "
                          f"drop it: choose another with --scratch-database")
    mark = client[scratch][MARKER].find_one({"_id": "verify"}) if names else None
    if mark and isinstance(started := mark.get("startedAt"), datetime.datetime):
        started = clock.utc_moment(started)
        if clock.utcnow() - started < IN_USE:
            raise BackupError(f"scratch database {scratch!r} is in use by the verification of "
                              f"{mark.get('dump')} started {started:%Y-%m-%d %H:%M:%S} UTC; "
                              f"use another --scratch-database (or drop it if that run died)")
    client.drop_database(scratch)  # leftovers of an interrupted verification
    client[scratch][MARKER].insert_one({"_id": "verify", "dump": dump,
                                        "startedAt": clock.utcnow()})


def compare(manifest: Manifest, client: mongo.Client, scratch: str) -> tuple[list[str],
                                                                       dict[str, Any]]:
    """Differences between the restored copy and the manifest, and per-collection results."""
    problems: list[str] = []
    results: dict[str, Any] = {}
    restored = {c["name"]: c for c in client[scratch].list_collections()}
    restored.pop(MARKER, None)
    for entry in manifest.collections:
        info = restored.pop(entry.name, None)
        if info is None:
            problems.append(f"{entry.name}: not restored")
            results[entry.name] = {"match": False}
            continue
        if entry.kind == "view":
            results[entry.name] = {"match": info.get("type") == "view"}
            continue
        digest = collection_digest(client, scratch, entry.name)
        indexes = sorted(str(i["name"]) for i in client[scratch][entry.name].list_indexes())
        mismatch = []
        if digest.count != entry.count:
            mismatch.append(f"{digest.count} documents restored, {entry.count} dumped")
        elif digest.hexdigest != entry.content_hash:
            mismatch.append("content hash differs from the source's")
        if indexes != sorted(entry.indexes):
            mismatch.append(f"indexes {indexes} restored, {sorted(entry.indexes)} dumped")
        problems += [f"{entry.name}: {m}" for m in mismatch]
        results[entry.name] = {"count": digest.count, "contentHash": digest.hexdigest,
                               "match": not mismatch}
    problems += [f"{name}: restored but not in the manifest" for name in sorted(restored)]
    return problems, results


def verify(manifest: Manifest, dump_dir: Path, uri: str, engine: Engine, scratch: str,
           progress: Progress) -> Verification:
    """Restore into ``scratch``, compare, drop ``scratch``; the result, never an exception
    for a dump that does not hold up (an unreachable server still raises)."""
    started = time.monotonic()

    def result(problems: list[str], collections: dict[str, Any] | None = None) -> Verification:
        reason = None
        if problems:
            more = f" (+{len(problems) - 3} more)" if len(problems) > 3 else ""
            reason = "; ".join(problems[:3]) + more
        return Verification(FAILED if problems else PASSED, clock.utcnow(),
                            reason, engine.name, scratch,
                            round(time.monotonic() - started, 3), collections or {})

    if scratch == manifest.database:
        raise BackupError("the scratch database must not be the dumped database")
    if problems := check_files(manifest, dump_dir):
        return result(problems)
    with connect(uri) as client:
        _claim(client, scratch, manifest.name)
        try:
            try:
                engine.restore(uri, dump_dir, manifest.database, scratch, False, progress)
            except mongo.Unanswered:
                raise  # the server's trouble, not the dump's: no verdict
            except (BackupError, layout.DumpFormatError, mongo.MongoError) as exc:
                return result([f"restore failed: {exc}"])
            return result(*compare(manifest, client, scratch))
        finally:
            client.drop_database(scratch)
