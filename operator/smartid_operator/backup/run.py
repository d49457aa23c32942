"""``backup run``: dump into a hidden temporary directory, checksum it, write its manifest,
publish it with one rename, verify it, prune. A failure at any point before the rename leaves
nothing under a final name (the temporary directory is removed; if the process is killed
outright, ``prune`` reaps it later)."""

from __future__ import annotations

import datetime
import os
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from pymongo.errors import PyMongoError

from smartid_operator.backup import layout
from smartid_operator.backup import manifest as manifests
from smartid_operator.backup.client import BackupError
from smartid_operator.backup.engines import Engine
from smartid_operator.backup.manifest import FileEntry, Manifest
from smartid_operator.backup.progress import Progress
from smartid_operator.backup.prune import PruneReport, prune
from smartid_operator.backup.retention import Policy
from smartid_operator.backup.verify import verify

Clock = Callable[[], datetime.datetime]


def utcnow() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


@dataclass(frozen=True)
class RunSettings:
    backup_dir: Path
    database: str
    gzip: bool = True
    policy: Policy = field(default_factory=Policy)
    verify: bool = True
    scratch_database: str = ""


@dataclass(frozen=True)
class RunResult:
    manifest: Manifest
    pruned: PruneReport | None
    errors: list[str]  # steps after publication that could not run (the dump stands)


def _free_name(backup_dir: Path, name: str) -> str:
    """``name``, or ``name-2``, ... when a dump of the same second exists."""
    candidate, n = name, 1
    while (backup_dir / candidate).exists() or \
            (backup_dir / f"{manifests.TEMP_PREFIX}{candidate}").exists():
        n += 1
        candidate = f"{name}-{n}"
    return candidate


def dump(uri: str, settings: RunSettings, engine: Engine, progress: Progress,
         clock: Clock = utcnow) -> Manifest:
    """Write one complete dump and publish it; return its manifest."""
    backup_dir = settings.backup_dir
    backup_dir.mkdir(parents=True, exist_ok=True)
    started = clock()
    name = _free_name(backup_dir, manifests.dump_name(settings.database, started))
    temp = backup_dir / f"{manifests.TEMP_PREFIX}{name}"
    temp.mkdir()
    try:
        result = engine.dump(uri, settings.database, temp, settings.gzip, progress)
        files = tuple(FileEntry(p.as_posix(), (temp / p).stat().st_size,
                                layout.file_sha256(temp / p))
                      for p in layout.list_files(temp))
        manifest = Manifest(name=name, database=settings.database, started_at=started,
                            completed_at=clock(), engine=engine.name,
                            engine_version=engine.version(),
                            server_version=result.server_version, gzip=settings.gzip,
                            collections=result.collections, files=files)
        manifests.write(manifest, temp)
        for directory in [*(p for p in temp.rglob("*") if p.is_dir()), temp]:
            layout.fsync_path(directory)
        os.rename(temp, backup_dir / name)
        layout.fsync_path(backup_dir)
        return manifest
    except BaseException:
        shutil.rmtree(temp, ignore_errors=True)
        raise


def run(uri: str, settings: RunSettings, engine: Engine, progress: Progress,
        clock: Clock = utcnow) -> RunResult:
    """Dump, then verify (when asked), then prune; the manifest as it ends up on disk.

    Pruning comes after verification so that a new dump failing its restore can never push
    the last verified one out.
    """
    manifest = dump(uri, settings, engine, progress, clock)
    errors = []
    if settings.verify:
        dump_dir = settings.backup_dir / manifest.name
        try:
            manifest = manifest.with_verification(verify(
                manifest, dump_dir, uri, engine, settings.scratch_database, progress))
            manifests.write(manifest, dump_dir)
        except (BackupError, PyMongoError, OSError) as exc:  # not the dump's fault: no verdict
            errors.append(f"verification could not run: {exc}")
    pruned = None
    try:
        pruned = prune(settings.backup_dir, settings.policy, clock())
    except OSError as exc:
        errors.append(f"prune failed: {exc}")
    return RunResult(manifest, pruned, errors)
