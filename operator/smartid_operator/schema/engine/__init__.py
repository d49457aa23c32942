"""Schema migrations: versioned, checksummed, applied exactly once under a lease lock."""

from smartid_operator.schema.engine.migrate import (
    ChecksumDrift,
    Engine,
    LockBusy,
    MigrationConflict,
    MigrationError,
    SchemaState,
    UnknownVersion,
)

__all__ = ["ChecksumDrift", "Engine", "LockBusy", "MigrationConflict", "MigrationError",
           "SchemaState", "UnknownVersion"]
