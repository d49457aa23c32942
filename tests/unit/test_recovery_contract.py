"""The storage contract's pure rules: sidecars, segment records, partitions, ids, atomic files."""

from __future__ import annotations

import datetime
import json
from pathlib import Path

import pytest

from smartid_operator.recovery.engine import contract
from smartid_operator.recovery.engine.contract import ContractError, Segment, Sidecar

UTC = datetime.UTC
NOW = datetime.datetime(2025, 10, 20, 13, 5, 7, 123000, tzinfo=UTC)


def sidecar(**fields: object) -> bytes:
    body: dict[str, object] = {"recording_id": "rec-1", "tenant_id": "t1",
                               "recorded_at": "2025-10-20T13:05:00Z"}
    body.update(fields)
    return json.dumps({k: v for k, v in body.items() if v is not None}).encode()


def test_a_minimal_sidecar_names_its_data_file_by_default() -> None:
    parsed = contract.parse_sidecar(sidecar(), "rec-1")
    assert parsed.data_file == "rec-1.dat"
    assert parsed.recorded_at == datetime.datetime(2025, 10, 20, 13, 5, tzinfo=UTC)
    doc = contract.recording_document(parsed, "recordings/20251020/1305/rec-1.dat", "x", NOW)
    assert doc["_id"] == "rec-1" and doc["storage_key"] == "recordings/20251020/1305/rec-1.dat"


def test_sidecar_written_by_the_library_reads_back_equal() -> None:
    original = Sidecar("rec-2", "t1", NOW, "rec-2.wav", size_bytes=3, sha256="ab",
                       written_at=NOW, metadata={"camera": 4})
    assert contract.parse_sidecar(original.to_json(), "rec-2") == original


@pytest.mark.parametrize(("raw", "reason"), [
    (sidecar()[:25], "invalid-json"),  # half-written (a writer that skipped the rename)
    (b"[1, 2]", "invalid-metadata"),
    (sidecar(recording_id="other"), "invalid-metadata"),
    (sidecar(tenant_id=""), "invalid-metadata"),
    (sidecar(recorded_at="2025-10-20T13:05:00"), "invalid-metadata"),  # no time zone
    (sidecar(recorded_at="yesterday"), "invalid-metadata"),
    (sidecar(data_file="../escape.dat"), "invalid-metadata"),
    (sidecar(data_file="rec-1.json"), "invalid-metadata"),
    (sidecar(size_bytes=-1), "invalid-metadata"),
    (sidecar(contract=2), "unknown-contract"),
])
def test_broken_sidecars_are_refused_with_a_reason(raw: bytes, reason: str) -> None:
    with pytest.raises(ContractError) as caught:
        contract.parse_sidecar(raw, "rec-1")
    assert caught.value.reason == reason


def test_segment_record_round_trips_to_its_document() -> None:
    record = contract.segment_record("rec-1", Segment(7, 0, 1500, "hi", {"lang": "he"}), "t1",
                                     NOW)
    line = contract.dumps(record)
    doc = contract.segment_document(contract.parse_spool_line(line), "reindexer", NOW)
    assert doc["_id"] == "rec-1:7" == contract.segment_id("rec-1", 7)
    assert (doc["recording_id"], doc["sequence"], doc["tenant_id"]) == ("rec-1", 7, "t1")
    assert doc["written_at"] == NOW and doc["attributes"] == {"lang": "he"}


@pytest.mark.parametrize("record", [
    {"recording_id": "rec-1", "sequence": -1},
    {"recording_id": "rec-1", "sequence": True},
    {"recording_id": "rec 1", "sequence": 1},
    {"recording_id": "rec-1", "sequence": 1, "id": "rec-1:2"},
    {"recording_id": "rec-1", "sequence": 1, "start_ms": 1.5},
    {"recording_id": "rec-1", "sequence": 1, "kind": "recording"},
])
def test_invalid_segment_records_are_refused(record: dict[str, object]) -> None:
    with pytest.raises(ContractError) as caught:
        contract.segment_document(record, "x", NOW)
    assert caught.value.reason == "invalid-record"


def test_a_line_cut_mid_object_is_corrupt() -> None:
    line = contract.dumps(contract.segment_record("rec-1", Segment(1), None, NOW))
    with pytest.raises(ContractError) as caught:
        contract.parse_spool_line(line[: len(line) // 2])
    assert caught.value.reason == "corrupt-line"


def test_non_json_values_are_refused_before_anything_is_written() -> None:
    with pytest.raises(ValueError):
        contract.segment_record("rec-1", Segment(1, attributes={"x": float("nan")}), None, NOW)


def test_our_writers_directories_are_utc_minutes() -> None:
    local = NOW.astimezone(datetime.timezone(datetime.timedelta(hours=3)))
    assert contract.partition(local) == "20251020/1305"


def test_generated_ids_are_valid_unique_and_time_ordered() -> None:
    ids = [contract.new_recording_id(NOW + datetime.timedelta(seconds=i)) for i in range(3)]
    assert all(contract.valid_id(i) for i in ids)
    assert ids == sorted(ids) and len(set(ids)) == 3
    assert not contract.valid_id("a.b") and not contract.valid_id("a/b")
    assert not contract.valid_id("")


def test_atomic_write_leaves_only_the_final_name(tmp_path: Path) -> None:
    target = tmp_path / "d" / "x.json"
    contract.write_atomic(target, b"{}")
    contract.write_atomic(target, b'{"a": 1}')
    assert target.read_bytes() == b'{"a": 1}'
    assert [p.name for p in target.parent.iterdir()] == ["x.json"]
