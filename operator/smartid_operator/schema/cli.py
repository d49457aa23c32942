"""``smartid-operator migrate plan | apply | status | rollback | repair``: the migration engine
outside Kubernetes (CI pipelines, a laptop), with exit codes a pipeline can branch on."""

from __future__ import annotations

import argparse
import json
import os
import sys
from typing import Any

from smartid_operator import mongo
from smartid_operator.errors import ConfigError
from smartid_operator.schema.engine.migrate import (
    ChecksumDrift,
    Engine,
    LockBusy,
    MigrationError,
    UnknownVersion,
)

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_PENDING, EXIT_DRIFT, EXIT_LOCKED = 0, 1, 2, 3, 4, 5
EXIT_UNANSWERED, EXIT_REFUSED = 6, 7
EXIT_CODES_HELP = ("exit codes: 0 ok, 1 failed, 2 usage (also a malformed URI), 3 pending "
                   "(status), 4 checksum drift, 5 locked by another engine, 6 MongoDB did not "
                   "answer, 7 MongoDB refused the credentials")


def add_parser(sub: Any) -> None:
    parser = sub.add_parser(
        "migrate", help="plan, apply or inspect schema migrations",
        description=f"{__doc__}\n\n{EXIT_CODES_HELP}",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.set_defaults(handler=run)
    parser.add_argument("action", choices=["plan", "apply", "status", "rollback", "repair"])
    parser.add_argument("--uri", default=os.environ.get("SMARTID_MONGO_URI"),
                        help="MongoDB URI (default: $SMARTID_MONGO_URI)")
    parser.add_argument("--database", default=os.environ.get("SMARTID_DATABASE", "smartid"))
    parser.add_argument("--target", default="latest", help="latest or a version such as v2")
    parser.add_argument("--wait", type=float, default=60.0,
                        help="apply: seconds to wait for another engine's lease (default 60)")
    parser.add_argument("--migration", help="repair: the migration whose checksum to accept")
    parser.add_argument("--json", action="store_true", help="machine-readable output")


def _emit(args: argparse.Namespace, payload: dict[str, Any], text: list[str]) -> None:
    print(json.dumps(payload, indent=2, default=str) if args.json else "\n".join(text))


def run(args: argparse.Namespace) -> int:
    if not args.uri:
        print("migrate: --uri or $SMARTID_MONGO_URI is required", file=sys.stderr)
        return EXIT_USAGE
    try:
        return _ACTIONS[args.action](Engine(mongo.database(args.uri, args.database)), args)
    except MigrationError as exc:
        print(f"migrate: {exc}", file=sys.stderr)
        return next(code for kind, code in _EXIT_CODES if isinstance(exc, kind))
    except ConfigError as exc:  # the URI does not parse: nothing was sent
        print(f"migrate: {exc.message}", file=sys.stderr)
        return EXIT_USAGE
    except mongo.MongoError as exc:
        print(f"migrate: {_SAYS[type(exc)]}: {exc}", file=sys.stderr)
        return _MONGO_EXIT_CODES[type(exc)]
    finally:
        mongo.close_all()


def _plan(engine: Engine, args: argparse.Namespace) -> int:
    plan = engine.plan(args.target)
    text = [f"{len(plan)} pending migration(s) up to v{engine.resolve(args.target)} "
            f"(each step checked against the database as it is now; nothing is written)"]
    for m in plan:
        text.append(f"{m.id}: {m.description}")
        text += [f"  {s.action:8} {s.step}" + (f"  ({s.detail})" if s.detail else "")
                 for s in m.steps]
    _emit(args, {"pending": [{"id": m.id, "version": m.version, "steps": [
        {"step": s.step, "action": s.action, "detail": s.detail} for s in m.steps]}
        for m in plan]}, text)
    return EXIT_OK


def _apply(engine: Engine, args: argparse.Namespace) -> int:
    report = engine.apply(args.target, wait=args.wait)
    text = []
    if report.waited_for:
        text.append(f"waited {report.waited_seconds} s for the lease held by {report.waited_for}")
    text.append(f"applied {len(report.applied)} migration(s)" +
                (f": {', '.join(report.applied)}" if report.applied else ": nothing to do"))
    for migration_id, results in report.results.items():
        text += [f"  {migration_id}: {r.outcome:11} {r.step}" +
                 (f"  ({r.detail})" if r.detail else "") for r in results]
    if report.unsupported:
        text.append(f"{len(report.unsupported)} step(s) unsupported by this server:")
        text += [f"  {u}" for u in report.unsupported]
    _emit(args, {"applied": report.applied, "unsupported": report.unsupported,
                 "waited_seconds": report.waited_seconds, "waited_for": report.waited_for},
          text)
    return EXIT_OK


def _status(engine: Engine, args: argparse.Namespace) -> int:
    state = engine.state(args.target)
    _emit(args, {"current": f"v{state.current}", "target": f"v{state.target}",
                 "applied": state.applied, "pending": state.pending, "drift": state.drift,
                 "unknown": state.unknown, "unsupported": state.unsupported},
          [f"schema v{state.current} (target v{state.target})",
           f"applied: {', '.join(state.applied) or '-'}",
           f"pending: {', '.join(state.pending) or '-'}",
           *([f"DRIFT: {', '.join(state.drift)}"] if state.drift else []),
           *([f"unsupported by this server: {u}" for u in state.unsupported])])
    if state.drift:
        return EXIT_DRIFT
    return EXIT_PENDING if state.pending else EXIT_OK


def _rollback(engine: Engine, args: argparse.Namespace) -> int:
    undone = engine.rollback(args.target)
    _emit(args, {"rolled_back": undone},
          [f"rolled back: {', '.join(undone) or 'nothing'}"])
    return EXIT_OK


def _repair(engine: Engine, args: argparse.Namespace) -> int:
    if not args.migration:
        print("migrate repair: --migration is required", file=sys.stderr)
        return EXIT_USAGE
    engine.repair(args.migration)
    print(f"accepted the current definition of {args.migration}")
    return EXIT_OK


_EXIT_CODES = ((ChecksumDrift, EXIT_DRIFT), (LockBusy, EXIT_LOCKED), (UnknownVersion, EXIT_USAGE),
               (MigrationError, EXIT_FAILED))
_SAYS: dict[type[mongo.MongoError], str] = {
    mongo.Unanswered: "MongoDB did not answer", mongo.Refused: "MongoDB refused the credentials",
    mongo.MongoError: "MongoDB answered with an error"}
_MONGO_EXIT_CODES: dict[type[mongo.MongoError], int] = {
    mongo.Unanswered: EXIT_UNANSWERED, mongo.Refused: EXIT_REFUSED, mongo.MongoError: EXIT_FAILED}
_ACTIONS = {"plan": _plan, "apply": _apply, "status": _status, "rollback": _rollback,
            "repair": _repair}
