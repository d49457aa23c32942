"""Where dumps live: one small interface, two storages (a directory, an S3 bucket).

A dump is written into a staging directory, then published; publication is the one step that
makes it exist (a directory's rename, a bucket's manifest object uploaded last), so a run cut
anywhere before it leaves nothing that lists as a dump: only a partial, which ``prune`` reaps
once nothing has written to it for a grace. Everything else (naming, retention, verification,
restore) is written once against ``Storage``.
"""

from __future__ import annotations

import contextlib
import os
import shutil
from collections.abc import Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from smartid_operator.backup.engine import layout
from smartid_operator.backup.engine import manifest as manifests
from smartid_operator.backup.engine.client import BackupError
from smartid_operator.backup.engine.manifest import Manifest, ManifestError


class StorageError(BackupError):
    """The storage refused or could not be reached; the message names it, never a secret."""


class DeleteDenied(StorageError):
    """The credentials may not delete (object lock, a no-delete policy): not a failed run."""


@dataclass(frozen=True)
class Partial:
    """What an unfinished run left (no manifest, or no final name)."""

    name: str
    last_write: float  # Unix time of its newest file or object


@dataclass(frozen=True)
class Scan:
    dumps: list[Manifest]                    # complete dumps, oldest first
    broken: list[tuple[str, str]]            # (name, why) not counted as dumps
    partial: list[Partial]


class Storage(Protocol):
    location: str  # for messages: a path or s3://bucket/prefix

    def scan(self) -> Scan: ...

    def staging(self, name: str) -> AbstractContextManager[Path]:
        """An empty directory to write dump ``name`` into; gone afterwards, published or not."""

    def publish(self, staged: Path, manifest: Manifest) -> None:
        """Store the staged files, check them against the manifest, then store the manifest:
        from then on the dump exists. Raises, publishing nothing, on any failure."""

    def fetch(self, manifest: Manifest) -> AbstractContextManager[Path]:
        """A local directory holding the dump's files (as stored; the caller checks them)."""

    def save_manifest(self, manifest: Manifest) -> None:
        """Replace a published dump's manifest (its verification result)."""

    def delete(self, name: str) -> None:
        """Unpublish first (the dump stops existing at once), then remove the rest."""

    def remove_partial(self, name: str) -> None: ...


def find(storage: Storage, name: str) -> Manifest:
    """A dump by name, or ``latest`` / ``latest-verified``."""
    dumps = storage.scan().dumps
    if name == "latest" and dumps:
        return dumps[-1]
    if name == "latest-verified":
        verified = [m for m in dumps if m.verified]
        if verified:
            return verified[-1]
    for manifest in dumps:
        if manifest.name == name:
            return manifest
    raise ManifestError(f"no dump named {name!r} in {storage.location} "
                        f"({len(dumps)} dump(s): {', '.join(m.name for m in dumps) or 'none'})")


def free_name(scan: Scan, name: str) -> str:
    """``name``, or ``name-2``, ... when a dump (or a partial) of the same second exists."""
    taken = {m.name for m in scan.dumps} | {n for n, _ in scan.broken} | \
        {p.name.removeprefix(manifests.TEMP_PREFIX) for p in scan.partial}
    candidate, n = name, 1
    while candidate in taken:
        n += 1
        candidate = f"{name}-{n}"
    return candidate


# -- a directory (a PersistentVolumeClaim) -----------------------------------------------------

def _last_write(path: Path) -> float:
    """The newest mtime in a tree (a long dump keeps writing one file deep inside)."""
    newest = 0.0
    for entry in [path, *path.rglob("*")]:
        try:
            newest = max(newest, entry.stat().st_mtime)
        except FileNotFoundError:  # removed meanwhile
            continue
    return newest


class LocalStorage:
    """Dumps as directories: staged under a hidden temporary name beside them, published by
    one rename after everything was fsynced."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.location = str(root)

    def scan(self) -> Scan:
        found = manifests.scan(self.root)
        return Scan(found.dumps, found.broken,
                    [Partial(p.name, _last_write(p)) for p in found.partial])

    @contextlib.contextmanager
    def staging(self, name: str) -> Iterator[Path]:
        self.root.mkdir(parents=True, exist_ok=True)
        temp = self.root / f"{manifests.TEMP_PREFIX}{name}"
        temp.mkdir()
        try:
            yield temp
        finally:
            shutil.rmtree(temp, ignore_errors=True)  # gone after the rename

    def publish(self, staged: Path, manifest: Manifest) -> None:
        manifests.write(manifest, staged)
        for directory in [*(p for p in staged.rglob("*") if p.is_dir()), staged]:
            layout.fsync_path(directory)
        os.rename(staged, self.root / manifest.name)
        layout.fsync_path(self.root)

    def fetch(self, manifest: Manifest) -> AbstractContextManager[Path]:
        return contextlib.nullcontext(self.root / manifest.name)

    def save_manifest(self, manifest: Manifest) -> None:
        manifests.write(manifest, self.root / manifest.name)

    def delete(self, name: str) -> None:
        doomed = self.root / f"{manifests.TEMP_PREFIX}delete-{name}"
        (self.root / name).rename(doomed)  # one atomic step out of listings
        shutil.rmtree(doomed)

    def remove_partial(self, name: str) -> None:
        shutil.rmtree(self.root / name, ignore_errors=True)


def open_storage(location: str) -> Storage:
    """``s3://bucket/prefix`` (credentials from the environment) or a directory."""
    if location.startswith("s3://"):
        from smartid_operator.backup.engine.s3 import S3Storage, config_from_env  # needs storage

        return S3Storage(config_from_env(location))
    return LocalStorage(Path(location))
