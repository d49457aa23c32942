"""The migration engine: plan, apply exactly once under a lease lock, detect drift.

History lives in ``smartid_migrations`` (one document per applied migration, keyed by its id,
with checksum, time, duration, operator version and the outcome of each step). The lease lock
is one document in ``smartid_locks``: an owner identity and an expiry, renewed while working,
taken over only once expired. A holder that loses its lease stops before the next migration.
"""

from __future__ import annotations

import datetime
import os
import socket
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from smartid_operator import __version__, mongo
from smartid_operator.clock import utcnow
from smartid_operator.mongo import Database
from smartid_operator.schema.engine.catalog import MIGRATIONS
from smartid_operator.schema.engine.model import Migration
from smartid_operator.schema.engine.steps import StepConflict, StepPlan, StepResult

HISTORY = "smartid_migrations"
LOCKS = "smartid_locks"
LOCK_ID = "migrations"


class MigrationError(RuntimeError):
    reason = "MigrationFailed"


class MigrationConflict(MigrationError):
    reason = "MigrationConflict"


class ChecksumDrift(MigrationError):
    reason = "ChecksumMismatch"


class UnknownVersion(MigrationError):
    reason = "UnknownVersion"


class LockBusy(MigrationError):
    reason = "MigrationLocked"


class LockLost(MigrationError):
    reason = "MigrationLockLost"


def default_owner() -> str:
    return f"{socket.gethostname()}/{os.getpid()}"


@dataclass(frozen=True)
class SchemaState:
    current: int  # highest version applied in order (0: none)
    target: int
    applied: tuple[str, ...]
    pending: tuple[str, ...]
    drift: tuple[str, ...]  # applied migrations whose definition changed since
    unknown: tuple[str, ...]  # recorded by a newer operator, unknown to this one
    unsupported: tuple[str, ...]  # steps the server could not do, by migration

    @property
    def up_to_date(self) -> bool:
        return not self.pending and not self.drift


@dataclass(frozen=True)
class PlannedMigration:
    id: str
    version: int
    description: str
    steps: tuple[StepPlan, ...]


@dataclass
class ApplyReport:
    applied: list[str] = field(default_factory=list)
    results: dict[str, list[StepResult]] = field(default_factory=dict)
    unsupported: list[str] = field(default_factory=list)
    waited_seconds: float = 0.0
    waited_for: str | None = None
    state: SchemaState | None = None  # as it stands after this apply


class Engine:
    def __init__(self, db: Database, migrations: Sequence[Migration] = MIGRATIONS, *,
                 owner: str | None = None, lease_seconds: float = 30.0) -> None:
        self.db = db
        self.migrations = tuple(migrations)
        self.owner = owner or default_owner()
        self.lease_seconds = lease_seconds

    # -- reading -------------------------------------------------------------------------------

    def resolve(self, target: str | int = "latest") -> int:
        latest = max((m.version for m in self.migrations), default=0)
        if target in ("latest", None):
            return latest
        number = int(str(target).removeprefix("v"))
        if not 0 <= number <= latest:
            raise UnknownVersion(f"schema version v{number} is not known; this operator "
                                 f"knows v1..v{latest}")
        return number

    def history(self) -> dict[str, dict[str, Any]]:
        return {entry["_id"]: entry for entry in mongo.read_history(self.db, HISTORY)}

    def state(self, target: str | int = "latest") -> SchemaState:
        goal = self.resolve(target)
        history = self.history()
        known = {m.id for m in self.migrations}
        applied = [m for m in self.migrations if m.id in history]
        current = 0
        for m in self.migrations:
            if m.id not in history:
                break
            current = m.version
        unsupported = tuple(
            f"{entry['_id']}: {step['step']} ({step['detail']})"
            for entry in history.values() for step in entry.get("steps", [])
            if step.get("outcome") == "unsupported")
        return SchemaState(
            current=current, target=goal,
            applied=tuple(m.id for m in applied),
            pending=tuple(m.id for m in self.migrations
                          if m.version <= goal and m.id not in history),
            drift=tuple(m.id for m in applied if history[m.id].get("checksum") != m.checksum),
            unknown=tuple(sorted(set(history) - known)),
            unsupported=unsupported,
        )

    def plan(self, target: str | int = "latest") -> list[PlannedMigration]:
        """What ``apply`` would do, step by step; reads only, never writes."""
        state = self.state(target)
        return [PlannedMigration(m.id, m.version, m.description,
                                 tuple(step.plan(self.db) for step in m.up))
                for m in self.migrations if m.id in state.pending]

    # -- writing -------------------------------------------------------------------------------

    def apply(self, target: str | int = "latest", *, wait: float = 0.0) -> ApplyReport:
        """Apply pending migrations up to ``target``, each exactly once.

        Holding the lease, waits up to ``wait`` seconds for another holder to finish; raises
        ``LockBusy`` past that, ``ChecksumDrift`` if an applied migration changed.
        """
        report = ApplyReport()
        state = self._check(target)
        if not state.pending:
            report.state = state
            return report
        started = time.monotonic()
        while not mongo.lease_acquire(self.db, LOCKS, LOCK_ID, self.owner, utcnow(),
                                      utcnow() + datetime.timedelta(seconds=self.lease_seconds)):
            holder = mongo.lease_holder(self.db, LOCKS, LOCK_ID) or {}
            report.waited_for = str(holder.get("owner", "?"))
            if time.monotonic() - started >= wait:
                raise LockBusy(f"migrations are being applied by {report.waited_for} "
                               f"(lease until {holder.get('expires_at')})")
            time.sleep(min(0.5, self.lease_seconds / 10))
        report.waited_seconds = round(time.monotonic() - started, 3)
        lost = threading.Event()
        stop = threading.Event()
        renewer = threading.Thread(target=self._renew, args=(stop, lost), daemon=True,
                                   name="migration-lease")
        renewer.start()
        try:
            # Fresh under the lease: whoever held it before may have applied everything.
            for migration in self._pending(self._check(target)):
                if lost.is_set():
                    raise LockLost(f"lost the migration lease before {migration.id}")
                results = self._apply_one(migration)
                report.applied.append(migration.id)
                report.results[migration.id] = results
                report.unsupported += [f"{migration.id}: {r.step} ({r.detail})"
                                       for r in results if r.outcome == "unsupported"]
        finally:
            stop.set()
            renewer.join()
            mongo.lease_release(self.db, LOCKS, LOCK_ID, self.owner)
        report.state = self.state(target)
        return report

    def rollback(self, target: str | int) -> list[str]:
        """Run ``down`` of applied migrations above ``target``, newest first."""
        goal = self.resolve(target)
        if not mongo.lease_acquire(self.db, LOCKS, LOCK_ID, self.owner, utcnow(),
                                   utcnow() + datetime.timedelta(seconds=self.lease_seconds)):
            raise LockBusy("migrations are being applied by someone else")
        undone = []
        try:
            history = self.history()
            for migration in reversed(self.migrations):
                if migration.version <= goal or migration.id not in history:
                    continue
                if not migration.down:
                    raise MigrationError(f"{migration.id} has no down steps")
                for step in migration.down:
                    step.apply(self.db)
                mongo.unrecord(self.db, HISTORY, migration.id)
                undone.append(migration.id)
        finally:
            mongo.lease_release(self.db, LOCKS, LOCK_ID, self.owner)
        return undone

    def _check(self, target: str | int) -> SchemaState:
        state = self.state(target)
        if state.drift:
            raise ChecksumDrift(
                f"applied migration {', '.join(state.drift)} no longer matches its recorded "
                f"checksum; migrations stop here. Restore its definition, or accept the "
                f"change with 'smartid-operator migrate repair'")
        return state

    def _pending(self, state: SchemaState) -> list[Migration]:
        return [m for m in self.migrations if m.id in state.pending]

    def _apply_one(self, migration: Migration) -> list[StepResult]:
        started = time.monotonic()
        applied_at = utcnow()
        try:
            results = [step.apply(self.db) for step in migration.up]
        except StepConflict as exc:
            raise MigrationConflict(f"{migration.id}: {exc}") from None
        entry = {
            "_id": migration.id, "version": migration.version,
            "description": migration.description, "checksum": migration.checksum,
            "applied_at": applied_at,
            "duration_ms": round((time.monotonic() - started) * 1000, 1),
            "operator_version": __version__, "applied_by": self.owner,
            "steps": [r.as_doc() for r in results],
        }
        if not mongo.record(self.db, HISTORY, entry):
            raise MigrationError(f"{migration.id} was recorded by someone else while this "
                                 f"engine held the lease; stopping")
        return results

    def _renew(self, stop: threading.Event, lost: threading.Event) -> None:
        while not stop.wait(self.lease_seconds / 3):
            try:
                ok = mongo.lease_renew(self.db, LOCKS, LOCK_ID, self.owner, utcnow(),
                                       utcnow() + datetime.timedelta(seconds=self.lease_seconds))
            except Exception:  # the server is away: the lease may lapse
                ok = False
            if not ok:
                lost.set()
                return

    def repair(self, migration_id: str) -> None:
        """Accept the current definition of an applied migration (after a reviewed change)."""
        migration = next((m for m in self.migrations if m.id == migration_id), None)
        if migration is None:
            raise UnknownVersion(f"no migration {migration_id}")
        mongo.overwrite_checksum(self.db, HISTORY, migration_id, migration.checksum)
