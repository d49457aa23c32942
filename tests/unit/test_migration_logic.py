"""Pure rules of the migration engine: key and option normalisation, matching, checksums."""

from __future__ import annotations

import dataclasses

import pytest

from smartid_operator.schema.engine.catalog import MIGRATIONS
from smartid_operator.schema.engine.model import Migration
from smartid_operator.schema.engine.steps import (
    CreateIndex,
    StepConflict,
    normalize_keys,
    normalize_options,
)

COMPOUND = CreateIndex("parsed_segments", (("tenant_id", 1), ("doc_id", 1), ("page_number", 1)),
                       "tenant_id_1_doc_id_1")
TTL = CreateIndex("parsed_segments", (("created_at", 1),), "created_at_1",
                  expire_after_seconds=2592000)


def test_text_index_keys_match_however_the_server_reports_them() -> None:
    ours = normalize_keys((("text", "text"),))
    mongodb = normalize_keys({"_fts": "text", "_ftsx": 1}, weights={"text": 1})
    assert ours == mongodb == (("$text", "text"),)


def test_numeric_directions_compare_equal_across_int_and_float() -> None:
    assert normalize_keys({"a": 1.0, "b": -1}) == normalize_keys((("a", 1), ("b", -1.0)))
    assert normalize_keys({"a": 1}) != normalize_keys({"a": -1})


def test_options_ignore_defaults_and_keep_what_matters() -> None:
    assert normalize_options({"v": 2, "name": "x", "unique": False}) == {}
    assert normalize_options({"unique": True, "expireAfterSeconds": 10.0}) == {
        "unique": True, "expireAfterSeconds": 10}


def test_match_by_keys_whatever_the_name() -> None:
    existing = [{"name": "_id_", "key": {"_id": 1}},
                {"name": "by_tenant_doc_page",
                 "key": {"tenant_id": 1, "doc_id": 1, "page_number": 1}}]
    assert COMPOUND.match(existing) == "by_tenant_doc_page"
    assert COMPOUND.match(existing[:1]) is None


def test_same_keys_with_other_options_is_a_conflict() -> None:
    existing = [{"name": "created_at_1", "key": {"created_at": 1}, "expireAfterSeconds": 60}]
    with pytest.raises(StepConflict, match="options"):
        TTL.match(existing)


def test_same_name_on_other_keys_is_a_conflict() -> None:
    existing = [{"name": "tenant_id_1_doc_id_1", "key": {"tenant_id": 1, "doc_id": 1}}]
    with pytest.raises(StepConflict, match="exists on other keys"):
        COMPOUND.match(existing)


def test_checksum_covers_steps_not_wording() -> None:
    v1 = MIGRATIONS[0]
    reworded = dataclasses.replace(v1, description="said differently")
    assert reworded.checksum == v1.checksum
    changed = dataclasses.replace(v1, up=(*v1.up[:-1], dataclasses.replace(v1.up[-1],
                                                                            unique=False)))
    assert changed.checksum != v1.checksum
    assert v1.checksum.startswith("sha256:") and len(v1.checksum) == 71


def test_catalog_is_ordered_and_gapless() -> None:
    assert [m.version for m in MIGRATIONS] == list(range(1, len(MIGRATIONS) + 1))
    assert [m.id for m in MIGRATIONS][:3] == ["v1_baseline", "v2_harden_parsed_segments",
                                              "v3_recordings"]
    assert all(isinstance(m, Migration) and m.tag == f"v{m.version}" for m in MIGRATIONS)


def test_every_migration_can_be_rolled_back() -> None:
    for migration in MIGRATIONS:
        assert migration.down, f"{migration.id} has no down steps"
