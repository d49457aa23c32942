"""The schema promise inside a reconcile: apply pending migrations in the operator process.

Why here and not in a Job: the operator already holds the URI and a pooled client, and the
lease lock in Mongo makes a second replica or a CLI run safe; a Job would add pod start-up
latency and need API access to report back. A killed operator loses only its lease: it
expires, and the next holder resumes with idempotent steps.
"""

from __future__ import annotations

import contextlib
import secrets
from dataclasses import dataclass, field
from typing import Any

from smartid_operator import mongo
from smartid_operator.schema.engine import Engine, MigrationError, SchemaState
from smartid_operator.spec import DatabaseSpec
from smartid_operator.status import Observation

SCHEMA_READY = "SchemaReady"  # every migration up to spec.schema.version applied, none drifted
LEASE_SECONDS = 30.0


@dataclass
class SchemaOutcome:
    observation: Observation
    status: dict[str, Any] = field(default_factory=dict)
    applied: list[str] = field(default_factory=list)
    transient: str | None = None  # worth a retry soon (lock busy, server hiccup)


def converge_schema(db: mongo.Database, spec: DatabaseSpec, owner: str) -> SchemaOutcome:
    """Blocking (the engine is synchronous): the worker runs it in its migration pool."""
    # A suffix per pass: a CLI run or a second operator under the same name must each hold
    # the lease on its own, not share it by name.
    engine = Engine(db, owner=f"{owner}#{secrets.token_hex(3)}", lease_seconds=LEASE_SECONDS)
    target = spec.schema_version
    try:
        with mongo.translated():
            report = engine.apply(target)
            state = report.state or engine.state(target)
    except MigrationError as exc:
        outcome = SchemaOutcome(Observation(SCHEMA_READY, False, exc.reason, str(exc)))
        if exc.reason in ("MigrationLocked", "MigrationLockLost", "MigrationFailed"):
            outcome.transient = str(exc)
        with contextlib.suppress(MigrationError, mongo.MongoError), mongo.translated():
            outcome.status = _status(engine.state(target))
        return outcome
    except mongo.MongoError as exc:
        message = f"migrations interrupted: {exc}"
        return SchemaOutcome(Observation(SCHEMA_READY, False, "MigrationFailed", message),
                             transient=message)
    gaps = f"; unsupported by this server: {len(state.unsupported)} step(s)" \
        if state.unsupported else ""
    observation = Observation(
        SCHEMA_READY, True, "AppliedWithServerGaps" if state.unsupported else "UpToDate",
        f"schema v{state.current} (target {target}), {len(state.applied)} migration(s) "
        f"applied{gaps}")
    return SchemaOutcome(observation, _status(state), report.applied)


def _status(state: SchemaState) -> dict[str, Any]:
    return {"version": f"v{state.current}", "target": f"v{state.target}",
            "applied": list(state.applied), "pending": list(state.pending),
            "drift": list(state.drift), "unsupported": list(state.unsupported)}
