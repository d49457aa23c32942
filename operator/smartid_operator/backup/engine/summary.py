"""What status needs from a backup directory, as pure functions: the latest dump and the
latest verified one (the last good), and the one-line report a backup Job leaves in its
container's termination message (Kubernetes keeps at most 4096 bytes of it), so the operator
learns the outcome from the Pod without mounting the backup volume."""

from __future__ import annotations

import datetime
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from smartid_operator import clock
from smartid_operator.backup.engine.manifest import Manifest

TERMINATION_LIMIT = 4096


@dataclass(frozen=True)
class DumpSummary:
    name: str
    time: datetime.datetime
    size_bytes: int
    documents: int
    counts: Mapping[str, int]
    verified: bool | None

    @classmethod
    def of(cls, manifest: Manifest) -> DumpSummary:
        return cls(manifest.name, manifest.started_at, manifest.size_bytes, manifest.documents,
                   manifest.counts, manifest.verified)

    def to_status(self, with_counts: bool = True) -> dict[str, Any]:
        doc: dict[str, Any] = {
            "name": self.name,
            "time": clock.iso(self.time),
            "sizeBytes": self.size_bytes, "documents": self.documents,
            "verified": self.verified}
        if with_counts:
            doc["counts"] = dict(self.counts)
        return doc


@dataclass(frozen=True)
class BackupSummary:
    latest: DumpSummary | None
    latest_verified: DumpSummary | None
    dumps: int

    def to_status(self, with_counts: bool = True) -> dict[str, Any]:
        """camelCase, ready for ``status.backup``."""
        return {"latestDump": self.latest.to_status(with_counts) if self.latest else None,
                "lastVerifiedDump": self.latest_verified.to_status(with_counts)
                if self.latest_verified else None,
                "dumps": self.dumps}


def summarize(manifests: Iterable[Manifest]) -> BackupSummary:
    """Latest by start time; "last verified" only counts a dump whose restore matched."""
    ordered = sorted(manifests, key=lambda m: (m.started_at, m.name))
    verified = [m for m in ordered if m.verified]
    return BackupSummary(DumpSummary.of(ordered[-1]) if ordered else None,
                         DumpSummary.of(verified[-1]) if verified else None, len(ordered))


def termination_message(result: str, reason: str | None, dump: Manifest | None,
                        summary: BackupSummary | None,
                        retention: Mapping[str, Any] | None = None) -> str:
    """``{"result": "Succeeded"|"Failed", "reason", "dump", "verification", "backups",
    "retention": {"applied", "deleted", "reason"}}`` as
    compact JSON within the 4096 bytes Kubernetes keeps; per-collection counts are dropped
    first, then the reason is cut, when it would not fit."""
    def render(with_counts: bool, reason_limit: int) -> str:
        doc: dict[str, Any] = {"result": result,
                               "reason": reason[:reason_limit] if reason else None}
        if dump is not None:
            doc["dump"] = DumpSummary.of(dump).to_status(with_counts)
            if dump.verification is not None:
                doc["verification"] = {"result": dump.verification.result,
                                       "reason": (dump.verification.reason or "")[:500] or None}
        if summary is not None:
            doc["backups"] = summary.to_status(with_counts=False)
        if retention is not None:
            doc["retention"] = {k: (v[:reason_limit] if isinstance(v, str) else v)
                                for k, v in retention.items() if v is not None}
        return json.dumps(doc, separators=(",", ":"))

    for with_counts, limit in ((True, 2000), (False, 2000), (False, 500)):
        text = render(with_counts, limit)
        if len(text.encode()) <= TERMINATION_LIMIT:
            return text
    return render(False, 200)


def restore_termination_message(reason: str | None, *, refused: bool, dump: str, target: str,
                                counts: Mapping[str, int] | None) -> str:
    """``backup restore``'s outcome for the operator's SmartIDRestore, within 4096 bytes:
    ``{"result", "reason", "refused", "restore": {"dump", "target", "documents", "counts"}}``;
    the per-collection counts go first when it would not fit."""
    def render(with_counts: bool) -> str:
        restored: dict[str, Any] = {"dump": dump, "target": target}
        if counts is not None:
            restored["documents"] = sum(counts.values())
            if with_counts:
                restored["counts"] = dict(counts)
        return json.dumps({"result": "Failed" if reason else "Succeeded",
                           "reason": reason[:2000] if reason else None, "refused": refused,
                           "restore": restored}, separators=(",", ":"))

    text = render(True)
    return text if len(text.encode()) <= TERMINATION_LIMIT else render(False)


def parse_termination_message(text: str) -> dict[str, Any] | None:
    """The operator's side: the report, or None when the container left none (or another)."""
    try:
        doc = json.loads(text)
    except ValueError:
        return None
    return doc if isinstance(doc, dict) and doc.get("result") in ("Succeeded", "Failed") \
        else None
