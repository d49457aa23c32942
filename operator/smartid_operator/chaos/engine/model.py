"""A run's settings, its ids, and the verdict: pure functions, no I/O.

Ids are derived from the run's name, so the operator knows every id the writer Job stores
without reading the volume, and a repeated write of the same run is a no-op, not a duplicate.
"""

from __future__ import annotations

import datetime
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from smartid_operator import clock
from smartid_operator.spec import ChaosSpec, OutageTestSpec

PASSED, FAILED, REFUSED, ABORTED = "Passed", "Failed", "Refused", "Aborted"
PENDING, RUNNING = "Pending", "Running"
TERMINAL = frozenset({PASSED, FAILED, REFUSED, ABORTED})
LOST_SHOWN = 20  # ids named in status and messages; the report holds more
TENANT = "chaos-test"

# Waits that do not depend on the run's size (seconds): each step has its own bound, and
# their sum plus the outage and the recovery timeout bounds the whole run.
UNREACHABLE_WAIT = 90.0  # mongod's shutdown (kind's grace period is 30 s)
REACHABLE_WAIT = 300.0  # a pod rescheduled, an image pulled, mongod started
WRITER_START_WAIT = 180.0  # the writer Job's pod scheduled and started


@dataclass(frozen=True)
class Settings:
    outage_seconds: int
    recordings: int
    segments_per_recording: int
    recovery_timeout_seconds: int = OutageTestSpec.recovery_timeout_seconds

    @property
    def segments(self) -> int:
        return self.recordings * self.segments_per_recording

    @property
    def writer_seconds(self) -> float:
        """Bound of the writer Job once started: generous per write (a slow volume)."""
        return 60.0 + 0.05 * (self.recordings + self.segments)

    @property
    def deadline_seconds(self) -> int:
        """The whole run's upper bound; past it the run fails and Mongo is restored."""
        return int(UNREACHABLE_WAIT + WRITER_START_WAIT + self.writer_seconds
                   + self.outage_seconds + REACHABLE_WAIT + self.recovery_timeout_seconds + 60)

    def document(self) -> dict[str, int]:
        return {"outageSeconds": self.outage_seconds, "recordings": self.recordings,
                "segmentsPerRecording": self.segments_per_recording,
                "recoveryTimeoutSeconds": self.recovery_timeout_seconds,
                "deadlineSeconds": self.deadline_seconds}


def resolve(run: OutageTestSpec, chaos: ChaosSpec) -> Settings:
    """The run's own values where it gives them, else the database's ``spec.chaos``."""
    def own(value: int | None, default: int) -> int:
        return default if value is None else value

    return Settings(
        outage_seconds=own(run.outage_seconds, chaos.outage_seconds),
        recordings=own(run.recordings, chaos.recordings),
        segments_per_recording=own(run.segments_per_recording, chaos.segments_per_recording),
        recovery_timeout_seconds=run.recovery_timeout_seconds)


# -- ids ----------------------------------------------------------------------------------------

def recording_id(run: str, index: int) -> str:
    return f"chaos-{run}-r{index:06d}"


def recording_ids(run: str, count: int) -> list[str]:
    return [recording_id(run, i) for i in range(count)]


def segment_ids(run: str, recordings: int, per_recording: int) -> list[str]:
    """``<recording_id>:<sequence>``, as the recovery contract names a segment."""
    return [f"{rid}:{seq}" for rid in recording_ids(run, recordings)
            for seq in range(per_recording)]


# -- the verdict --------------------------------------------------------------------------------

@dataclass(frozen=True)
class Tally:
    """One collection's numbers after a run."""

    baseline: int
    written: int
    present: int  # expected ids found, each once (``_id`` is unique)
    tagged: int  # documents carrying the run's tag: more than ``present`` are duplicates
    final: int | None = None
    by_writer: int = 0  # found documents the writer indexed itself: Mongo answered it
    lost_ids: tuple[str, ...] = ()

    @property
    def expected(self) -> int:
        return self.baseline + self.written

    @property
    def lost(self) -> int:
        return self.written - self.present

    @property
    def duplicated(self) -> int:
        return max(0, self.tagged - self.present)

    @property
    def reindexed(self) -> int:
        return self.present - self.by_writer

    @property
    def counts_match(self) -> bool:
        return self.final == self.expected

    def document(self) -> dict[str, Any]:
        return {"baseline": self.baseline, "written": self.written, "expected": self.expected,
                "final": self.final, "reindexed": self.reindexed, "lost": self.lost,
                "duplicated": self.duplicated, "indexedByWriter": self.by_writer}


@dataclass(frozen=True)
class Verdict:
    result: str
    reason: str
    message: str
    reasons: tuple[str, ...] = ()


def name_ids(ids: Sequence[str], shown: int = LOST_SHOWN) -> str:
    head = ", ".join(ids[:shown])
    return head if len(ids) <= shown else f"{head} (and {len(ids) - shown} more)"


def judge(recordings: Tally, segments: Tally, *, outage_seconds: float | None,
          recovery_seconds: float | None, waited_seconds: float) -> Verdict:
    """Passed only if every written id is present exactly once and the counts add up."""
    problems: list[tuple[str, str]] = []
    lost = [*recordings.lost_ids, *segments.lost_ids]
    if lost:
        problems.append(("Lost", f"{len(lost)} of {recordings.written + segments.written} "
                                 f"written ids missing {waited_seconds:.0f} s after Mongo "
                                 f"returned: {name_ids(lost)}"))
    duplicated = recordings.duplicated + segments.duplicated
    if duplicated:
        problems.append(("Duplicated", f"{recordings.duplicated} recordings and "
                                       f"{segments.duplicated} segments indexed more than once"))
    if recordings.by_writer or segments.by_writer:
        problems.append(("OutageNotEffective",
                         f"{recordings.by_writer + segments.by_writer} documents were indexed "
                         f"by the writer itself: Mongo answered during the outage"))
    for label, tally in (("recordings", recordings), ("recording_segments", segments)):
        if not tally.counts_match:
            problems.append(("CountMismatch",
                             f"{label}: {tally.final} documents, expected {tally.baseline} + "
                             f"{tally.written} = {tally.expected}"))
    if problems:
        return Verdict(FAILED, problems[0][0], "; ".join(m for _, m in problems),
                       tuple(r for r, _ in problems))
    outage = f" during a {outage_seconds:.1f} s outage" if outage_seconds is not None else ""
    recovery = (f"; all reindexed {recovery_seconds:.1f} s after Mongo returned"
                if recovery_seconds is not None else "")
    return Verdict(PASSED, "AllReindexed",
                   f"{recordings.written} recordings and {segments.written} segments written"
                   f"{outage}{recovery}; none lost, none duplicated")


# -- timings ------------------------------------------------------------------------------------

MARKS = ("started", "outageStart", "unreachableConfirmed", "writesDone", "restored",
         "reachable", "fullyReindexed", "finished")


@dataclass
class Timings:
    marks: dict[str, datetime.datetime] = field(default_factory=dict)

    def mark(self, name: str, moment: datetime.datetime) -> None:
        assert name in MARKS, name
        self.marks.setdefault(name, moment)

    def between(self, start: str, end: str) -> float | None:
        a, b = self.marks.get(start), self.marks.get(end)
        return None if a is None or b is None else round((b - a).total_seconds(), 3)

    @property
    def outage_seconds(self) -> float | None:
        """From the outage confirmed to Mongo answering again."""
        return self.between("unreachableConfirmed", "reachable")

    @property
    def recovery_seconds(self) -> float | None:
        """From Mongo answering again to every written id indexed."""
        return self.between("reachable", "fullyReindexed")

    def document(self) -> dict[str, Any]:
        doc: dict[str, Any] = {k: clock.iso(self.marks[k], ms=True) for k in MARKS
                               if k in self.marks}
        for key, value in (("outageSeconds", self.outage_seconds),
                           ("recoverySeconds", self.recovery_seconds),
                           ("runSeconds", self.between("started", "finished"))):
            if value is not None:
                doc[key] = value
        return doc

    @classmethod
    def from_document(cls, doc: Mapping[str, Any]) -> Timings:
        return cls({k: clock.parse_iso(doc[k]) for k in MARKS if isinstance(doc.get(k), str)})


def result_status(verdict: Verdict, recordings: Tally, segments: Tally,
                  timings: Timings) -> dict[str, Any]:
    """The result fields of a finished run's status (and of ``status.lastOutageTest``)."""
    lost = [*recordings.lost_ids, *segments.lost_ids]
    status: dict[str, Any] = {
        "phase": verdict.result, "reason": verdict.reason, "message": verdict.message,
        "written": recordings.written + segments.written,
        "reindexed": recordings.reindexed + segments.reindexed,
        "lost": recordings.lost + segments.lost,
        "duplicated": recordings.duplicated + segments.duplicated,
        "counts": {"recordings": recordings.document(), "segments": segments.document()},
        "lostIds": lost[:LOST_SHOWN], "lostIdsTotal": len(lost),
        "timings": timings.document()}
    if timings.recovery_seconds is not None:
        status["recoverySeconds"] = timings.recovery_seconds
    return status


def last_outage_test(run: str, status: Mapping[str, Any]) -> dict[str, Any]:
    """The database's ``status.lastOutageTest``: the run's outcome in a few fields."""
    timings = status.get("timings") or {}
    summary: dict[str, Any] = {"result": status.get("phase"), "run": run,
                               "reason": status.get("reason"), "message": status.get("message")}
    for key in ("written", "reindexed", "lost", "duplicated", "recoverySeconds"):
        if status.get(key) is not None:
            summary[key] = status[key]
    if timings.get("finished"):
        summary["finishedAt"] = timings["finished"]
    return summary
