"""The migration engine (runs in the operator's migration pool and in ``smartid-operator
migrate``): versioned, checksummed migrations applied exactly once under a lease lock.

``migrate`` plans, applies and checks them; ``steps`` the declarative steps; ``model`` a
migration; ``catalog`` and ``versions/`` the migrations themselves.
"""

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
