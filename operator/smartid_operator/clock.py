"""Time as the operator keeps and writes it (runs wherever the operator's code runs).

One kind of moment: an aware UTC ``datetime`` cut to the millisecond, which is what a BSON
date keeps, so a moment written to Mongo and read back compares equal. One text form: ISO
8601 in UTC with ``Z``, to the second as Kubernetes writes times (conditions'
``lastTransitionTime``), or to the millisecond where the precision is the point.
"""

from __future__ import annotations

import datetime
from typing import Any, overload


def utcnow() -> datetime.datetime:
    now = datetime.datetime.now(datetime.UTC)
    return now.replace(microsecond=now.microsecond // 1000 * 1000)


@overload
def iso(moment: datetime.datetime, *, ms: bool = False) -> str: ...
@overload
def iso(moment: None, *, ms: bool = False) -> None: ...
@overload
def iso(moment: datetime.datetime | None, *, ms: bool = False) -> str | None: ...


def iso(moment: datetime.datetime | None, *, ms: bool = False) -> str | None:
    """``2026-12-06T07:34:26Z`` (or ``...26.123Z`` with ``ms``); a naive moment is UTC; no
    moment, no text (a status field left out)."""
    if moment is None:
        return None
    utc = utc_moment(moment)
    return utc.isoformat(timespec="milliseconds" if ms else "seconds").replace("+00:00", "Z")


def parse_iso(text: str) -> datetime.datetime:
    """The inverse of ``iso`` (any ISO 8601 with an offset or ``Z``); ``ValueError`` if not."""
    return utc_moment(datetime.datetime.fromisoformat(text.replace("Z", "+00:00")))


def utc_moment(value: datetime.datetime) -> datetime.datetime:
    return value.replace(tzinfo=datetime.UTC) if value.tzinfo is None \
        else value.astimezone(datetime.UTC)


def utc(value: Any) -> datetime.datetime | None:
    """A moment from what a document or a status holds (a date, naive meaning UTC as the
    driver returns them, or ISO text); None for anything else."""
    if isinstance(value, datetime.datetime):
        return utc_moment(value)
    if isinstance(value, str) and value:
        try:
            return parse_iso(value)
        except ValueError:
            return None
    return None
