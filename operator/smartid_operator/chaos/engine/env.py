"""What a run may touch (the two seams, the database's worker, Kopf's Events), and how a run
says no: the pieces the executor, its preconditions and the restart recovery share."""

from __future__ import annotations

import datetime
import functools
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

from smartid_operator import PLURAL as DATABASES
from smartid_operator import clock, mongo
from smartid_operator.chaos.engine.probe import Probe
from smartid_operator.kube import Kube
from smartid_operator.spec import WorkloadRef
from smartid_operator.status import Observation

OUTAGE_TEST_PASSED = "OutageTestPassed"  # a condition of the database, not part of Ready
T = TypeVar("T")
Key = tuple[str, str]
Body = Mapping[str, Any]


@dataclass
class Env:
    """What a run may touch, injected so the steps are testable against fakes."""

    kube: Kube
    in_kube: Callable[[Callable[[], Any]], Awaitable[Any]]
    pool: mongo.Pool
    image: str
    event: Callable[[Body, str, str, str], None]  # body, type, reason, message
    database: Callable[[Key], Body | None]  # the SmartIDDatabase as last seen
    database_status: Callable[[Key], Body]  # its status as its worker last wrote it
    # -> status.lastOutageTest, and the OutageTestPassed condition when there is a verdict
    report: Callable[[Key, dict[str, Any], Observation | None], None]
    active_run: Callable[[Key, str], str | None]  # another active run of the database
    probe: Callable[[mongo.Pool, str, str, str, float], Probe] = Probe
    now: Callable[[], datetime.datetime] = clock.utcnow
    # Seconds between probes while waiting for a change: the timings (Mongo back, everything
    # reindexed) are the operator's own observations, late by at most this and one query.
    poll: float = 0.1
    sample: float = 0.5  # seconds between availability samples for the timeline

    async def call(self, fn: Callable[..., T], *args: Any) -> T:
        result: T = await self.in_kube(functools.partial(fn, *args))
        return result

    async def database_body(self, key: Key) -> Body | None:
        """As its worker last saw it; read from the API when there is no worker yet (at
        start-up a run's event may come before its database's)."""
        body = self.database(key)
        if body is None:
            body = await self.call(self.kube.custom_object, DATABASES, *key)
        return body


class Refusal(Exception):
    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason, self.message = reason, message


class Failure(Refusal):
    """The run started and cannot go on: it fails with this reason (Mongo is restored)."""


def describe(ref: WorkloadRef) -> str:
    return f"{ref.kind}/{ref.name}"
