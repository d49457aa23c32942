"""The SmartIDH3 seed's collections and full index set (storage/mongo_client.py), with the
names its hardened migration gives them (tenant_id_1_doc_id_1, text_text, entities_1)."""

from smartid_operator.schema.engine.model import Migration
from smartid_operator.schema.engine.steps import CreateCollection, CreateIndex, DropIndex

THIRTY_DAYS = 30 * 24 * 3600

MIGRATION = Migration(
    id="v1_baseline",
    version=1,
    description="collections raw_documents, parsed_segments, extracted_entities, users and "
                "their indexes, including the 30-day TTL on parsed_segments.created_at",
    up=(
        CreateCollection("raw_documents"),
        CreateCollection("parsed_segments"),
        CreateCollection("extracted_entities"),
        CreateCollection("users"),
        CreateIndex("raw_documents", (("tenant_id", 1), ("status", 1), ("uploaded_at", -1)),
                    "tenant_id_1_status_1_uploaded_at_-1"),
        CreateIndex("raw_documents", (("sha256", 1),), "sha256_1", unique=True),
        CreateIndex("parsed_segments", (("tenant_id", 1), ("doc_id", 1), ("page_number", 1)),
                    "tenant_id_1_doc_id_1"),
        CreateIndex("parsed_segments", (("text", "text"),), "text_text"),
        CreateIndex("parsed_segments", (("entities", 1),), "entities_1"),
        CreateIndex("parsed_segments", (("created_at", 1),), "created_at_1",
                    expire_after_seconds=THIRTY_DAYS),
        CreateIndex("extracted_entities", (("fields.aadhaar_number.value", 1),),
                    "fields.aadhaar_number.value_1"),
        CreateIndex("extracted_entities", (("fields.pan_number.value", 1),),
                    "fields.pan_number.value_1"),
        CreateIndex("extracted_entities", (("document_type", 1),), "document_type_1"),
        CreateIndex("extracted_entities", (("tenant_id", 1),), "tenant_id_1"),
        CreateIndex("users", (("tenant_id", 1), ("email", 1)), "tenant_id_1_email_1",
                    unique=True),
    ),
    down=(
        DropIndex("users", "tenant_id_1_email_1"),
        DropIndex("extracted_entities", "tenant_id_1"),
        DropIndex("extracted_entities", "document_type_1"),
        DropIndex("extracted_entities", "fields.pan_number.value_1"),
        DropIndex("extracted_entities", "fields.aadhaar_number.value_1"),
        DropIndex("parsed_segments", "created_at_1"),
        DropIndex("parsed_segments", "entities_1"),
        DropIndex("parsed_segments", "text_text"),
        DropIndex("parsed_segments", "tenant_id_1_doc_id_1"),
        DropIndex("raw_documents", "sha256_1"),
        DropIndex("raw_documents", "tenant_id_1_status_1_uploaded_at_-1"),
    ),
)
