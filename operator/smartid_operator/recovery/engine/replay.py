"""Replaying the segment spool into ``recording_segments``, batch by batch.

A sealed file is retired (unlinked) only once every batch holding one of its lines has been
acknowledged; a file with lines that could not be indexed is moved to ``spool/rejected/`` and
each such line is reported by path and line number. Live files (a writer still holds them)
are replayed up to their last complete line and never retired; the offset reached is kept in
memory so the next pass reads only what was appended since.
"""

from __future__ import annotations

import datetime
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from smartid_operator.mongo import Database
from smartid_operator.recovery.engine import contract, spool
from smartid_operator.recovery.engine.contract import ContractError
from smartid_operator.recovery.engine.inserts import insert_missing
from smartid_operator.recovery.engine.report import PassReport, Skip

SEGMENTS = "recording_segments"


@dataclass
class _File:
    path: Path
    live: bool
    inode: int
    unflushed: int = 0
    read_done: bool = False
    end: int = 0
    next_line: int = 1
    skips: list[Skip] = field(default_factory=list)


@dataclass(frozen=True)
class LiveOffset:
    inode: int
    offset: int
    next_line: int


def spool_files(storage: Path) -> tuple[list[Path], list[Path]]:
    """(sealed, open) spool files, oldest name first."""
    sealed: list[Path] = []
    opened: list[Path] = []
    for path in sorted((storage / contract.SPOOL).glob("*.jsonl*")):
        if contract.hidden(path.name) or not path.is_file():
            continue
        if path.name.endswith(contract.OPEN_SUFFIX):
            opened.append(path)
        elif path.name.endswith(contract.SEALED_SUFFIX):
            sealed.append(path)
    return sealed, opened


class SpoolReplay:
    def __init__(self, storage: Path, db: Database, batch_size: int, report: PassReport,
                 offsets: dict[str, LiveOffset], progress: Callable[[], None]) -> None:
        self.storage = storage
        self.collection = db[SEGMENTS]
        self.batch_size = batch_size
        self.report = report
        self.offsets = offsets
        self.progress = progress
        self.skips: list[Skip] = []
        self._batch: list[tuple[_File, int, dict[str, Any]]] = []

    def run(self, now: datetime.datetime) -> None:
        sealed, opened = spool_files(self.storage)
        live: list[Path] = []
        for path in opened:
            alive = spool.writer_alive(path)
            if alive:
                live.append(path)
            elif alive is False and (taken := spool.seal_orphan(path)) is not None:
                sealed.append(taken)  # its writer died: the file is complete as it is
        for path in sealed:
            self._replay(path, False, now)
        for path in live:
            self._replay(path, True, now)
        self._flush()

    def _replay(self, path: Path, live: bool, now: datetime.datetime) -> None:
        try:
            inode = path.stat().st_ino
        except FileNotFoundError:
            return  # retired by an overlapping pass
        file = _File(path, live, inode)
        known = self.offsets.get(path.name)
        if live and known is not None and known.inode == inode:
            file.end, file.next_line = known.offset, known.next_line
        try:
            for line in spool.read_lines(path, start=file.end, first_line=file.next_line,
                                         live=live):
                file.end, file.next_line = line.end, line.number + 1
                if line.error is not None:
                    file.skips.append(self._skip(path, line.number, line.error))
                    continue
                assert line.record is not None
                try:
                    doc = contract.segment_document(line.record, "reindexer", now)
                except ContractError as exc:
                    file.skips.append(self._skip(path, line.number, exc))
                    continue
                file.unflushed += 1
                self._batch.append((file, line.number, doc))
                if len(self._batch) >= self.batch_size:
                    self._flush()
        except FileNotFoundError:
            return
        except OSError as exc:  # this file cannot be read: report it, keep it, go on
            self.skips.append(Skip(self._relative(path), "unreadable", str(exc)[:300]))
            return
        file.read_done = True
        self._finish_if_done(file)

    def _skip(self, path: Path, number: int, exc: ContractError) -> Skip:
        return Skip(self._relative(path), exc.reason, exc.detail, line=number)

    def _relative(self, path: Path) -> str:
        return path.relative_to(self.storage).as_posix()

    def _flush(self) -> None:
        if not self._batch:
            return
        batch, self._batch = self._batch, []
        outcome = insert_missing(self.collection, [doc for _, _, doc in batch])
        self.report.segments_indexed += len(outcome.inserted)
        self.report.segments_present += len(outcome.present)
        touched: dict[int, _File] = {}
        for file, number, doc in batch:
            if doc["_id"] in outcome.refused:
                file.skips.append(Skip(self._relative(file.path), "refused",
                                       outcome.refused[doc["_id"]], line=number))
            file.unflushed -= 1
            touched[id(file)] = file
        for file in touched.values():
            self._finish_if_done(file)
        self.progress()

    def _finish_if_done(self, file: _File) -> None:
        """Everything read from the file is acknowledged: retire it (or note the offset)."""
        if not file.read_done or file.unflushed:
            return
        if file.live:
            self.offsets[file.path.name] = LiveOffset(file.inode, file.end, file.next_line)
            self.skips += file.skips
            return
        done, kept = spool.retire(file.path, rejected=bool(file.skips), storage=self.storage)
        if file.skips:
            self.report.spool_files_rejected += done
            where = self._relative(kept or self.storage / contract.REJECTED / file.path.name)
            self.skips += [Skip(where, s.reason, s.detail, s.line) for s in file.skips]
        else:
            self.report.spool_files_retired += done
        self.offsets.pop(file.path.name.removesuffix(contract.SEALED_SUFFIX)
                         + contract.OPEN_SUFFIX, None)
