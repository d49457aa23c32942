"""``backup restore NAME --target-database X``: explicit, never by accident.

Refused when a file does not match the manifest (a tampered or torn dump is never loaded),
and when the target database already holds collections, unless ``drop`` says to replace the
dumped ones (as ``mongorestore --drop``: collections the dump does not hold are left alone).
Afterwards the restored counts are checked against the manifest.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from smartid_operator.backup.engine.client import BackupError, connect, user_collections
from smartid_operator.backup.engine.engines import Engine
from smartid_operator.backup.engine.manifest import Manifest
from smartid_operator.backup.engine.progress import Progress
from smartid_operator.backup.engine.verify import check_files


class RestoreRefused(BackupError):
    """The restore would be unsafe; nothing was written."""


@dataclass(frozen=True)
class RestoreResult:
    target: str
    counts: dict[str, int]
    indexes: dict[str, list[str]]
    mismatches: list[str]


def restore(manifest: Manifest, dump_dir: Path, uri: str, engine: Engine, target: str,
            drop: bool, progress: Progress) -> RestoreResult:
    if problems := check_files(manifest, dump_dir):
        raise RestoreRefused(f"{manifest.name} does not match its manifest: "
                             + "; ".join(problems[:3]))
    with connect(uri) as client:
        existing = user_collections(client, target)
        if existing and not drop:
            listed = ", ".join(existing[:5]) + (" ..." if len(existing) > 5 else "")
            raise RestoreRefused(f"target database {target!r} is not empty ({len(existing)} "
                                 f"collection(s): {listed}); pass --drop to replace the "
                                 f"dumped collections, or choose an empty target")
        engine.restore(uri, dump_dir, manifest.database, target, drop, progress)
        db = client[target]
        counts, indexes, mismatches = {}, {}, []
        for entry in manifest.collections:
            if entry.kind == "view":
                continue
            counts[entry.name] = db[entry.name].count_documents({})
            indexes[entry.name] = sorted(str(i["name"]) for i in db[entry.name].list_indexes())
            if counts[entry.name] != entry.count:
                mismatches.append(f"{entry.name}: {counts[entry.name]} documents, the dump "
                                  f"holds {entry.count}")
            if indexes[entry.name] != sorted(entry.indexes):
                mismatches.append(f"{entry.name}: indexes {indexes[entry.name]}, the dump "
                                  f"holds {sorted(entry.indexes)}")
        return RestoreResult(target, counts, indexes, mismatches)
