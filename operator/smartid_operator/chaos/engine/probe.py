"""A run's view of Mongo, through the Mongo seam (``mongo.Pool``, ``mongo.check``,
``mongo.count``, ``mongo.find``): is it answering, how many documents are there, which of the
run's ids are present and when they were written and indexed."""

from __future__ import annotations

import datetime
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from smartid_operator import clock, mongo

RECORDINGS, SEGMENTS = "recordings", "recording_segments"


@dataclass(frozen=True)
class Found:
    """An expected document that is present: when it was written and indexed, and by whom."""

    id: str
    written_at: datetime.datetime | None
    indexed_at: datetime.datetime | None
    indexed_by: str | None


class Probe:
    """One run's client, under a pool key of its own (``<ns>/<db>/<purpose>``) so it never
    shares a socket with the database's worker or with the run's other probe."""

    def __init__(self, pool: mongo.Pool, key: str, uri: str, database: str,
                 timeout: float) -> None:
        self.pool = pool
        self.key = key
        self.uri = uri
        self.database = database
        self.timeout = timeout

    async def _handle(self) -> mongo.Handle:
        return await self.pool.handle(self.key, self.uri, self.timeout)

    async def reachable(self) -> tuple[bool, str | None]:
        health = await mongo.check(await self._handle())
        return health.reachable, health.error

    async def _count(self, collection: str, query: dict[str, Any]) -> int:
        return await mongo.count(await self._handle(), self.database, collection, query)

    async def counts(self) -> tuple[int, int]:
        """All documents in ``recordings`` and ``recording_segments``."""
        return await self._count(RECORDINGS, {}), await self._count(SEGMENTS, {})

    async def tagged(self, run: str) -> tuple[int, int]:
        """Documents carrying the run's tag, whatever their id (a duplicate would, too)."""
        return (await self._count(RECORDINGS, {"metadata.chaos_run": run}),
                await self._count(SEGMENTS, {"attributes.chaos_run": run}))

    async def present(self, collection: str, ids: Sequence[str]) -> dict[str, Found]:
        """Which of ``ids`` are there. A run's ids share a prefix (``chaos-<run>-r``), so one
        range on ``_id`` (the _id index on MongoDB, one scan on stand-ins) finds them all,
        where thousands of ids in ``$in`` chunks cost a scan each on a stand-in; only the
        expected ids count (another run's name may extend this one's)."""
        if not ids:
            return {}
        wanted = set(ids)
        low, high = min(ids), max(ids)
        docs = await mongo.find(await self._handle(), self.database, collection,
                                {"_id": {"$gte": low, "$lte": high}},
                                {"written_at": 1, "indexed_at": 1, "indexed_by": 1})
        return {str(doc["_id"]): Found(str(doc["_id"]), clock.utc(doc.get("written_at")),
                                       clock.utc(doc.get("indexed_at")), doc.get("indexed_by"))
                for doc in docs if str(doc["_id"]) in wanted}

    async def close(self) -> None:
        await self.pool.forget(self.key)
