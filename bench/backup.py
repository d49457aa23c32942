"""Benchmark: backup, restore and verify throughput (documents/s, MB/s of BSON) and peak
memory of ``smartid-operator backup`` on N parsed segments, next to a plain ``find()`` +
``insert_many`` copy of the same collection on the same server; and the same backup, restore
and verify through an S3 bucket (the test bed's SeaweedFS ``weed mini`` on loopback) beside
the volume's. Prints JSON.

    python bench/backup.py [--segments 100000] [--uri mongodb://...] [--no-s3]

Each measured step runs as its own process (the CLI as a backup Job runs it; the naive copy
as a small script), and its peak resident memory is that process's ``ru_maxrss``. The backup
is also measured at a tenth of the data: equal peaks mean memory does not grow with the data.
Without --uri it starts the test bed's server (FerretDB v1.24.2 on SQLite) in a temp dir;
compare the ratios, not the absolute numbers, with MongoDB's.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import pymongo

from smartid_testbed.binaries import FERRETDB_VERSION
from smartid_testbed.mongo_server import MongoServer
from smartid_testbed.s3_server import S3Server

NAIVE_COPY = """
import sys, pymongo
uri, source, target = sys.argv[1:]  # the plain way: every document in memory, then one call
with pymongo.MongoClient(uri) as mc:
    mc[target].parsed_segments.insert_many(list(mc[source].parsed_segments.find()))
"""


def segments(start: int, stop: int) -> list[dict[str, Any]]:
    """The seed's parsed_segments documents (stress_test_parsed_segments.py), doc_id a string."""
    now = datetime.datetime.now(datetime.UTC)
    return [{"tenant_id": f"t{i % 5}", "doc_id": f"doc-{i // 20}", "page_number": (i % 10) + 1,
             "text": f"Sample text segment {i}", "bbox": {"x": 0, "y": 0, "w": 100, "h": 50},
             "confidence": 0.95, "ocr_engine": "tesseract", "entities": ["sample_entity"],
             "created_at": now} for i in range(start, stop)]


def fill(db: Any, start: int, stop: int) -> None:
    for at in range(start, stop, 5000):
        db.parsed_segments.insert_many(segments(at, min(stop, at + 5000)), ordered=False)


# Each measured child reports its own peak resident memory (VmHWM) as it exits. Not the
# rusage of the child: Linux starts a child's maxrss from its parent's at fork, which would
# floor every number at this process's size.
PEAK = """
import atexit, runpy, sys
def peak():
    with open("/proc/self/status") as status:
        kb = next(line.split()[1] for line in status if line.startswith("VmHWM:"))
    sys.stderr.write(f"\\nPEAK_RSS_KB={kb}\\n")
atexit.register(peak)
kind, target = sys.argv[1], sys.argv[2]
sys.argv = [target, *sys.argv[3:]]
runpy.run_module(target, run_name="__main__") if kind == "module" else runpy.run_path(
    target, run_name="__main__")
"""


def measured(kind: str, target: str, args: list[str],
             env: dict[str, str]) -> tuple[float, float, str]:
    """(seconds, peak RSS in MB, stdout) of ``python -m target args`` (kind "module") or
    ``python target args`` (kind "path"); raises if it fails."""
    started = time.perf_counter()
    done = subprocess.run([sys.executable, "-c", PEAK, kind, target, *args], env=env,
                          capture_output=True, text=True, check=False)
    seconds = time.perf_counter() - started
    if done.returncode != 0:
        raise RuntimeError(f"{target} {' '.join(args[:3])} exited {done.returncode}:\n"
                           f"{done.stderr[-2000:]}")
    kb = int(done.stderr.rsplit("PEAK_RSS_KB=", 1)[1].split()[0])
    return seconds, kb / 1024, done.stdout


def rates(seconds: float, docs: int, bson_bytes: int, rss_mb: float) -> dict[str, Any]:
    return {"seconds": round(seconds, 2), "documents_per_s": round(docs / seconds),
            "bson_mb_per_s": round(bson_bytes / 1e6 / seconds, 2),
            "peak_rss_mb": round(rss_mb, 1)}


def blobs(mc: Any, name: str, megabytes: int, work: Path, backup: Any,
          via_s3: Any, url: str) -> dict[str, Any]:
    """``megabytes`` of random bytes (gzip cannot shrink them, so every part of a multipart
    upload is full): the volume's and the bucket's backup, and a restore from the bucket."""
    for start in range(0, megabytes, 16):
        mc[name].blobs.insert_many([{"n": i, "data": os.urandom(1_000_000)}
                                    for i in range(start, min(megabytes, start + 16))])
    volume = backup("run", "--database", name, "--no-verify", "--json")
    bucket = via_s3("run", "--database", name, "--to", url, "--no-verify", "--json")
    dumped = json.loads(bucket[2])["dump"]
    restore = via_s3("restore", "--from", url, dumped["name"], "--target-database",
                     f"{name}_r")
    size = dumped["totals"]["sizeBytes"]
    mc.drop_database(name)
    mc.drop_database(f"{name}_r")

    def rate(result: tuple[float, float, str]) -> dict[str, Any]:
        return {"seconds": round(result[0], 2), "mb_per_s": round(size / 1e6 / result[0], 2),
                "peak_rss_mb": round(result[1], 1)}

    return {"dump_mb": round(size / 1e6, 1), "volume_backup": rate(volume),
            "s3_backup": rate(bucket), "s3_restore": rate(restore)}


def run(uri: str, count: int, work: Path, s3: S3Server | None = None,
        blob_mb: int = 40) -> dict[str, Any]:
    name = f"bench_backup_{int(time.time())}"
    naive = work / "naive_copy.py"
    naive.write_text(NAIVE_COPY)

    def backup(*args: str) -> tuple[float, float, str]:
        return measured("module", "smartid_operator.cli", ["backup", *args], env)

    env = {**os.environ, "SMARTID_MONGO_URI": uri, "SMARTID_DATABASE": name,
           "SMARTID_BACKUP_DIR": str(work / "backups"), "SMARTID_BACKUP_ENGINE": "builtin",
           "SMARTID_BACKUP_KEEP_LAST": "", "SMARTID_BACKUP_RETENTION_DAYS": ""}
    s3_env = {} if s3 is None else {
        **env, "AWS_ACCESS_KEY_ID": s3.writer.access_key,
        "AWS_SECRET_ACCESS_KEY": s3.writer.secret_key, "AWS_ENDPOINT_URL": s3.endpoint,
        "AWS_REGION": "us-east-1", "SMARTID_BACKUP_S3_FORCE_PATH_STYLE": "true"}
    url = f"s3://{s3.buckets[0]}/{name}" if s3 else ""

    def via_s3(*args: str) -> tuple[float, float, str]:
        return measured("module", "smartid_operator.cli", ["backup", *args], s3_env)

    bucket: dict[str, Any] = {}
    with pymongo.MongoClient(uri) as mc:
        db, info = mc[name], mc.server_info()
        try:
            small = max(1, count // 10)
            fill(db, 0, small)
            small_s, small_rss, _ = backup("run", "--no-verify", "--json")
            if s3:
                s3_small = via_s3("run", "--to", url + "-small", "--no-verify", "--json")
            started = time.perf_counter()
            fill(db, small, count)
            insert_s = time.perf_counter() - started
            db.parsed_segments.create_index([("tenant_id", 1), ("doc_id", 1),
                                             ("page_number", 1)], name="tenant_id_1_doc_id_1")
            backup_s, backup_rss, out = backup("run", "--no-verify", "--json")
            dump = json.loads(out)["dump"]
            docs = dump["totals"]["documents"]
            bson_bytes = dump["collections"]["parsed_segments"]["bsonBytes"]
            restore_s, restore_rss, _ = backup("restore", dump["name"], "--target-database",
                                               f"{name}_restored")
            restored = mc[f"{name}_restored"].parsed_segments.count_documents({})
            verify_s, verify_rss, _ = backup("verify", dump["name"])
            copy_s, copy_rss, _ = measured("path", str(naive), [uri, name, f"{name}_copy"], env)
            copied = mc[f"{name}_copy"].parsed_segments.count_documents({})
            _, idle_rss, _ = backup("--help")
            if s3:
                s3_backup = via_s3("run", "--to", url, "--no-verify", "--json")
                s3_name = json.loads(s3_backup[2])["dump"]["name"]
                s3_restore = via_s3("restore", "--from", url, s3_name, "--target-database",
                                    f"{name}_s3restored")
                s3_restored = mc[f"{name}_s3restored"].parsed_segments.count_documents({})
                s3_verify = via_s3("verify", "--from", url, s3_name)
                bucket = {
                    "server": f"SeaweedFS {s3.version} weed mini on loopback",
                    "incompressible": blobs(mc, f"{name}_blobs", blob_mb, work, backup, via_s3,
                                            url + "-blobs"),
                    "backup": rates(s3_backup[0], docs, bson_bytes, s3_backup[1]),
                    "backup_at_a_tenth": {"segments": small, **rates(
                        s3_small[0], small, bson_bytes // 10, s3_small[1])},
                    "restore": {**rates(s3_restore[0], s3_restored, bson_bytes,
                                        s3_restore[1]), "restored": s3_restored},
                    "verify_download_restore_compare_drop": rates(s3_verify[0], docs,
                                                                  bson_bytes, s3_verify[1]),
                    "note": "backup = dump to a local staging dir + sha256 + multipart "
                            "upload (16 MiB parts) + read-back sha256 of every object + "
                            "manifest last; restore/verify download the dump first"}
        finally:
            for suffix in ("", "_restored", "_copy", "_verify", "_s3restored", "_blobs",
                           "_blobs_r"):
                mc.drop_database(name + suffix)
    server = f"FerretDB {FERRETDB_VERSION} (SQLite), reports {info.get('version')}" \
        if "ferretdbVersion" in info else f"MongoDB {info.get('version')}"
    return {
        "benchmark": "backup_restore",
        "server": server, "cpus": os.cpu_count(), "segments": count,
        "bson_mb": round(bson_bytes / 1e6, 1),
        "dump_mb_on_disk_gzip": round(dump["totals"]["sizeBytes"] / 1e6, 1),
        "insert_many_fill_documents_per_s": round((count - small) / insert_s),
        "backup": rates(backup_s, docs, bson_bytes, backup_rss),
        "backup_at_a_tenth": {"segments": small, **rates(small_s, small, bson_bytes // 10,
                                                         small_rss)},
        "restore": {**rates(restore_s, restored, bson_bytes, restore_rss),
                    "restored": restored, "indexes": "rebuilt"},
        "verify_restore_compare_drop": rates(verify_s, docs, bson_bytes, verify_rss),
        "naive_find_insert_many_copy": {**rates(copy_s, copied, bson_bytes, copy_rss),
                                        "copied": copied},
        "cli_help_rss_mb": round(idle_rss, 1),
        "s3": bucket or "skipped (--no-s3)",
        "note": "backup = dump + sha256 of files + manifest (gzip level 6); restore = insert "
                "+ index build + count check; peak RSS per process (its VmHWM at exit)",
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--segments", type=int, default=100_000)
    parser.add_argument("--uri", help="an existing server (e.g. real MongoDB 7)")
    parser.add_argument("--no-s3", action="store_true", help="the volume path only")
    parser.add_argument("--blob-mb", type=int, default=40,
                        help="MB of random bytes for the multipart measurement (default 40: "
                             "FerretDB answers a collection of 1 MB documents in one batch and "
                             "refuses replies over 48 MB)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp, contextlib.ExitStack() as stack:
        s3 = None if args.no_s3 else stack.enter_context(
            S3Server(Path(tmp) / "s3", buckets=("bench",)))
        if args.uri:
            result = run(args.uri, args.segments, Path(tmp), s3, args.blob_mb)
        else:
            with MongoServer(Path(tmp) / "data") as server:
                result = run(server.uri, args.segments, Path(tmp), s3, args.blob_mb)
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
