"""A migration: ordered, versioned, checksummed over its definition."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from smartid_operator.schema.engine.steps import Step, canonical


@dataclass(frozen=True)
class Migration:
    id: str  # e.g. "v2_harden_parsed_segments"
    version: int  # 2: the schema version this migration brings the database to
    description: str
    up: tuple[Step, ...]
    down: tuple[Step, ...] = ()

    @property
    def tag(self) -> str:
        return f"v{self.version}"

    @property
    def checksum(self) -> str:
        """sha256 of what the migration does (its steps), not of how it is worded."""
        definition = {"id": self.id, "version": self.version,
                      "up": [s.definition() for s in self.up],
                      "down": [s.definition() for s in self.down]}
        return "sha256:" + hashlib.sha256(canonical(definition).encode()).hexdigest()
