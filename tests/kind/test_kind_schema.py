"""Tier 3 on kind: the migrations on real MongoDB 7, where nothing is unsupported: text and TTL
indexes exist and the $jsonSchema validator refuses the seed's ObjectId doc_id."""

from __future__ import annotations

import json
import subprocess
import time
from typing import Any

from kubernetes import client, config

NAMESPACE = "smartid"
GROUP, VERSION, PLURAL = "smartid.io", "v1alpha1", "smartiddatabases"


def mongosh(script: str) -> Any:
    out = subprocess.run(
        ["kubectl", "exec", "-n", NAMESPACE, "mongo-0", "--", "mongosh", "--quiet", "smartid",
         "--eval", f"print(EJSON.stringify({script}))"],
        capture_output=True, text=True, timeout=60, check=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def test_schema_is_complete_on_real_mongodb() -> None:
    custom = client.CustomObjectsApi(config.new_client_from_config())
    deadline = time.monotonic() + 300
    obj: dict[str, Any] = {}
    while time.monotonic() < deadline:
        obj = custom.get_namespaced_custom_object(GROUP, VERSION, NAMESPACE, PLURAL, "smartid")
        if (obj.get("status") or {}).get("schema", {}).get("version") == "v3":
            break
        time.sleep(2)
    schema = obj["status"]["schema"]
    assert schema["version"] == "v3" and schema["unsupported"] == []
    ready = next(c for c in obj["status"]["conditions"] if c["type"] == "SchemaReady")
    assert ready["reason"] == "UpToDate"

    indexes = {i["name"]: i for i in mongosh("db.parsed_segments.getIndexes()")}
    assert indexes["created_at_1"]["expireAfterSeconds"] == 2592000
    assert indexes["text_text"]["weights"] == {"text": 1}
    assert indexes["tenant_id_1_doc_id_1"]["key"] == {"tenant_id": 1, "doc_id": 1,
                                                      "page_number": 1}
    info = mongosh("db.getCollectionInfos({name: 'parsed_segments'})[0].options")
    assert info["validationLevel"] == "moderate" and info["validationAction"] == "error"

    refused = mongosh("(() => { try { db.parsed_segments.insertOne({tenant_id: 't0', "
                      "doc_id: new ObjectId(), page_number: 1, text: 'x', "
                      "created_at: new Date()}); return {ok: true} } "
                      "catch (e) { return {ok: false, code: e.code} } })()")
    assert refused == {"ok": False, "code": 121}  # Document failed validation
