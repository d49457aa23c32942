"""Retention rules and the status summary, as pure functions."""

from __future__ import annotations

import datetime
import json
from dataclasses import dataclass

import pytest

from smartid_operator.backup.engine.manifest import (
    FAILED,
)
from smartid_operator.backup.engine.retention import Policy, plan
from smartid_operator.backup.engine.summary import (
    TERMINATION_LIMIT,
    parse_termination_message,
    summarize,
    termination_message,
)
from tests.unit.backup_fakes import NOW, manifest


@dataclass(frozen=True)
class Dump:
    name: str
    started_at: datetime.datetime
    verified: bool | None


def dumps(*spec: tuple[float, bool | None]) -> list[Dump]:
    """Dumps named by their age in days."""
    return [Dump(f"d{age:g}", NOW - datetime.timedelta(days=age), verified)
            for age, verified in spec]


# Ten dumps of different ages, given out of order; the newest verified one is 10 days old
# (the newer ones were not verified, or failed).
TEN = dumps((30, True), (0.1, None), (7.5, None), (2, False), (45, True), (1, False),
            (10, True), (6.9, None), (20, True), (5, None))


def kept(decisions: list[object]) -> set[str]:
    return {d.name for d in decisions if d.keep}  # type: ignore[attr-defined]


def test_days_and_keep_last_keep_exactly_the_union_plus_the_newest_verified() -> None:
    decisions = plan(TEN, Policy(days=7, keep_last=3), NOW)
    assert [d.name for d in decisions] == ["d45", "d30", "d20", "d10", "d7.5", "d6.9", "d5",
                                           "d2", "d1", "d0.1"]  # oldest first
    assert kept(decisions) == {"d0.1", "d1", "d2", "d5", "d6.9", "d10"}
    why = {d.name: d.why for d in decisions}
    assert why["d10"] == "newest verified dump"
    assert why["d7.5"].startswith("7.5 days old, past 7 day(s) or the newest 3")


def test_keep_last_alone_still_keeps_the_newest_verified() -> None:
    assert kept(plan(TEN, Policy(keep_last=3), NOW)) == {"d0.1", "d1", "d2", "d10"}


def test_the_only_verified_dump_survives_however_old() -> None:
    only_old_verified = dumps((45, True), (8, None), (9, False), (0.5, None))
    assert kept(plan(only_old_verified, Policy(days=1), NOW)) == {"d45", "d0.5"}


def test_the_newest_dump_survives_when_every_dump_is_past_the_days() -> None:
    stale = dumps((40, None), (50, None), (60, False))
    assert kept(plan(stale, Policy(days=7), NOW)) == {"d40"}


def test_a_dump_exactly_at_the_limit_is_kept_and_just_past_it_is_not() -> None:
    edge = [Dump("edge", NOW - datetime.timedelta(days=7), None),
            Dump("past", NOW - datetime.timedelta(days=7, seconds=1), None),
            Dump("new", NOW, None)]
    assert kept(plan(edge, Policy(days=7), NOW)) == {"edge", "new"}


def test_without_a_policy_nothing_goes() -> None:
    assert kept(plan(TEN, Policy(), NOW)) == {d.name for d in TEN}
    assert plan([], Policy(days=1), NOW) == []


def test_summary_names_the_latest_and_the_latest_verified_dump() -> None:
    ms = [manifest("a", 3, True, {"segments": 10}), manifest("c", 1, False, {"segments": 30}),
          manifest("b", 2, True, {"segments": 20, "recordings": 2})]
    summary = summarize(ms)
    assert summary.latest is not None and summary.latest.name == "c"
    assert summary.latest.verified is False
    assert summary.latest_verified is not None and summary.latest_verified.name == "b"
    status = summary.to_status()
    assert status["lastVerifiedDump"] == {
        "name": "b", "time": "2025-02-27T02:00:00Z", "sizeBytes": 1055, "documents": 22,
        "verified": True, "counts": {"segments": 20, "recordings": 2}}
    assert status["dumps"] == 3
    empty = summarize([])
    assert empty.latest is None and empty.to_status()["lastVerifiedDump"] is None


def test_termination_message_fits_what_kubernetes_keeps() -> None:
    many = manifest("big", 0, False, {f"collection_{i:04}": i for i in range(400)})
    text = termination_message("Failed", "r" * 5000, many, summarize([many]))
    assert len(text.encode()) <= TERMINATION_LIMIT
    doc = parse_termination_message(text)
    assert doc is not None and doc["result"] == "Failed"
    assert doc["dump"]["name"] == "big" and "counts" not in doc["dump"]  # dropped to fit
    assert doc["verification"]["result"] == FAILED
    small = json.loads(termination_message("Succeeded", None, manifest("s", 0, True, {"a": 1}),
                                           None))
    assert small["dump"]["counts"] == {"a": 1} and small["reason"] is None


@pytest.mark.parametrize("text", ["", "not json", "[1]", '{"result": "Maybe"}'])
def test_foreign_termination_messages_are_ignored(text: str) -> None:
    assert parse_termination_message(text) is None
