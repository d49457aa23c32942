"""Applying retention to a storage.

A dump to delete is unpublished first (one step that takes it out of listings, status and
restores at once: a directory renamed to a hidden name, a bucket's manifest object deleted),
then removed. Partials of runs that died (a killed pod, an upload cut) are removed once nothing
has written to them for ``STALE_AFTER``.

Credentials that may not delete (object lock, a no-delete policy) are not a failure: the
report says retention was not applied, and why.
"""

from __future__ import annotations

import datetime
from dataclasses import dataclass

from smartid_operator.backup.engine.retention import Decision, Policy, plan
from smartid_operator.backup.engine.storage import DeleteDenied, Storage

STALE_AFTER = datetime.timedelta(hours=6)


@dataclass(frozen=True)
class PruneReport:
    decisions: list[Decision]
    deleted: list[str]
    stale_removed: list[str]
    dry_run: bool
    not_applied: str | None = None  # why nothing could be deleted

    @property
    def due(self) -> list[str]:
        return [d.name for d in self.decisions if not d.keep]


def prune(storage: Storage, policy: Policy, now: datetime.datetime,
          dry_run: bool = False) -> PruneReport:
    scan = storage.scan()
    decisions = plan(scan.dumps, policy, now)
    deleted: list[str] = []
    stale: list[str] = []
    if dry_run:
        return PruneReport(decisions, deleted, stale, True)
    try:
        for decision in decisions:
            if not decision.keep:
                storage.delete(decision.name)
                deleted.append(decision.name)
        for partial in scan.partial:
            if now.timestamp() - partial.last_write > STALE_AFTER.total_seconds():
                storage.remove_partial(partial.name)
                stale.append(partial.name)
    except DeleteDenied as exc:
        return PruneReport(decisions, deleted, stale, False,
                           f"the storage credentials may not delete: {exc}")
    return PruneReport(decisions, deleted, stale, False)
