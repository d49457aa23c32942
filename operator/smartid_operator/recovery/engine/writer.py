"""The writer library: store a recording and its segments, then index them if Mongo answers.

Storage first, Mongo second: a recording's data and sidecar are on the volume before Mongo is
asked, so the reindexer finds them whatever happens next. Segments go to Mongo with a short
timeout; if that fails they are appended to this writer's spool (fsynced) before the call
returns. Mongo being down never raises to the caller; storage failing does (nothing durable
was written then, and the caller must know). Ids are chosen here, so a retry or a replay is a
no-op rather than a duplicate.

    with RecordingWriter("/data", uri, "smartid") as w:
        rid = w.store_recording(b"...", tenant_id="t1")
        sids = w.store_segments(rid, [Segment(0, text="hello")], tenant_id="t1")
"""

from __future__ import annotations

import dataclasses
import datetime
import logging
import os
import re
import shutil
import socket
import threading
import time
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any

from smartid_operator import clock, mongo
from smartid_operator.mongo import Database
from smartid_operator.recovery.engine import contract
from smartid_operator.recovery.engine.contract import Segment, Sidecar
from smartid_operator.recovery.engine.inserts import insert_missing
from smartid_operator.recovery.engine.link import MongoLink
from smartid_operator.recovery.engine.spool import SpoolWriter

log = logging.getLogger(__name__)


@dataclass
class WriterStats:
    recordings: int = 0
    segments: int = 0
    recordings_indexed: int = 0  # indexed at once; the rest wait on storage for the reindexer
    segments_indexed: int = 0
    segments_spooled: int = 0


def default_writer_id() -> str:
    raw = f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:4]}"
    return re.sub(r"[^A-Za-z0-9_-]", "-", raw)[:80]


class RecordingWriter:
    def __init__(self, storage: str | os.PathLike[str], uri: str | None = None,
                 database: str = "smartid", *, timeout: float = 0.5,
                 retry_interval: float = 0.25, writer_id: str | None = None,
                 spool_max_bytes: int = 64 << 20) -> None:
        if writer_id is not None and not contract.valid_id(writer_id):
            raise ValueError(f"writer id {writer_id!r} must match [A-Za-z0-9][A-Za-z0-9_-]*")
        self.storage = Path(storage)
        self.link = MongoLink(uri, database, timeout=timeout, app="writer") if uri else None
        self.timeout = timeout
        self.retry_interval = retry_interval
        self.spool = SpoolWriter(self.storage, writer_id or default_writer_id(), spool_max_bytes)
        self.stats = WriterStats()
        self._retry_at = 0.0
        self._lock = threading.Lock()

    # -- Mongo, when it answers ----------------------------------------------------------------

    def _mongo(self) -> Database | None:
        """The database if Mongo is (believed) up; while it is down, at most one cheap probe
        per ``retry_interval``, so a long outage costs the caller nothing."""
        if self.link is None:
            return None
        if not self.link.up:
            now = time.monotonic()
            if now < self._retry_at:
                return None
            self._retry_at = now + self.retry_interval
            if not self.link.available():
                return None
        return self.link.database()

    def _failed(self, exc: Exception) -> None:
        assert self.link is not None
        if self.link.up:
            log.warning("Mongo unreachable, spooling until it answers: %s", exc)
        self.link.lost()
        self._retry_at = time.monotonic() + self.retry_interval

    # -- recordings ----------------------------------------------------------------------------

    def store_recording(self, data: bytes | os.PathLike[str], *, tenant_id: str,
                        recorded_at: datetime.datetime | None = None,
                        recording_id: str | None = None,
                        metadata: Mapping[str, Any] | None = None,
                        suffix: str = contract.DATA_SUFFIX) -> str:
        """Store the data and its sidecar per the contract, then index; returns the id."""
        now = clock.utcnow()
        rid = recording_id or contract.new_recording_id(now)
        if not contract.valid_id(rid):
            raise ValueError(f"recording id {rid!r} must match [A-Za-z0-9][A-Za-z0-9_-]*")
        if not re.fullmatch(r"\.[A-Za-z0-9]{1,16}", suffix) or suffix == ".json":
            raise ValueError(f"data suffix {suffix!r} must be like .dat, and not .json")
        if not tenant_id:
            raise ValueError("tenant_id must be a non-empty string")
        if recorded_at is not None and recorded_at.tzinfo is None:
            raise ValueError("recorded_at must carry a time zone")
        sidecar = Sidecar(
            recording_id=rid, tenant_id=tenant_id,
            recorded_at=recorded_at or now, data_file=rid + suffix,
            written_at=now, metadata=dict(metadata or {}))
        sidecar.to_json()  # refuse non-JSON metadata before writing anything
        with self._lock:
            published, storage_key = self._publish(data, sidecar)
            self.stats.recordings += 1
            db = self._mongo()
            if db is None:
                return rid
            doc = contract.recording_document(published, storage_key, "writer",
                                              clock.utcnow())
            try:
                with mongo.translated(self.timeout):
                    outcome = insert_missing(db["recordings"], [doc])
            except mongo.MongoError as exc:
                self._failed(exc)
                return rid
            if outcome.refused:  # left on storage; the reindexer reports it by path
                log.warning("recording %s refused by Mongo: %s", rid, outcome.refused[rid])
            else:
                self.stats.recordings_indexed += 1
                self._handover()
        return rid

    def _publish(self, data: bytes | os.PathLike[str], sidecar: Sidecar) -> tuple[Sidecar, str]:
        """Stage the data under a hidden name, then (the partition chosen only now, so a long
        write cannot land in a stale one) rename it in and publish the sidecar last. Returns
        the sidecar as published and the data file's storage key."""
        root = self.storage / contract.RECORDINGS
        root.mkdir(parents=True, exist_ok=True)
        staged = root / f"{contract.TEMP_PREFIX}tmp-{sidecar.data_file}-{uuid.uuid4().hex[:8]}"
        try:
            with staged.open("wb") as out:
                if isinstance(data, bytes):
                    out.write(data)
                else:
                    with open(data, "rb") as src:
                        shutil.copyfileobj(src, out, 1 << 20)
                out.flush()
                os.fsync(out.fileno())
                size = out.tell()
            part = contract.partition(clock.utcnow())
            directory = root / part
            directory.mkdir(parents=True, exist_ok=True)
            os.rename(staged, directory / sidecar.data_file)
        except BaseException:
            staged.unlink(missing_ok=True)
            raise
        published = dataclasses.replace(sidecar, size_bytes=size)
        try:
            contract.write_atomic(directory / (sidecar.recording_id + contract.SIDECAR_SUFFIX),
                                  published.to_json())
        except BaseException:  # no sidecar, no recording: leave no orphan data behind
            (directory / sidecar.data_file).unlink(missing_ok=True)
            raise
        return published, f"{contract.RECORDINGS}/{part}/{sidecar.data_file}"

    # -- segments ------------------------------------------------------------------------------

    def store_segments(self, recording_id: str, segments: Iterable[Segment], *,
                       tenant_id: str | None = None) -> list[str]:
        """Index the segments, or spool them durably if Mongo does not answer in time;
        returns their ids (``<recording_id>:<sequence>``) either way."""
        now = clock.utcnow()
        records = [contract.segment_record(recording_id, s, tenant_id, now) for s in segments]
        ids = [r["id"] for r in records]
        if len(set(ids)) != len(ids):
            raise ValueError("segment sequence numbers must be unique within a call")
        if not records:
            return ids
        with self._lock:
            self.stats.segments += len(records)
            if self._index_segments(records):
                self.stats.segments_indexed += len(records)
                self._handover()
            else:
                self.spool.append(records)
                self.stats.segments_spooled += len(records)
        return ids

    def _index_segments(self, records: list[dict[str, Any]]) -> bool:
        db = self._mongo()
        if db is None:
            return False
        now = clock.utcnow()
        docs = [contract.segment_document(r, "writer", now) for r in records]
        try:
            with mongo.translated(self.timeout):
                outcome = insert_missing(db["recording_segments"], docs)
        except mongo.MongoError as exc:
            self._failed(exc)
            return False
        # Refused documents (a validator, say) go to the spool: the reindexer reports them.
        return not outcome.refused

    def _handover(self) -> None:
        """Mongo answers again: seal the spool so the reindexer can replay and retire it."""
        if self.spool.holding:
            self.spool.seal()

    # -- lifecycle -----------------------------------------------------------------------------

    def close(self) -> None:
        with self._lock:
            self.spool.seal()
            if self.link is not None:
                self.link.close()

    def __enter__(self) -> RecordingWriter:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()
