"""The agent and the CLI without a server: fast probing while Mongo refuses, the pending
estimate, the storage fingerprint, usage errors, the report's shape."""

from __future__ import annotations

import datetime
import socket
import time
from pathlib import Path

import pytest
from prometheus_client import REGISTRY

from smartid_operator import clock
from smartid_operator.cli import main as cli_main
from smartid_operator.recovery import Segment
from smartid_operator.recovery.engine.agent import Agent, AgentConfig
from smartid_operator.recovery.engine.metrics import serve
from smartid_operator.recovery.engine.report import PassReport, Skip
from smartid_operator.recovery.engine.writer import RecordingWriter
from smartid_testbed.processes import free_port


def test_while_mongo_refuses_the_agent_probes_fast_and_estimates_pending(
        tmp_path: Path) -> None:
    with RecordingWriter(tmp_path) as writer:
        writer.store_segments("rec-1", [Segment(i) for i in range(7)])
    agent = Agent(AgentConfig(storage=tmp_path, uri=f"mongodb://127.0.0.1:{free_port()}/",
                              probe_interval=0.25))
    started = time.monotonic()
    waits = [agent.step() for _ in range(20)]
    elapsed = time.monotonic() - started
    assert waits == [0.25] * 20 and agent.passes == 0
    assert elapsed < 1.0, elapsed  # a refused connect costs nothing like a server selection
    assert REGISTRY.get_sample_value("smartid_recovery_pending") == 7
    assert REGISTRY.get_sample_value("smartid_recovery_mongo_reachable") == 0


def test_with_inotify_the_agent_walks_at_once_not_at_its_interval(tmp_path: Path) -> None:
    agent = Agent(AgentConfig(storage=tmp_path, uri=f"mongodb://127.0.0.1:{free_port()}/",
                              scan_interval=60, watch_interval=60))
    try:
        assert agent.notified
        agent.step()  # the baseline walk; the next is due in a minute
        walks = agent.walks
        deep = tmp_path / "recordings" / "tenant-a" / "2025" / "cam-9"
        deep.mkdir(parents=True)
        (deep / "r-1.json").write_text("{}")
        deadline = time.monotonic() + 5
        while agent.walks == walks:
            assert time.monotonic() < deadline, "the agent did not walk on the event"
            agent.step()
            time.sleep(0.01)
        assert agent.reindexer.changed
    finally:
        agent.close()


def test_the_walk_sees_a_recording_and_the_fingerprint_a_spool_line(tmp_path: Path) -> None:
    agent = Agent(AgentConfig(storage=tmp_path, uri="mongodb://127.0.0.1:1/"))
    agent.reindexer.look()  # the baseline
    assert not agent.reindexer.changed
    empty = agent._watch()
    with RecordingWriter(tmp_path, writer_id="w") as writer:
        writer.store_recording(b"x", tenant_id="t1")
        agent.reindexer.look()
        assert agent.reindexer.changed
        writer.store_segments("rec-1", [Segment(0)])
        after_spool = agent._watch()
        writer.store_segments("rec-1", [Segment(1)])  # an append: same names, larger file
        after_append = agent._watch()
    assert len({empty, after_spool, after_append}) == 3


@pytest.mark.parametrize("argv", [
    ["reindex", "--storage", "/nonexistent", "--uri", "mongodb://127.0.0.1:1/"],
    ["reindex", "--storage", ".", "--uri", "mongodb://127.0.0.1:1/", "--batch-size", "0"],
    ["recovery", "agent", "--storage", "/nonexistent", "--uri", "mongodb://127.0.0.1:1/"],
])
def test_cli_usage_errors_exit_2(argv: list[str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SMARTID_MONGO_URI", raising=False)
    assert cli_main(argv) == 2


def test_reindex_without_a_uri_is_a_usage_error(monkeypatch: pytest.MonkeyPatch,
                                                tmp_path: Path) -> None:
    monkeypatch.delenv("SMARTID_MONGO_URI", raising=False)
    assert cli_main(["reindex", "--storage", str(tmp_path)]) == 2


def test_reindex_fails_fast_when_mongo_refuses(tmp_path: Path) -> None:
    started = time.monotonic()
    code = cli_main(["reindex", "--storage", str(tmp_path),
                     "--uri", f"mongodb://127.0.0.1:{free_port()}/"])
    assert code == 1 and time.monotonic() - started < 2


def test_the_report_document_lists_skips_by_path_and_caps_them() -> None:
    now = datetime.datetime(2025, 10, 20, tzinfo=datetime.UTC)
    report = PassReport("normal", "test", now, finished_at=now, recordings_indexed=2,
                        segments_indexed=3, pending=1, oldest_unindexed_seconds=4.25,
                        skipped=[Skip("spool/rejected/f.jsonl", "corrupt-line", "x", line=i)
                                 for i in range(1, 61)])
    doc = report.document()
    assert doc["indexed"] == {"recordings": 2, "segments": 3}
    assert doc["skipped_total"] == 60 and len(doc["skipped"]) == 50
    assert doc["skipped"][0] == {"path": "spool/rejected/f.jsonl", "line": 1,
                                 "reason": "corrupt-line", "detail": "x", "first_seen": None}
    assert doc["ok"] is True and doc["pending"] == 1
    assert clock.iso(now, ms=True) == "2025-10-20T00:00:00.000Z"


def test_a_taken_metrics_port_costs_the_metrics_not_the_agent() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        assert serve(taken.getsockname()[1], addr="127.0.0.1") is False
    assert serve(0) is False
