"""``smartid-operator backup run | list | prune | verify | restore``: the backup Job's
entrypoint and the same commands outside Kubernetes.

The MongoDB URI is read from $SMARTID_MONGO_URI only (never an argument, never printed).
Settings come from the environment (what the settings ConfigMap provides) and flags override
them. The storage is a directory (--dir, $SMARTID_BACKUP_DIR) or a bucket (--from
s3://bucket/prefix, $SMARTID_BACKUP_S3_URL) with credentials from the environment as the AWS
tools take them: $AWS_ACCESS_KEY_ID, $AWS_SECRET_ACCESS_KEY, $AWS_ENDPOINT_URL, $AWS_REGION,
$AWS_CA_BUNDLE."""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import sys
import urllib.parse
from pathlib import Path
from types import FrameType
from typing import Any

from smartid_operator import mongo
from smartid_operator.backup.engine import engines, layout
from smartid_operator.backup.engine import manifest as manifests
from smartid_operator.backup.engine.client import BackupError, uri_from_env
from smartid_operator.backup.engine.manifest import Manifest, ManifestError
from smartid_operator.backup.engine.progress import Lines
from smartid_operator.backup.engine.prune import PruneReport, prune
from smartid_operator.backup.engine.restore import RestoreRefused, restore
from smartid_operator.backup.engine.retention import Policy
from smartid_operator.backup.engine.run import RunSettings
from smartid_operator.backup.engine.run import run as run_backup
from smartid_operator.backup.engine.s3 import URL_ENV
from smartid_operator.backup.engine.storage import Storage, find, open_storage
from smartid_operator.backup.engine.summary import (
    restore_termination_message,
    summarize,
    termination_message,
)
from smartid_operator.backup.engine.verify import SCRATCH_ENV, default_scratch, verify
from smartid_operator.clock import utcnow

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_UNVERIFIED, EXIT_REFUSED = 0, 1, 2, 3, 4
DIR_ENV, DB_ENV = "SMARTID_BACKUP_DIR", "SMARTID_DATABASE"
DAYS_ENV, KEEP_ENV = "SMARTID_BACKUP_RETENTION_DAYS", "SMARTID_BACKUP_KEEP_LAST"
GZIP_ENV, VERIFY_ENV = "SMARTID_BACKUP_GZIP", "SMARTID_BACKUP_VERIFY"
DEFAULT_DIR = "/backups"


class Terminated(BaseException):
    """SIGTERM (a Job's deadline, a deleted pod): unwind so the temporary dump is removed."""


class UsageError(Exception):
    pass


def _env_bool(name: str, default: bool) -> bool:
    value = os.environ.get(name, "").strip().lower()
    if not value:
        return default
    if value in ("true", "1", "yes", "on"):
        return True
    if value in ("false", "0", "no", "off"):
        return False
    raise UsageError(f"${name} must be true or false, not {value!r}")


def _count(text: str | None, what: str) -> int | None:
    """A non-negative whole number; empty or 0 turns the rule off."""
    if text is None or not str(text).strip():
        return None
    try:
        value = int(text)
    except ValueError:
        raise UsageError(f"{what} must be a whole number, not {text!r}") from None
    if value < 0:
        raise UsageError(f"{what} must not be negative")
    return value or None


def add_parser(sub: Any) -> None:
    parser = sub.add_parser(
        "backup", help="dump, list, prune, verify or restore backups",
        description=__doc__ + "\n\nexit codes: 0 ok, 1 failed, 2 usage, 3 verification "
                              "failed, 4 restore refused (target not empty, dump tampered)",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.set_defaults(handler=run)
    actions = parser.add_subparsers(dest="backup_action", required=True)

    def action(name: str, help_text: str) -> argparse.ArgumentParser:
        p: argparse.ArgumentParser = actions.add_parser(name, help=help_text)
        where = p.add_mutually_exclusive_group()
        where.add_argument("--dir", type=Path, default=None,
                           help=f"the backup directory (default: ${URL_ENV}, else ${DIR_ENV} "
                                f"or {DEFAULT_DIR})")
        where.add_argument("--from", "--to", dest="location", default=None,
                           metavar="s3://BUCKET/PREFIX",
                           help="a bucket instead (or a directory); credentials and endpoint "
                                "from $AWS_ACCESS_KEY_ID, $AWS_SECRET_ACCESS_KEY, "
                                "$AWS_ENDPOINT_URL, $AWS_REGION, $AWS_CA_BUNDLE")
        p.add_argument("--json", action="store_true", help="machine-readable output")
        return p

    def mongo_options(p: argparse.ArgumentParser) -> None:
        p.add_argument("--engine", choices=engines.CHOICES, default=None,
                       help=f"default: ${engines.ENGINE_ENV} or auto (the official tools when "
                            f"mongodump and mongorestore are on PATH, else built-in)")

    def scratch_option(p: argparse.ArgumentParser) -> None:
        p.add_argument("--scratch-database", default=None,
                       help=f"where verification restores (default: ${SCRATCH_ENV} or "
                            f"<database>_verify); dropped afterwards")

    def retention_options(p: argparse.ArgumentParser) -> None:
        p.add_argument("--retention-days", default=None,
                       help=f"prune dumps older than this (default: ${DAYS_ENV}; 0 = off)")
        p.add_argument("--keep-last", default=None,
                       help=f"always keep this many newest dumps (default: ${KEEP_ENV}; 0 = off)")

    def termination_option(p: argparse.ArgumentParser) -> None:
        p.add_argument("--termination-log", type=Path, default=None,
                       help="also write the outcome here as compact JSON (the operator's Jobs "
                            "name their terminationMessagePath)")

    dump = action("run", "dump the database, verify the dump, prune old dumps")
    dump.add_argument("--database", default=None, help=f"default: ${DB_ENV} or smartid")
    mongo_options(dump)
    dump.add_argument("--gzip", action=argparse.BooleanOptionalAction, default=None,
                     help=f"gzip the files as mongodump --gzip (default: ${GZIP_ENV} or true)")
    dump.add_argument("--verify", action=argparse.BooleanOptionalAction, default=None,
                     help=f"restore the new dump into a scratch database and compare "
                          f"(default: ${VERIFY_ENV} or true)")
    scratch_option(dump)
    retention_options(dump)
    termination_option(dump)

    action("list", "list the dumps (newest last)")

    pr = action("prune", "delete dumps past the retention")
    retention_options(pr)
    pr.add_argument("--dry-run", action="store_true", help="say what would go, delete nothing")

    ver = action("verify", "restore a dump into a scratch database and compare with its manifest")
    ver.add_argument("name", nargs="?", default="latest",
                     help="a dump name, latest (default) or latest-verified")
    mongo_options(ver)
    scratch_option(ver)

    rest = action("restore", "restore a dump into a database")
    rest.add_argument("name", help="a dump name, latest or latest-verified")
    rest.add_argument("--target-database", required=True,
                      help="the database to restore into (must be empty unless --drop)")
    rest.add_argument("--drop", action="store_true",
                      help="drop each dumped collection in the target before restoring it")
    mongo_options(rest)
    termination_option(rest)


# -- helpers --------------------------------------------------------------------------------------

def _storage(args: argparse.Namespace) -> Storage:
    if args.location:
        return open_storage(args.location)
    if args.dir:
        return open_storage(str(args.dir))
    return open_storage(os.environ.get(URL_ENV) or os.environ.get(DIR_ENV) or DEFAULT_DIR)


def _policy(args: argparse.Namespace) -> Policy:
    days = args.retention_days if args.retention_days is not None else os.environ.get(DAYS_ENV)
    keep = args.keep_last if args.keep_last is not None else os.environ.get(KEEP_ENV)
    return Policy(_count(days, "retention days"), _count(keep, "keep-last"))


def _engine(args: argparse.Namespace) -> engines.Engine:
    return engines.select(args.engine or os.environ.get(engines.ENGINE_ENV) or "auto")


def _scratch(args: argparse.Namespace, database: str) -> str:
    return args.scratch_database or os.environ.get(SCRATCH_ENV) or default_scratch(database)


def _reason(exc: BaseException | str, uri: str | None) -> str:
    """One line, short, and never the URI's password even if a message carried it."""
    text = " ".join(str(exc).split(", Timeout:")[0].split(", full error:")[0].split())
    if isinstance(exc, mongo.MongoError) and not text.startswith("MongoDB"):
        text = f"MongoDB: {text}"
    password = urllib.parse.urlsplit(uri).password if uri and "://" in uri else None
    for secret in filter(None, [uri, password, urllib.parse.unquote(password or ""),
                                os.environ.get("AWS_SECRET_ACCESS_KEY"),
                                os.environ.get("AWS_SESSION_TOKEN")]):
        text = text.replace(secret, "***")
    return text[:1000]


def _fail(message: str, code: int = EXIT_FAILED) -> int:
    print(f"backup: {message}", file=sys.stderr)
    return code


def _emit(args: argparse.Namespace, payload: dict[str, Any], text: list[str]) -> None:
    print(json.dumps(payload, indent=2, default=str) if args.json else "\n".join(text))


def _mb(n: int) -> str:
    return f"{n / 1e6:,.1f} MB"


def _prune_lines(report: PruneReport) -> list[str]:
    lines = [f"  {'keep  ' if d.keep else ('would delete' if report.dry_run else 'delete')} "
             f"{d.name}  ({d.why})" for d in report.decisions]
    lines += [f"  removed unfinished {name}" for name in report.stale_removed]
    if report.not_applied:
        lines.append(f"  retention NOT applied: {report.not_applied}")
    return lines


def _prune_json(report: PruneReport) -> dict[str, Any]:
    return {"dryRun": report.dry_run, "deleted": report.deleted,
            "notApplied": report.not_applied,
            "staleRemoved": report.stale_removed,
            "decisions": [{"name": d.name, "keep": d.keep, "why": d.why}
                          for d in report.decisions]}


# -- actions --------------------------------------------------------------------------------------

def run(args: argparse.Namespace) -> int:
    handler = {"run": _run, "list": _list, "prune": _prune, "verify": _verify,
               "restore": _restore}[args.backup_action]
    previous = signal.getsignal(signal.SIGTERM)

    def terminate(signum: int, frame: FrameType | None) -> None:
        raise Terminated()

    signal.signal(signal.SIGTERM, terminate)
    try:
        return handler(args)
    except UsageError as exc:
        return _fail(str(exc), EXIT_USAGE)
    finally:
        signal.signal(signal.SIGTERM, previous)


def _run(args: argparse.Namespace) -> int:
    database = args.database or os.environ.get(DB_ENV) or "smartid"
    settings = RunSettings(
        database=database,
        gzip=args.gzip if args.gzip is not None else _env_bool(GZIP_ENV, True),
        policy=_policy(args),
        verify=args.verify if args.verify is not None else _env_bool(VERIFY_ENV, True),
        scratch_database=_scratch(args, database))
    uri: str | None = None
    dump: Manifest | None = None
    storage: Storage | None = None
    retention: dict[str, Any] | None = None
    code, reason = EXIT_OK, None
    try:
        uri = uri_from_env()
        storage = _storage(args)
        engine = _engine(args)
        print(f"backup of {database} into {storage.location} with the {engine.name} engine "
              f"({engine.version()}); retention: {settings.policy.describe()}", file=sys.stderr)
        result = run_backup(uri, storage, settings, engine, Lines())
        dump = result.manifest
        if result.pruned is not None:
            retention = {"applied": result.pruned.not_applied is None,
                         "deleted": len(result.pruned.deleted),
                         "reason": result.pruned.not_applied}
        if dump.verified is False:
            code = EXIT_UNVERIFIED
            reason = f"{dump.name} failed verification: {dump.verification.reason}" \
                if dump.verification else None
        lines = [f"dump {dump.name}: {dump.documents:,} documents in {len(dump.collections)} "
                 f"collection(s), {_mb(dump.size_bytes)}, {dump.engine} engine"]
        if dump.verification is not None:
            v = dump.verification
            lines.append(f"verification: {v.result} in {v.duration_seconds:.1f} s"
                         + (f": {v.reason}" if v.reason else ""))
        if result.pruned is not None:
            lines.append("retention:")
            lines += _prune_lines(result.pruned)
        if result.errors:
            code, reason = EXIT_FAILED, _reason("; ".join(result.errors), uri)
        if not dump.collections:
            print(f"backup: warning: database {database!r} has no collections",
                  file=sys.stderr)
        _emit(args, {"dump": dump.to_dict(), "errors": result.errors,
                     "pruned": _prune_json(result.pruned) if result.pruned else None}, lines)
    except Terminated:
        code, reason = EXIT_FAILED, "terminated (SIGTERM) before the run finished"
    except (BackupError, ManifestError, layout.DumpFormatError, mongo.MongoError, OSError) as exc:
        code, reason = EXIT_FAILED, _reason(exc, uri)
    if reason:
        _fail(reason, code)
    if path := args.termination_log:
        summary = None
        if storage is not None:  # status from what the storage holds now
            with contextlib.suppress(BackupError, OSError):
                summary = summarize(storage.scan().dumps)
        try:
            path.write_text(termination_message("Succeeded" if code == EXIT_OK else "Failed",
                                                reason, dump, summary, retention))
        except OSError as exc:
            print(f"backup: could not write {path}: {exc}", file=sys.stderr)
    return code


def _list(args: argparse.Namespace) -> int:
    try:
        scan = _storage(args).scan()
    except (BackupError, OSError) as exc:
        return _fail(_reason(exc, None))
    if args.json:
        _emit(args, {"dumps": [m.to_dict() for m in scan.dumps],
                     "status": summarize(scan.dumps).to_status(),
                     "broken": [{"name": n, "why": w} for n, w in scan.broken],
                     "unfinished": [p.name for p in scan.partial]}, [])
        return EXIT_OK
    rows = [("NAME", "STARTED (UTC)", "SIZE", "DOCUMENTS", "VERIFIED", "ENGINE")]
    for m in scan.dumps:
        rows.append((m.name, m.started_at.strftime("%Y-%m-%d %H:%M:%S"), _mb(m.size_bytes),
                     f"{m.documents:,}",
                     {None: "-", True: "yes", False: "FAILED"}[m.verified], m.engine))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip()
             for r in rows]
    lines += [f"not a dump: {n} ({w})" for n, w in scan.broken]
    lines += [f"unfinished: {p.name}" for p in scan.partial]
    print("\n".join(lines))
    return EXIT_OK


def _prune(args: argparse.Namespace) -> int:
    policy = _policy(args)
    try:
        report = prune(_storage(args), policy, utcnow(), dry_run=args.dry_run)
    except (BackupError, OSError) as exc:
        return _fail(f"prune failed: {exc}")
    _emit(args, _prune_json(report),
          [f"retention: {policy.describe()}" + (" (dry run)" if args.dry_run else ""),
           *_prune_lines(report)])
    return EXIT_OK


def _verify(args: argparse.Namespace) -> int:
    uri = None
    try:
        uri = uri_from_env()
        storage = _storage(args)
        manifest = find(storage, args.name)
        engine = _engine(args)
        with storage.fetch(manifest) as dump_dir:
            result = verify(manifest, dump_dir, uri, engine,
                            _scratch(args, manifest.database), Lines())
        storage.save_manifest(manifest.with_verification(result))
    except Terminated:
        return _fail("terminated (SIGTERM) during verification")
    except (BackupError, ManifestError, mongo.MongoError, OSError) as exc:
        return _fail(_reason(exc, uri))
    _emit(args, {"name": manifest.name, "result": result.result, "reason": result.reason,
                 "durationSeconds": result.duration_seconds,
                 "collections": dict(result.collections)},
          [f"{manifest.name}: verification {result.result} in {result.duration_seconds:.1f} s"
           + (f": {result.reason}" if result.reason else "")])
    return EXIT_OK if result.result == manifests.PASSED else EXIT_UNVERIFIED


def _restore(args: argparse.Namespace) -> int:
    uri, name = None, args.name
    code, reason, result = EXIT_OK, None, None
    try:
        uri = uri_from_env()
        storage = _storage(args)
        manifest = find(storage, args.name)
        name = manifest.name
        if manifest.verified is False:
            print(f"backup: warning: {manifest.name} failed its verification "
                  f"({manifest.verification.reason if manifest.verification else ''})",
                  file=sys.stderr)
        with storage.fetch(manifest) as dump_dir:
            result = restore(manifest, dump_dir, uri, _engine(args),
                             args.target_database, args.drop, Lines())
    except Terminated:
        code, reason = EXIT_FAILED, "terminated (SIGTERM) during the restore; the target is " \
                                    "incomplete"
    except RestoreRefused as exc:
        code, reason = EXIT_REFUSED, str(exc)
    except (BackupError, ManifestError, layout.DumpFormatError, mongo.MongoError, OSError) as exc:
        code, reason = EXIT_FAILED, _reason(exc, uri)
    if result is not None:
        _emit(args, {"name": name, "target": result.target, "counts": result.counts,
                     "indexes": result.indexes, "mismatches": result.mismatches},
              [f"restored {name} into {result.target}: "
               f"{sum(result.counts.values()):,} documents in {len(result.counts)} collection(s)",
               *[f"  {coll}: {count:,} documents, indexes {', '.join(result.indexes[coll])}"
                 for coll, count in result.counts.items()],
               *[f"MISMATCH {m}" for m in result.mismatches]])
        if result.mismatches:
            code, reason = EXIT_FAILED, "the restored database differs from the dump: " \
                + "; ".join(result.mismatches)
    if reason:
        _fail(reason, code)
    if path := args.termination_log:  # the operator's SmartIDRestore reads it
        try:
            path.write_text(restore_termination_message(
                reason, refused=code == EXIT_REFUSED, dump=name,
                target=args.target_database, counts=result.counts if result else None))
        except OSError as exc:
            print(f"backup: could not write {path}: {exc}", file=sys.stderr)
    return code
