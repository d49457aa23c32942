"""What recovery keeps in Mongo: the checkpoint, the skipped inputs, the last pass's report.

``smartid_recovery``:
  ``{_id: "checkpoint", watermark, full_pass_at, updated_at}``: every recording published
  before ``watermark`` has been indexed or is tracked as skipped. Only ever moved forward
  (``$max``), so overlapping passes cannot move it back.
  ``{_id: "agent", ...}``: the last pass's report (see ``report.PassReport.document``), what
  the operator reads for ``status.recovery``.
``smartid_recovery_skipped``: one document per input that could not be indexed, keyed by its
  path (``<path>:<line>`` for a spool line), re-checked by every pass until it is indexed or
  removed, so a skip is reported until someone deals with it.
"""

from __future__ import annotations

import datetime
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from pymongo import DeleteOne, UpdateOne  # requests as data: callers run them translated

from smartid_operator import clock
from smartid_operator.mongo import Database

STATE = "smartid_recovery"
SKIPPED = "smartid_recovery_skipped"
CHECKPOINT_ID = "checkpoint"
REPORT_ID = "agent"


@dataclass(frozen=True)
class Checkpoint:
    watermark: datetime.datetime | None = None
    full_pass_at: datetime.datetime | None = None


def _utc(value: Any) -> datetime.datetime | None:
    # pymongo returns naive UTC datetimes unless the client is tz_aware.
    return clock.utc(value) if isinstance(value, datetime.datetime) else None


def read_checkpoint(db: Database) -> Checkpoint:
    doc = db[STATE].find_one({"_id": CHECKPOINT_ID}) or {}
    return Checkpoint(_utc(doc.get("watermark")), _utc(doc.get("full_pass_at")))


def advance_checkpoint(db: Database, watermark: datetime.datetime, full: bool,
                       now: datetime.datetime) -> None:
    fields: dict[str, Any] = {"watermark": watermark}
    if full:
        fields["full_pass_at"] = watermark
    db[STATE].update_one({"_id": CHECKPOINT_ID},
                         {"$max": fields, "$set": {"updated_at": now}}, upsert=True)


def read_skipped(db: Database) -> list[dict[str, Any]]:
    return [dict(doc) for doc in db[SKIPPED].find({})]


def update_skipped(db: Database, found: Mapping[str, Mapping[str, Any]],
                   resolved: Iterable[str], now: datetime.datetime) -> None:
    """Track ``found`` (key -> path, line, reason, detail); forget ``resolved`` keys."""
    ops: list[Any] = [
        UpdateOne({"_id": key}, {"$set": {**entry, "last_seen": now},
                                 "$setOnInsert": {"first_seen": now}}, upsert=True)
        for key, entry in found.items()]
    ops += [DeleteOne({"_id": key}) for key in resolved if key not in found]
    if ops:
        db[SKIPPED].bulk_write(ops, ordered=False)


def write_report(db: Database, report: Mapping[str, Any]) -> None:
    db[STATE].replace_one({"_id": REPORT_ID}, {"_id": REPORT_ID, **report}, upsert=True)


def read_report(db: Database) -> dict[str, Any] | None:
    """The agent's last report, for the operator (``status.recovery``)."""
    doc = db[STATE].find_one({"_id": REPORT_ID})
    return dict(doc) if doc else None
