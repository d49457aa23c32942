"""The operator's one seam for MongoDB I/O."""

from __future__ import annotations

import contextlib
import datetime
import threading
import time
from dataclasses import dataclass
from typing import Any

import pymongo
import pymongo.database
from pymongo.errors import (
    CollectionInvalid,
    ConfigurationError,
    DuplicateKeyError,
    InvalidURI,
    OperationFailure,
    PyMongoError,
)

from smartid_operator import __version__
from smartid_operator.spec import SpecError

Client = pymongo.MongoClient[dict[str, Any]]

_clients: dict[tuple[str, int], Client] = {}
_lock = threading.Lock()


def client_for(uri: str, timeout_seconds: int = 5) -> Client:
    """One pooled client per URI, reused across reconciles (MongoClient is thread-safe)."""
    key = (uri, timeout_seconds)
    with _lock:
        if key not in _clients:
            try:
                _clients[key] = pymongo.MongoClient(
                    uri, serverSelectionTimeoutMS=timeout_seconds * 1000,
                    connectTimeoutMS=timeout_seconds * 1000,
                    appname=f"smartid-operator/{__version__}", connect=False)
            except (InvalidURI, ConfigurationError, ValueError) as exc:
                raise SpecError("InvalidURI", f"the MongoDB URI in the Secret is invalid: {exc}") \
                    from None
        return _clients[key]


@dataclass(frozen=True)
class Health:
    reachable: bool
    version: str | None = None
    latency_ms: float | None = None
    error: str | None = None


def check(uri: str, timeout_seconds: int = 5) -> Health:
    """``ping`` the server (the command every MongoDB, stand-in or real, answers)."""
    mc = client_for(uri, timeout_seconds)
    started = time.monotonic()
    try:
        mc.admin.command("ping")
        latency = (time.monotonic() - started) * 1000
        version = mc.server_info().get("version")
    except PyMongoError as exc:
        return Health(False, error=_short(exc))
    return Health(True, version=str(version) if version else None, latency_ms=round(latency, 1))


def _short(exc: Exception) -> str:
    text = str(exc).split(", Timeout:")[0].split(", full error:")[0]
    return text if len(text) <= 300 else text[:297] + "..."


def close_all() -> None:
    with _lock:
        for mc in _clients.values():
            mc.close()
        _clients.clear()


# -- schema operations (used by the migration engine) -------------------------------------------

Database = pymongo.database.Database[dict[str, Any]]

# What a server says when it lacks a feature (rather than when the request is wrong):
# NotImplemented, CommandNotFound, CommandNotSupported. Real MongoDB 7 never answers these to
# the commands migrations use; MongoDB-compatible servers (FerretDB, the test bed's stand-in)
# do, and their gaps are then reported by name instead of failing the whole schema.
UNSUPPORTED_CODES = frozenset({238, 59, 115})


class Unsupported(Exception):
    """The server does not implement what a step needs."""


def database(uri: str, name: str, timeout_seconds: int = 5) -> Database:
    return client_for(uri, timeout_seconds)[name]


def _unsupported(exc: OperationFailure) -> bool:
    return exc.code in UNSUPPORTED_CODES


def _gap(exc: OperationFailure) -> Unsupported:
    return Unsupported(f"{(exc.details or {}).get('codeName', exc.code)}: {_short(exc)}")


def list_collections(db: Database) -> dict[str, dict[str, Any]]:
    """Collection name -> its options (validator, validationLevel, ...)."""
    return {c["name"]: dict(c.get("options") or {}) for c in db.list_collections()}


def list_indexes(db: Database, collection: str) -> list[dict[str, Any]]:
    """The collection's indexes as the server reports them; none when it does not exist."""
    try:
        return [dict(i) for i in db[collection].list_indexes()]
    except OperationFailure as exc:
        if exc.code == 26:  # NamespaceNotFound
            return []
        raise


def create_collection(db: Database, name: str) -> None:
    with contextlib.suppress(CollectionInvalid):  # created meanwhile: same outcome
        db.create_collection(name)


def create_index(db: Database, collection: str, keys: list[tuple[str, Any]], name: str,
                 options: dict[str, Any]) -> None:
    try:
        db[collection].create_index(keys, name=name, **options)
    except OperationFailure as exc:
        # FerretDB refuses text indexes with IndexNotFound (27); MongoDB never says 27 here.
        if _unsupported(exc) or (exc.code == 27 and "text" in dict(keys).values()):
            raise _gap(exc) from None
        raise


def drop_index(db: Database, collection: str, name: str) -> None:
    try:
        db[collection].drop_index(name)
    except OperationFailure as exc:
        if exc.code not in (26, 27):  # gone already
            raise


def set_validator(db: Database, collection: str, validator: dict[str, Any], level: str,
                  action: str) -> None:
    try:
        db.command("collMod", collection, validator=validator, validationLevel=level,
                   validationAction=action)
    except OperationFailure as exc:
        if _unsupported(exc):
            raise _gap(exc) from None
        raise


def count_failing(db: Database, collection: str, validator: dict[str, Any]) -> int | None:
    """Documents that would fail ``validator``; None if the server cannot evaluate it."""
    try:
        return db[collection].count_documents({"$nor": [validator]})
    except OperationFailure as exc:
        if _unsupported(exc) or exc.code in (2, 9):  # BadValue/FailedToParse: no $jsonSchema
            return None
        raise


# -- lease lock and history ---------------------------------------------------------------------

def lease_acquire(db: Database, collection: str, lock_id: str, owner: str,
                  now: datetime.datetime, expires: datetime.datetime) -> bool:
    """Take the lease if it is free, expired, or already ours; False if someone holds it."""
    try:
        db[collection].find_one_and_update(
            {"_id": lock_id, "$or": [{"expires_at": {"$lt": now}}, {"owner": owner}]},
            {"$set": {"owner": owner, "expires_at": expires, "acquired_at": now,
                      "renewed_at": now}},
            upsert=True)
    except DuplicateKeyError:  # the lease exists, unexpired, with another owner
        return False
    return True


def lease_renew(db: Database, collection: str, lock_id: str, owner: str,
                now: datetime.datetime, expires: datetime.datetime) -> bool:
    result = db[collection].update_one({"_id": lock_id, "owner": owner},
                                       {"$set": {"expires_at": expires, "renewed_at": now}})
    return result.matched_count == 1


def lease_release(db: Database, collection: str, lock_id: str, owner: str) -> None:
    db[collection].delete_one({"_id": lock_id, "owner": owner})


def lease_holder(db: Database, collection: str, lock_id: str) -> dict[str, Any] | None:
    return db[collection].find_one({"_id": lock_id})


def read_history(db: Database, collection: str) -> list[dict[str, Any]]:
    return list(db[collection].find({}).sort("applied_at", 1))


def record(db: Database, collection: str, entry: dict[str, Any]) -> bool:
    """Insert a history entry keyed by migration id; False if it was recorded already."""
    try:
        db[collection].insert_one(entry)
    except DuplicateKeyError:
        return False
    return True


def unrecord(db: Database, collection: str, migration_id: str) -> None:
    db[collection].delete_one({"_id": migration_id})


def overwrite_checksum(db: Database, collection: str, migration_id: str, checksum: str) -> None:
    """For ``migrate repair``: accept the current definition of an applied migration."""
    db[collection].update_one({"_id": migration_id}, {"$set": {"checksum": checksum}})
