"""Which dumps retention keeps: pure rules, no I/O.

A dump is kept when any rule keeps it (as restic's ``--keep-within`` + ``--keep-last``):

* it is at most ``days`` old (age counted from when the dump started reading the source);
* it is one of the ``keep_last`` newest ("always keep at least this many, however old", so a
  schedule that stopped working never ages the last dumps away);
* it is the newest dump whose restore was verified (the last good one), whatever else says;
* it is the newest dump of all.

With neither ``days`` nor ``keep_last`` set nothing is deleted.
"""

from __future__ import annotations

import datetime
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol


class Dated(Protocol):
    @property
    def name(self) -> str: ...

    @property
    def started_at(self) -> datetime.datetime: ...

    @property
    def verified(self) -> bool | None: ...


@dataclass(frozen=True)
class Policy:
    days: int | None = None
    keep_last: int | None = None

    def describe(self) -> str:
        parts = ([f"{self.days} day(s)"] if self.days is not None else []) + \
                ([f"the newest {self.keep_last}"] if self.keep_last is not None else [])
        return " or ".join(parts) or "keep everything"


@dataclass(frozen=True)
class Decision:
    name: str
    keep: bool
    why: str


def plan(dumps: Sequence[Dated], policy: Policy, now: datetime.datetime) -> list[Decision]:
    """One decision per dump, oldest first."""
    ordered = sorted(dumps, key=lambda d: (d.started_at, d.name))
    newest_first = list(reversed(ordered))
    newest = newest_first[0].name if newest_first else None
    newest_verified = next((d.name for d in newest_first if d.verified), None)
    last_n = {d.name for d in newest_first[:policy.keep_last or 0]}
    decisions = []
    for dump in ordered:
        reasons = []
        age = now - dump.started_at
        if policy.days is None and policy.keep_last is None:
            reasons.append("no retention configured")
        if policy.days is not None and age <= datetime.timedelta(days=policy.days):
            reasons.append(f"within {policy.days} day(s)")
        if dump.name in last_n:
            reasons.append(f"one of the newest {policy.keep_last}")
        if dump.name == newest_verified:
            reasons.append("newest verified dump")
        if dump.name == newest:
            reasons.append("newest dump")
        if reasons:
            decisions.append(Decision(dump.name, True, ", ".join(reasons)))
        else:
            decisions.append(Decision(dump.name, False,
                                      f"{_age(age)} old, past {policy.describe()}"))
    return decisions


def _age(age: datetime.timedelta) -> str:
    days = age.total_seconds() / 86400
    return f"{days:.1f} days" if days >= 1 else f"{age.total_seconds() / 3600:.1f} hours"
