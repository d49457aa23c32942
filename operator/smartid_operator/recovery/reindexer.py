"""The reindexer: one pass indexes what is on storage and not in Mongo.

A **normal pass** lists the partitions published since the checkpoint's watermark (less a
grace for clock skew and slow renames), so it costs what arrived since, not what the volume
holds; a **full pass** lists every partition and compares with the whole ``recordings``
collection read once, repairing drift (a recording that landed in an old partition, a Mongo
restored from an older backup) and counting index entries whose file is gone. Both replay the
spool. Inputs that break the contract are skipped, reported by path and tracked until they are
indexed or removed; a pass never stops on them.

Two passes may overlap (two agents, an agent and the CLI): every write is an insert of a
document with a deterministic ``_id`` under unique keys, the watermark only moves forward, and
retiring a spool file another pass retired first is a no-op. Tests prove it with two passes
racing on the same input.
"""

from __future__ import annotations

import contextlib
import datetime
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

from pymongo.errors import PyMongoError

from smartid_operator.recovery import contract, scan, spool, state
from smartid_operator.recovery.contract import ContractError
from smartid_operator.recovery.inserts import insert_missing
from smartid_operator.recovery.link import Database
from smartid_operator.recovery.replay import LiveOffset, SpoolReplay, spool_files
from smartid_operator.recovery.report import PassReport, Skip

RECORDINGS = "recordings"


class Reindexer:
    def __init__(self, storage: str | Path, *, batch_size: int = 500,
                 grace_seconds: float = 120.0, orphan_grace_seconds: float = 10.0,
                 progress: Callable[[PassReport], None] | None = None) -> None:
        if batch_size < 1:
            raise ValueError("batch size must be at least 1")
        self.storage = Path(storage)
        self.batch_size = batch_size
        self.grace = datetime.timedelta(seconds=grace_seconds)
        self.orphan_grace = orphan_grace_seconds
        self.progress = progress
        self.checkpoint: state.Checkpoint | None = None  # as of the last pass that read it
        # In memory only (an optimisation; a fresh process simply re-checks): recordings this
        # instance saw indexed, and how far each live spool file has been replayed.
        self._confirmed: set[tuple[str, str]] = set()
        self._offsets: dict[str, LiveOffset] = {}
        self._line_counts: dict[str, tuple[int, int, int, int]] = {}  # survey's counts

    # -- a pass --------------------------------------------------------------------------------

    def run(self, db: Database, *, full: bool = False, trigger: str = "manual") -> PassReport:
        started = contract.utcnow()
        report = PassReport("full" if full else "normal", trigger, started)
        clock = time.perf_counter()
        try:
            self._pass(db, report, full)
        except PyMongoError as exc:
            report.failed_on = "mongo"
            report.error = f"{type(exc).__name__}: {str(exc).split(', Timeout:')[0][:300]}"
        except OSError as exc:  # the volume itself (unmounted, read-only, full)
            report.failed_on = "storage"
            report.error = f"{type(exc).__name__}: {exc}"[:300]
        if report.failed_on:
            with contextlib.suppress(OSError):
                report.pending, report.oldest_unindexed_seconds = self.survey()
        report.finished_at = contract.utcnow()
        report.duration_seconds = time.perf_counter() - clock
        return report

    def _pass(self, db: Database, report: PassReport, full: bool) -> None:
        now = report.started_at
        self.checkpoint = state.read_checkpoint(db)
        watermark = self.checkpoint.watermark
        full = full or watermark is None
        report.kind = "full" if full else "normal"
        since = None if full or watermark is None else watermark - self.grace
        tracked = {doc["_id"]: doc for doc in state.read_skipped(db)}
        found: dict[str, Skip] = {}
        examined: set[tuple[str, str]] = set()

        index = self._index_map(db) if full else None
        work: list[scan.Entry] = []
        listed: set[str] = set()
        for part, directory in scan.partitions(self.storage, since):
            listed.add(part)
            work += scan.entries(part, directory)
        report.partitions_scanned = len(listed)
        work += self._tracked_entries(tracked.values(), listed)
        if full:
            for path in scan.misplaced(self.storage):
                found[path] = Skip(path, "misplaced", "not under recordings/YYYYMMDD/HHMM/")
        self._index_recordings(db, work, index, report, found, examined, now)

        replay = SpoolReplay(self.storage, db, self.batch_size, report, self._offsets,
                             lambda: self._progress(report))
        replay.run(now)
        for skip in replay.skips:
            found[skip.key] = skip

        resolved = [key for key, doc in tracked.items() if key not in found and (
            (doc.get("part"), doc.get("stem")) in examined
            or not (self.storage / doc["path"]).exists())]
        state.update_skipped(db, {key: self._tracked_entry(s) for key, s in found.items()},
                             resolved, now)
        self._summarise(report, found, tracked, resolved)
        state.advance_checkpoint(db, now, full, contract.utcnow())
        report.watermark = now
        # Only partitions the next normal pass will list are worth remembering.
        oldest = contract.partition(now - self.grace)
        self._confirmed = {c for c in self._confirmed if c[0] >= oldest}

    # -- recordings ----------------------------------------------------------------------------

    def _index_map(self, db: Database) -> dict[str, str]:
        """Every indexed recording's storage key, read once (one scan, not one per batch)."""
        return {str(doc["_id"]): str(doc.get("storage_key"))
                for doc in db[RECORDINGS].find({}, {"storage_key": 1})}

    def _tracked_entries(self, tracked: Any, listed: set[str]) -> list[scan.Entry]:
        """Skipped recordings outside this pass's window: look at their partitions again."""
        wanted: dict[str, set[str]] = {}
        for doc in tracked:
            if doc.get("kind") == "recording" and doc.get("part") not in listed:
                wanted.setdefault(doc["part"], set()).add(doc["stem"])
        found: list[scan.Entry] = []
        for part, stems in wanted.items():
            entries = scan.entries(part, self.storage / contract.RECORDINGS / part)
            found += [e for e in entries if e.stem in stems]
        return found

    def _index_recordings(self, db: Database, work: list[scan.Entry],
                          index: dict[str, str] | None, report: PassReport,
                          found: dict[str, Skip], examined: set[tuple[str, str]],
                          now: datetime.datetime) -> None:
        batch: list[tuple[scan.Entry, dict[str, Any]]] = []
        seen: set[tuple[str, str]] = set()
        for entry in work:
            key = (entry.part, entry.stem)
            if key in seen:
                continue
            seen.add(key)
            examined.add(key)
            if index is None and key in self._confirmed:
                continue
            doc = self._document(entry, index, report, found, now)
            if doc is not None:
                batch.append((entry, doc))
            if len(batch) >= self.batch_size:
                self._flush_recordings(db, batch, report, found)
                batch = []
        self._flush_recordings(db, batch, report, found)
        if index is not None:
            on_storage = {f"{contract.RECORDINGS}/{p}/{s}" for p, s in seen}
            report.index_without_file = sum(
                1 for rid, key in index.items()
                if f"{key.rsplit('/', 1)[0]}/{rid}" not in on_storage)

    def _document(self, entry: scan.Entry, index: dict[str, str] | None, report: PassReport,
                  found: dict[str, Skip], now: datetime.datetime) -> dict[str, Any] | None:
        """The recording's Mongo document, or None (indexed already, or skipped)."""
        if not entry.has_sidecar:
            self._orphans(entry, found)
            return None
        sidecar_path = entry.path(entry.stem + contract.SIDECAR_SUFFIX)
        if index is not None and entry.stem in index:
            indexed_at = index[entry.stem]
            if indexed_at.rsplit("/", 1)[0] == f"{contract.RECORDINGS}/{entry.part}":
                report.recordings_present += 1
                self._confirmed.add((entry.part, entry.stem))
            else:
                found[sidecar_path] = Skip(sidecar_path, "duplicate-id",
                                           f"this recording id is indexed for {indexed_at}")
            return None
        try:
            sidecar = contract.parse_sidecar((self.storage / sidecar_path).read_bytes(),
                                             entry.stem)
        except FileNotFoundError:
            return None  # removed since the listing
        except ContractError as exc:
            found[sidecar_path] = Skip(sidecar_path, exc.reason, exc.detail)
            return None
        except OSError as exc:  # permissions, I/O errors: this file, not the pass
            found[sidecar_path] = Skip(sidecar_path, "unreadable", str(exc)[:300])
            return None
        if sidecar.data_file not in entry.names:
            found[sidecar_path] = Skip(sidecar_path, "missing-data",
                                       f"{sidecar.data_file} is not beside the sidecar")
            return None
        data_path = entry.path(sidecar.data_file)
        if sidecar.size_bytes is not None:
            try:
                size = (self.storage / data_path).stat().st_size
            except FileNotFoundError:
                return None
            if size != sidecar.size_bytes:
                found[data_path] = Skip(data_path, "size-mismatch",
                                        f"{size} bytes, the sidecar says {sidecar.size_bytes}")
                return None
        return contract.recording_document(sidecar, data_path, "reindexer", now)

    def _orphans(self, entry: scan.Entry, found: dict[str, Skip]) -> None:
        """Data without a sidecar: in flight for a few seconds (the sidecar is published
        right after the data), then a skip someone must look at."""
        for name in entry.data_names:
            path = entry.path(name)
            try:
                age = time.time() - (self.storage / path).stat().st_mtime
            except FileNotFoundError:
                continue
            found[path] = Skip(path, "missing-metadata",
                               f"no {entry.stem}{contract.SIDECAR_SUFFIX} beside it "
                               f"({age:.0f} s old)", transient=age < self.orphan_grace)

    def _flush_recordings(self, db: Database, batch: list[tuple[scan.Entry, dict[str, Any]]],
                          report: PassReport, found: dict[str, Skip]) -> None:
        if not batch:
            return
        outcome = insert_missing(db[RECORDINGS], [doc for _, doc in batch])
        report.recordings_indexed += len(outcome.inserted)
        report.recordings_present += len(outcome.present)
        for entry, doc in batch:
            if doc["_id"] in outcome.refused:
                path = entry.path(entry.stem + contract.SIDECAR_SUFFIX)
                found[path] = Skip(path, "refused", outcome.refused[doc["_id"]])
            else:
                self._confirmed.add((entry.part, entry.stem))
        self._progress(report)

    # -- reporting -----------------------------------------------------------------------------

    def _progress(self, report: PassReport) -> None:
        if self.progress is not None:
            self.progress(report)

    @staticmethod
    def _tracked_entry(skip: Skip) -> dict[str, Any]:
        parts = skip.path.split("/")
        entry = {"path": skip.path, "line": skip.line, "reason": skip.reason,
                 "detail": skip.detail, "transient": skip.transient, "kind": "file"}
        if (len(parts) == 4 and parts[0] == contract.RECORDINGS and skip.line is None
                and contract.partition_start(parts[1], parts[2]) is not None):
            entry.update(kind="recording", part=f"{parts[1]}/{parts[2]}",
                         stem=contract.stem(parts[3]))
        return entry

    def _summarise(self, report: PassReport, found: dict[str, Skip],
                   tracked: dict[str, dict[str, Any]], resolved: list[str]) -> None:
        """Skips: this pass's and still-unresolved earlier ones; in-flight ones are pending."""
        now = time.time()
        first_seen = {key: doc.get("first_seen") for key, doc in tracked.items()}
        current = [replace(s, first_seen=first_seen.get(key)) for key, s in found.items()]
        gone = set(resolved) | set(found)
        current += [Skip(doc["path"], doc["reason"], doc.get("detail", ""), doc.get("line"),
                         first_seen=doc.get("first_seen"))
                    for key, doc in tracked.items() if key not in gone]
        report.skipped = sorted((s for s in current if not s.transient), key=lambda s: s.key)
        in_flight = [s for s in current if s.transient]
        report.pending = len(in_flight) + self._live_backlog()
        ages = [now - mtime for s in in_flight if (mtime := _mtime(self.storage / s.path))]
        report.oldest_unindexed_seconds = max(ages) if ages else None

    def _live_backlog(self) -> int:
        """Complete lines in live spool files beyond what this pass replayed."""
        _, opened = spool_files(self.storage)
        total = 0
        for path in opened:
            known = self._offsets.get(path.name)
            total += spool.count_lines(path, known.offset if known else 0)
        return total

    # -- without Mongo -------------------------------------------------------------------------

    def survey(self) -> tuple[int, float | None]:
        """(pending records, oldest age in seconds) from storage alone, for while Mongo is
        down: spool lines not replayed, and recordings published since the last known
        watermark that this instance has not seen indexed (an estimate: the writer may have
        indexed some directly)."""
        now = time.time()
        ages: list[float] = []
        pending = 0
        sealed, opened = spool_files(self.storage)
        present = {p.name for p in [*sealed, *opened]}
        self._line_counts = {k: v for k, v in self._line_counts.items() if k in present}
        for path in [*sealed, *opened]:
            lines = self._count_unreplayed(path)
            if lines:
                pending += lines
                ages.append(now - _spool_started(path))
        watermark = self.checkpoint.watermark if self.checkpoint else None
        if watermark is not None:
            for part, directory in scan.partitions(self.storage, watermark - self.grace):
                for entry in scan.entries(part, directory):
                    if entry.has_sidecar and (part, entry.stem) not in self._confirmed:
                        mtime = _mtime(directory / (entry.stem + contract.SIDECAR_SUFFIX))
                        if mtime:
                            pending += 1
                            ages.append(now - mtime)
        return pending, (max(ages) if ages else None)

    def _count_unreplayed(self, path: Path) -> int:
        """Lines beyond what was replayed; counted incrementally, since a long outage's spool
        is surveyed every few seconds and only grows."""
        try:
            st = path.stat()
        except FileNotFoundError:
            return 0
        known = self._offsets.get(path.name)
        start = known.offset if known is not None and known.inode == st.st_ino else 0
        cached = self._line_counts.get(path.name)
        if cached is not None and cached[0] == st.st_ino and cached[1] == start \
                and cached[2] <= st.st_size:
            lines = cached[3] + spool.count_lines(path, cached[2])
        else:
            lines = spool.count_lines(path, start)
        self._line_counts[path.name] = (st.st_ino, start, st.st_size, lines)
        return lines


def _mtime(path: Path) -> float | None:
    try:
        return path.stat().st_mtime
    except FileNotFoundError:
        return None


def _spool_started(path: Path) -> float:
    """When a spool file was begun: from our writer's name (seg-<UTC time>Z-...), else mtime."""
    try:
        stamp = path.name.split("-", 2)[1]
        return datetime.datetime.strptime(stamp, "%Y%m%dT%H%M%S%fZ").replace(
            tzinfo=datetime.UTC).timestamp()
    except (IndexError, ValueError):
        try:
            return path.stat().st_mtime
        except FileNotFoundError:
            return time.time()
