"""The dump format: ``mongodump --out DIR [--gzip]``'s directory layout, read and written.

    DIR/prelude.json[.gz]                        {"ServerVersion": ..., "ToolVersion": ...}
    DIR/<db>/<coll>.bson[.gz]                    the documents, BSON frames back to back
    DIR/<db>/<coll>.metadata.json[.gz]           canonical Extended JSON: options, indexes,
                                                 uuid, collectionName, type

Collection names in file names are escaped as Go's ``url.PathEscape`` does; a name whose
escaped form is longer than 238 bytes is cut to 208 bytes + ``%24`` + the URL-safe base64 of
its SHA-1, and the full name lives in the metadata's ``collectionName`` (mongodump's
``outputPath``). Everything here streams: frames are read and written one at a time through
a fixed-size buffer, never a whole file.
"""

from __future__ import annotations

import base64
import gzip
import hashlib
import io
import json
import os
import struct
import urllib.parse
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bson import json_util  # data: mongodump writes its metadata as Extended JSON

PRELUDE = "prelude.json"
BSON_SUFFIX = ".bson"
METADATA_SUFFIX = ".metadata.json"
GZ = ".gz"

# BSON documents are at most 16 MiB; mongorestore allows a little more for oplog entries.
MAX_FRAME = 16 * 1024 * 1024 + 16 * 1024
MIN_FRAME = 5  # int32 length + the terminating NUL of an empty document
_CHUNK = 1 << 20
# Go's gzip.DefaultCompression, which mongodump uses.
GZIP_LEVEL = 6
# What Go's url.PathEscape leaves alone in a path segment besides letters, digits and "-_.~".
_PATH_SAFE = "$&+:=@"
_MAX_ESCAPED = 238


class DumpFormatError(Exception):
    """A dump file is not what the layout says it must be."""


# -- names ----------------------------------------------------------------------------------------

def escape_collection(name: str) -> str:
    """The file-name stem mongodump gives a collection (``outputPath``)."""
    escaped = urllib.parse.quote(name, safe=_PATH_SAFE)
    if len(escaped) > _MAX_ESCAPED:
        digest = base64.urlsafe_b64encode(hashlib.sha1(name.encode()).digest()).rstrip(b"=")
        escaped = escaped[:208] + "%24" + digest.decode()
    return escaped


def unescape_collection(stem: str) -> str:
    return urllib.parse.unquote(stem, errors="strict")


def is_truncated(stem: str) -> bool:
    return "%24" in stem and len(stem) == _MAX_ESCAPED


def file_name(stem: str, suffix: str, gzipped: bool) -> str:
    return stem + suffix + (GZ if gzipped else "")


# -- files ----------------------------------------------------------------------------------------

def open_write(path: Path, gzipped: bool) -> io.BufferedIOBase:
    """A new file, gzip-framed as Go writes it (no name, mtime 0) when asked."""
    raw = open(path, "xb")  # noqa: SIM115  (closed by the caller through the returned object)
    if not gzipped:
        return raw
    return _ClosingGzip(raw)


class _ClosingGzip(gzip.GzipFile):
    """A GzipFile that also closes the file it wraps."""

    def __init__(self, raw: io.BufferedIOBase) -> None:
        super().__init__(filename="", mode="wb", compresslevel=GZIP_LEVEL, fileobj=raw, mtime=0)
        self._raw = raw

    def close(self) -> None:
        try:
            super().close()
        finally:
            self._raw.close()


def open_read(path: Path) -> io.BufferedIOBase:
    raw = open(path, "rb")  # noqa: SIM115
    if path.name.endswith(GZ):
        return gzip.GzipFile(fileobj=raw, mode="rb")
    return raw


def fsync_path(path: Path) -> None:
    """Force a closed file (or a directory's entries) to disk: a dump is renamed into place
    only once everything in it would survive a power cut."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class FrameWriter:
    """Writes BSON documents back to back, in 1 MiB chunks so gzip sees few large writes."""

    def __init__(self, out: io.BufferedIOBase) -> None:
        self.out = out
        self.buffer = bytearray()

    def write(self, frame: bytes | memoryview) -> None:
        self.buffer += frame
        if len(self.buffer) >= _CHUNK:
            self.flush()

    def flush(self) -> None:
        if self.buffer:
            self.out.write(self.buffer)
            self.buffer.clear()


def read_frames(stream: io.BufferedIOBase, where: str) -> Iterator[bytes]:
    """Yield each BSON document's bytes; a torn or malformed frame raises ``DumpFormatError``."""
    buffer = bytearray()
    offset = 0
    eof = False
    while True:
        if len(buffer) - offset < 4 and not eof:
            buffer, offset, eof = _refill(stream, buffer, offset, 4, where)
        if len(buffer) - offset == 0 and eof:
            return
        if len(buffer) - offset < 4:
            raise DumpFormatError(f"{where}: truncated: {len(buffer) - offset} stray byte(s) "
                                  f"at the end")
        (size,) = struct.unpack_from("<i", buffer, offset)
        if not MIN_FRAME <= size <= MAX_FRAME:
            raise DumpFormatError(f"{where}: invalid BSON document length {size}")
        if len(buffer) - offset < size and not eof:
            buffer, offset, eof = _refill(stream, buffer, offset, size, where)
        if len(buffer) - offset < size:
            raise DumpFormatError(f"{where}: truncated: a {size}-byte document ends after "
                                  f"{len(buffer) - offset} bytes")
        frame = bytes(buffer[offset:offset + size])
        if frame[-1] != 0:
            raise DumpFormatError(f"{where}: a BSON document does not end with NUL")
        offset += size
        yield frame


def _refill(stream: io.BufferedIOBase, buffer: bytearray, offset: int, need: int,
            where: str) -> tuple[bytearray, int, bool]:
    """Drop consumed bytes and read until ``need`` bytes are buffered or the stream ends."""
    buffer = buffer[offset:]
    eof = False
    while len(buffer) < need:
        try:
            chunk = stream.read(max(_CHUNK, need - len(buffer)))
        except (OSError, EOFError, zlib.error) as exc:  # gzip: bad CRC, torn stream, not gzip
            raise DumpFormatError(f"{where}: {exc}") from None
        if not chunk:
            eof = True
            break
        buffer += chunk
    return buffer, 0, eof


# -- metadata -------------------------------------------------------------------------------------

def metadata_json(collection: str, options: dict[str, Any], indexes: list[dict[str, Any]],
                  uuid_hex: str, kind: str) -> bytes:
    """mongodump's ``Metadata`` struct as it marshals it: canonical Extended JSON, compact,
    fields in its order, ``options``/``uuid``/``type`` left out when empty."""
    doc: dict[str, Any] = {}
    if options:
        doc["options"] = options
    doc["indexes"] = indexes
    if uuid_hex:
        doc["uuid"] = uuid_hex
    doc["collectionName"] = collection
    if kind:
        doc["type"] = kind
    return json_util.dumps(doc, json_options=json_util.CANONICAL_JSON_OPTIONS,
                           separators=(",", ":"), ensure_ascii=False).encode()


def parse_metadata(data: bytes, where: str) -> dict[str, Any]:
    if not data.strip():
        return {"indexes": []}  # mongorestore skips empty metadata files the same way
    try:
        doc = json_util.loads(data.decode())
    except (ValueError, UnicodeDecodeError) as exc:
        raise DumpFormatError(f"{where}: not Extended JSON: {exc}") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("indexes", []), list):
        raise DumpFormatError(f"{where}: metadata must be an object with an 'indexes' array")
    return dict(doc)


def prelude_json(server_version: str, tool_version: str) -> bytes:
    return json.dumps({"ServerVersion": server_version, "ToolVersion": tool_version},
                      separators=(",", ":")).encode()


# -- reading a dump -------------------------------------------------------------------------------

@dataclass(frozen=True)
class CollectionFiles:
    """One collection of a dumped database, as mongorestore would find it."""

    name: str
    data: Path | None        # None for a view (metadata only)
    metadata: Path | None    # None in pre-2.6 dumps, which we do not write

    @property
    def where(self) -> str:
        return str(self.data or self.metadata)

    def read_metadata(self) -> dict[str, Any]:
        if self.metadata is None:
            return {"indexes": []}
        with open_read(self.metadata) as handle:
            try:
                data = handle.read()
            except (OSError, EOFError, zlib.error) as exc:
                raise DumpFormatError(f"{self.metadata}: {exc}") from None
        return parse_metadata(data, str(self.metadata))

    def frames(self) -> Iterator[bytes]:
        if self.data is None:
            return
        with open_read(self.data) as handle:
            yield from read_frames(handle, str(self.data))


def _stem(file: str) -> tuple[str, str] | None:
    """(stem, kind) for a collection file name; None for anything mongorestore would skip."""
    name = file[:-len(GZ)] if file.endswith(GZ) else file
    for suffix, kind in ((METADATA_SUFFIX, "metadata"), (BSON_SUFFIX, "data")):
        if name.endswith(suffix):
            return name[:-len(suffix)], kind
    return None


def database_collections(db_dir: Path) -> list[CollectionFiles]:
    """The collections of one ``<db>/`` folder, sorted by name, special files skipped as
    mongorestore skips them (``$admin.system.*`` users/roles, ``system.profile``,
    ``system.indexes``)."""
    stems: dict[str, dict[str, Path]] = {}
    for entry in sorted(db_dir.iterdir()):
        parsed = _stem(entry.name) if entry.is_file() else None
        if parsed is not None:
            stems.setdefault(parsed[0], {})[parsed[1]] = entry
    found = []
    for stem, files in stems.items():
        collection = CollectionFiles("", files.get("data"), files.get("metadata"))
        if is_truncated(stem):
            name = str(collection.read_metadata().get("collectionName") or "")
            if not name:
                raise DumpFormatError(f"{collection.where}: a truncated file name needs the "
                                      f"collection name in its metadata")
        else:
            try:
                name = unescape_collection(stem)
            except UnicodeDecodeError:
                raise DumpFormatError(f"{collection.where}: undecodable file name") from None
        if name.startswith("$") or name in ("system.profile", "system.indexes"):
            continue
        found.append(CollectionFiles(name, collection.data, collection.metadata))
    return sorted(found, key=lambda c: c.name)


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(_CHUNK), b""):
            digest.update(chunk)
    return digest.hexdigest()


def list_files(root: Path) -> list[Path]:
    """Every regular file under ``root``, relative, sorted (what a manifest checksums)."""
    return sorted(p.relative_to(root) for p in root.rglob("*") if p.is_file())


def write_bytes(path: Path, data: bytes, gzipped: bool) -> None:
    with open_write(path, gzipped) as handle:
        handle.write(data)


def read_bytes(path: Path) -> bytes:
    with open_read(path) as handle:
        try:
            return handle.read()
        except (OSError, EOFError, zlib.error) as exc:
            raise DumpFormatError(f"{path}: {exc}") from None

