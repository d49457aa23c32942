"""``smartid-operator reindex`` (one pass, outside Kubernetes) and ``smartid-operator recovery
agent | status`` (the long-running agent the operator deploys per database; its last report).

Settings come from flags, else from the environment the operator sets on the agent:
SMARTID_MONGO_URI, SMARTID_DATABASE, SMARTID_RECOVERY_STORAGE, SMARTID_RECOVERY_BATCH_SIZE,
SMARTID_RECOVERY_SCAN_INTERVAL_SECONDS, SMARTID_RECOVERY_FULL_PASS_INTERVAL_SECONDS,
SMARTID_RECOVERY_METRICS_PORT.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import sys
import threading
import time
from pathlib import Path
from typing import Any

from smartid_operator.recovery.engine import state
from smartid_operator.recovery.engine.link import MongoLink
from smartid_operator.recovery.engine.reindexer import Reindexer
from smartid_operator.recovery.engine.report import PassReport

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_SKIPPED = 0, 1, 2, 3


def _env_int(name: str, default: int) -> int:
    return int(os.environ.get(name) or default)


def _env_float(name: str, default: float) -> float:
    return float(os.environ.get(name) or default)


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--uri", default=os.environ.get("SMARTID_MONGO_URI"),
                        help="MongoDB URI (default: $SMARTID_MONGO_URI)")
    parser.add_argument("--database", default=os.environ.get("SMARTID_DATABASE", "smartid"),
                        help="database (default: $SMARTID_DATABASE or smartid)")


def _storage(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--storage", type=Path,
                        default=os.environ.get("SMARTID_RECOVERY_STORAGE"),
                        help="the storage root (recordings/ and spool/); "
                             "default $SMARTID_RECOVERY_STORAGE")
    parser.add_argument("--batch-size", type=int,
                        default=_env_int("SMARTID_RECOVERY_BATCH_SIZE", 500),
                        help="documents per bulk insert (default $SMARTID_RECOVERY_BATCH_SIZE "
                             "or 500)")
    parser.add_argument("--grace-seconds", type=float, default=0.0,
                        help="how much older than a directory's mtime at its previous listing "
                             "a file's ctime may be and still be looked at: 0 where a rename "
                             "moves the file's ctime, as on Linux's filesystems (default "
                             "%(default)s)")


def add_parser(sub: Any) -> None:
    reindex = sub.add_parser(
        "reindex", help="index recordings and spooled segments that Mongo lacks (one pass)",
        description="One recovery pass: recordings on storage that Mongo lacks, and the "
                    "segment spool. exit codes: 0 ok, 1 failed, 2 usage, 3 done but some "
                    "inputs were skipped (listed)")
    reindex.set_defaults(handler=run)
    _common(reindex)
    _storage(reindex)
    # A one-shot pass has no memory of the tree: it always compares everything (a full
    # pass, flat in memory). --full is accepted for the scripts that pass it.
    reindex.add_argument("--full", action="store_true", help=argparse.SUPPRESS)
    reindex.add_argument("--json", action="store_true", help="print the report as JSON")

    recovery = sub.add_parser("recovery", help="the recovery agent and its report")
    recovery.set_defaults(handler=run)
    actions = recovery.add_subparsers(dest="recovery_action", required=True)
    agent = actions.add_parser("agent", help="run the recovery agent (a long-running loop)")
    _common(agent)
    _storage(agent)
    agent.add_argument("--scan-interval", type=float,
                       default=_env_float("SMARTID_RECOVERY_SCAN_INTERVAL_SECONDS", 5.0),
                       help="seconds between safety passes (default "
                            "$SMARTID_RECOVERY_SCAN_INTERVAL_SECONDS or 5)")
    agent.add_argument("--full-pass-interval", type=float,
                       default=_env_float("SMARTID_RECOVERY_FULL_PASS_INTERVAL_SECONDS", 3600),
                       help="seconds between full passes (default 3600)")
    agent.add_argument("--probe-interval", type=float, default=0.25,
                       help="seconds between probes while Mongo is down (default %(default)s)")
    agent.add_argument("--metrics-port", type=int,
                       default=_env_int("SMARTID_RECOVERY_METRICS_PORT", 8080),
                       help="Prometheus metrics port, 0 to disable (default "
                            "$SMARTID_RECOVERY_METRICS_PORT or 8080)")
    agent.add_argument("-v", "--verbose", action="store_true")
    status = actions.add_parser("status", help="print the agent's last report (JSON)")
    _common(status)


def run(args: argparse.Namespace) -> int:
    if not args.uri:
        print(f"{args.command}: --uri or $SMARTID_MONGO_URI is required", file=sys.stderr)
        return EXIT_USAGE
    if args.command == "recovery" and args.recovery_action == "status":
        return _status(args)
    if args.storage is None or not Path(args.storage).is_dir():
        print(f"{args.command}: --storage must name an existing directory "
              f"(got {args.storage})", file=sys.stderr)
        return EXIT_USAGE
    if args.batch_size < 1:
        print(f"{args.command}: --batch-size must be at least 1", file=sys.stderr)
        return EXIT_USAGE
    if args.command == "reindex":
        return _reindex(args)
    return _agent(args)


# -- reindex ------------------------------------------------------------------------------------

class _Progress:
    """One line, rewritten in place on a terminal; at most one line a second otherwise."""

    def __init__(self) -> None:
        self.tty = sys.stderr.isatty()
        self.last = 0.0

    def __call__(self, report: PassReport) -> None:
        now = time.monotonic()
        if not self.tty and now - self.last < 1.0:
            return
        self.last = now
        line = (f"indexed {report.recordings_indexed} recordings, {report.segments_indexed} "
                f"segments; {report.recordings_present + report.segments_present} already "
                f"indexed; {report.spool_files_retired} spool files retired")
        print(f"\r{line}" if self.tty else line, end="" if self.tty else "\n",
              file=sys.stderr, flush=True)

    def done(self) -> None:
        if self.tty and self.last:
            print(file=sys.stderr)


def _reindex(args: argparse.Namespace) -> int:
    link = MongoLink(args.uri, args.database, timeout=10.0, app="reindex")
    if not link.available():
        print(f"reindex: Mongo at {args.database} does not answer ping", file=sys.stderr)
        return EXIT_FAILED
    progress = _Progress()
    reindexer = Reindexer(args.storage, batch_size=args.batch_size,
                          grace_seconds=args.grace_seconds, progress=progress)
    try:
        report = reindexer.run(link.database(), full=args.full, trigger="cli")
    finally:
        progress.done()
        link.close()
    if args.json:
        print(json.dumps(report.document(), indent=2, default=str))
    else:
        print(report.summary())
        for skip in report.skipped:
            where = skip.path if skip.line is None else f"{skip.path}:{skip.line}"
            print(f"  skipped {where}: {skip.reason} ({skip.detail})")
    if not report.ok:
        return EXIT_FAILED
    return EXIT_SKIPPED if report.skipped else EXIT_OK


# -- agent and status ---------------------------------------------------------------------------

def _agent(args: argparse.Namespace) -> int:
    from smartid_operator.recovery.engine.agent import Agent, AgentConfig  # prometheus registry
    from smartid_operator.recovery.engine.metrics import serve

    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("pymongo").setLevel(logging.WARNING)
    agent = Agent(AgentConfig(
        storage=Path(args.storage), uri=args.uri, database=args.database,
        batch_size=args.batch_size, scan_interval=args.scan_interval,
        full_pass_interval=args.full_pass_interval, probe_interval=args.probe_interval,
        grace_seconds=args.grace_seconds))
    serve(args.metrics_port)
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    agent.run(stop)
    return EXIT_OK


def _status(args: argparse.Namespace) -> int:
    link = MongoLink(args.uri, args.database, timeout=5.0, app="status")
    try:
        if not link.available():
            print("recovery status: Mongo does not answer ping", file=sys.stderr)
            return EXIT_FAILED
        report = state.read_report(link.database())
    finally:
        link.close()
    if report is None:
        print("recovery status: no report yet (has the agent run?)", file=sys.stderr)
        return EXIT_FAILED
    print(json.dumps(report, indent=2, default=str))
    return EXIT_OK
