"""The recovery engine against a real wire-protocol server process (FerretDB) that really goes
away: its process is stopped (connections refused) and restarted on the same data.

Everything is checked by id: every id the writer returned, and every id written by plain file
writes that follow the contract, is in Mongo exactly once.
"""

from __future__ import annotations

import datetime
import json
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pymongo
import pytest
from prometheus_client import REGISTRY
from pymongo.database import Database

from smartid_operator import clock
from smartid_operator.cli import main as cli_main
from smartid_operator.recovery import Reindexer, Segment
from smartid_operator.recovery.engine import contract, state
from smartid_operator.recovery.engine import reindexer as reindexer_module
from smartid_operator.recovery.engine.agent import Agent, AgentConfig
from smartid_operator.recovery.engine.report import PassReport
from smartid_operator.recovery.engine.writer import RecordingWriter
from smartid_operator.schema.engine import Engine
from smartid_testbed.cluster import wait_for
from smartid_testbed.mongo_server import MongoServer
from smartid_testbed.processes import free_port
from tests.cluster.helpers import require_ferretdb

Db = Database[dict[str, Any]]


@pytest.fixture
def server(tmp_path: Path) -> Iterator[MongoServer]:
    """A server of the test's own, so the test can stop it (a real outage) and restart it."""
    require_ferretdb()
    srv = MongoServer(tmp_path / "mongo").start()
    try:
        yield srv
    finally:
        srv.stop()


@pytest.fixture
def storage(tmp_path: Path) -> Path:
    path = tmp_path / "storage"
    path.mkdir()
    return path


def database(srv: MongoServer) -> tuple[pymongo.MongoClient[dict[str, Any]], Db]:
    mc: pymongo.MongoClient[dict[str, Any]] = pymongo.MongoClient(
        srv.uri, serverSelectionTimeoutMS=5000)
    db = mc["smartid"]
    Engine(db).apply()  # v3: recordings and recording_segments with their unique keys
    return mc, db


def plain_recording(storage: Path, rid: str, *, part: str | None = None,
                    data: bytes = b"plain bytes") -> Path:
    """A recording dropped by plain file writes that follow the README's contract, without
    the writer library: stage, rename the data in, then the sidecar via a temporary name.
    ``part`` is its directory under recordings/ ("" for the seed's flat layout)."""
    if part is None:
        part = datetime.datetime.now(datetime.UTC).strftime("%Y%m%d/%H%M")
    directory = storage / "recordings" / part if part else storage / "recordings"
    directory.mkdir(parents=True, exist_ok=True)
    for name, body in ((f"{rid}.dat", data), (f"{rid}.json", json.dumps({
            "recording_id": rid, "tenant_id": "plain-tenant",
            "recorded_at": "2025-10-20T12:00:00+03:00", "size_bytes": len(data)}).encode())):
        temp = directory / f".{name}.partial"
        with temp.open("wb") as out:
            out.write(body)
            out.flush()
            os.fsync(out.fileno())
        os.rename(temp, directory / name)
    return directory / f"{rid}.json"


def write_outage(writer: RecordingWriter, recordings: int,
                 per_recording: int) -> tuple[list[str], list[str]]:
    rids: list[str] = []
    sids: list[str] = []
    for r in range(recordings):
        rid = writer.store_recording(f"recording {r}".encode(), tenant_id="t1",
                                     metadata={"n": r})
        rids.append(rid)
        sids += writer.store_segments(
            rid, [Segment(i, i * 1000, i * 1000 + 999, f"text {i}") for i in range(per_recording)],
            tenant_id="t1")
    return rids, sids


def ids_in(db: Db, collection: str) -> Counter[str]:
    return Counter(str(doc["_id"]) for doc in db[collection].find({}, {"_id": 1}))


def assert_exactly_once(db: Db, rids: list[str], sids: list[str]) -> None:
    recordings, segments = ids_in(db, "recordings"), ids_in(db, "recording_segments")
    assert set(recordings) == set(rids), (set(rids) - set(recordings), set(recordings) - set(rids))
    assert set(segments) == set(sids), (len(set(sids) - set(segments)),
                                        len(set(segments) - set(sids)))
    assert max(recordings.values()) == max(segments.values()) == 1
    pairs = Counter((d["recording_id"], d["sequence"])
                    for d in db["recording_segments"].find({}, {"recording_id": 1, "sequence": 1}))
    assert max(pairs.values()) == 1
    keys = Counter(d["storage_key"] for d in db["recordings"].find({}, {"storage_key": 1}))
    assert max(keys.values()) == 1


def snapshot(db: Db) -> list[list[dict[str, Any]]]:
    return [sorted(db[c].find({}), key=lambda d: str(d["_id"]))
            for c in ("recordings", "recording_segments")]


def spool_names(storage: Path) -> list[str]:
    return sorted(p.name for p in (storage / "spool").glob("*") if p.is_file())


# -- the outage, one pass -------------------------------------------------------------------------

def test_outage_writes_are_indexed_exactly_once_and_a_second_pass_changes_nothing(
        server: MongoServer, storage: Path) -> None:
    mc, db = database(server)
    writer = RecordingWriter(storage, server.uri, "smartid", timeout=0.5)
    base = writer.store_recording(b"before", tenant_id="t1")
    base_segments = writer.store_segments(base, [Segment(0), Segment(1)])
    assert writer.stats.recordings_indexed == 1 and writer.stats.segments_indexed == 2

    server.stop()  # the process is gone: connections are refused
    started = time.monotonic()
    rids, sids = write_outage(writer, 50, 20)
    outage_writes = time.monotonic() - started
    plain = "plain-0001"
    plain_recording(storage, plain)
    assert writer.stats.recordings_indexed == 1 and writer.stats.segments_spooled == 1000
    assert outage_writes < 10, f"the writer stalled during the outage: {outage_writes:.1f} s"
    server.start()

    first = Reindexer(storage, batch_size=100).run(db, trigger="test")
    assert first.ok, first.error
    assert first.skipped == []
    assert (first.recordings_indexed, first.segments_indexed) == (51, 1000)
    all_rids, all_sids = [base, *rids, plain], [*base_segments, *sids]
    assert_exactly_once(db, all_rids, all_sids)
    plain_doc = db["recordings"].find_one({"_id": plain})
    assert plain_doc is not None and plain_doc["tenant_id"] == "plain-tenant"
    assert plain_doc["storage_key"].endswith(f"/{plain}.dat")

    # The writer is still alive: its spool file was replayed but not retired. Its first write
    # that reaches Mongo seals the file, handing it to the next pass.
    later = writer.store_segments(base, [Segment(2)])
    assert writer.stats.segments_indexed == 3
    assert [n for n in spool_names(storage) if n.endswith(".jsonl")], spool_names(storage)
    before = snapshot(db)
    second = Reindexer(storage, batch_size=100).run(db, trigger="test")
    assert second.ok and second.indexed == 0 and second.spool_files_retired == 1
    assert second.segments_present == 1000
    assert snapshot(db) == before
    full = Reindexer(storage).run(db, full=True, trigger="test")
    assert full.ok and full.kind == "full" and full.indexed == 0 and full.skipped == []
    assert full.index_without_file == 0 and full.recordings_present == 52
    assert snapshot(db) == before
    assert spool_names(storage) == []
    assert_exactly_once(db, all_rids, [*all_sids, *later])
    writer.close()
    mc.close()


# -- the agent ----------------------------------------------------------------------------------

def test_the_agent_indexes_outage_writes_within_seconds_of_mongo_answering(
        server: MongoServer, storage: Path) -> None:
    mc, db = database(server)
    agent = Agent(AgentConfig(storage=storage, uri=server.uri, database="smartid",
                              batch_size=500, scan_interval=5.0))
    stop = threading.Event()
    thread = threading.Thread(target=agent.run, args=(stop,), daemon=True)
    before_metric = REGISTRY.get_sample_value("smartid_recovery_indexed_total",
                                              {"kind": "segments"}) or 0.0
    thread.start()
    try:
        wait_for(lambda: agent.passes >= 1, timeout=30, what="the agent's first pass")
        writer = RecordingWriter(storage, server.uri, "smartid", timeout=0.5)
        server.stop()
        rids, sids = write_outage(writer, 50, 20)
        rids.append("plain-agent-1")
        plain_recording(storage, rids[-1])
        server.start()
        answered = time.monotonic()

        def indexed() -> bool:
            return (db["recordings"].count_documents({"_id": {"$in": rids}}) == len(rids)
                    and db["recording_segments"].count_documents({}) == len(sids))

        wait_for(indexed, timeout=30, interval=0.02, what="all outage writes indexed")
        seconds = time.monotonic() - answered
        print(f"outage writes indexed {seconds:.2f} s after Mongo answered ping")
        assert seconds < 10, seconds  # the README's target is 2 s; bench/recovery.py measures
        assert_exactly_once(db, rids, sids)
        wait_for(lambda: (state.read_report(db) or {}).get("last_recovery") is not None,
                 timeout=10, what="the agent's report")
        report = state.read_report(db)
        assert report is not None and report["ok"] and report["skipped"] == []
        assert report["last_recovery"]["indexed"] >= 1
        after_metric = REGISTRY.get_sample_value("smartid_recovery_indexed_total",
                                                 {"kind": "segments"}) or 0.0
        assert after_metric - before_metric == 1000
        writer.close()
    finally:
        stop.set()
        thread.join(timeout=10)
    mc.close()


# -- a reindexer killed mid-batch ---------------------------------------------------------------

def reindex_cmd(storage: Path, srv: MongoServer, *extra: str) -> list[str]:
    return [sys.executable, "-m", "smartid_operator", "reindex", "--storage", str(storage),
            "--uri", srv.uri, "--database", "smartid", *extra]


def kill_when(proc: subprocess.Popen[bytes], condition: Any, what: str) -> None:
    deadline = time.monotonic() + 60
    while not condition():
        assert proc.poll() is None, f"the reindexer finished before {what}"
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.005)
    proc.send_signal(signal.SIGKILL)
    proc.wait()


def test_a_reindexer_sigkilled_mid_batch_loses_and_duplicates_nothing(
        server: MongoServer, storage: Path) -> None:
    mc, db = database(server)
    with RecordingWriter(storage) as writer:  # no Mongo at all: everything waits on storage
        rids, sids = write_outage(writer, 300, 10)
    (sealed,) = spool_names(storage)
    total_r, total_s = len(rids), len(sids)

    def count(c: str) -> int:
        return db[c].count_documents({})

    first = subprocess.Popen(reindex_cmd(storage, server, "--batch-size", "5"),
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    kill_when(first, lambda: 0 < count("recordings") < total_r, "recordings were half indexed")
    killed_at = count("recordings")
    assert 0 < killed_at < total_r
    second = subprocess.Popen(reindex_cmd(storage, server, "--batch-size", "5"),
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    kill_when(second, lambda: 0 < count("recording_segments") < total_s,
              "segments were half indexed")
    assert 0 < count("recording_segments") < total_s
    assert spool_names(storage) == [sealed]  # never retired before every line is acknowledged

    done = subprocess.run(reindex_cmd(storage, server, "--batch-size", "50"),
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "full pass: indexed" in done.stdout
    assert "indexed" in done.stderr  # the progress line
    assert_exactly_once(db, rids, sids)
    assert spool_names(storage) == []
    mc.close()


# -- corrupt input ------------------------------------------------------------------------------

def test_corrupt_input_is_skipped_reported_by_path_and_tracked_until_fixed(
        server: MongoServer, storage: Path) -> None:
    mc, db = database(server)
    with RecordingWriter(storage) as writer:
        good = writer.store_recording(b"good", tenant_id="t1")
    part = contract.partition(clock.utcnow())
    directory = storage / "recordings" / part
    (directory / "orphan-1.dat").write_bytes(b"no metadata")
    hour_ago = time.time() - 3600
    os.utime(directory / "orphan-1.dat", (hour_ago, hour_ago))
    (directory / "young-1.dat").write_bytes(b"sidecar on its way")
    (directory / "half-1.dat").write_bytes(b"x")
    (directory / "half-1.json").write_bytes(b'{"recording_id": "half-1", "tena')
    plain_recording(storage, "nodata-1", part=part)
    (directory / "nodata-1.dat").unlink()
    for name in ("half-1.json", "nodata-1.json"):  # past the seconds a writer may still take
        os.utime(directory / name, (hour_ago, hour_ago))
    lines = [contract.dumps(contract.segment_record(good, Segment(i), None, clock.utcnow()))
             for i in range(6)]
    spool_file = storage / "spool" / "seg-by-hand.jsonl"
    spool_file.parent.mkdir(exist_ok=True)
    spool_file.write_bytes(b"\n".join(lines[:3]) + b'\n{"recording_id": "x", "seq\n'
                           + b"\n".join(lines[3:]) + b'\n{"recording_id": "cut by a cr')

    report = Reindexer(storage).run(db, trigger="test")
    assert report.ok, report.error
    assert report.recordings_indexed == 1 and report.segments_indexed == 6
    rejected = "spool/rejected/seg-by-hand.jsonl"
    expected = {
        (f"recordings/{part}/orphan-1.dat", None, "missing-metadata"),
        (f"recordings/{part}/half-1.json", None, "invalid-json"),
        (f"recordings/{part}/nodata-1.json", None, "missing-data"),
        (rejected, 4, "corrupt-line"),
        (rejected, 8, "truncated-line"),
    }
    assert {(s.path, s.line, s.reason) for s in report.skipped} == expected
    assert report.pending == 1  # young-1.dat: its sidecar may still be coming
    assert (storage / rejected).exists() and not spool_file.exists()

    again = Reindexer(storage).run(db, trigger="test")  # a fresh process: from tracking
    assert {(s.path, s.line, s.reason) for s in again.skipped} == expected
    assert all(s.first_seen is not None for s in again.skipped)
    tracked = {doc["_id"] for doc in db[state.SKIPPED].find({})}
    assert f"{rejected}:4" in tracked and f"recordings/{part}/orphan-1.dat" in tracked

    # Someone repairs the sidecar and removes the rejected spool file: both stop being reported.
    contract.write_atomic(directory / "half-1.json", json.dumps(
        {"recording_id": "half-1", "tenant_id": "t1",
         "recorded_at": "2025-10-20T10:00:00Z"}).encode())
    (storage / rejected).unlink()
    fixed = Reindexer(storage).run(db, trigger="test")
    assert fixed.recordings_indexed == 1
    assert {(s.path, s.reason) for s in fixed.skipped} == {
        (f"recordings/{part}/orphan-1.dat", "missing-metadata"),
        (f"recordings/{part}/nodata-1.json", "missing-data")}
    assert db["recordings"].find_one({"_id": "half-1"}) is not None
    mc.close()


# -- overlapping passes -------------------------------------------------------------------------

def test_two_overlapping_passes_index_everything_once_between_them(
        server: MongoServer, storage: Path) -> None:
    mc, db = database(server)
    rids: list[str] = []
    sids: list[str] = []
    for w in range(4):  # four sealed spool files
        with RecordingWriter(storage, writer_id=f"w{w}") as writer:
            r, s = write_outage(writer, 50, 10)
            rids += r
            sids += s
    barrier = threading.Barrier(2)
    reports: list[PassReport] = []

    def one_pass() -> None:
        client: pymongo.MongoClient[dict[str, Any]] = pymongo.MongoClient(server.uri)
        barrier.wait()
        reports.append(Reindexer(storage, batch_size=20).run(client["smartid"], trigger="race"))
        client.close()

    threads = [threading.Thread(target=one_pass) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    a, b = reports
    assert a.ok and b.ok, (a.error, b.error)
    assert a.spool_files_retired + b.spool_files_retired == 4  # each file retired once
    assert a.finished_at is not None and b.finished_at is not None
    assert a.started_at <= b.finished_at and b.started_at <= a.finished_at  # they overlapped
    assert a.recordings_indexed + b.recordings_indexed == len(rids)
    assert a.segments_indexed + b.segments_indexed == len(sids)
    assert a.skipped == [] and b.skipped == []
    assert_exactly_once(db, rids, sids)
    assert spool_names(storage) == []
    checkpoint = state.read_checkpoint(db)
    assert checkpoint.watermark == max(a.started_at, b.started_at)  # never moved back
    mc.close()


# -- changes at any depth; full passes repair drift -----------------------------------------------

def test_changes_passes_find_writes_at_any_depth_and_full_passes_repair_drift(
        server: MongoServer, storage: Path) -> None:
    mc, db = database(server)
    old = (clock.utcnow() - datetime.timedelta(hours=2)).strftime("%Y%m%d/%H%M")
    history = [f"old-{i}" for i in range(30)]
    for rid in history:
        plain_recording(storage, rid, part=old)
    for tenant in ("tenant-a", "tenant-b"):
        plain_recording(storage, f"{tenant}-old", part=f"{tenant}/2025/10/20")
    reindexer = Reindexer(storage)
    first = reindexer.run(db, trigger="test")  # a new process: a full pass
    assert first.kind == "full" and first.recordings_indexed == 32
    directories = first.directories
    assert first.covers_since == first.started_at

    # A recording filed under its own (older) time, one dropped flat the seed's way, one at
    # a deeper tenant path: each directory's mtime moved, so a changes pass lists just those.
    plain_recording(storage, "late-1", part=old)
    plain_recording(storage, "seed_way_1", part="")
    plain_recording(storage, "deep-1", part="tenant-a/2025/10/21/cam-7")
    changes = reindexer.run(db, trigger="test")
    assert changes.kind == "changes", changes.summary()
    assert changes.recordings_indexed == 3 and changes.skipped == []
    assert changes.directories == directories + 2  # 10/21 and cam-7 are new
    assert changes.listed < directories, (changes.listed, directories)
    assert changes.covers_since == first.started_at
    for rid, key in (("late-1", f"recordings/{old}/late-1.dat"),
                     ("seed_way_1", "recordings/seed_way_1.dat"),
                     ("deep-1", "recordings/tenant-a/2025/10/21/cam-7/deep-1.dat")):
        doc = db["recordings"].find_one({"_id": rid})
        assert doc is not None and doc["storage_key"] == key, doc
    quiet = reindexer.run(db, trigger="test")
    assert quiet.listed == 0 and quiet.indexed == 0

    # Mongo restored from an older backup: no directory moved, only a full pass sees it.
    db["recordings"].delete_one({"_id": "old-7"})
    assert reindexer.run(db, trigger="test").indexed == 0
    plain_recording(storage, "late-1", part="tenant-b")  # the same id published twice
    full = reindexer.run(db, full=True, trigger="test")
    assert full.kind == "full" and full.recordings_indexed == 1
    assert db["recordings"].find_one({"_id": "old-7"}) is not None
    assert [(s.path, s.reason) for s in full.skipped] == [
        ("recordings/tenant-b/late-1.json", "duplicate-id")]
    gone = storage / "recordings" / old / "old-3"
    gone.with_suffix(".dat").unlink()
    gone.with_suffix(".json").unlink()
    again = Reindexer(storage).run(db, full=True, trigger="test")
    assert again.index_without_file == 1  # old-3 is indexed but its files are gone
    mc.close()


def test_input_at_a_place_no_rule_accepts_is_skipped_by_path(
        server: MongoServer, storage: Path) -> None:
    mc, db = database(server)
    reindexer = Reindexer(storage)
    assert reindexer.run(db, trigger="test").skipped == []
    plain_recording(storage, "fine-1", part="any/depth")
    (storage / "stray.dat").write_bytes(b"beside recordings/, not in it")
    (storage / "elsewhere").mkdir()
    plain_recording(storage, "bad name", part="x")
    (storage / "lost+found").mkdir()  # a filesystem's own: not input
    report = reindexer.run(db, trigger="test")
    assert report.kind == "changes" and report.recordings_indexed == 1
    assert {(s.path, s.reason) for s in report.skipped} == {
        ("stray.dat", "misplaced"), ("elsewhere", "misplaced"),
        ("recordings/x/bad name.dat", "invalid-id"), ("recordings/x/bad name.json", "invalid-id")}
    (storage / "stray.dat").unlink()
    (storage / "elsewhere").rmdir()
    fixed = reindexer.run(db, trigger="test")
    assert {s.path for s in fixed.skipped} == {"recordings/x/bad name.dat",
                                                "recordings/x/bad name.json"}
    mc.close()


# -- the CLI ------------------------------------------------------------------------------------

def test_recovery_status_prints_the_agents_report(server: MongoServer, storage: Path,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    mc, _ = database(server)
    assert cli_main(["recovery", "status", "--uri", server.uri, "--database", "smartid"]) == 1
    agent = Agent(AgentConfig(storage=storage, uri=server.uri, database="smartid"))
    agent.step()
    assert agent.passes == 1
    assert cli_main(["recovery", "status", "--uri", server.uri, "--database", "smartid"]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed["trigger"] == "startup" and printed["ok"] is True
    assert printed["agent"] == agent.identity
    agent.close()
    mc.close()


def test_the_agent_command_indexes_serves_metrics_and_stops_on_sigterm(
        server: MongoServer, storage: Path) -> None:
    mc, db = database(server)
    port = free_port()
    env = {**os.environ, "SMARTID_MONGO_URI": server.uri, "SMARTID_DATABASE": "smartid",
           "SMARTID_RECOVERY_BATCH_SIZE": "100", "SMARTID_RECOVERY_SCAN_INTERVAL_SECONDS": "1"}
    agent = subprocess.Popen(
        [sys.executable, "-m", "smartid_operator", "recovery", "agent", "--storage",
         str(storage), "--metrics-port", str(port)],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        plain_recording(storage, "plain-cmd-1")
        wait_for(lambda: db["recordings"].find_one({"_id": "plain-cmd-1"}) is not None,
                 timeout=30, what="the agent indexing a plain recording")
        report = state.read_report(db)
        assert report is not None and report["config"]["batch_size"] == 100
        assert report["config"]["scan_interval_seconds"] == 1

        def scraped() -> str:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2) as r:
                    return str(r.read().decode())
            except OSError:
                return ""

        wait_for(lambda: 'smartid_recovery_indexed_total{kind="recordings"} 1.0' in scraped(),
                 timeout=10, what="the agent's metrics")
        assert "smartid_recovery_pending 0.0" in scraped()
    finally:
        agent.send_signal(signal.SIGTERM)
        out, _ = agent.communicate(timeout=15)
    assert agent.returncode == 0, out
    assert "Traceback" not in out, out
    mc.close()


def test_a_pass_cut_short_by_mongo_leaves_its_changes_for_the_next(
        server: MongoServer, storage: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    mc, db = database(server)
    reindexer = Reindexer(storage)
    assert reindexer.run(db, trigger="test").ok  # the startup full pass
    plain_recording(storage, "cut-1", part="a/b")
    real = reindexer_module.insert_missing

    def outage_mid_pass(*args: Any) -> Any:  # the server goes away between listing and insert
        server.stop()
        return real(*args)

    monkeypatch.setattr(reindexer_module, "insert_missing", outage_mid_pass)
    cut = reindexer.run(db, trigger="test")
    assert not cut.ok and cut.failed_on == "mongo", cut.summary()
    monkeypatch.undo()
    server.start()
    mc.close()
    mc, db = database(server)
    again = reindexer.run(db, trigger="test")
    assert again.ok and again.kind == "changes" and again.recordings_indexed == 1, again.summary()
    assert db["recordings"].find_one({"_id": "cut-1"}) is not None
    mc.close()
