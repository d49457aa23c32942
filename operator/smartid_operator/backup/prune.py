"""Applying retention to a backup directory.

A dump to delete is first renamed to a hidden temporary name (one atomic step: it leaves
listings, status and restores at once), then removed. Temporary directories of runs that died
(a killed pod leaves one) are removed once nothing has written to them for ``STALE_AFTER``.
"""

from __future__ import annotations

import datetime
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

from smartid_operator.backup import manifest as manifests
from smartid_operator.backup.retention import Decision, Policy, plan

STALE_AFTER = datetime.timedelta(hours=6)


@dataclass(frozen=True)
class PruneReport:
    decisions: list[Decision]
    deleted: list[str]
    stale_removed: list[str]
    dry_run: bool


def _last_write(path: Path) -> float:
    """The newest mtime in a tree (a long dump keeps writing one file deep inside)."""
    newest = 0.0
    for entry in [path, *path.rglob("*")]:
        try:
            newest = max(newest, entry.stat().st_mtime)
        except FileNotFoundError:  # removed meanwhile
            continue
    return newest


def prune(backup_dir: Path, policy: Policy, now: datetime.datetime,
          dry_run: bool = False) -> PruneReport:
    scan = manifests.scan(backup_dir)
    decisions = plan(scan.dumps, policy, now)
    deleted: list[str] = []
    stale: list[str] = []
    if dry_run:
        return PruneReport(decisions, deleted, stale, True)
    for decision in decisions:
        if decision.keep:
            continue
        doomed = backup_dir / f"{manifests.TEMP_PREFIX}delete-{decision.name}"
        (backup_dir / decision.name).rename(doomed)
        shutil.rmtree(doomed)
        deleted.append(decision.name)
    for partial in scan.partial:
        if time.time() - _last_write(partial) > STALE_AFTER.total_seconds():
            shutil.rmtree(partial, ignore_errors=True)
            stale.append(partial.name)
    return PruneReport(decisions, deleted, stale, False)
