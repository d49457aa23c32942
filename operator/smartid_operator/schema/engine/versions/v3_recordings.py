"""What the recovery path needs: recordings and their segments, keyed so that reindexing the
same file twice can never produce a duplicate (unique storage key, unique segment per
recording and sequence number)."""

from smartid_operator.schema.engine.model import Migration
from smartid_operator.schema.engine.steps import CreateCollection, CreateIndex, DropIndex

MIGRATION = Migration(
    id="v3_recordings",
    version=3,
    description="collections recordings and recording_segments with unique keys for "
                "idempotent reindexing after an outage",
    up=(
        CreateCollection("recordings"),
        CreateCollection("recording_segments"),
        CreateIndex("recordings", (("storage_key", 1),), "storage_key_1", unique=True),
        CreateIndex("recordings", (("tenant_id", 1), ("recorded_at", -1)),
                    "tenant_id_1_recorded_at_-1"),
        CreateIndex("recordings", (("indexed_at", 1),), "indexed_at_1"),
        CreateIndex("recording_segments", (("recording_id", 1), ("sequence", 1)),
                    "recording_id_1_sequence_1", unique=True),
    ),
    down=(
        DropIndex("recording_segments", "recording_id_1_sequence_1"),
        DropIndex("recordings", "indexed_at_1"),
        DropIndex("recordings", "tenant_id_1_recorded_at_-1"),
        DropIndex("recordings", "storage_key_1"),
    ),
)
