"""The chaos promise's door for the core (runs in the operator process): SmartIDOutageTest
runs (``manager.py`` owns their tasks; ``engine/`` runs one), whose outcome becomes the
database's ``status.lastOutageTest`` and its ``OutageTestPassed`` condition (not part of
Ready: a database is ready whether or not anyone tested it)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from smartid_operator import GROUP, VERSION
from smartid_operator.chaos import PLURAL, metrics
from smartid_operator.chaos.engine.env import OUTAGE_TEST_PASSED
from smartid_operator.promise import Body, Key, Look, Operator, Promise, View, Watch
from smartid_operator.status import Observation

if TYPE_CHECKING:
    from smartid_operator.chaos.manager import Manager

RUNS = Watch(GROUP, VERSION, PLURAL, managed=False)


@dataclass
class ChaosMemory:
    """The last run's outcome as the manager reported it (the status keeps it otherwise)."""

    last: dict[str, Any] | None = None
    verdict: Observation | None = None
    uid: str = ""  # of the database it was reported for


class Chaos(Promise):
    name = "chaos"
    section = "lastOutageTest"
    conditions = (OUTAGE_TEST_PASSED,)
    watches = (RUNS,)

    def __init__(self) -> None:
        self.manager: Manager | None = None

    def memory(self) -> ChaosMemory:
        return ChaosMemory()

    async def observe(self, look: Look) -> View:
        memory: ChaosMemory = look.memory
        if memory.uid != look.uid:  # reported for an object of the same name since deleted
            return View(section=look.previous.get(self.section))
        last = memory.last if memory.last is not None else look.previous.get(self.section)
        return View(section=last, observations=[memory.verdict] if memory.verdict else [])

    def heard(self, operator: Operator, watch: Watch, event: str | None, body: Body) -> None:
        if self.manager is not None:
            self.manager.observe(event, body)

    def published(self, key: Key, status: Mapping[str, Any], memory: Any) -> None:
        metrics.observe(*key, status.get(self.section) or {})

    def forget(self, key: Key) -> None:
        metrics.forget(*key)

    async def start(self, operator: Operator) -> None:
        from smartid_operator.chaos.manager import Manager

        def report(key: Key, last: dict[str, Any], verdict: Observation | None) -> None:
            database = operator.database(key)
            if database is None:
                return
            memory: ChaosMemory = operator.memory(self, key)
            uid = str(database["metadata"].get("uid", ""))
            if memory.uid != uid:
                memory.last, memory.verdict, memory.uid = None, None, uid
            memory.last = dict(last)
            if verdict is not None:
                memory.verdict = verdict
            operator.poke(key)

        self.manager = Manager(operator, report)
        self.manager.start()

    async def stop(self) -> None:
        # Runs first restore the replicas they took and report to the workers.
        if self.manager is not None:
            await self.manager.stop()



PROMISE = Chaos()
