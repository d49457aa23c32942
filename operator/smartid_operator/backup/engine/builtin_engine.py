"""The built-in engine: mongodump's directory layout written and read with pymongo's ``bson``.

Streaming both ways: a dump reads a raw-BSON cursor in batches of ``BATCH`` documents and
writes each document's bytes as they come; a restore reads one frame at a time and inserts
batches of at most ``BATCH`` documents or ``BATCH_BYTES``. Memory is bounded by a batch,
whatever the size of a collection.
"""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

# bson as data: frames inserted as the dump holds them, commands whose key order matters.
from bson.raw_bson import RawBSONDocument
from bson.son import SON

from smartid_operator import __version__, mongo
from smartid_operator.backup.engine import layout
from smartid_operator.backup.engine.client import BackupError, connect, server_version
from smartid_operator.backup.engine.digest import ContentDigest
from smartid_operator.backup.engine.engines import DumpResult, collection_kind
from smartid_operator.backup.engine.manifest import CollectionEntry
from smartid_operator.backup.engine.progress import Progress

BATCH = 1000
BATCH_BYTES = 8 * 1024 * 1024


def skipped(name: str) -> bool:
    """mongodump's rule for a database other than admin/config: no ``system.*`` collection
    but ``system.js``."""
    return name.startswith("system.") and name != "system.js"


def uuid_hex(value: Any) -> str:
    """The collection UUID as mongodump writes it: 32 lowercase hex digits, or ''."""
    if isinstance(value, uuid.UUID):
        return value.hex
    if isinstance(value, bytes) and getattr(value, "subtype", None) == 4:
        return value.hex()
    return ""


class BuiltinEngine:
    name = "builtin"

    def version(self) -> str:
        return f"smartid-operator {__version__} ({mongo.DRIVER})"

    # -- dump -------------------------------------------------------------------------------

    def dump(self, uri: str, database: str, out: Path, gzip: bool,
             progress: Progress) -> DumpResult:
        with connect(uri) as client:
            version = server_version(client)  # also: fail fast if the server is not there
            db = client[database]
            db_dir = out / database
            db_dir.mkdir()
            entries = []
            for info in sorted(db.list_collections(), key=lambda i: str(i["name"])):
                name, kind = str(info["name"]), str(info.get("type") or "collection")
                if skipped(name):
                    continue
                if kind not in ("collection", "view"):
                    raise BackupError(f"{database}.{name} is a {kind} collection, which the "
                                      f"built-in engine does not dump; use the official tools")
                indexes = [] if kind == "view" else [dict(i) for i in db[name].list_indexes()]
                stem = layout.escape_collection(name)
                layout.write_bytes(
                    db_dir / layout.file_name(stem, layout.METADATA_SUFFIX, gzip),
                    layout.metadata_json(name, dict(info.get("options") or {}), indexes,
                                         uuid_hex((info.get("info") or {}).get("uuid")), kind),
                    gzip)
                if kind == "view":  # mongodump writes no data file for a view
                    entries.append(CollectionEntry(name, kind, 0, 0, ""))
                    continue
                path = db_dir / layout.file_name(stem, layout.BSON_SUFFIX, gzip)
                digest = self._dump_collection(client, database, name, path, gzip, progress)
                entries.append(CollectionEntry(name, kind, digest.count, digest.bson_bytes,
                                               digest.hexdigest,
                                               tuple(str(i["name"]) for i in indexes)))
            for path in db_dir.iterdir():
                layout.fsync_path(path)
            prelude = out / (layout.PRELUDE + (layout.GZ if gzip else ""))
            layout.write_bytes(prelude, layout.prelude_json(version, ""), gzip)
            return DumpResult(version, tuple(entries))

    def _dump_collection(self, client: mongo.Client, database: str, name: str, path: Path,
                         gzip: bool, progress: Progress) -> ContentDigest:
        collection = mongo.raw_collection(client, database, name)
        namespace = f"{database}.{name}"
        total = collection.estimated_document_count()
        digest = ContentDigest()
        with layout.open_write(path, gzip) as handle:
            writer = layout.FrameWriter(handle)
            for document in collection.find({}, batch_size=BATCH):
                raw = document.raw
                writer.write(raw)
                digest.add(raw)
                if digest.count % BATCH == 0:
                    progress.update("dump", namespace, digest.count, total, digest.bson_bytes)
            writer.flush()
        progress.finished("dump", namespace, digest.count, digest.bson_bytes)
        return digest

    # -- restore ----------------------------------------------------------------------------

    def restore(self, uri: str, dump_dir: Path, source: str, target: str, drop: bool,
                progress: Progress) -> None:
        db_dir = dump_dir / source
        if not db_dir.is_dir():
            raise BackupError(f"{dump_dir.name} holds no database {source!r}")
        collections = [(files, files.read_metadata())
                       for files in layout.database_collections(db_dir)]
        for files, metadata in collections:
            if collection_kind(metadata) not in ("collection", "view"):
                raise BackupError(f"{files.name} is a {collection_kind(metadata)} collection, "
                                  f"which the built-in engine does not restore")
        # Views last: they may read collections restored before them.
        collections.sort(key=lambda c: collection_kind(c[1]) == "view")
        with connect(uri) as client:
            db = client[target]
            existing = set(db.list_collection_names())
            for files, metadata in collections:
                if drop and files.name in existing:
                    db.drop_collection(files.name)
                    existing.discard(files.name)
                if files.name not in existing:  # mongorestore, too, reuses a collection
                    self._create(db, files.name, metadata)
                if collection_kind(metadata) == "view":
                    continue
                self._insert(client, target, files, progress)
                self._create_indexes(db, files.name, metadata)

    @staticmethod
    def _create(db: mongo.Database, name: str, metadata: dict[str, Any]) -> None:
        options = dict(metadata.get("options") or {})
        # mongorestore turns {autoIndexId: false} into true on 4.0+; 8.2 refuses the field.
        options.pop("autoIndexId", None)
        db.command(SON([("create", name), *options.items()]))

    @staticmethod
    def _insert(client: mongo.Client, target: str, files: layout.CollectionFiles,
                progress: Progress) -> None:
        collection = mongo.raw_collection(client, target, files.name)
        namespace = f"{target}.{files.name}"
        batch: list[RawBSONDocument] = []
        batch_bytes = done = nbytes = 0
        for frame in files.frames():
            batch.append(RawBSONDocument(frame))
            batch_bytes += len(frame)
            if len(batch) >= BATCH or batch_bytes >= BATCH_BYTES:
                # The source held these documents, so they passed its rules then; a validator
                # added later ("moderate") must not refuse them now.
                collection.insert_many(batch, ordered=False, bypass_document_validation=True)
                done, nbytes = done + len(batch), nbytes + batch_bytes
                batch, batch_bytes = [], 0
                progress.update("restore", namespace, done, None, nbytes)
        if batch:
            collection.insert_many(batch, ordered=False, bypass_document_validation=True)
            done, nbytes = done + len(batch), nbytes + batch_bytes
        progress.finished("restore", namespace, done, nbytes)

    @staticmethod
    def _create_indexes(db: mongo.Database, name: str, metadata: dict[str, Any]) -> None:
        specs = []
        for index in metadata.get("indexes", []):
            if index.get("name") == "_id_":
                continue
            spec = {k: v for k, v in index.items() if k not in ("v", "ns")}  # server's to set
            specs.append(spec)
        if not specs:
            return
        try:
            with mongo.translated():
                db.command(SON([("createIndexes", name), ("indexes", specs)]))
        except mongo.Unanswered:
            raise
        except mongo.MongoError as exc:  # the server's answer: its message says what it refused
            raise BackupError(f"indexes of {db.name}.{name} could not be restored: {exc}") \
                from None
