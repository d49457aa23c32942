"""``Recovered`` from the agent's report: what it claims is what the pass behind it covered,
and a claim that keeps the agent from starting is named."""

from __future__ import annotations

import datetime
from typing import Any

from smartid_operator.recovery import observe

NOW = datetime.datetime(2025, 10, 20, 13, 5, 0, tzinfo=datetime.UTC)
LOST = NOW - datetime.timedelta(seconds=30)


def report(**fields: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "ok": True, "kind": "changes", "started_at": NOW - datetime.timedelta(seconds=1),
        "updated_at": NOW, "pending": 0, "skipped_total": 0, "skipped": [],
        "coverage": {"kind": "changes", "directories": 1000, "listed": 3,
                     "since": NOW - datetime.timedelta(hours=1),
                     "full_pass_at": NOW - datetime.timedelta(hours=1)}}
    body.update(fields)
    return body


def view(body: dict[str, Any] | None, **kwargs: Any) -> observe.RecoveryView:
    args: dict[str, Any] = {"agent": "smartid-recovery", "reachable": True,
                            "reachable_since": LOST, "now": NOW, "scan_interval": 5.0,
                            "previous": {}}
    args.update(kwargs)
    return observe.observe(body, **args)


def test_true_says_what_the_pass_covered() -> None:
    changes = view(report()).observation
    assert changes.ok and changes.reason == "UpToDate"
    assert "stat'ed all 1000 directories" in changes.message
    assert "listed the 3 that changed" in changes.message
    assert "every recording written since 2025-10-20T12:05:00Z" in changes.message
    full = view(report(kind="full", coverage={"kind": "full", "directories": 1200})).observation
    assert full.ok and "compared every recording on storage (1200 directories)" in full.message


def test_skips_keep_it_true_but_say_so() -> None:
    seen = view(report(skipped_total=2)).observation
    assert seen.ok and seen.reason == "UpToDateWithSkips"
    assert "2 input(s) break the storage contract" in seen.message


def test_a_pass_from_before_the_outage_never_counts() -> None:
    before = view(report(started_at=LOST - datetime.timedelta(seconds=1))).observation
    assert not before.ok and before.reason == "Pending"
    pending = view(report(pending=4, oldest_unindexed_seconds=3.0)).observation
    assert not pending.ok and "4 record(s)" in pending.message


def test_a_claim_that_keeps_the_agent_from_starting_is_named() -> None:
    missing = observe.claim_problem(
        '0/1 nodes are available: persistentvolumeclaim "recs" not found. preemption: 0/1',
        "recs")
    assert missing is not None and missing.reason == "ClaimNotFound" and "recs" in missing.message
    unbound = observe.claim_problem(
        "0/1 nodes are available: pod has unbound immediate PersistentVolumeClaims.", "recs")
    assert unbound is not None and unbound.reason == "ClaimNotBound"
    assert "recs" in unbound.message
    other = observe.claim_problem("0/1 nodes are available: 1 Insufficient cpu.", "recs")
    assert other is not None and other.reason == "AgentUnschedulable"
    assert observe.claim_problem(None, "recs") is None
    # It wins over a missing report: the cause, not the symptom.
    shown = view(None, unschedulable=missing).observation
    assert shown.reason == "ClaimNotFound"
