"""A pass's report: what it indexed, what it skipped and why (by path), what is still pending."""

from __future__ import annotations

import datetime
from dataclasses import dataclass, field
from typing import Any

# The report document lists at most this many skips; ``skipped_total`` has the full count.
REPORT_SKIPS = 50


@dataclass(frozen=True)
class Skip:
    path: str  # relative to the storage root
    reason: str  # a keyword: invalid-json, missing-metadata, corrupt-line, ...
    detail: str
    line: int | None = None  # for spool lines
    first_seen: datetime.datetime | None = None
    transient: bool = False  # data whose sidecar may still be on its way: pending, not skipped

    @property
    def key(self) -> str:
        return self.path if self.line is None else f"{self.path}:{self.line}"

    def entry(self) -> dict[str, Any]:
        return {"path": self.path, "line": self.line, "reason": self.reason,
                "detail": self.detail}


@dataclass
class PassReport:
    kind: str  # "changes" (what changed since the last pass) or "full" (everything on storage)
    trigger: str
    started_at: datetime.datetime
    finished_at: datetime.datetime | None = None
    duration_seconds: float = 0.0
    recordings_indexed: int = 0
    segments_indexed: int = 0
    recordings_present: int = 0  # checked and found indexed already
    segments_present: int = 0
    directories: int = 0  # directories stat'ed (a changes pass) or listed (a full pass)
    listed: int = 0  # directories listed because they changed (or all, in a full pass)
    spool_files_retired: int = 0
    spool_files_rejected: int = 0
    skipped: list[Skip] = field(default_factory=list)
    pending: int = 0  # records on storage not yet indexed when the pass ended
    oldest_unindexed_seconds: float | None = None
    watermark: datetime.datetime | None = None
    index_without_file: int | None = None  # full passes: recordings indexed, file gone
    covers_since: datetime.datetime | None = None  # every change since then was examined
    full_pass_at: datetime.datetime | None = None  # the last full pass of this process
    error: str | None = None
    failed_on: str | None = None  # "mongo" or "storage" when the pass failed

    @property
    def indexed(self) -> int:
        return self.recordings_indexed + self.segments_indexed

    @property
    def ok(self) -> bool:
        return self.error is None

    def summary(self) -> str:
        text = (f"{self.kind} pass: indexed {self.recordings_indexed} recording(s) and "
                f"{self.segments_indexed} segment(s); {self.recordings_present} + "
                f"{self.segments_present} already indexed; {len(self.skipped)} skipped; "
                f"{self.spool_files_retired} spool file(s) retired; {self.pending} pending; "
                f"{self.duration_seconds:.3f} s")
        return text + (f"; FAILED: {self.error}" if self.error else "")

    def coverage(self) -> dict[str, Any]:
        """What this pass examined: the basis of every claim made on it."""
        return {"kind": self.kind, "directories": self.directories, "listed": self.listed,
                "since": self.covers_since, "full_pass_at": self.full_pass_at}

    def document(self) -> dict[str, Any]:
        """The shape stored in ``smartid_recovery`` ``{_id: "agent"}`` for the operator."""
        return {
            "kind": self.kind, "trigger": self.trigger, "ok": self.ok, "error": self.error,
            "failed_on": self.failed_on,
            "started_at": self.started_at, "finished_at": self.finished_at,
            "duration_seconds": round(self.duration_seconds, 4),
            "indexed": {"recordings": self.recordings_indexed,
                        "segments": self.segments_indexed},
            "already_indexed": {"recordings": self.recordings_present,
                                "segments": self.segments_present},
            "skipped": [{**s.entry(), "first_seen": s.first_seen}
                        for s in self.skipped[:REPORT_SKIPS]],
            "skipped_total": len(self.skipped),
            "pending": self.pending,
            "oldest_unindexed_seconds": (None if self.oldest_unindexed_seconds is None
                                         else round(self.oldest_unindexed_seconds, 3)),
            "spool_files_retired": self.spool_files_retired,
            "spool_files_rejected": self.spool_files_rejected,
            "coverage": self.coverage(),
            "watermark": self.watermark,
            "index_without_file": self.index_without_file,
        }
