"""``backup run``: dump into a staging directory, checksum it, write its manifest, publish it
(``storage.Storage``: one rename on a volume, the manifest uploaded last to a bucket), verify
it, prune. A failure at any point before publication leaves nothing that lists as a dump (a
process killed outright leaves a partial that ``prune`` reaps later)."""

from __future__ import annotations

import datetime
from collections.abc import Callable
from dataclasses import dataclass, field

from smartid_operator import mongo
from smartid_operator.backup.engine import layout
from smartid_operator.backup.engine import manifest as manifests
from smartid_operator.backup.engine.client import BackupError
from smartid_operator.backup.engine.engines import Engine
from smartid_operator.backup.engine.manifest import FileEntry, Manifest
from smartid_operator.backup.engine.progress import Progress
from smartid_operator.backup.engine.prune import PruneReport, prune
from smartid_operator.backup.engine.retention import Policy
from smartid_operator.backup.engine.storage import Storage, free_name
from smartid_operator.backup.engine.verify import verify
from smartid_operator.clock import utcnow

Clock = Callable[[], datetime.datetime]


@dataclass(frozen=True)
class RunSettings:
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


def dump(uri: str, storage: Storage, settings: RunSettings, engine: Engine,
         progress: Progress, clock: Clock = utcnow) -> Manifest:
    """Write one complete dump and publish it; return its manifest."""
    started = clock()
    name = free_name(storage.scan(), manifests.dump_name(settings.database, started))
    with storage.staging(name) as temp:
        result = engine.dump(uri, settings.database, temp, settings.gzip, progress)
        files = tuple(FileEntry(p.as_posix(), (temp / p).stat().st_size,
                                layout.file_sha256(temp / p))
                      for p in layout.list_files(temp))
        manifest = Manifest(name=name, database=settings.database, started_at=started,
                            completed_at=clock(), engine=engine.name,
                            engine_version=engine.version(),
                            server_version=result.server_version, gzip=settings.gzip,
                            collections=result.collections, files=files)
        storage.publish(temp, manifest)
    return manifest


def run(uri: str, storage: Storage, settings: RunSettings, engine: Engine, progress: Progress,
        clock: Clock = utcnow) -> RunResult:
    """Dump, then verify (when asked), then prune; the manifest as it ends up stored.

    Pruning comes after verification so that a new dump failing its restore can never push
    the last verified one out.
    """
    manifest = dump(uri, storage, settings, engine, progress, clock)
    errors = []
    if settings.verify:
        try:
            with storage.fetch(manifest) as dump_dir:
                verification = verify(manifest, dump_dir, uri, engine,
                                      settings.scratch_database, progress)
            manifest = manifest.with_verification(verification)
            storage.save_manifest(manifest)
        except (BackupError, mongo.MongoError, OSError) as exc:  # not the dump's fault: no verdict
            errors.append(f"verification could not run: {exc}")
    pruned = None
    try:
        pruned = prune(storage, settings.policy, clock())
    except (BackupError, OSError) as exc:
        errors.append(f"prune failed: {exc}")
    return RunResult(manifest, pruned, errors)
