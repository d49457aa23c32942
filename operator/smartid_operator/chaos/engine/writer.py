"""``smartid-operator chaos write``: the writer Job of a run (operator image, recovery volume).

Writes the run's recordings and segments through the recovery writer library, with the ids
the operator derives from the run's name (``model.recording_ids``), each tagged with the run
(``metadata.chaos_run`` / ``attributes.chaos_run``) so a duplicate under another id would be
counted. Mongo is down while it runs: everything lands on the volume for the agent to index.
Prints one JSON line with what it did; exit 1 if storage refused a write.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Any

from smartid_operator.chaos.engine.model import TENANT, recording_ids
from smartid_operator.recovery import RecordingWriter, Segment

PAYLOAD = 4096  # bytes of data per recording: enough to be a file, small enough to be quick


def _data(recording_id: str) -> bytes:
    seed = recording_id.encode()
    return (seed * (PAYLOAD // len(seed) + 1))[:PAYLOAD]


def write(storage: Path, uri: str | None, database: str, run: str, recordings: int,
          per_recording: int) -> dict[str, Any]:
    started = time.time()
    with RecordingWriter(storage, uri, database) as writer:
        for index, rid in enumerate(recording_ids(run, recordings)):
            writer.store_recording(_data(rid), tenant_id=TENANT, recording_id=rid,
                                   metadata={"chaos_run": run, "index": index})
            if per_recording:
                writer.store_segments(rid, [
                    Segment(seq, start_ms=seq * 1000, end_ms=seq * 1000 + 999,
                            text=f"{run} recording {index} segment {seq}",
                            attributes={"chaos_run": run}) for seq in range(per_recording)],
                    tenant_id=TENANT)
        stats = writer.stats
    return {"run": run, "recordings": stats.recordings, "segments": stats.segments,
            "recordingsIndexedByWriter": stats.recordings_indexed,
            "segmentsIndexedByWriter": stats.segments_indexed,
            "segmentsSpooled": stats.segments_spooled,
            "seconds": round(time.time() - started, 3)}


def main(storage: Path, uri: str | None, database: str, run: str, recordings: int,
         per_recording: int) -> int:
    try:
        summary = write(storage, uri, database, run, recordings, per_recording)
    except OSError as exc:
        print(f"chaos write: storage refused a write: {exc}", file=sys.stderr)
        return 1
    print(json.dumps(summary), flush=True)
    return 0
