"""The recovery agent: a long-running loop beside the storage volume.

Runs in the agent's pod (``smartid-operator recovery agent``). It walks the recordings tree
(``tree.Tree``: a ``stat`` per directory, a listing of the ones that changed) when inotify
says something changed (``notify.Notifier``) and every ``scan_interval`` regardless; where
inotify is not to be had, every ``watch_interval``. Either way never more often than keeps
the walks within ``walk_share`` of a core on a large tree. The spool is watched by its
directory and live files' sizes. While Mongo
answers it runs a changes pass when something changed, a safety pass every ``scan_interval``
regardless, and a full pass at start and every ``full_pass_interval``. While Mongo is down it
goes on walking (so the outage's writes are already found) and probes Mongo every
``probe_interval`` (a refused TCP connect answers at once); the pass it starts the moment Mongo
answers ``ping`` is what brings the outage's writes into Mongo. After every pass it writes its
report to ``smartid_recovery`` ``{_id: "agent"}`` and updates its metrics.
"""

from __future__ import annotations

import datetime
import logging
import os
import socket
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from smartid_operator import clock, mongo
from smartid_operator.recovery.engine import contract, metrics, state
from smartid_operator.recovery.engine.link import MongoLink
from smartid_operator.recovery.engine.notify import Notifier
from smartid_operator.recovery.engine.reindexer import Reindexer
from smartid_operator.recovery.engine.report import PassReport

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class AgentConfig:
    storage: Path
    uri: str
    database: str = "smartid"
    batch_size: int = 500
    scan_interval: float = 5.0
    full_pass_interval: float = 3600.0
    probe_interval: float = 0.25
    watch_interval: float = 0.25
    survey_interval: float = 2.0
    walk_share: float = 0.05  # of a core, at most, for walking the tree
    inotify: bool = True
    grace_seconds: float = 0.0
    timeout: float = 2.0


class Agent:
    def __init__(self, config: AgentConfig) -> None:
        self.config = config
        self.link = MongoLink(config.uri, config.database, timeout=config.timeout,
                              probe_timeout=min(config.probe_interval, 0.5), app="recovery")
        self.reindexer = Reindexer(config.storage, batch_size=config.batch_size,
                                   grace_seconds=config.grace_seconds)
        self.identity = f"{socket.gethostname()}/{os.getpid()}"
        self.last_report: PassReport | None = None
        self.passes = 0
        self._signature: tuple[Any, ...] = ()
        self._next_scan = 0.0
        self._next_full = 0.0
        self._next_survey = 0.0
        self._next_look = 0.0
        self.walks = 0
        self.notifier = Notifier(config.storage)
        self.notified = config.inotify and self.notifier.start()
        self._down_since: datetime.datetime | None = None
        self._last_recovery: dict[str, Any] | None = None

    def run(self, stop: threading.Event) -> None:
        log.info("recovery agent for %s on %s: batch %d, scan every %.1f s, full pass every "
                 "%.0f s, change seen by %s", self.config.database, self.config.storage,
                 self.config.batch_size, self.config.scan_interval,
                 self.config.full_pass_interval,
                 "inotify and walks" if self.notified else "walks alone")
        try:
            while not stop.is_set():
                wait = self.step()
                stop.wait(wait)
        finally:
            self.close()

    def close(self) -> None:
        self.notifier.stop()
        self.link.close()

    def step(self) -> float:
        """One turn of the loop; returns how long to wait before the next."""
        now = time.monotonic()
        if now >= self._next_look or (self.notified and self.notifier.changed()):
            timer = time.perf_counter()
            self.reindexer.look()
            self.walks += 1
            cost = time.perf_counter() - timer
            metrics.WALK_SECONDS.set(cost)
            metrics.DIRECTORIES.set(self.reindexer.walk_directories)
            every = self.config.scan_interval if self.notified else self.config.watch_interval
            self._next_look = now + max(every, cost / self.config.walk_share)
        if not self.link.up:
            if self.link.available():
                returned = clock.utcnow()
                metrics.REACHABLE.set(1)
                if self._down_since is not None:
                    log.info("Mongo answers; indexing what reached storage meanwhile")
                self._pass("mongo-returned" if self._down_since is not None else "startup",
                           returned=returned)
                return self.config.watch_interval
            metrics.REACHABLE.set(0)
            if self._down_since is None:
                self._down_since = clock.utcnow()
                log.warning("Mongo unreachable; probing every %.2f s", self.config.probe_interval)
            if now >= self._next_survey:
                self._next_survey = now + self.config.survey_interval
                pending, _ = self.reindexer.survey()
                metrics.PENDING.set(pending)
            return self.config.probe_interval
        signature = self._watch()
        full = now >= self._next_full
        changed = self.reindexer.changed or signature != self._signature
        trigger = ("full-interval" if full else "storage-changed" if changed
                   else "interval" if now >= self._next_scan else None)
        if trigger is not None:
            self._signature = signature
            if self.link.listening():  # a refused port: down, without pymongo's wait
                self._pass(trigger, full=full)
            else:
                self.link.lost()
        return self.config.watch_interval

    def _pass(self, trigger: str, *, full: bool = False,
              returned: datetime.datetime | None = None) -> None:
        now = time.monotonic()
        self._next_scan = now + self.config.scan_interval
        try:
            report = self.reindexer.run(self.link.database(), full=full, trigger=trigger)
        except Exception:  # a bug must not crash-loop the agent; the next pass retries
            log.exception("recovery pass failed")
            return
        self.passes += 1
        self.last_report = report
        metrics.observe(report)
        if report.failed_on == "mongo":
            log.warning("pass failed, Mongo lost: %s", report.error)
            self.link.lost()
            return
        if report.ok:
            if report.kind == "full" or self._next_full == 0.0:
                self._next_full = now + self.config.full_pass_interval
            if returned is not None and self._down_since is not None:
                self._last_recovery = {
                    "mongo_down_at": self._down_since, "mongo_returned_at": returned,
                    "indexed_at": report.finished_at, "indexed": report.indexed,
                    "seconds": round((report.finished_at or returned).timestamp()
                                     - returned.timestamp(), 3)}
            self._down_since = None
            level = logging.INFO if report.indexed or report.skipped else logging.DEBUG
            log.log(level, "%s (%s)", report.summary(), trigger)
        else:  # the volume failed, not Mongo: say so where the operator reads it
            log.warning("pass failed: %s", report.error)
        try:
            with mongo.translated():
                state.write_report(self.link.database(), self.document(report))
        except mongo.MongoError as exc:
            log.warning("could not write the report: %s", exc)
            self.link.lost()

    def document(self, report: PassReport) -> dict[str, Any]:
        """The report document the operator reads (``status.recovery``)."""
        return {**report.document(), "agent": self.identity, "updated_at": clock.utcnow(),
                "last_recovery": self._last_recovery,
                "config": {"batch_size": self.config.batch_size,
                           "scan_interval_seconds": self.config.scan_interval,
                           "full_pass_interval_seconds": self.config.full_pass_interval}}

    def _watch(self) -> tuple[Any, ...]:
        """A cheap fingerprint of the spool: its directory and the sizes of live files (the
        recordings tree is the walk's)."""
        spool_dir = self.config.storage / contract.SPOOL
        marks: list[Any] = [_mtime(spool_dir)]
        try:
            with os.scandir(spool_dir) as it:
                marks += sorted((e.name, e.stat().st_size) for e in it
                                if e.name.endswith(contract.OPEN_SUFFIX))
        except FileNotFoundError:
            pass
        return tuple(marks)


def _mtime(path: Path) -> int | None:
    try:
        return path.stat().st_mtime_ns
    except FileNotFoundError:
        return None
