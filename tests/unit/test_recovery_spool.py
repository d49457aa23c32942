"""The spool (flock ownership, sealing, reading cut lines), the partition scan and the writer
with Mongo unreachable: files only, no server."""

from __future__ import annotations

import datetime
import json
import os
import subprocess
import sys
import time
from pathlib import Path

from smartid_operator.recovery.engine import contract, spool
from smartid_operator.recovery.engine.contract import Segment
from smartid_operator.recovery.engine.reindexer import Reindexer
from smartid_operator.recovery.engine.writer import RecordingWriter
from smartid_testbed.processes import free_port

NOW = datetime.datetime(2025, 10, 20, 13, 5, tzinfo=datetime.UTC)


def records(n: int, rid: str = "rec-1") -> list[dict[str, object]]:
    return [contract.segment_record(rid, Segment(i), None, NOW) for i in range(n)]


def test_a_live_spool_file_is_held_and_sealing_hands_it_over(tmp_path: Path) -> None:
    writer = spool.SpoolWriter(tmp_path, "w1")
    writer.append(records(3))
    assert writer.path is not None and writer.path.name.endswith(".jsonl.open")
    assert spool.writer_alive(writer.path) is True
    assert spool.seal_orphan(writer.path) is None  # never taken from a live writer
    lines = list(spool.read_lines(writer.path, live=True))
    assert [line.record["sequence"] for line in lines if line.record] == [0, 1, 2]
    sealed = writer.seal()
    assert sealed is not None and sealed.name.endswith(".jsonl") and sealed.exists()
    assert not any(p.name.endswith(".open") for p in (tmp_path / "spool").iterdir())


def test_a_dead_writers_file_is_sealed_by_the_reader(tmp_path: Path) -> None:
    # A process that spools and dies without sealing (os._exit: no cleanup, like SIGKILL).
    code = (f"import datetime, os\n"
            f"from pathlib import Path\n"
            f"from smartid_operator.recovery.engine import contract, spool\n"
            f"from smartid_operator.recovery.engine.contract import Segment\n"
            f"w = spool.SpoolWriter(Path({str(tmp_path)!r}), 'dead')\n"
            f"now = datetime.datetime.now(datetime.UTC)\n"
            f"w.append([contract.segment_record('r', Segment(i), None, now) for i in range(2)])\n"
            f"os._exit(0)\n")
    subprocess.run([sys.executable, "-c", code], check=True)
    (opened,) = (tmp_path / "spool").glob("*.jsonl.open")
    assert spool.writer_alive(opened) is False
    sealed = spool.seal_orphan(opened)
    assert sealed is not None and sealed.exists() and not opened.exists()
    assert len([line for line in spool.read_lines(sealed) if line.record]) == 2


def test_a_cut_last_line_is_reported_in_a_sealed_file_and_waited_for_in_a_live_one(
        tmp_path: Path) -> None:
    path = tmp_path / "x.jsonl"
    good = b"".join(contract.dumps(r) + b"\n" for r in records(2))
    path.write_bytes(good + b'{"recording_id": "rec-1", "seq')
    sealed = list(spool.read_lines(path))
    assert [line.error.reason for line in sealed if line.error] == ["truncated-line"]
    assert sealed[-1].number == 3
    live = list(spool.read_lines(path, live=True))
    assert len(live) == 2 and all(line.error is None for line in live)
    assert live[-1].end == len(good)
    # Resuming from the offset reached reads only what follows.
    assert list(spool.read_lines(path, start=len(good), first_line=3, live=True)) == []


def test_a_corrupt_middle_line_does_not_hide_the_lines_after_it(tmp_path: Path) -> None:
    path = tmp_path / "x.jsonl"
    lines = [contract.dumps(r) for r in records(3)]
    path.write_bytes(lines[0] + b"\n" + b"\x00garbage\n" + lines[2] + b"\n")
    read = list(spool.read_lines(path))
    assert [(line.number, line.error.reason if line.error else "ok") for line in read] == [
        (1, "ok"), (2, "corrupt-line"), (3, "ok")]


def test_the_writer_never_raises_while_mongo_refuses_and_keeps_everything(
        tmp_path: Path) -> None:
    port = free_port()  # nothing listens: every connect is refused
    started = time.monotonic()
    with RecordingWriter(tmp_path, f"mongodb://127.0.0.1:{port}/", "smartid") as writer:
        rids = [writer.store_recording(b"data" * i, tenant_id="t1") for i in range(1, 21)]
        sids = [sid for rid in rids
                for sid in writer.store_segments(rid, [Segment(i) for i in range(10)])]
        assert writer.stats.segments_spooled == 200 and writer.stats.recordings_indexed == 0
    elapsed = time.monotonic() - started
    # A refused port answers at once; without the probe each call would wait its timeout.
    assert elapsed < 3.0, elapsed
    assert len(set(sids)) == 200
    for rid in rids:
        (side,) = (tmp_path / "recordings").glob(f"*/*/{rid}.json")
        meta = contract.parse_sidecar(side.read_bytes(), rid)
        assert (side.parent / meta.data_file).stat().st_size == meta.size_bytes
    spooled = [line.record["id"] for path in (tmp_path / "spool").glob("*.jsonl")
               for line in spool.read_lines(path) if line.record]
    assert sorted(spooled) == sorted(sids)
    leftovers = [p for p in tmp_path.rglob(".*")]
    assert leftovers == []  # no staged or temporary file survives a successful store


def test_survey_counts_what_waits_without_asking_mongo(tmp_path: Path) -> None:
    with RecordingWriter(tmp_path) as writer:  # no URI: storage only
        rid = writer.store_recording(b"x", tenant_id="t1")
        writer.store_segments(rid, [Segment(i) for i in range(5)])
        reindexer = Reindexer(tmp_path)
        pending, oldest = reindexer.survey()
        assert pending == 5 and oldest is not None  # recordings: no checkpoint known yet
        writer.store_segments(rid, [Segment(i) for i in range(5, 8)])  # counted incrementally
        assert reindexer.survey()[0] == 8
    side = next((tmp_path / "recordings").glob("*/*/*.json"))
    body = json.loads(side.read_bytes())
    assert body["recording_id"] == rid and body["contract"] == contract.CONTRACT
    assert not os.path.exists(side.with_suffix(".json.open"))
