"""The backup CLI's settings (environment, flags over it) and the official-tools engine's
command lines, which must never carry the URI."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest
import yaml
from pymongo import uri_parser

from smartid_operator import cli
from smartid_operator.backup.engine import engines, tools_engine
from smartid_operator.backup.engine.builtin_engine import BuiltinEngine
from smartid_operator.backup.engine.client import BackupError

SECRET_URI = "mongodb://backup:s3cr%40t@db-0.mongo:27017,db-1.mongo/smartid?replicaSet=rs0"


@pytest.mark.parametrize(("uri", "expected"), [
    (SECRET_URI, "mongodb://backup:s3cr%40t@db-0.mongo:27017,db-1.mongo/"
                 "?replicaSet=rs0&authSource=smartid"),
    ("mongodb://h/smartid?authSource=admin", "mongodb://h/?authSource=admin"),
    ("mongodb://h:27017", "mongodb://h:27017/"),
    ("mongodb://h/?tls=true", "mongodb://h/?tls=true"),
    ("mongodb+srv://u:p@cluster.example.net/smartid",
     "mongodb+srv://u:p@cluster.example.net/?authSource=smartid"),
    ("mongodb://%2Ftmp%2Fmongodb-27017.sock/smartid",
     "mongodb://%2Ftmp%2Fmongodb-27017.sock/?authSource=smartid"),
])
def test_the_tools_get_the_uri_without_its_database(uri: str, expected: str) -> None:
    assert tools_engine.without_database(uri) == expected


def test_the_rewritten_uri_means_the_same_to_a_driver_minus_the_database() -> None:
    before = uri_parser.parse_uri(SECRET_URI)
    after = uri_parser.parse_uri(tools_engine.without_database(SECRET_URI))
    assert after["database"] is None and before["database"] == "smartid"
    assert after["password"] == before["password"] == "s3cr@t"
    assert after["nodelist"] == before["nodelist"]
    assert after["options"]["replicaSet"] == "rs0"
    assert after["options"]["authSource"] == "smartid"  # where the user authenticated before


def test_tool_command_lines_carry_a_config_file_never_the_uri(tmp_path: Path) -> None:
    with tools_engine.config_file(SECRET_URI) as config:
        assert stat.S_IMODE(config.stat().st_mode) == 0o600
        assert yaml.safe_load(config.read_text()) == {
            "uri": tools_engine.without_database(SECRET_URI)}
        argvs = [tools_engine.dump_argv(config, "smartid", tmp_path / "out", True),
                 tools_engine.restore_argv(config, tmp_path / "d", "smartid", "smartid_verify",
                                           drop=True, gzip=True)]
    assert not config.exists()
    for argv in argvs:
        assert f"--config={config}" in argv
        assert not any("s3cr" in a or "mongodb://" in a for a in argv)
    assert argvs[0] == ["mongodump", f"--config={config}", "--db=smartid",
                        f"--out={tmp_path / 'out'}", "--gzip"]
    assert {"--nsInclude=smartid.*", "--nsFrom=smartid.*", "--nsTo=smartid_verify.*",
            "--drop", "--gzip", "--stopOnError"} <= set(argvs[1])


def test_auto_takes_the_builtin_engine_when_the_tools_are_not_on_path(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    assert isinstance(engines.select("auto"), BuiltinEngine)
    with pytest.raises(BackupError, match="mongodump and mongorestore on PATH"):
        engines.select("tools")
    with pytest.raises(BackupError, match="unknown engine"):
        engines.select("pg_dump")
    for tool in ("mongodump", "mongorestore"):
        (tmp_path / tool).write_text("#!/bin/sh\n")
        (tmp_path / tool).chmod(0o755)
    assert isinstance(engines.select("auto"), tools_engine.ToolsEngine)


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    for name in list(os.environ):
        if name.startswith("SMARTID_"):
            monkeypatch.delenv(name)
    return monkeypatch


def test_retention_comes_from_the_environment_and_flags_override_it(
        clean_env: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    clean_env.setenv("SMARTID_BACKUP_DIR", str(tmp_path))
    clean_env.setenv("SMARTID_BACKUP_RETENTION_DAYS", "7")
    clean_env.setenv("SMARTID_BACKUP_KEEP_LAST", "3")
    assert cli.main(["backup", "prune", "--dry-run"]) == 0
    assert "retention: 7 day(s) or the newest 3 (dry run)" in capsys.readouterr().out
    assert cli.main(["backup", "prune", "--dry-run", "--keep-last", "0",
                     "--retention-days", "30"]) == 0
    assert "retention: 30 day(s) (dry run)" in capsys.readouterr().out
    clean_env.setenv("SMARTID_BACKUP_KEEP_LAST", "three")
    assert cli.main(["backup", "prune", "--dry-run"]) == 2
    assert "keep-last must be a whole number" in capsys.readouterr().err


def test_a_run_without_a_uri_fails_and_says_so_in_the_termination_message(
        clean_env: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    log = tmp_path / "termination-log"
    assert cli.main(["backup", "run", "--dir", str(tmp_path / "b"),
                     "--termination-log", str(log)]) == 1
    assert "$SMARTID_MONGO_URI is not set" in capsys.readouterr().err
    report = json.loads(log.read_text())
    assert report["result"] == "Failed" and "SMARTID_MONGO_URI" in report["reason"]
    assert not (tmp_path / "b").exists() or not any((tmp_path / "b").iterdir())


def test_a_bad_gzip_setting_is_a_usage_error(clean_env: pytest.MonkeyPatch, tmp_path: Path,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    clean_env.setenv("SMARTID_BACKUP_GZIP", "maybe")
    assert cli.main(["backup", "run", "--dir", str(tmp_path)]) == 2
    assert "$SMARTID_BACKUP_GZIP must be true or false" in capsys.readouterr().err


def test_there_is_no_uri_flag() -> None:
    with pytest.raises(SystemExit):
        cli.main(["backup", "run", "--uri", SECRET_URI])
