"""The dump layout's pure parts: file names as mongodump escapes them, BSON framing, and the
metadata JSON as mongodump marshals it."""

from __future__ import annotations

import datetime
import gzip
import io
import json
from pathlib import Path

import bson
import pytest
from bson.son import SON

from smartid_operator.backup.engine import layout
from smartid_operator.backup.engine.layout import DumpFormatError

# mongorestore's own test data (testdata/longcollectionname) holds this collection, dumped by
# mongodump under the truncated file name below.
LONG_NAME = ("aVery" + "Very" * 43
             + "LongCollectionNameConsistingOfExactlyTwoHundredAndFortySevenCharacters")
LONG_STEM = "aVery" + "Very" * 43 + "LongCollectionNameConsistingOfE%24xFO0VquRn7cg3QooSZD5sglTddU"


@pytest.mark.parametrize(("name", "stem"), [
    ("parsed_segments", "parsed_segments"),
    ("cafés", "caf%C3%A9s"),                   # mongorestore's testdata/specialcharacter
    ("a b/c;d,e?f", "a%20b%2Fc%3Bd%2Ce%3Ff"),  # Go's PathEscape escapes / ; , ? in a segment
    ("x$y&z+w:v=u@t~s", "x$y&z+w:v=u@t~s"),    # ... and keeps $ & + : = @ ~
    ("system.js", "system.js"),
])
def test_collection_file_names_are_escaped_as_mongodump_does(name: str, stem: str) -> None:
    assert layout.escape_collection(name) == stem
    assert layout.unescape_collection(stem) == name


def test_a_long_collection_name_is_truncated_with_its_sha1_as_mongodump_does() -> None:
    assert len(LONG_NAME) == 247
    assert layout.escape_collection(LONG_NAME) == LONG_STEM
    assert len(LONG_STEM) == 238 and layout.is_truncated(LONG_STEM)


def frames(*docs: dict[str, object]) -> bytes:
    return b"".join(bson.encode(d) for d in docs)


def test_frames_come_back_one_document_at_a_time() -> None:
    docs = [{"_id": i, "text": "x" * (i * 100)} for i in range(50)]
    got = list(layout.read_frames(io.BytesIO(frames(*docs)), "t"))
    assert [bson.decode(f) for f in got] == docs


def test_frames_larger_than_the_read_chunk_are_whole() -> None:
    big = {"_id": 1, "blob": b"\x01" * (3 << 20)}
    got = list(layout.read_frames(io.BytesIO(frames(big, {"_id": 2})), "t"))
    assert [bson.decode(f)["_id"] for f in got] == [1, 2]


@pytest.mark.parametrize(("mangle", "message"), [
    (lambda b: b[:-3], "truncated"),
    (lambda b: b + b"\x07\x00", "truncated: 2 stray byte"),
    (lambda b: b"\xff\xff\xff\x7f" + b[4:], "invalid BSON document length"),
    (lambda b: b[:-1] + b"\x01", "does not end with NUL"),
])
def test_a_torn_or_malformed_file_is_refused(mangle: object, message: str) -> None:
    data = mangle(frames({"_id": 1}, {"_id": 2}))  # type: ignore[operator]
    with pytest.raises(DumpFormatError, match=message):
        list(layout.read_frames(io.BytesIO(data), "x.bson"))


def test_a_corrupted_gzip_file_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "c.bson.gz"
    path.write_bytes(gzip.compress(frames(*({"_id": i} for i in range(100)))))
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(DumpFormatError, match=r"c\.bson\.gz"), layout.open_read(path) as handle:
        list(layout.read_frames(handle, str(path)))


def test_gzip_files_are_written_as_go_writes_them(tmp_path: Path) -> None:
    path = tmp_path / "a.bson.gz"
    with layout.open_write(path, gzipped=True) as handle:
        handle.write(b"abc")
    header = path.read_bytes()[:10]
    assert header[:3] == b"\x1f\x8b\x08"        # gzip, deflate
    assert header[3] == 0                        # no file name (FLG)
    assert header[4:8] == b"\x00\x00\x00\x00"    # mtime 0: equal data, equal bytes
    assert gzip.decompress(path.read_bytes()) == b"abc"


def test_metadata_is_canonical_extended_json_in_mongodumps_field_order() -> None:
    indexes = [SON([("v", 2), ("key", SON([("_id", 1)])), ("name", "_id_")]),
               SON([("v", 2), ("key", SON([("tenant_id", 1), ("created_at", -1)])),
                    ("name", "t"), ("expireAfterSeconds", 2592000)])]
    text = layout.metadata_json("parsed_segments",
                                {"validator": {"x": {"$gte": datetime.datetime(2024, 1, 1)}}},
                                indexes, "e319731de1cd416aa92db58255343d57", "collection")
    doc = json.loads(text)
    assert list(doc) == ["options", "indexes", "uuid", "collectionName", "type"]
    assert doc["indexes"][1]["key"] == {"tenant_id": {"$numberInt": "1"},
                                        "created_at": {"$numberInt": "-1"}}
    assert list(doc["indexes"][1]["key"]) == ["tenant_id", "created_at"]  # order kept
    assert doc["options"]["validator"]["x"]["$gte"] == {"$date": {"$numberLong": "1704067200000"}}
    assert b" " not in text  # compact, as Go's MarshalExtJSON
    back = layout.parse_metadata(text, "m")
    assert back["indexes"][1]["expireAfterSeconds"] == 2592000
    assert list(back["indexes"][1]["key"]) == ["tenant_id", "created_at"]


def test_empty_options_uuid_and_type_are_left_out_as_omitempty_does() -> None:
    doc = json.loads(layout.metadata_json("c", {}, [], "", ""))
    assert doc == {"indexes": [], "collectionName": "c"}


def test_older_metadata_is_read_too() -> None:
    # Older mongodumps wrote "options":{} and each index's "ns"; mongorestore still reads them.
    text = ('{"options":{},"indexes":[{"v":{"$numberInt":"2"},"key":{"_id":{"$numberInt":"1"}},'
            '"name":"_id_","ns":"test.cafés"}],"uuid":"47d0f1f9ed46407fbada3cab9bb84644"}')
    doc = layout.parse_metadata(text.encode(), "m")
    assert doc["indexes"][0]["ns"] == "test.cafés" and doc["options"] == {}
    assert layout.parse_metadata(b"", "m") == {"indexes": []}
    with pytest.raises(DumpFormatError, match="Extended JSON"):
        layout.parse_metadata(b"{nope", "m")


def test_a_database_folder_is_read_as_mongorestore_reads_it(tmp_path: Path) -> None:
    db = tmp_path / "smartid"
    db.mkdir()
    for stem in ("plain", "caf%C3%A9s", "$admin.system.users", "system.profile"):
        layout.write_bytes(db / f"{stem}.bson.gz", frames({"_id": 1}), True)
        layout.write_bytes(db / f"{stem}.metadata.json.gz",
                           layout.metadata_json(stem, {}, [], "", "collection"), True)
    layout.write_bytes(db / f"{LONG_STEM}.bson", frames({"_id": 1}), False)
    layout.write_bytes(db / f"{LONG_STEM}.metadata.json",
                       layout.metadata_json(LONG_NAME, {}, [], "", "collection"), False)
    layout.write_bytes(db / "v.metadata.json",
                       layout.metadata_json("v", {"viewOn": "plain", "pipeline": []}, [], "",
                                            "view"), False)
    (db / "notes.txt").write_text("not a collection file")
    found = {c.name: c for c in layout.database_collections(db)}
    assert sorted(found) == sorted(["plain", "cafés", LONG_NAME, "v"])
    assert found["v"].data is None and list(found["v"].frames()) == []
    assert [bson.decode(f) for f in found["cafés"].frames()] == [{"_id": 1}]
