"""Tier 3 on kind: the migrations on real MongoDB 7, where nothing is unsupported: text and TTL
indexes exist and the $jsonSchema validator refuses the seed's ObjectId doc_id."""

from __future__ import annotations

import json
from typing import Any

import pytest
from kubernetes import client

from tests.kind.conftest import NAMESPACE, Kubectl
from tests.kind.helpers import wait_status

SCHEMA_S = 180


def mongosh(kubectl: Kubectl, script: str) -> Any:
    out = kubectl("exec", "-n", NAMESPACE, "mongo-0", "--", "mongosh", "--quiet", "--norc",
                  "smartid", "--eval", f"print(EJSON.stringify({script}))")
    return json.loads(out.strip().splitlines()[-1])


@pytest.mark.timeout(SCHEMA_S + 120)
def test_schema_is_complete_on_real_mongodb(api: client.ApiClient, kubectl: Kubectl) -> None:
    custom = client.CustomObjectsApi(api)
    status = wait_status(custom, "schema v3", SCHEMA_S,
                         lambda s: (s.get("schema") or {}).get("version") == "v3")
    schema = status["schema"]
    assert schema["version"] == "v3" and schema["unsupported"] == []
    ready = next(c for c in status["conditions"] if c["type"] == "SchemaReady")
    assert ready["reason"] == "UpToDate"

    indexes = {i["name"]: i for i in mongosh(kubectl, "db.parsed_segments.getIndexes()")}
    assert indexes["created_at_1"]["expireAfterSeconds"] == 2592000
    assert indexes["text_text"]["weights"] == {"text": 1}
    assert indexes["tenant_id_1_doc_id_1"]["key"] == {"tenant_id": 1, "doc_id": 1,
                                                      "page_number": 1}
    info = mongosh(kubectl, "db.getCollectionInfos({name: 'parsed_segments'})[0].options")
    assert info["validationLevel"] == "moderate" and info["validationAction"] == "error"

    refused = mongosh(kubectl, "(() => { try { db.parsed_segments.insertOne({tenant_id: 't0', "
                      "doc_id: new ObjectId(), page_number: 1, text: 'x', "
                      "created_at: new Date()}); return {ok: true} } "
                      "catch (e) { return {ok: false, code: e.code} } })()")
    assert refused == {"ok": False, "code": 121}  # Document failed validation
