"""The official MongoDB Database Tools as an engine.

The URI never reaches their argv (where ``ps`` shows it): it goes into a YAML file for their
``--config`` option (keys ``uri``/``password``/``sslPEMKeyPassword``), mode 0600 in a private
temporary directory (``$TMPDIR``; give the Job an ``emptyDir`` there), removed afterwards.
The database named in the URI's path is moved to ``authSource`` first: the tools would read it
as ``--db``, which conflicts with dumping or restoring another database.
"""

from __future__ import annotations

import os
import subprocess
import tempfile
import urllib.parse
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import yaml

from smartid_operator.backup.engine import engines, layout
from smartid_operator.backup.engine.client import BackupError, connect, server_version
from smartid_operator.backup.engine.engines import DumpResult
from smartid_operator.backup.engine.progress import Progress


def without_database(uri: str) -> str:
    """The URI with its ``/database`` path removed; that database stays the authentication
    database (``authSource``), as the connection-string spec makes it. The options are kept
    byte for byte."""
    scheme, sep, rest = uri.partition("://")
    if not sep:
        raise BackupError("the MongoDB URI must start with mongodb:// or mongodb+srv://")
    # A user name or password must percent-encode "/", "?" and "@", so the hosts end at the
    # first "/" or "?".
    cut = min((i for i in (rest.find("/"), rest.find("?")) if i != -1), default=len(rest))
    authority, tail = rest[:cut], rest[cut:]
    path, _, query = tail.partition("?")
    database = urllib.parse.unquote(path.lstrip("/"))
    keys = {pair.partition("=")[0].lower() for pair in query.split("&") if pair}
    if database and "authsource" not in keys:
        query = "&".join(filter(None, [query, f"authSource={urllib.parse.quote(database)}"]))
    return f"{scheme}://{authority}/" + (f"?{query}" if query else "")


def namespace_pattern(database: str) -> str:
    """``<db>.*`` for --nsInclude/--nsFrom/--nsTo, with the characters they treat specially
    escaped (``*`` and ``$``; a database name can hold neither, so this is belt and braces)."""
    return database.replace("\\", "\\\\").replace("*", "\\*").replace("$", "\\$") + ".*"


def dump_argv(config: Path, database: str, out: Path, gzip: bool) -> list[str]:
    return ["mongodump", f"--config={config}", f"--db={database}", f"--out={out}",
            *(["--gzip"] if gzip else [])]


def restore_argv(config: Path, dump_dir: Path, source: str, target: str, drop: bool,
                 gzip: bool) -> list[str]:
    return ["mongorestore", f"--config={config}",
            f"--nsInclude={namespace_pattern(source)}",
            f"--nsFrom={namespace_pattern(source)}", f"--nsTo={namespace_pattern(target)}",
            "--stopOnError", *(["--drop"] if drop else []), *(["--gzip"] if gzip else []),
            str(dump_dir)]


@contextmanager
def config_file(uri: str) -> Iterator[Path]:
    with tempfile.TemporaryDirectory(prefix="smartid-tools-") as private:
        path = Path(private) / "config.yaml"
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as handle:
            yaml.safe_dump({"uri": without_database(uri)}, handle)
        yield path


def _run(argv: list[str]) -> None:
    """Run a tool with its log on our stderr; a non-zero exit is a failure naming the tool."""
    try:
        completed = subprocess.run(argv, stdin=subprocess.DEVNULL, check=False)
    except OSError as exc:
        raise BackupError(f"{argv[0]} could not be started: {exc}") from None
    if completed.returncode != 0:
        raise BackupError(f"{argv[0]} exited with status {completed.returncode} "
                          f"(its log is above)")


def _dumped_gzip(dump_dir: Path, source: str) -> bool:
    """mongorestore's --gzip applies to all files: follow what the dump holds."""
    return any(p.name.endswith(layout.GZ) for p in (dump_dir / source).iterdir())


class ToolsEngine:
    name = "tools"

    def version(self) -> str:
        out = subprocess.run(["mongodump", "--version"], capture_output=True, text=True,
                             check=False).stdout
        first = out.splitlines()[0] if out else "mongodump (version unknown)"
        return first.strip()

    def dump(self, uri: str, database: str, out: Path, gzip: bool,
             progress: Progress) -> DumpResult:
        with connect(uri) as client:
            version = server_version(client)
        with config_file(uri) as config:
            _run(dump_argv(config, database, out, gzip))
        # mongodump writes no folder for a database without collections.
        (out / database).mkdir(exist_ok=True)
        return DumpResult(version, engines.read_back(out, database, progress))

    def restore(self, uri: str, dump_dir: Path, source: str, target: str, drop: bool,
                progress: Progress) -> None:
        if not (dump_dir / source).is_dir():
            raise BackupError(f"{dump_dir.name} holds no database {source!r}")
        with config_file(uri) as config:
            _run(restore_argv(config, dump_dir, source, target, drop,
                              _dumped_gzip(dump_dir, source)))
