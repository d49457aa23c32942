"""The schema promise's door for the core (runs in the operator process): migrations up to
``spec.schema.version``, applied in the pass itself (why not in a Job: ``observe.py``)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from smartid_operator.promise import Event, Key, Look, Promise, View
from smartid_operator.schema import metrics
from smartid_operator.schema.observe import SCHEMA_READY, converge_schema


class Schema(Promise):
    name = "schema"
    section = "schema"
    conditions = (SCHEMA_READY,)
    must_fix = frozenset({"ChecksumMismatch", "UnknownVersion", "MigrationConflict"})

    async def observe(self, look: Look) -> View:
        previous = dict(look.previous.get(self.section) or {})
        if look.handle is None:
            # Unreachable: no observation; SchemaReady and status.schema keep what was last
            # seen, as the condition's message says.
            return View(section=previous, required=self.conditions)
        db = look.handle.database(look.spec.mongo.database)
        spec = look.spec
        outcome = await look.in_blocking_pool(
            lambda: converge_schema(db, spec, owner=look.owner))
        key = look.key
        return View(section=outcome.status, observations=[outcome.observation],
                    required=self.conditions, unavailable=outcome.transient,
                    events=[Event("Normal", "MigrationApplied", f"applied migration {m}",
                                  posted=lambda: metrics.applied(*key))
                            for m in outcome.applied])

    def published(self, key: Key, status: Mapping[str, Any], memory: Any) -> None:
        metrics.observe(*key, status.get(self.section) or {})

    def forget(self, key: Key) -> None:
        metrics.forget(*key)



PROMISE = Schema()
