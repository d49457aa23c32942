"""Benchmark: the recovery engine on one real wire-protocol server process. Prints JSON.

* throughput: replaying 10,000 spooled segments (the reindexer, batched inserts) against the
  seed's one-by-one ``insert_one`` loop and a raw ``insert_many`` of the same documents, each
  into a fresh database with the same (v3) indexes;
* recovery: the agent running, the server process stopped, the writer storing 50 recordings
  and 1,000 segments, the server restarted: seconds from its first answer to ``ping`` (watched
  by a thread of our own) until every one of those ids is in Mongo;
* pass cost: a changes pass (the agent's, with its memory of the tree) after 50 new
  recordings, with 1,000 and with 100,000 recordings already indexed (1,000 per directory);
* spread: the agent running over a tree of 100,000 recordings in 1,000 directories (tenant /
  day / camera), the server stopped, one recording written into each of the 1,000 directories,
  the server restarted: seconds from its first answer to ``ping`` until all 1,000 are in Mongo;
  and the idle cost of change detection on that tree (walks a second, ``stat`` calls a second,
  CPU seconds a second of the agent, measured over 10 s with nothing changing);
* full pass at 1,000,000 recordings: ``smartid-operator reindex`` as its own process, once to
  index them all and once to compare them all with the index; its peak RSS and seconds per
  100,000.

    python bench/recovery.py [--uri mongodb://...] [--segments 10000] [--large 100000]
                             [--spread 100000] [--million 1000000]

Without --uri it starts the test bed's server (FerretDB v1.24.2 on SQLite) in a temp dir; with
--uri the recovery measurement is skipped (it must stop and restart the server itself).
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import pymongo

from smartid_operator import clock
from smartid_operator.recovery import Reindexer, Segment
from smartid_operator.recovery.engine import contract
from smartid_operator.recovery.engine.agent import Agent, AgentConfig
from smartid_operator.recovery.engine.spool import read_lines
from smartid_operator.recovery.engine.writer import RecordingWriter
from smartid_operator.schema.engine import Engine
from smartid_testbed.binaries import FERRETDB_VERSION
from smartid_testbed.mongo_server import MongoServer, answers_ping

Client = pymongo.MongoClient[dict[str, Any]]
TARGETS = {"vs_insert_one": 7.0, "vs_insert_many": 0.6, "recovery_seconds": 2.0,
           "pass_cost_ratio": 2.0, "spread_recovery_seconds": 2.0,
           "full_pass_peak_rss_mb": 100.0}


def fresh(mc: Client, name: str) -> Any:
    mc.drop_database(name)
    db = mc[name]
    Engine(db).apply()  # v3's unique keys on recordings and recording_segments
    return db


def spool_segments(storage: Path, count: int, per_recording: int = 20) -> None:
    with RecordingWriter(storage, writer_id="bench") as writer:  # no URI: all spooled
        for r in range(count // per_recording):
            writer.store_segments(f"bench-{r:05d}", [
                Segment(i, i * 1000, i * 1000 + 999, f"segment {i} of recording {r}",
                        {"speaker": i % 3}) for i in range(per_recording)], tenant_id="t1")


def throughput(mc: Client, work: Path, count: int, batch: int,
               rounds: int) -> dict[str, Any]:
    storage = work / "throughput"
    spool_segments(storage, count)
    now = clock.utcnow()
    docs = [contract.segment_document(line.record, "bench", now)
            for path in sorted((storage / "spool").glob("*.jsonl"))
            for line in read_lines(path) if line.record is not None]
    assert len(docs) == count

    ones: list[float] = []
    manys: list[float] = []
    ours: list[float] = []
    # Interleaved rounds, medians: the machine is shared, and load drifts over a minute.
    for r in range(rounds):
        db = fresh(mc, "bench_insert_one")
        started = time.perf_counter()
        for doc in docs:  # the seed's loop
            db.recording_segments.insert_one(dict(doc))
        ones.append(time.perf_counter() - started)

        db = fresh(mc, "bench_insert_many")
        started = time.perf_counter()
        db.recording_segments.insert_many([dict(d) for d in docs], ordered=False)
        manys.append(time.perf_counter() - started)

        db = fresh(mc, "bench_reindex")
        replay = work / f"replay-{r}"
        shutil.copytree(storage, replay)
        report = Reindexer(replay, batch_size=batch).run(db, trigger="bench")
        assert report.ok and report.segments_indexed == count, report.summary()
        ours.append(report.duration_seconds)
    for name in ("bench_insert_one", "bench_insert_many", "bench_reindex"):
        mc.drop_database(name)
    one, many, mine = (statistics.median(x) for x in (ones, manys, ours))
    return {
        "segments": count, "batch_size": batch,
        "rounds": rounds, "median_of_rounds": True,
        "reindex_seconds": [round(t, 3) for t in ours],
        "insert_one_loop_seconds": [round(t, 3) for t in ones],
        "insert_many_seconds": [round(t, 3) for t in manys],
        "reindex_per_second": round(count / mine), "insert_one_per_second": round(count / one),
        "insert_many_per_second": round(count / many),
        "vs_insert_one": round(one / mine, 2), "vs_insert_many": round(many / mine, 3),
        "note": "reindex time is the whole pass: reading and parsing the spool, validating, "
                "batched inserts, retiring the file, checkpoint",
    }


def restart(server: MongoServer) -> float:
    """Start the stopped server; when it first answered ``ping``, watched by a thread of
    the bench's own (monotonic seconds)."""
    seen: list[float] = []

    def watch() -> None:
        while not seen:
            if answers_ping(server.host, server.port, 100):
                seen.append(time.monotonic())
            time.sleep(0.005)

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    server.start()
    watcher.join(timeout=30)
    return seen[0]


def recovery(server: MongoServer, mc: Client, work: Path, run: int) -> dict[str, Any]:
    name = f"bench_recovery_{run}"
    db = fresh(mc, name)
    storage = work / name
    storage.mkdir()
    agent = Agent(AgentConfig(storage=storage, uri=server.uri, database=name))
    stop = threading.Event()
    loop = threading.Thread(target=agent.run, args=(stop,), daemon=True)
    loop.start()
    while agent.passes < 1:
        time.sleep(0.05)
    writer = RecordingWriter(storage, server.uri, name, timeout=0.5)
    server.stop()
    rids: list[str] = []
    sids: list[str] = []
    for r in range(50):
        rids.append(writer.store_recording(f"recording {r}".encode(), tenant_id="t1"))
        sids += writer.store_segments(rids[-1], [Segment(i, text=f"s{i}") for i in range(20)])
    answered = restart(server)
    while True:
        if (db.recordings.count_documents({"_id": {"$in": rids}}) == len(rids)
                and db.recording_segments.count_documents({"_id": {"$in": sids}}) == len(sids)):
            done = time.monotonic()
            break
        time.sleep(0.01)
    stop.set()
    loop.join(timeout=10)
    writer.close()
    document = agent.document(agent.last_report) if agent.last_report else {}
    mc.drop_database(name)
    # The agent's own view: from its probe's first answer to the end of that pass.
    return {"seconds": round(done - answered, 3), "recordings": len(rids), "segments": len(sids),
            "agent_reported": document.get("last_recovery")}


def history(storage: Path, count: int, newest: datetime.datetime, per_dir: int = 1000,
            layout: str = "minute") -> list[Path]:
    """``count`` recordings by plain file writes, ``per_dir`` per directory: minute
    partitions ending at ``newest``, or tenant/day/camera directories; setup only, so
    without fsync. Returns the directories."""
    directories: list[Path] = []
    for i in range(count):
        if i % per_dir == 0:
            d = i // per_dir
            part = (contract.partition(newest - datetime.timedelta(minutes=d))
                    if layout == "minute" else f"tenant-{d % 10}/2025{d // 300 % 12 + 1:02d}"
                                               f"{d // 10 % 28 + 1:02d}/cam-{d % 30}")
            directory = storage / "recordings" / part
            directory.mkdir(parents=True, exist_ok=True)
            directories.append(directory)
        rid = f"h{i:07d}"
        (directory / f"{rid}.dat").write_bytes(b"")
        (directory / f"{rid}.json").write_text(json.dumps(
            {"recording_id": rid, "tenant_id": f"t{i % 7}",
             "recorded_at": "2025-10-20T12:00:00Z", "size_bytes": 0}))
    return directories


def pass_cost(mc: Client, work: Path, indexed: int, rounds: int) -> dict[str, Any]:
    name = f"bench_cost_{indexed}"
    db = fresh(mc, name)
    storage = work / name
    # History ends 10 minutes ago: a normal pass's window (checkpoint less 120 s grace)
    # holds only what arrived since, which is what the watermark is for.
    history(storage, indexed, clock.utcnow() - datetime.timedelta(minutes=10))
    reindexer = Reindexer(storage)  # the agent's: it remembers the tree between passes
    full = reindexer.run(db, trigger="bench")  # a new process: a full pass
    assert full.ok and full.kind == "full" and full.recordings_indexed == indexed
    times: list[float] = []
    for r in range(rounds):
        with RecordingWriter(storage) as writer:
            for i in range(50):
                writer.store_recording(b"new", tenant_id="t1", recording_id=f"n{r}-{i}")
        report = reindexer.run(db, trigger="bench")
        assert report.ok and report.kind == "changes" and report.recordings_indexed == 50, \
            report.summary()
        times.append(report.duration_seconds)
    result = {"already_indexed": indexed, "new_recordings": 50,
              "changes_pass_seconds": [round(t, 4) for t in times],
              "median_seconds": round(statistics.median(times), 4),
              "initial_full_pass_seconds": round(full.duration_seconds, 2),
              "directories_on_storage": report.directories}
    mc.drop_database(name)
    return result


def spread(server: MongoServer, mc: Client, work: Path, count: int,
           idle_seconds: float) -> dict[str, Any]:
    """Writes into 1,000 directories of a large tree during an outage; the idle cost."""
    name = "bench_spread"
    db = fresh(mc, name)
    storage = work / name
    directories = history(storage, count, clock.utcnow(), per_dir=count // 1000,
                          layout="tenant")
    agent = Agent(AgentConfig(storage=storage, uri=server.uri, database=name))
    stop = threading.Event()
    loop = threading.Thread(target=agent.run, args=(stop,), daemon=True)
    loop.start()
    while agent.passes < 1:  # the startup full pass indexes the history
        time.sleep(0.05)
    initial = agent.last_report
    # Idle: nothing changes; what does watching cost?
    time.sleep(2 * agent.config.watch_interval)
    walks_before, passes_before = agent.walks, agent.passes
    cpu_before, started = time.process_time(), time.monotonic()
    time.sleep(idle_seconds)  # this thread sleeps: the process's CPU is the agent's
    cpu = time.process_time() - cpu_before
    elapsed = time.monotonic() - started
    walks = agent.walks - walks_before
    idle = {"seconds": round(elapsed, 2), "walks_per_second": round(walks / elapsed, 2),
            "directories_per_walk": agent.reindexer.walk_directories,
            "stat_calls_per_second": round(walks * agent.reindexer.walk_directories / elapsed),
            "cpu_seconds_per_second": round(cpu / elapsed, 4),
            "passes": agent.passes - passes_before}
    server.stop()
    rids = []
    for i, directory in enumerate(directories):
        rid = f"outage-{i:04d}"
        rids.append(rid)
        for suffix, body in ((".dat", b""), (".json", json.dumps(
                {"recording_id": rid, "tenant_id": "t1",
                 "recorded_at": "2025-10-20T12:00:00Z"}).encode())):
            (directory / f".{rid}{suffix}").write_bytes(body)
            os.rename(directory / f".{rid}{suffix}", directory / f"{rid}{suffix}")
    time.sleep(1.0)  # the agent walks during the outage too
    answered = restart(server)
    # Counting is a collection scan on the stand-in (100,000 documents): looked at every
    # 0.25 s, not in a tight loop that would take the server from the agent.
    while db.recordings.count_documents({"_id": {"$regex": "^outage-"}}) < len(rids):
        time.sleep(0.25)
    done = time.monotonic()
    stop.set()
    loop.join(timeout=30)
    reported = agent.document(agent.last_report).get("last_recovery") \
        if agent.last_report else None
    mc.drop_database(name)
    shutil.rmtree(storage)
    return {"recordings_on_storage": count, "directories": len(directories),
            "written_during_outage": len(rids), "seconds": round(done - answered, 3),
            "seconds_note": "seen by a count every 0.25 s: at most that much late",
            "agent_reported": reported,
            "startup_full_pass_seconds": round(initial.duration_seconds, 2) if initial else None,
            "idle": idle}


def full_pass(uri: str, work: Path, count: int) -> dict[str, Any]:
    """``smartid-operator reindex`` (a full pass) over ``count`` recordings, as a process of
    its own: indexing them all, then comparing them all; peak RSS of each."""
    name = "bench_full"
    with Client(uri) as mc:
        fresh(mc, name)
    storage = work / name
    made = time.monotonic()
    history(storage, count, clock.utcnow(), per_dir=1000)
    made = time.monotonic() - made
    runs = []
    for what in ("index_all", "compare_all"):
        started = time.monotonic()
        done = subprocess.run(
            # VmHWM, not ru_maxrss: Linux carries ru_maxrss over exec, so a child of this
            # large process would report this process's size.
            [sys.executable, "-c",
             "import re, sys\n"
             "from smartid_operator.cli import main\n"
             "code = main(sys.argv[1:])\n"
             "status = open('/proc/self/status').read()\n"
             "print(re.search(r'VmHWM:\\s+(\\d+)', status).group(1), file=sys.stderr)\n"
             "sys.exit(code)",
             "reindex", "--storage", str(storage), "--uri", uri, "--database", name,
             "--batch-size", "1000", "--json"],
            capture_output=True, text=True, timeout=3600)
        seconds = time.monotonic() - started
        rss_kb = int(done.stderr.strip().splitlines()[-1])
        report = json.loads(done.stdout) if done.stdout.strip() else {}
        runs.append({"run": what, "exit_code": done.returncode, "seconds": round(seconds, 1),
                     "seconds_per_100k": round(seconds / count * 100_000, 2),
                     "peak_rss_mb": round(rss_kb / 1024, 1),
                     "indexed": (report.get("indexed") or {}).get("recordings"),
                     "already_indexed": (report.get("already_indexed") or {}).get("recordings"),
                     "error": report.get("error"), "skipped_total": report.get("skipped_total"),
                     "skipped": (report.get("skipped") or [])[:3]})
    with Client(uri) as mc:
        mc.drop_database(name)
    shutil.rmtree(storage)
    return {"recordings": count, "directories": count // 1000,
            "setup_seconds": round(made, 1), "runs": runs}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--uri", help="an existing server (skips the recovery measurement)")
    parser.add_argument("--segments", type=int, default=10_000)
    parser.add_argument("--batch-size", type=int, default=500)
    parser.add_argument("--small", type=int, default=1_000)
    parser.add_argument("--large", type=int, default=100_000)
    parser.add_argument("--throughput-rounds", type=int, default=3)
    parser.add_argument("--recovery-runs", type=int, default=3)
    parser.add_argument("--cost-rounds", type=int, default=5)
    parser.add_argument("--spread", type=int, default=100_000,
                        help="recordings on storage for the spread and idle measurements")
    parser.add_argument("--idle-seconds", type=float, default=10.0)
    parser.add_argument("--million", type=int, default=1_000_000,
                        help="recordings for the full-pass measurement (0 skips it)")
    parser.add_argument("--only", nargs="+", choices=PARTS, default=PARTS,
                        help="the measurements to run (default: all)")
    args = parser.parse_args()
    result: dict[str, Any] = {"benchmark": "recovery", "machine_cpus": os.cpu_count()}
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        server = None if args.uri else MongoServer(work / "mongo").start()
        uri = args.uri or server.uri  # type: ignore[union-attr]
        try:
            with Client(uri) as mc:
                info = mc.server_info()
                result["server"] = (f"FerretDB {FERRETDB_VERSION} (SQLite), reports "
                                    f"{info.get('version')}" if "ferretdbVersion" in info
                                    else f"MongoDB {info.get('version')}")
                parts = {
                    "throughput": lambda: throughput(mc, work, args.segments, args.batch_size,
                                                     args.throughput_rounds),
                    "recovery": lambda: recovery_runs(server, mc, work, args.recovery_runs),
                    "spread": lambda: spread(server, mc, work, args.spread, args.idle_seconds),
                    "pass_cost": lambda: pass_costs(mc, work, args),
                    "full_pass": lambda: full_pass(uri, work, args.million)}
                for name in args.only:
                    if server is None and name in ("recovery", "spread"):
                        result[name] = "skipped: needs a server the bench can stop (no --uri)"
                        continue
                    try:
                        result[name] = parts[name]()
                    except Exception as exc:  # one failed part still reports the others
                        result[name] = {"error": f"{type(exc).__name__}: {exc}"[:3000]}
        finally:
            if server is not None:
                server.stop()
    result["targets"] = TARGETS
    result["met"] = verdicts(result)
    print(json.dumps(result, indent=2, default=str))
    return 0


PARTS = ["throughput", "recovery", "spread", "pass_cost", "full_pass"]


def recovery_runs(server: MongoServer | None, mc: Client, work: Path,
                  count: int) -> dict[str, Any]:
    assert server is not None
    runs = [recovery(server, mc, work, r) for r in range(count)]
    return {"runs": runs, "max_seconds": max(r["seconds"] for r in runs)}


def pass_costs(mc: Client, work: Path, args: argparse.Namespace) -> dict[str, Any]:
    small = pass_cost(mc, work, args.small, args.cost_rounds)
    large = pass_cost(mc, work, args.large, args.cost_rounds)
    return {"small": small, "large": large,
            "ratio": round(large["median_seconds"] / small["median_seconds"], 2)}


def verdicts(result: dict[str, Any]) -> dict[str, bool]:
    """Each target against what was measured (a part not run, or failed, has none)."""
    def got(part: str, *keys: str) -> Any:
        value: Any = result.get(part)
        for key in keys:
            value = value.get(key) if isinstance(value, dict) else None
        return value

    met: dict[str, bool] = {}
    checks = {"vs_insert_one": (got("throughput", "vs_insert_one"), ">="),
              "vs_insert_many": (got("throughput", "vs_insert_many"), ">="),
              "pass_cost_ratio": (got("pass_cost", "ratio"), "<="),
              "recovery_seconds": (got("recovery", "max_seconds"), "<="),
              "spread_recovery_seconds": (got("spread", "seconds"), "<=")}
    runs = got("full_pass", "runs")
    if runs and all("peak_rss_mb" in r for r in runs):
        checks["full_pass_peak_rss_mb"] = (max(r["peak_rss_mb"] for r in runs), "<=")
    for name, (value, way) in checks.items():
        if isinstance(value, (int, float)):
            met[name] = value >= TARGETS[name] if way == ">=" else value <= TARGETS[name]
    return met


if __name__ == "__main__":
    sys.exit(main())
