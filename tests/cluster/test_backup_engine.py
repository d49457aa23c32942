"""The backup engine against a real wire-protocol server process (FerretDB): the dump read
file by file against mongodump's documented layout, backup/wipe/restore, verification of
tampered dumps, retention over ten dumps on disk, Mongo dying mid-dump, memory that stays
flat, and both engine interfaces."""

from __future__ import annotations

import datetime
import gzip
import hashlib
import json
import os
import struct
import subprocess
import sys
import tracemalloc
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import bson
import pymongo
import pymongo.database
import pytest
from bson.son import SON

from smartid_operator import mongo
from smartid_operator.backup.engine import engines, layout
from smartid_operator.backup.engine import manifest as manifests
from smartid_operator.backup.engine.builtin_engine import BuiltinEngine
from smartid_operator.backup.engine.client import BackupError
from smartid_operator.backup.engine.manifest import FAILED, PASSED
from smartid_operator.backup.engine.progress import Quiet
from smartid_operator.backup.engine.prune import prune
from smartid_operator.backup.engine.retention import Policy
from smartid_operator.backup.engine.run import RunSettings, dump, run
from smartid_operator.backup.engine.storage import LocalStorage
from smartid_operator.backup.engine.tools_engine import ToolsEngine
from smartid_operator.backup.engine.verify import IN_USE, MARKER, collection_digest, verify
from smartid_testbed.mongo_server import MongoServer

Database = pymongo.database.Database[dict[str, Any]]
NOW = datetime.datetime.now(datetime.UTC).replace(microsecond=0)
CLI = [sys.executable, "-m", "smartid_operator.cli", "backup"]


def seed(db: Database, segments: int = 500) -> None:
    """Seed-shaped data with most BSON types, three indexed collections, an empty one and
    names that need escaping in file names."""
    created = datetime.datetime(2024, 5, 1, tzinfo=datetime.UTC)
    db.parsed_segments.insert_many([
        {"tenant_id": f"t{i % 5}", "doc_id": f"doc-{i // 10}", "page_number": i % 10 + 1,
         "text": f"Sample text segment {i}", "confidence": 0.5 + (i % 50) / 100,
         "bbox": {"x": i, "y": 0, "w": 100, "h": 50}, "entities": ["e", i],
         "created_at": created + datetime.timedelta(seconds=i), "big": bson.Int64(2**40 + i),
         "ok": i % 2 == 0, "none": None, "blob": bson.Binary(bytes([i % 256]) * 8)}
        for i in range(segments)])
    db.parsed_segments.create_index([("tenant_id", 1), ("doc_id", 1), ("page_number", 1)],
                                    name="tenant_id_1_doc_id_1")
    db.parsed_segments.create_index([("created_at", -1)], name="created_at_-1")
    db.recordings.insert_many([{"storage_key": f"rec/{i}.wav", "n": i} for i in range(20)])
    db.recordings.create_index("storage_key", unique=True, name="storage_key_1")
    db["cafés"].insert_one({"_id": "x", "name": "café"})
    db["a b"].insert_one({"_id": 1})
    db.create_collection("empty")


def source_state(db: Database) -> dict[str, Any]:
    """What a restore must reproduce: per collection count, content hash and index specs."""
    state = {}
    for name in sorted(db.list_collection_names()):
        digest = collection_digest(db.client, db.name, name)  # type: ignore[arg-type]
        indexes = sorted((i["name"], tuple(i["key"].items()), bool(i.get("unique")))
                         for i in db[name].list_indexes())
        state[name] = (digest.count, digest.hexdigest, indexes)
    return state


def uri_of(server: MongoServer, database: str) -> str:
    return f"{server.uri}{database}"


def cli(args: list[str], uri: str | None, backup_dir: Path,
        **env: str) -> subprocess.CompletedProcess[str]:
    environ = {k: v for k, v in os.environ.items() if not k.startswith("SMARTID_")}
    environ.update(SMARTID_BACKUP_DIR=str(backup_dir), SMARTID_BACKUP_ENGINE="builtin", **env)
    if uri:
        environ["SMARTID_MONGO_URI"] = uri
    return subprocess.run([*CLI, *args], env=environ, capture_output=True, text=True,
                          timeout=240, check=False)


def final_names(backup_dir: Path) -> list[str]:
    return sorted(p.name for p in backup_dir.iterdir()) if backup_dir.exists() else []


# -- the layout, read with nothing but gzip, struct, json and bson.decode -------------------------

def read_bson_file(path: Path) -> list[dict[str, Any]]:
    data = gzip.decompress(path.read_bytes()) if path.suffix == ".gz" else path.read_bytes()
    docs, offset = [], 0
    while offset < len(data):
        (size,) = struct.unpack_from("<i", data, offset)   # int32 little-endian total length
        assert data[offset + size - 1] == 0                # ... and a NUL at its end
        docs.append(bson.decode(data[offset:offset + size]))
        offset += size
    assert offset == len(data)
    return docs


@pytest.mark.parametrize("gzipped", [True, False])
def test_the_dump_is_mongodumps_layout_file_by_file(db: Database, mongo_server: MongoServer,
                                                    tmp_path: Path, gzipped: bool) -> None:
    seed(db)
    manifest = dump(uri_of(mongo_server, db.name), LocalStorage(tmp_path),
                    RunSettings(db.name, gzipped),
                    BuiltinEngine(), Quiet())
    root = tmp_path / manifest.name
    gz = ".gz" if gzipped else ""
    expected = {f"prelude.json{gz}", "smartid-manifest.json"}
    infos = {c["name"]: c for c in db.list_collections()}
    for name in infos:
        stem = {"cafés": "caf%C3%A9s", "a b": "a%20b"}.get(name, name)
        expected |= {f"{db.name}/{stem}.bson{gz}", f"{db.name}/{stem}.metadata.json{gz}"}
    assert {p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file()} == expected

    def text(rel: str) -> str:
        raw = (root / rel).read_bytes()
        return (gzip.decompress(raw) if gzipped else raw).decode()

    assert json.loads(text(f"prelude.json{gz}")) == {
        "ServerVersion": db.client.server_info()["version"], "ToolVersion": ""}
    for name, info in infos.items():
        stem = {"cafés": "caf%C3%A9s", "a b": "a%20b"}.get(name, name)
        docs = read_bson_file(root / db.name / f"{stem}.bson{gz}")
        assert sorted(map(bson.encode, docs)) == sorted(
            map(bson.encode, db[name].find()))  # the very documents, byte for byte
        meta = json.loads(text(f"{db.name}/{stem}.metadata.json{gz}"))
        assert list(meta) == ["indexes", "uuid", "collectionName", "type"]  # no empty options
        assert meta["collectionName"] == name and meta["type"] == "collection"
        assert meta["uuid"] == info["info"]["uuid"].hex() and len(meta["uuid"]) == 32
        server_indexes = list(db[name].list_indexes())
        assert [i["name"] for i in meta["indexes"]] == [i["name"] for i in server_indexes]
        for ours, theirs in zip(meta["indexes"], server_indexes, strict=True):
            # canonical Extended JSON: {"$numberInt": "1"}, key order kept
            assert ours["key"] == {k: {"$numberInt": str(v)} for k, v in theirs["key"].items()}
            assert ours["v"] == {"$numberInt": str(theirs["v"])}
    recorded = {f.path: f for f in manifest.files}
    for rel in expected - {"smartid-manifest.json"}:
        assert recorded[rel].sha256 == hashlib.sha256((root / rel).read_bytes()).hexdigest()
        assert recorded[rel].size == (root / rel).stat().st_size
    assert manifest.counts == {name: db[name].count_documents({}) for name in infos}


# -- backup, wipe, restore ------------------------------------------------------------------------

def test_backup_wipe_restore_brings_back_counts_hashes_and_indexes(
        db: Database, mongo_server: MongoServer, tmp_path: Path) -> None:
    seed(db)
    before = source_state(db)
    log = tmp_path / "termination-log"
    run = cli(["run", "--json", f"--termination-log={log}"], uri_of(mongo_server, db.name),
              tmp_path / "b", SMARTID_DATABASE=db.name, SMARTID_BACKUP_KEEP_LAST="3")
    assert run.returncode == 0, run.stderr
    assert mongo_server.uri not in run.stdout + run.stderr  # the URI is never printed
    assert f"dump {db.name}.parsed_segments: done, 500 documents" in run.stderr  # progress
    report = json.loads(run.stdout)
    assert report["dump"]["verification"]["result"] == PASSED
    assert json.loads(log.read_text())["backups"]["lastVerifiedDump"]["name"] == \
        report["dump"]["name"]

    db.client.drop_database(db.name)  # the wipe
    assert db.list_collection_names() == []
    restored = cli(["restore", "latest", "--target-database", db.name],
                   uri_of(mongo_server, db.name), tmp_path / "b")
    assert restored.returncode == 0, restored.stderr
    assert source_state(db) == before
    assert "restored" in restored.stdout and "500" in restored.stdout


def test_restore_refuses_a_non_empty_target_unless_told_to_drop(
        db: Database, mongo_server: MongoServer, tmp_path: Path) -> None:
    seed(db, segments=50)
    uri = uri_of(mongo_server, db.name)
    assert cli(["run", "--no-verify"], uri, tmp_path, SMARTID_DATABASE=db.name).returncode == 0
    db.parsed_segments.insert_one({"written": "after the dump"})
    refused = cli(["restore", "latest", "--target-database", db.name], uri, tmp_path)
    assert refused.returncode == 4
    assert f"target database '{db.name}' is not empty" in refused.stderr
    assert db.parsed_segments.count_documents({}) == 51  # nothing was touched
    replaced = cli(["restore", "latest", "--target-database", db.name, "--drop"], uri,
                   tmp_path)
    assert replaced.returncode == 0, replaced.stderr
    assert db.parsed_segments.count_documents({}) == 50


# -- verification ---------------------------------------------------------------------------------

def _rewrite(root: Path, rel: str, docs: list[dict[str, Any]], manifest: Any) -> None:
    """Replace a data file and record its new checksum, as a dump edited by someone who
    also knew to fix the file checksums would look."""
    data = gzip.compress(b"".join(bson.encode(d) for d in docs))
    (root / rel).write_bytes(data)
    files = tuple(manifests.FileEntry(f.path, len(data), hashlib.sha256(data).hexdigest())
                  if f.path == rel else f for f in manifest.files)
    manifests.write(manifests.Manifest(**{**manifest.__dict__, "files": files}), root)


def test_a_tampered_dump_fails_verification_with_the_reason(
        db: Database, mongo_server: MongoServer, tmp_path: Path) -> None:
    seed(db, segments=100)
    uri = uri_of(mongo_server, db.name)
    manifest = dump(uri, LocalStorage(tmp_path), RunSettings(db.name), BuiltinEngine(), Quiet())
    root, rel = tmp_path / manifest.name, f"{db.name}/parsed_segments.bson.gz"
    scratch = f"{db.name}_v"

    good = verify(manifest, root, uri, BuiltinEngine(), scratch, Quiet())
    assert good.result == PASSED and good.reason is None
    assert scratch not in db.client.list_database_names()  # dropped afterwards

    original = (root / rel).read_bytes()
    flipped = bytearray(original)
    flipped[len(flipped) // 2] ^= 0x01
    (root / rel).write_bytes(bytes(flipped))
    bad = verify(manifest, root, uri, BuiltinEngine(), scratch, Quiet())
    assert bad.result == FAILED
    assert bad.reason == f"{rel}: sha256 differs from the manifest (tampered or corrupted)"
    refused = cli(["restore", manifest.name, "--target-database", f"{db.name}_r"], uri,
                  tmp_path)
    assert refused.returncode == 4 and "does not match its manifest" in refused.stderr

    (root / rel).write_bytes(original)
    docs = read_bson_file(root / rel)
    docs[7]["text"] = "edited"
    _rewrite(root, rel, docs, manifest)
    edited = verify(manifests.read(root), root, uri, BuiltinEngine(), scratch, Quiet())
    assert edited.result == FAILED
    assert edited.reason == "parsed_segments: content hash differs from the source's"

    _rewrite(root, rel, docs[:-1], manifest)
    short = verify(manifests.read(root), root, uri, BuiltinEngine(), scratch, Quiet())
    assert short.reason == "parsed_segments: 99 documents restored, 100 dumped"
    assert scratch not in db.client.list_database_names()


def test_verification_never_drops_a_scratch_database_it_did_not_make(
        db: Database, mongo_server: MongoServer, tmp_path: Path) -> None:
    seed(db, segments=10)
    uri = uri_of(mongo_server, db.name)
    manifest = dump(uri, LocalStorage(tmp_path), RunSettings(db.name), BuiltinEngine(), Quiet())
    precious = db.client[f"{db.name}_precious"]
    precious.data.insert_one({"keep": True})
    try:
        with pytest.raises(BackupError, match="refusing to use or drop it"):
            verify(manifest, tmp_path / manifest.name, uri, BuiltinEngine(), precious.name,
                   Quiet())
        assert precious.data.count_documents({}) == 1
        busy = db.client[f"{db.name}_busy"]
        busy[MARKER].insert_one({"_id": "verify", "dump": "other-dump",
                                 "startedAt": datetime.datetime.now(datetime.UTC)})
        with pytest.raises(BackupError, match="in use by the verification of other-dump"):
            verify(manifest, tmp_path / manifest.name, uri, BuiltinEngine(), busy.name,
                   Quiet())
        busy[MARKER].update_one({}, {"$set": {"startedAt": NOW - 2 * IN_USE}})  # died long ago
        assert verify(manifest, tmp_path / manifest.name, uri, BuiltinEngine(), busy.name,
                      Quiet()).result == PASSED
        assert busy.name not in db.client.list_database_names()
    finally:
        db.client.drop_database(precious.name)
        db.client.drop_database(f"{db.name}_busy")


# -- retention on disk ----------------------------------------------------------------------------

def test_retention_over_ten_dumps_keeps_exactly_the_right_ones(
        db: Database, mongo_server: MongoServer, tmp_path: Path) -> None:
    seed(db, segments=5)
    uri = uri_of(mongo_server, db.name)
    ages = [45, 30, 20, 10, 7.5, 6.9, 5, 2, 1, 0.1]  # days
    names = {}
    for age in ages:
        when = NOW - datetime.timedelta(days=age)
        m = dump(uri, LocalStorage(tmp_path), RunSettings(db.name), BuiltinEngine(), Quiet(),
                 clock=lambda when=when: when)
        names[age] = m.name
        if age in (30, 10):  # the only verified ones: the newest of them is 10 days old
            v = verify(m, tmp_path / m.name, uri, BuiltinEngine(), f"{db.name}_v", Quiet())
            assert v.result == PASSED
            manifests.write(m.with_verification(v), tmp_path / m.name)
    (tmp_path / ".tmp-smartid-stale").mkdir()  # a run killed long ago
    os.utime(tmp_path / ".tmp-smartid-stale", (0, 0))
    assert len(manifests.scan(tmp_path).dumps) == 10

    dry = prune(LocalStorage(tmp_path), Policy(days=7, keep_last=3), NOW, dry_run=True)
    assert dry.deleted == [] and len(final_names(tmp_path)) == 11
    report = prune(LocalStorage(tmp_path), Policy(days=7, keep_last=3), NOW)
    kept = {names[a] for a in (10, 6.9, 5, 2, 1, 0.1)}
    assert final_names(tmp_path) == sorted(kept)
    assert sorted(report.deleted) == sorted({names[a] for a in (45, 30, 20, 7.5)})
    assert report.stale_removed == [".tmp-smartid-stale"]
    assert next(d for d in report.decisions if d.name == names[10]).why == \
        "newest verified dump"


# -- failure paths --------------------------------------------------------------------------------

class KillOnFirstProgress(Quiet):
    def __init__(self, server: MongoServer) -> None:
        self.server = server

    def update(self, action: str, namespace: str, done: int, total: int | None,
               nbytes: int) -> None:
        self.server.stop()


@pytest.fixture
def own_server(tmp_path: Path) -> Iterator[MongoServer]:
    """A server of the test's own, to kill."""
    with MongoServer(tmp_path / "mongo") as server:
        yield server


def test_mongo_dying_mid_dump_leaves_nothing_under_a_final_name(
        own_server: MongoServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SMARTID_MONGO_CONNECT_TIMEOUT_SECONDS", "2")
    backup_dir = tmp_path / "backups"
    with pymongo.MongoClient[dict[str, Any]](own_server.uri) as mc:
        mc.smartid.parsed_segments.insert_many([{"n": i} for i in range(5000)])
    earlier = dump(own_server.uri + "smartid", LocalStorage(backup_dir), RunSettings("smartid"),
                   BuiltinEngine(), Quiet())
    with pytest.raises(mongo.MongoError):  # translated by the seam
        dump(own_server.uri + "smartid", LocalStorage(backup_dir), RunSettings("smartid"),
             BuiltinEngine(),
             KillOnFirstProgress(own_server))
    assert final_names(backup_dir) == [earlier.name]  # no temp, no new name
    # The Job's view: the same with the server gone from the start.
    log = tmp_path / "termination-log"
    failed = cli(["run", f"--termination-log={log}"], own_server.uri + "smartid", backup_dir,
                 SMARTID_DATABASE="smartid", SMARTID_MONGO_CONNECT_TIMEOUT_SECONDS="1")
    assert failed.returncode == 1
    assert "MongoDB:" in failed.stderr and "refused" in failed.stderr
    assert final_names(backup_dir) == [earlier.name]
    report = json.loads(log.read_text())
    assert report["result"] == "Failed" and "refused" in report["reason"]
    assert report["backups"]["latestDump"]["name"] == earlier.name


class KillOnRestore(KillOnFirstProgress):
    def update(self, action: str, namespace: str, done: int, total: int | None,
               nbytes: int) -> None:
        if action == "restore":
            self.server.stop()


def test_mongo_dying_during_verification_leaves_the_dump_unjudged(
        own_server: MongoServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SMARTID_MONGO_CONNECT_TIMEOUT_SECONDS", "2")
    with pymongo.MongoClient[dict[str, Any]](own_server.uri) as mc:
        mc.smartid.parsed_segments.insert_many([{"n": i} for i in range(3000)])
    backups = tmp_path / "backups"
    result = run(own_server.uri + "smartid", LocalStorage(backups),
                 RunSettings("smartid", verify=True, scratch_database="smartid_verify"),
                 BuiltinEngine(), KillOnRestore(own_server))
    assert result.manifest.verified is None  # neither passed nor failed: it could not run
    assert len(result.errors) == 1 and result.errors[0].startswith("verification could not run")
    assert manifests.read(backups / result.manifest.name).verification is None
    assert final_names(backups) == [result.manifest.name]


# -- memory ---------------------------------------------------------------------------------------

def _peak(fn: Any) -> int:
    tracemalloc.start()
    try:
        fn()
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_memory_stays_flat_however_big_the_collection(
        db: Database, mongo_server: MongoServer, tmp_path: Path) -> None:
    uri = uri_of(mongo_server, db.name)
    filler = "x" * 1000
    peaks = {}
    for total in (2_000, 20_000):  # ~2 MB, then ~20 MB of BSON
        have = db.big.estimated_document_count()
        for start in range(have, total, 5000):
            db.big.insert_many([{"n": i, "text": filler}
                                for i in range(start, min(total, start + 5000))])
        target = f"{db.name}_r{total}"
        out: dict[str, Any] = {}
        peaks[total] = (
            _peak(lambda out=out: out.update(m=dump(uri, LocalStorage(tmp_path),
                                                    RunSettings(db.name), BuiltinEngine(),
                                                    Quiet()))),
            _peak(lambda out=out, target=target: BuiltinEngine().restore(
                uri, tmp_path / out["m"].name, db.name, target, False, Quiet())))
        assert db.client[target].big.count_documents({}) == total
        db.client.drop_database(target)
    (dump_small, restore_small), (dump_big, restore_big) = peaks[2_000], peaks[20_000]
    # Ten times the data, about the same peak: bounded by a batch, not by the collection.
    assert dump_big < 1.5 * dump_small + 1_000_000, peaks
    assert restore_big < 1.5 * restore_small + 1_000_000, peaks
    assert max(dump_big, restore_big) < 10_000_000, peaks  # half of the 20 MB collection


# -- the engine interface -------------------------------------------------------------------------

FAKE_TOOL = '''#!{python}
"""A stand-in for {tool}: records how it was called, then does the work with the built-in
engine, taking the URI from the --config file exactly as the official tool would."""
import json, os, sys
from pathlib import Path
import yaml
args = sys.argv[1:]
if args == ["--version"]:
    print("{tool} version: stand-in")
    sys.exit(0)
opts = dict(a[2:].split("=", 1) for a in args if a.startswith("--") and "=" in a)
uri = yaml.safe_load(Path(opts["config"]).read_text())["uri"]
with open(os.environ["FAKE_TOOLS_LOG"], "a") as log:
    log.write(json.dumps({{"argv": sys.argv, "uri": uri,
                          "mode": oct(os.stat(opts["config"]).st_mode & 0o777)}}) + "\\n")
if os.environ.get("FAKE_TOOLS_FAIL"):
    sys.exit(7)
from smartid_operator.backup.engine.builtin_engine import BuiltinEngine
from smartid_operator.backup.engine.progress import Quiet
if "{tool}" == "mongodump":
    BuiltinEngine().dump(uri, opts["db"], Path(opts["out"]), "--gzip" in args, Quiet())
else:
    BuiltinEngine().restore(uri, Path(args[-1]), opts["nsFrom"][:-2], opts["nsTo"][:-2],
                            "--drop" in args, Quiet())
'''


@pytest.fixture
def stand_in_tools(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for tool in ("mongodump", "mongorestore"):
        (bin_dir / tool).write_text(FAKE_TOOL.format(python=sys.executable, tool=tool))
        (bin_dir / tool).chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv("FAKE_TOOLS_LOG", str(tmp_path / "tools.log"))
    return tmp_path / "tools.log"


def test_the_tools_engine_drives_the_tools_through_a_config_file(
        db: Database, mongo_server: MongoServer, tmp_path: Path, stand_in_tools: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    seed(db, segments=40)
    uri = uri_of(mongo_server, db.name)
    assert isinstance(engines.select("auto"), ToolsEngine)
    backups = tmp_path / "backups"
    manifest = dump(uri, LocalStorage(backups), RunSettings(db.name), ToolsEngine(), Quiet())
    assert manifest.engine == "tools" and manifest.engine_version == "mongodump version: stand-in"
    assert manifest.counts["parsed_segments"] == 40  # read back from the files it wrote
    v = verify(manifest, backups / manifest.name, uri, ToolsEngine(), f"{db.name}_v", Quiet())
    assert v.result == PASSED, v.reason
    calls = [json.loads(line) for line in stand_in_tools.read_text().splitlines()]
    assert [c["argv"][0].rsplit("/", 1)[1] for c in calls] == ["mongodump", "mongorestore"]
    for call in calls:
        assert not any("mongodb://" in a for a in call["argv"])
        assert call["uri"] == f"{mongo_server.uri}?authSource={db.name}"
        assert call["mode"] == "0o600"
    monkeypatch.setenv("FAKE_TOOLS_FAIL", "1")
    with pytest.raises(BackupError, match="mongodump exited with status 7"):
        dump(uri, LocalStorage(backups), RunSettings(db.name), ToolsEngine(), Quiet())
    assert final_names(backups) == [manifest.name]


def test_each_engine_restores_the_others_dumps_with_the_official_tools(
        db: Database, mongo_server: MongoServer, tmp_path: Path) -> None:
    if not engines.tools_available():
        pytest.skip("the official mongodump/mongorestore are not on PATH here (no registry "
                    "ships them); this runs wherever they are")
    seed(db, segments=200)
    uri, before = uri_of(mongo_server, db.name), source_state(db)
    for dumper, restorer in ((ToolsEngine(), BuiltinEngine()), (BuiltinEngine(), ToolsEngine())):
        m = dump(uri, LocalStorage(tmp_path), RunSettings(db.name), dumper, Quiet())
        target = f"{db.name}_x{uuid.uuid4().hex[:4]}"
        restorer.restore(uri, tmp_path / m.name, db.name, target, False, Quiet())
        assert source_state(db.client[target]) == before
        db.client.drop_database(target)


def test_views_are_dumped_as_metadata_and_restored_last(
        db: Database, mongo_server: MongoServer, tmp_path: Path) -> None:
    seed(db, segments=10)
    try:
        db.command(SON([("create", "tenant0"), ("viewOn", "parsed_segments"),
                        ("pipeline", [{"$match": {"tenant_id": "t0"}}])]))
    except pymongo.errors.OperationFailure as exc:
        pytest.skip(f"this server has no views (code {exc.code}); this runs on servers "
                    f"that have them")
    uri = uri_of(mongo_server, db.name)
    m = dump(uri, LocalStorage(tmp_path), RunSettings(db.name), BuiltinEngine(), Quiet())
    assert not (tmp_path / m.name / db.name / "tenant0.bson.gz").exists()
    meta = layout.parse_metadata(
        layout.read_bytes(tmp_path / m.name / db.name / "tenant0.metadata.json.gz"), "m")
    assert meta["type"] == "view" and meta["options"]["viewOn"] == "parsed_segments"
    assert verify(m, tmp_path / m.name, uri, BuiltinEngine(), f"{db.name}_v",
                  Quiet()).result == PASSED
