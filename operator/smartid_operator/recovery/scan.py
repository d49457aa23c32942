"""Reading the recordings tree: which partitions a pass must list, and what is in them.

No Mongo here. A normal pass lists only the partitions from its checkpoint (less the grace)
to now, so its cost follows what arrived since, not what is on the volume.
"""

from __future__ import annotations

import datetime
import os
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from smartid_operator.recovery import contract


@dataclass(frozen=True)
class Entry:
    """The files of one recording in a partition (by stem)."""

    part: str  # "YYYYMMDD/HHMM"
    stem: str
    names: frozenset[str]

    @property
    def has_sidecar(self) -> bool:
        return self.stem + contract.SIDECAR_SUFFIX in self.names

    @property
    def data_names(self) -> list[str]:
        return sorted(n for n in self.names if not n.endswith(contract.SIDECAR_SUFFIX))

    def path(self, name: str) -> str:
        return f"{contract.RECORDINGS}/{self.part}/{name}"


def floor_minute(moment: datetime.datetime) -> datetime.datetime:
    return moment.astimezone(datetime.UTC).replace(second=0, microsecond=0)


def partitions(storage: Path, since: datetime.datetime | None) -> Iterator[tuple[str, Path]]:
    """``(part, directory)`` of every partition starting at or after ``since``'s minute, in
    order; every partition when ``since`` is None."""
    root = storage / contract.RECORDINGS
    first = floor_minute(since) if since is not None else None
    first_day = f"{first:%Y%m%d}" if first is not None else ""
    for day in sorted(_dirs(root)):
        if day < first_day:
            continue
        for minute in sorted(_dirs(root / day)):
            start = contract.partition_start(day, minute)
            if start is not None and (first is None or start >= first):
                yield f"{day}/{minute}", root / day / minute


def misplaced(storage: Path) -> list[str]:
    """Non-hidden names in the tree that are not where the contract puts anything."""
    root = storage / contract.RECORDINGS
    found: list[str] = []
    for entry in _scan(root):
        if not entry.is_dir() or not entry.name.isdigit() or len(entry.name) != 8:
            found.append(f"{contract.RECORDINGS}/{entry.name}")
            continue
        for inner in _scan(Path(entry.path)):
            if not inner.is_dir() or contract.partition_start(entry.name, inner.name) is None:
                found.append(f"{contract.RECORDINGS}/{entry.name}/{inner.name}")
    return found


def entries(part: str, directory: Path) -> list[Entry]:
    """Every recording's files in a partition, grouped by stem (hidden names left out)."""
    groups: dict[str, set[str]] = defaultdict(set)
    for entry in _scan(directory):
        if entry.is_file(follow_symlinks=False):
            groups[contract.stem(entry.name)].add(entry.name)
    return [Entry(part, s, frozenset(names)) for s, names in sorted(groups.items())]


def _dirs(path: Path) -> list[str]:
    return [e.name for e in _scan(path) if e.is_dir(follow_symlinks=False)]


def _scan(path: Path) -> list[os.DirEntry[str]]:
    try:
        with os.scandir(path) as it:
            return [e for e in it if not contract.hidden(e.name)]
    except (FileNotFoundError, NotADirectoryError):
        return []
