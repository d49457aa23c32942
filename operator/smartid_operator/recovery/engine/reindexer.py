"""The reindexer: one pass indexes what is on storage and not in Mongo. Runs in the recovery
agent's pod and in ``smartid-operator reindex``.

Between passes, ``look()`` walks the tree (``tree.Tree``: one ``stat`` per directory, a listing
of each directory that changed; no Mongo) and remembers the changed directories; it runs while
Mongo is down too, so when Mongo answers the outage's writes are already found. A **changes
pass** indexes the recordings in those directories whose files changed since the directory was
last listed, at any depth under ``recordings/``. A **full pass** merges every directory, in
the order of their paths, against the ``recordings`` collection read in ``storage_key`` order:
memory stays flat and time linear, and it repairs what no change shows (a Mongo restored from
an older backup) and counts index entries whose file is gone. Both replay the spool. Inputs
that break the layout rules are skipped, reported by path and tracked until they are indexed
or removed; a pass never stops on them.

What a pass covered is part of its report: a full pass, everything on storage; a changes
pass, every change since ``covered_since`` (the start of this process's first full pass), since
every walk since then stat'ed every directory.

Two passes may overlap (two agents, an agent and the CLI): every write is an insert of a
document with a deterministic ``_id`` under unique keys, and retiring a spool file another pass
retired first is a no-op. Tests prove it with two passes racing on the same input.
"""

from __future__ import annotations

import contextlib
import datetime
import time
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

from smartid_operator import clock, mongo
from smartid_operator.mongo import Database
from smartid_operator.recovery.engine import contract, scan, spool, state
from smartid_operator.recovery.engine.contract import ContractError
from smartid_operator.recovery.engine.inserts import insert_missing
from smartid_operator.recovery.engine.replay import LiveOffset, SpoolReplay, spool_files
from smartid_operator.recovery.engine.report import PassReport, Skip
from smartid_operator.recovery.engine.tree import Listing, Tree

RECORDINGS = "recordings"
SORT_SECONDS = 1800.0
CONFIRMED_NS = 60 * 10**9  # how long a recording seen indexed is not tried again
_EVERY_FILE = -1  # a directory's files are all candidates (never listed before)


class Reindexer:
    def __init__(self, storage: str | Path, *, batch_size: int = 500,
                 grace_seconds: float = 0.0, orphan_grace_seconds: float = 10.0,
                 settle_seconds: float = 2.0,
                 progress: Callable[[PassReport], None] | None = None) -> None:
        if batch_size < 1:
            raise ValueError("batch size must be at least 1")
        self.storage = Path(storage)
        self.batch_size = batch_size
        self.grace_ns = int(grace_seconds * 1e9)
        self.orphan_grace = orphan_grace_seconds
        self.progress = progress
        self.tree = Tree(self.storage, top=scan.WALKED, settle_seconds=settle_seconds)
        # Directories that changed since the last pass processed them: their latest listing
        # and the oldest time their files must be looked at from (ns).
        self._dirty: dict[str, tuple[Listing, int, frozenset[tuple[str, int]]]] = {}
        self.covered_since: datetime.datetime | None = None
        self.full_pass_at: datetime.datetime | None = None
        self.walk_directories = 0
        # In memory only (an optimisation; a fresh process simply re-checks): recordings this
        # instance saw indexed lately, and how far each live spool file has been replayed.
        self._confirmed: dict[tuple[str, str], int] = {}
        self._offsets: dict[str, LiveOffset] = {}
        self._line_counts: dict[str, tuple[int, int, int, int]] = {}  # survey's counts

    # -- between passes: what changed ------------------------------------------------------

    def look(self) -> int:
        """Walk the tree and remember what changed; returns the directories listed."""
        baseline = self.tree.known == 0
        walk = self.tree.walk()
        self.walk_directories = walk.directories
        if baseline:  # what was there before the first walk is the startup full pass's
            return len(walk.listings)
        for listing in walk.listings:
            since = _EVERY_FILE if listing.previous_mtime_ns is None \
                else listing.previous_mtime_ns
            seen = listing.previous_tick
            earlier = self._dirty.get(listing.rel)
            if earlier is not None and earlier[1] <= since:  # the older look decides
                since, seen = earlier[1], earlier[2]
            self._dirty[listing.rel] = (listing, since, seen)
        return len(walk.listings)

    @property
    def changed(self) -> bool:
        return bool(self._dirty)

    # -- a pass --------------------------------------------------------------------------------

    def run(self, db: Database, *, full: bool = False, trigger: str = "manual") -> PassReport:
        started = clock.utcnow()
        full = full or self.covered_since is None
        report = PassReport("full" if full else "changes", trigger, started)
        timer = time.perf_counter()
        try:
            with mongo.translated():
                self._pass(db, report, full)
        except mongo.MongoError as exc:
            report.failed_on = "mongo"
            report.error = f"{type(exc).__name__}: {exc}"
        except OSError as exc:  # the volume itself (unmounted, read-only, full)
            report.failed_on = "storage"
            report.error = f"{type(exc).__name__}: {exc}"[:300]
        if report.failed_on and not full:  # a full pass's failure leaves nothing to estimate from
            with contextlib.suppress(OSError):
                report.pending, report.oldest_unindexed_seconds = self.survey()
        else:
            if full:
                self.covered_since = started
                self.full_pass_at = started
            report.covers_since = self.covered_since
        report.full_pass_at = self.full_pass_at
        report.finished_at = clock.utcnow()
        report.duration_seconds = time.perf_counter() - timer
        return report

    def _pass(self, db: Database, report: PassReport, full: bool) -> None:
        if not full:
            self.look()
        dirty, self._dirty = self._dirty, {}
        try:
            self._work(db, report, full, dirty)
        except BaseException:  # nothing is lost: the next pass looks at these again
            for rel, (listing, since, seen) in dirty.items():
                newer = self._dirty.get(rel)
                self._dirty[rel] = (newer[0], since, seen) if newer else (listing, since, seen)
            raise

    def _work(self, db: Database, report: PassReport, full: bool,
              dirty: dict[str, tuple[Listing, int, frozenset[tuple[str, int]]]]) -> None:
        now = report.started_at
        tracked = {doc["_id"]: doc for doc in state.read_skipped(db)}
        found: dict[str, Skip] = {}
        examined: set[tuple[str, str]] = set()
        batch = _Batch(self, db, report, found)
        if full:
            self._full(db, report, found, batch, now)
        else:
            for listing, since, seen in dirty.values():
                self._changes(listing, since, seen, report, found, examined, batch, now)
            report.directories = self.walk_directories
            report.listed = len(dirty)
            self._tracked(tracked, report, found, examined, batch, now)
        batch.flush()

        replay = SpoolReplay(self.storage, db, self.batch_size, report, self._offsets,
                             lambda: self._progress(report))
        replay.run(now)
        for skip in replay.skips:
            found[skip.key] = skip

        # A full pass examined everything on storage (and keeps no set of it: flat memory).
        resolved = [key for key, doc in tracked.items() if key not in found and (
            (full and doc.get("line") is None) or (doc.get("dir"), doc.get("stem")) in examined
            or not (self.storage / doc["path"]).exists())]
        state.update_skipped(db, {key: self._tracked_entry(s) for key, s in found.items()},
                             resolved, now)
        self._summarise(report, found, tracked, resolved)
        state.advance_checkpoint(db, now, full, clock.utcnow())
        report.watermark = now
        oldest = time.time_ns() - max(2 * self.grace_ns, CONFIRMED_NS)
        self._confirmed = {k: t for k, t in self._confirmed.items() if t >= oldest}

    # -- recordings ----------------------------------------------------------------------------

    def _changes(self, listing: Listing, since: int, seen: frozenset[tuple[str, int]],
                 report: PassReport,
                 found: dict[str, Skip], examined: set[tuple[str, str]], batch: _Batch,
                 now: datetime.datetime) -> None:
        """The recordings of a changed directory whose files changed since ``since`` (its mtime
        when last listed, the volume's clock)."""
        fresh = self._fresh(listing, since, seen)
        entries, skips = scan.classify(listing)
        for skip in skips:
            if skip.path.rsplit("/", 1)[-1] in fresh or not listing.rel:
                found[skip.key] = skip
        for entry in entries:
            if entry.names & fresh and entry.key not in self._confirmed:
                examined.add(entry.key)
                self._examine(entry, None, report, found, batch, now)

    def _fresh(self, listing: Listing, since: int,
               seen: frozenset[tuple[str, int]]) -> set[str]:
        """The files that may be new: not older than the directory's mtime when last listed
        (the volume's clock), less those that listing already had."""
        if since == _EVERY_FILE:
            return {f.name for f in listing.files}
        threshold = since - self.grace_ns
        return {f.name for f in listing.files
                if f.ctime_ns >= threshold and (f.name, f.ctime_ns) not in seen}

    def _full(self, db: Database, report: PassReport, found: dict[str, Skip], batch: _Batch,
              now: datetime.datetime) -> None:
        """Every recording on storage against the index, both in ``storage_key`` order."""
        root = self.tree.list_now("")
        if root is not None:
            report.listed += 1
            for skip in scan.classify(root)[1]:
                found[skip.key] = skip
        keys = _sorted_keys(db)
        indexed = next(keys, None)
        missing_files = 0
        for entry in self._in_order(RECORDINGS, found, report):
            key = entry.path(entry.name)
            while indexed is not None and indexed < key:
                missing_files += 1
                indexed = next(keys, None)
            if indexed == key:
                report.recordings_present += 1
                indexed = next(keys, None)
                continue
            self._examine(entry, "full", report, found, batch, now)
        while indexed is not None:
            missing_files += 1
            indexed = next(keys, None)
        report.index_without_file = missing_files
        report.directories = report.listed

    def _in_order(self, rel: str, found: dict[str, Skip],
                  report: PassReport) -> Iterator[scan.Entry]:
        listing = self.tree.list_now(rel)
        if listing is None:
            return
        report.listed += 1
        entries, skips = scan.classify(listing)
        for skip in skips:
            found[skip.key] = skip
        for item in scan.in_order(entries, listing.subdirs):
            if isinstance(item, str):
                yield from self._in_order(f"{rel}/{item}", found, report)
            else:
                yield item

    def _tracked(self, tracked: dict[str, dict[str, Any]], report: PassReport,
                 found: dict[str, Skip], examined: set[tuple[str, str]], batch: _Batch,
                 now: datetime.datetime) -> None:
        """Skipped recordings not examined by this pass: looked at again when their file
        changed since, or while they are in flight."""
        for doc in tracked.values():
            key = (str(doc.get("dir")), str(doc.get("stem")))
            if doc.get("kind") != "recording" or key in examined:
                continue
            try:
                ctime = (self.storage / doc["path"]).stat().st_ctime_ns
            except FileNotFoundError:
                ctime = None
            # A fix by rename moves its directory (a changes pass sees it); one in place, the
            # file's ctime.
            if not (doc.get("transient") or ctime != doc.get("ctime_ns")):
                continue
            listing = self.tree.list_now(key[0], remember=False)
            entry = next((e for e in scan.classify(listing)[0] if e.key == key), None) \
                if listing is not None else None
            if entry is not None:
                examined.add(key)
                self._examine(entry, None, report, found, batch, now)

    def _examine(self, entry: scan.Entry, check: str | None, report: PassReport,
                 found: dict[str, Skip], batch: _Batch, now: datetime.datetime) -> None:
        doc = self._document(entry, found, now)
        if doc is not None:
            batch.add(entry, doc, check)

    def _document(self, entry: scan.Entry, found: dict[str, Skip],
                  now: datetime.datetime) -> dict[str, Any] | None:
        """The recording's Mongo document, or None (skipped, or in flight)."""
        if not entry.has_sidecar:
            self._orphans(entry, found)
            return None
        sidecar_path = entry.path(entry.stem + contract.SIDECAR_SUFFIX)
        try:
            raw = (self.storage / sidecar_path).read_bytes()
            sidecar = contract.parse_sidecar(raw, entry.stem)
        except FileNotFoundError:
            return None  # removed since the listing
        except ContractError as exc:
            found[sidecar_path] = Skip(sidecar_path, exc.reason, exc.detail,
                                       transient=self._young(sidecar_path))
            return None
        except OSError as exc:  # permissions, I/O errors: this file, not the pass
            found[sidecar_path] = Skip(sidecar_path, "unreadable", str(exc)[:300])
            return None
        if sidecar.data_file not in entry.names:
            found[sidecar_path] = Skip(sidecar_path, "missing-data",
                                       f"{sidecar.data_file} is not beside the sidecar",
                                       transient=self._young(sidecar_path))
            return None
        data_path = entry.path(sidecar.data_file)
        if sidecar.size_bytes is not None:
            try:
                size = (self.storage / data_path).stat().st_size
            except FileNotFoundError:
                return None
            if size != sidecar.size_bytes:
                found[data_path] = Skip(data_path, "size-mismatch",
                                        f"{size} bytes, the sidecar says {sidecar.size_bytes}",
                                        transient=self._young(data_path))
                return None
        return contract.recording_document(sidecar, data_path, "reindexer", now)

    def _young(self, path: str) -> bool:
        """Written in the last few seconds: a writer that does not rename may still be at it."""
        try:
            return time.time() - (self.storage / path).stat().st_mtime < self.orphan_grace
        except FileNotFoundError:
            return True

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

    def _inserted(self, db: Database, batch: list[tuple[scan.Entry, dict[str, Any], str | None]],
                  report: PassReport, found: dict[str, Skip]) -> None:
        outcome = insert_missing(db[RECORDINGS], [doc for _, doc, _ in batch])
        report.recordings_indexed += len(outcome.inserted)
        present = set(outcome.present)
        # A full pass found no document at this path: a present id is indexed elsewhere.
        elsewhere = {str(d["_id"]): str(d.get("storage_key")) for d in db[RECORDINGS].find(
            {"_id": {"$in": sorted(present)}}, {"storage_key": 1})} if any(
            check for e, doc, check in batch if doc["_id"] in present) else {}
        stamp = time.time_ns()
        for entry, doc, check in batch:
            path = entry.path(entry.stem + contract.SIDECAR_SUFFIX)
            if doc["_id"] in outcome.refused:
                found[path] = Skip(path, "refused", outcome.refused[doc["_id"]])
                continue
            other = elsewhere.get(doc["_id"])
            if check and other is not None and other != doc["storage_key"]:
                found[path] = Skip(path, "duplicate-id",
                                   f"this recording id is indexed for {other}")
                continue
            if doc["_id"] in present:
                report.recordings_present += 1
            if check is None:  # a changes pass's: the next ones may list it again
                self._confirmed[entry.key] = stamp
        self._progress(report)

    # -- reporting -----------------------------------------------------------------------------

    def _progress(self, report: PassReport) -> None:
        if self.progress is not None:
            self.progress(report)

    def _tracked_entry(self, skip: Skip) -> dict[str, Any]:
        entry: dict[str, Any] = {
            "path": skip.path, "line": skip.line, "reason": skip.reason, "detail": skip.detail,
            "transient": skip.transient, "kind": "file"}
        folder, _, name = skip.path.rpartition("/")
        if folder.split("/", 1)[0] == contract.RECORDINGS and skip.line is None:
            try:
                ctime = (self.storage / skip.path).stat().st_ctime_ns
            except FileNotFoundError:
                ctime = None
            entry.update(kind="recording", dir=folder, stem=contract.stem(name), ctime_ns=ctime)
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
        down: spool lines not replayed, and recordings in the directories changed since the
        last pass that this instance has not seen indexed (an estimate: the writer may have
        indexed some directly)."""
        self.look()
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
        for listing, since, seen in self._dirty.values():
            fresh = self._fresh(listing, since, seen)
            ctimes = {f.name: f.ctime_ns for f in listing.files}
            for entry in scan.classify(listing)[0]:
                sidecar = entry.stem + contract.SIDECAR_SUFFIX
                if entry.has_sidecar and sidecar in fresh and entry.key not in self._confirmed:
                    pending += 1
                    ages.append(now - ctimes[sidecar] / 1e9)
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


def _sorted_keys(db: Database) -> Iterator[str]:
    """Every indexed recording's ``storage_key``, in order. MongoDB walks v3's unique index;
    a server without one sorts first, which at a million documents takes longer than the
    agent's socket timeout: each read may take ``SORT_SECONDS``."""
    cursor = db[RECORDINGS].find({}, {"storage_key": 1}).sort("storage_key", 1).batch_size(1000)
    while True:
        with mongo.translated(SORT_SECONDS):
            doc = next(cursor, None)
        if doc is None:
            return
        yield str(doc.get("storage_key"))


class _Batch:
    """Recording documents gathered for one unordered insert of ``batch_size``."""

    def __init__(self, reindexer: Reindexer, db: Database, report: PassReport,
                 found: dict[str, Skip]) -> None:
        self.reindexer, self.db, self.report, self.found = reindexer, db, report, found
        self.items: list[tuple[scan.Entry, dict[str, Any], str | None]] = []

    def add(self, entry: scan.Entry, doc: dict[str, Any], check: str | None) -> None:
        self.items.append((entry, doc, check))
        if len(self.items) >= self.reindexer.batch_size:
            self.flush()

    def flush(self) -> None:
        if self.items:
            items, self.items = self.items, []
            self.reindexer._inserted(self.db, items, self.report, self.found)
