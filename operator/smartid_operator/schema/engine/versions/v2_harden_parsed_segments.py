"""The seed's v2_harden_parsed_segments: its hardened indexes (already in place from v1, so
no-ops by key pattern) and a $jsonSchema validator, so the seed's "Document failed
validation" trouble (an ObjectId doc_id) is caught at write time instead of by hand."""

from smartid_operator.schema.engine.model import Migration
from smartid_operator.schema.engine.steps import CreateIndex, RemoveValidator, SetValidator

PARSED_SEGMENT = {
    "$jsonSchema": {
        "bsonType": "object",
        "required": ["tenant_id", "doc_id", "page_number", "text", "created_at"],
        "properties": {
            "tenant_id": {"bsonType": "string", "minLength": 1,
                          "description": "tenant the segment belongs to"},
            "doc_id": {"bsonType": "string", "minLength": 1,
                       "description": "str(raw_documents._id), never an ObjectId"},
            "page_number": {"bsonType": ["int", "long"], "minimum": 1},
            "text": {"bsonType": "string"},
            "bbox": {"bsonType": "object",
                     "required": ["x", "y", "w", "h"],
                     "properties": {k: {"bsonType": ["int", "long", "double"]}
                                    for k in ("x", "y", "w", "h")}},
            "confidence": {"bsonType": ["double", "int", "long", "decimal"],
                           "minimum": 0, "maximum": 1},
            "ocr_engine": {"bsonType": "string"},
            "entities": {"bsonType": "array", "items": {"bsonType": "string"}},
            "created_at": {"bsonType": "date"},
        },
    }
}

MIGRATION = Migration(
    id="v2_harden_parsed_segments",
    version=2,
    description="hardened parsed_segments indexes and a $jsonSchema validator "
                "(doc_id a string, page_number >= 1, confidence in [0, 1], created_at a date)",
    up=(
        CreateIndex("parsed_segments", (("tenant_id", 1), ("doc_id", 1), ("page_number", 1)),
                    "tenant_id_1_doc_id_1"),
        CreateIndex("parsed_segments", (("text", "text"),), "text_text"),
        CreateIndex("parsed_segments", (("entities", 1),), "entities_1"),
        SetValidator("parsed_segments", PARSED_SEGMENT),
    ),
    down=(RemoveValidator("parsed_segments"),),
)
