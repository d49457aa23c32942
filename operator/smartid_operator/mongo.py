"""The operator's one seam for MongoDB I/O.

Two kinds of client: ``Pool`` holds one handle per SmartIDDatabase for the operator (an async
client for health checks, so an unreachable server costs a waiting coroutine, never a thread;
a sync client for the migration engine), keyed by a digest of the URI so a rotated Secret
closes the old pool; ``client_for`` serves the CLI and tools outside the operator; ``connect``
gives a process of its own (a backup Job, the recovery agent, the writer) a client it closes.
The engines that work a client directly do so inside ``translated``.

No driver exception leaves this module. A request that fails raises ``MongoError``, as one of:
``Unanswered`` (the server did not answer: refused, timed out, dropped; worth retrying),
``Refused`` (it answered and refused the credentials or the access: a person must fix them),
or ``MongoError`` itself (it answered with another error). A URI the driver cannot parse is a
``ConfigError`` ("InvalidURI"), before any request.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import hashlib
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, cast

import pymongo
import pymongo.collection
import pymongo.database
from bson.codec_options import CodecOptions
from bson.raw_bson import RawBSONDocument
from pymongo import AsyncMongoClient, uri_parser
from pymongo.errors import (
    BulkWriteError,
    CollectionInvalid,
    ConfigurationError,
    ConnectionFailure,
    DuplicateKeyError,
    InvalidURI,
    OperationFailure,
    PyMongoError,
)

from smartid_operator import __version__
from smartid_operator.errors import ConfigError

Client = pymongo.MongoClient[dict[str, Any]]
AsyncClient = AsyncMongoClient[dict[str, Any]]
Collection = pymongo.collection.Collection[dict[str, Any]]
RawCollection = pymongo.collection.Collection[RawBSONDocument]
APPNAME = f"smartid-operator/{__version__}"
DRIVER = f"pymongo {pymongo.__version__}"

_clients: dict[tuple[str, int], Client] = {}
_lock = threading.Lock()


def _invalid(exc: Exception) -> ConfigError:
    return ConfigError("InvalidURI", f"the MongoDB URI is invalid: {exc}")


def _options(timeout_seconds: float) -> dict[str, Any]:
    ms = int(timeout_seconds * 1000)
    return {"serverSelectionTimeoutMS": ms, "connectTimeoutMS": ms, "appname": APPNAME,
            "connect": False}


def client_for(uri: str, timeout_seconds: int = 5) -> Client:
    """One pooled client per URI for the CLI and tools (MongoClient is thread-safe)."""
    key = (uri, timeout_seconds)
    with _lock:
        if key not in _clients:
            try:
                _clients[key] = pymongo.MongoClient(uri, **_options(timeout_seconds))
            except (InvalidURI, ConfigurationError, ValueError) as exc:
                raise _invalid(exc) from None
        return _clients[key]


def connect(uri: str, timeout_seconds: float, *, app: str,
            socket_timeout_seconds: float | None = None) -> Client:
    """A client of one process's own (``smartid-<app>`` to the server), for its caller to
    close (it is a context manager); a URI the driver cannot parse is a ``ConfigError``."""
    options = {**_options(timeout_seconds), "appname": f"smartid-{app}/{__version__}"}
    if socket_timeout_seconds is not None:
        options["socketTimeoutMS"] = max(int(socket_timeout_seconds * 1000), 1)
    try:
        return pymongo.MongoClient(uri, **options)
    except (InvalidURI, ConfigurationError, ValueError) as exc:
        raise _invalid(exc) from None


def hosts(uri: str) -> list[tuple[str, int]]:
    """The seed list of a URI (a ``mongodb+srv`` one resolved, within a second); empty when
    it cannot be known."""
    try:
        return [(str(h), int(p)) for h, p in
                uri_parser.parse_uri(uri, connect_timeout=1)["nodelist"]]
    except (ConfigurationError, InvalidURI, ValueError):
        return []


def raw_collection(client: Client, database: str, name: str) -> RawCollection:
    """The collection with its documents left as the server's BSON bytes, never decoded."""
    # pymongo types a collection by its database's document class, not by the codec options.
    return cast("RawCollection", client[database].get_collection(
        name, codec_options=CodecOptions(document_class=RawBSONDocument)))


def close_all() -> None:
    with _lock:
        for mc in _clients.values():
            mc.close()
        _clients.clear()


@dataclass(frozen=True)
class Health:
    reachable: bool
    version: str | None = None
    latency_ms: float | None = None
    error: str | None = None
    # Why not: it did not answer (worth waiting for), it refused the credentials (a person
    # must fix them), or it answered with another error.
    failure: Literal["unanswered", "refused", "error"] | None = None


def _short(exc: BaseException) -> str:
    """The driver's message on one line, without its timeouts and raw reply."""
    text = str(exc).split(", Timeout:")[0].split(", full error:")[0]
    text = " ".join(text.split()) or type(exc).__name__
    return text if len(text) <= 300 else text[:297] + "..."


class MongoError(Exception):
    """A MongoDB request failed: the server answered with an error (see the subclasses)."""


class Unanswered(MongoError):
    """The server did not answer: connection refused, timed out or dropped."""


class Refused(MongoError):
    """The server answered and refused the credentials or the access they give (or the
    client could not present them as the URI says): a person must fix the URI or the user."""


# AuthenticationFailed, UserNotFound, Unauthorized, MechanismUnavailable.
REFUSAL_CODES = frozenset({18, 11, 13, 334})


def _translate(exc: PyMongoError) -> MongoError:
    if isinstance(exc, ConnectionFailure):  # incl. server selection and network timeouts
        return Unanswered(_short(exc))
    if isinstance(exc, ConfigurationError) or (
            isinstance(exc, OperationFailure) and exc.code in REFUSAL_CODES):
        return Refused(_short(exc))
    return MongoError(_short(exc))


@contextlib.contextmanager
def translated(timeout_seconds: float | None = None) -> Iterator[None]:
    """Driver errors leave the Mongo seam as ``MongoError`` (also usable as a decorator);
    with ``timeout_seconds``, each request inside ends within it (``pymongo.timeout``)."""
    try:
        with contextlib.nullcontext() if timeout_seconds is None else \
                pymongo.timeout(timeout_seconds):
            yield
    except PyMongoError as exc:
        raise _translate(exc) from exc


def insert_unordered(collection: Collection, docs: Sequence[dict[str, Any]]
                     ) -> dict[int, dict[str, Any]]:
    """One unordered ``insert_many``: the server's write errors by the index of their
    document (none: all written). Acknowledged when it returns: a write concern error raises
    ``MongoError``, since what was written is not safe to build on."""
    with translated():
        try:
            collection.insert_many(docs, ordered=False)
        except BulkWriteError as exc:
            if exc.details.get("writeConcernErrors"):
                raise MongoError(f"write concern not met: "
                                 f"{str(exc.details['writeConcernErrors'])[:500]}") from None
            return {entry["index"]: entry for entry in exc.details.get("writeErrors", [])}
    return {}


def digest(uri: str) -> str:
    return hashlib.sha256(uri.encode()).hexdigest()[:16]


@dataclass
class Handle:
    """The clients of one SmartIDDatabase for one URI (its digest, never the URI, is kept)."""

    digest: str
    timeout_seconds: float
    hosts: list[tuple[str, int]]
    _checker: AsyncClient = field(repr=False)
    # Made with the checker (connect=False: no socket, no thread until first used), so no
    # closure holds on to the URI for later.
    _sync: Client = field(repr=False)
    # A failed check leaves the clients with sockets to a server that went away; the next
    # pass starts afresh instead of spending its first request on a dead socket.
    stale: bool = False

    def database(self, name: str) -> Database:
        """The sync database for the migration engine (its functions below translate)."""
        return self._sync[name]

    async def close(self) -> None:
        await self._checker.close()
        self._sync.close()


def _open(uri: str, timeout_seconds: float) -> Handle:
    try:
        parsed = uri_parser.parse_uri(uri) if not uri.startswith("mongodb+srv://") else None
        options = _options(timeout_seconds)
        checker: AsyncClient = AsyncMongoClient(uri, **options)
        sync: Client = pymongo.MongoClient(uri, **options)
    except (InvalidURI, ConfigurationError, ValueError) as exc:
        raise _invalid(exc) from None
    hosts = [(h, int(p)) for h, p in parsed["nodelist"]] if parsed else []
    return Handle(digest(uri), timeout_seconds, hosts, checker, sync)


class Pool:
    """The operator's handles: databases whose Secrets hold the same URI share one (a hundred
    databases on one server cost two clients, not two hundred). A database whose URI changes
    (a rotated Secret) moves to another handle; a handle no database uses any more is closed;
    a handle whose check failed is replaced for all its users on their next pass."""

    def __init__(self) -> None:
        self._shared: dict[tuple[str, float], Handle] = {}
        self._users: dict[str, tuple[str, float]] = {}
        self._closing: dict[asyncio.Task[None], Handle] = {}

    async def handle(self, key: str, uri: str, timeout_seconds: float) -> Handle:
        shared = (digest(uri), timeout_seconds)
        current = self._shared.get(shared)
        if current is None or current.stale:
            self._shared[shared] = _open(uri, timeout_seconds)
            if current is not None:  # let requests in flight on it end first
                self._close_later(current, timeout_seconds + 1)
        previous = self._users.get(key)
        self._users[key] = shared
        if previous is not None and previous != shared:
            await self._release(previous)
        return self._shared[shared]

    async def forget(self, key: str) -> None:
        shared = self._users.pop(key, None)
        if shared is not None:
            await self._release(shared)

    async def _release(self, shared: tuple[str, float]) -> None:
        if shared not in self._users.values():
            handle = self._shared.pop(shared, None)
            if handle is not None:
                await handle.close()

    def _close_later(self, handle: Handle, delay: float) -> None:
        async def close() -> None:
            await asyncio.sleep(delay)
            await handle.close()
        task = asyncio.get_running_loop().create_task(close())
        self._closing[task] = handle
        task.add_done_callback(lambda done: self._closing.pop(done, None))

    async def close(self) -> None:
        for task, handle in list(self._closing.items()):
            task.cancel()
            await handle.close()
        for handle in list(self._shared.values()):
            await handle.close()
        self._shared.clear()
        self._users.clear()

    def __len__(self) -> int:
        return len(self._shared)


async def _refused(hosts: list[tuple[str, int]], timeout: float) -> str | None:
    """'connection refused' when every host refuses a TCP connection at once.

    pymongo's server selection retries a refused connection until its timeout; a refusal is
    already a definitive answer, so an outage shows within milliseconds, not seconds.
    """
    if not hosts:
        return None
    for host, port in hosts:
        try:
            # asyncio.timeout, not wait_for: Python 3.11's wait_for drops a cancellation
            # that arrives as the connect completes, and a stopped worker would go on.
            async with asyncio.timeout(timeout):
                _, writer = await asyncio.open_connection(host, port)
        except ConnectionRefusedError:
            continue
        except (OSError, TimeoutError):
            return None  # not a clear refusal: let the driver decide within its timeout
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()
        return None
    return f"connection refused by {', '.join(f'{h}:{p}' for h, p in hosts)}"


async def check(handle: Handle) -> Health:
    """``ping`` the server (the command every MongoDB, stand-in or real, answers)."""
    started = time.monotonic()
    refused = await _refused(handle.hosts, handle.timeout_seconds)
    if refused:
        handle.stale = True
        return Health(False, error=refused, failure="unanswered")
    try:
        with translated():
            await handle._checker.admin.command("ping")
            latency = (time.monotonic() - started) * 1000
            info = await handle._checker.admin.command("buildInfo")
    except MongoError as exc:
        handle.stale = True
        failure: Literal["unanswered", "refused", "error"] = \
            "unanswered" if isinstance(exc, Unanswered) else \
            "refused" if isinstance(exc, Refused) else "error"
        return Health(False, error=str(exc), failure=failure)
    version = info.get("version")
    return Health(True, version=str(version) if version else None, latency_ms=round(latency, 1))


@contextlib.contextmanager
def _on(handle: Handle) -> Iterator[None]:
    """Translated; a failure marks the handle stale (see ``Handle.stale``)."""
    try:
        with translated():
            yield
    except MongoError:
        handle.stale = True
        raise


async def read_one(handle: Handle, database: str, collection: str,
                   key: Any) -> dict[str, Any] | None:
    """One document by ``_id`` (a service's report), or None."""
    with _on(handle):
        doc = await handle._checker[database][collection].find_one({"_id": key})
    return None if doc is None else dict(doc)


async def count(handle: Handle, database: str, collection: str, query: dict[str, Any]) -> int:
    with _on(handle):
        return int(await handle._checker[database][collection].count_documents(query))


async def find(handle: Handle, database: str, collection: str, query: dict[str, Any],
               projection: dict[str, Any]) -> list[dict[str, Any]]:
    """Every matching document, read to the end inside the seam."""
    with _on(handle):
        cursor = handle._checker[database][collection].find(query, projection)
        return [dict(doc) async for doc in cursor]


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


@translated()
def list_collections(db: Database) -> dict[str, dict[str, Any]]:
    """Collection name -> its options (validator, validationLevel, ...)."""
    return {c["name"]: dict(c.get("options") or {}) for c in db.list_collections()}


@translated()
def list_indexes(db: Database, collection: str) -> list[dict[str, Any]]:
    """The collection's indexes as the server reports them; none when it does not exist."""
    try:
        return [dict(i) for i in db[collection].list_indexes()]
    except OperationFailure as exc:
        if exc.code == 26:  # NamespaceNotFound
            return []
        raise


@translated()
def create_collection(db: Database, name: str) -> None:
    with contextlib.suppress(CollectionInvalid):  # created meanwhile: same outcome
        db.create_collection(name)


@translated()
def create_index(db: Database, collection: str, keys: list[tuple[str, Any]], name: str,
                 options: dict[str, Any]) -> None:
    try:
        db[collection].create_index(keys, name=name, **options)
    except OperationFailure as exc:
        # Not the test bed's alone: FerretDB, which deployments run in production as their
        # MongoDB, answers a text index with IndexNotFound (27). MongoDB never answers 27 to
        # createIndexes, so for a text index it can only mean that gap, named, not a failure.
        if _unsupported(exc) or (exc.code == 27 and "text" in dict(keys).values()):
            raise _gap(exc) from None
        raise


@translated()
def drop_index(db: Database, collection: str, name: str) -> None:
    try:
        db[collection].drop_index(name)
    except OperationFailure as exc:
        if exc.code not in (26, 27):  # gone already
            raise


@translated()
def set_validator(db: Database, collection: str, validator: dict[str, Any], level: str,
                  action: str) -> None:
    try:
        db.command("collMod", collection, validator=validator, validationLevel=level,
                   validationAction=action)
    except OperationFailure as exc:
        if _unsupported(exc):
            raise _gap(exc) from None
        raise


@translated()
def count_failing(db: Database, collection: str, validator: dict[str, Any]) -> int | None:
    """Documents that would fail ``validator``; None if the server cannot evaluate it."""
    try:
        return db[collection].count_documents({"$nor": [validator]})
    except OperationFailure as exc:
        if _unsupported(exc) or exc.code in (2, 9):  # BadValue/FailedToParse: no $jsonSchema
            return None
        raise


# -- lease lock and history ---------------------------------------------------------------------

@translated()
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


@translated()
def lease_renew(db: Database, collection: str, lock_id: str, owner: str,
                now: datetime.datetime, expires: datetime.datetime) -> bool:
    result = db[collection].update_one({"_id": lock_id, "owner": owner},
                                       {"$set": {"expires_at": expires, "renewed_at": now}})
    return result.matched_count == 1


@translated()
def lease_release(db: Database, collection: str, lock_id: str, owner: str) -> None:
    db[collection].delete_one({"_id": lock_id, "owner": owner})


@translated()
def lease_holder(db: Database, collection: str, lock_id: str) -> dict[str, Any] | None:
    return db[collection].find_one({"_id": lock_id})


@translated()
def read_history(db: Database, collection: str) -> list[dict[str, Any]]:
    return list(db[collection].find({}).sort("applied_at", 1))


@translated()
def record(db: Database, collection: str, entry: dict[str, Any]) -> bool:
    """Insert a history entry keyed by migration id; False if it was recorded already."""
    try:
        db[collection].insert_one(entry)
    except DuplicateKeyError:
        return False
    return True


@translated()
def unrecord(db: Database, collection: str, migration_id: str) -> None:
    db[collection].delete_one({"_id": migration_id})


@translated()
def overwrite_checksum(db: Database, collection: str, migration_id: str, checksum: str) -> None:
    """For ``migrate repair``: accept the current definition of an applied migration."""
    db[collection].update_one({"_id": migration_id}, {"$set": {"checksum": checksum}})
