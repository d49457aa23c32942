"""The Mongo seam: handles shared by URI, moved on rotation, closed when unused, holding no
URI; driver errors translated into ours (the cluster tier meets the real ones)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from pymongo.errors import (
    AutoReconnect,
    ConfigurationError,
    DuplicateKeyError,
    NetworkTimeout,
    OperationFailure,
    PyMongoError,
    ServerSelectionTimeoutError,
)

from smartid_operator import mongo
from smartid_operator.errors import ConfigError

A = "mongodb://127.0.0.1:9/?directConnection=true"
B = "mongodb://127.0.0.1:10/?directConnection=true"
SECRET = "mongodb://smartid:pa55-w0rd@127.0.0.1:9/?directConnection=true"


def test_databases_on_one_uri_share_a_handle_and_the_last_one_out_closes_it() -> None:
    async def scenario() -> None:
        pool = mongo.Pool()
        one = await pool.handle("ns/one", A, 5)
        two = await pool.handle("ns/two", A, 5)
        assert one is two and len(pool) == 1
        rotated = await pool.handle("ns/one", B, 5)  # its Secret now names another server
        assert rotated is not one and len(pool) == 2
        await pool.forget("ns/two")  # A has no user left: closed and gone
        assert len(pool) == 1
        one.stale = False
        rotated.stale = True  # a failed check: the next pass gets a fresh handle
        fresh = await pool.handle("ns/one", B, 5)
        assert fresh is not rotated and len(pool) == 1
        await pool.close()
        assert len(pool) == 0

    asyncio.run(scenario())


def _held(value: Any) -> list[str]:
    """What a value keeps, as text: itself, and what a function's closure holds."""
    cells = getattr(value, "__closure__", None) or ()
    return [repr(value), *(repr(cell.cell_contents) for cell in cells)]


def test_a_handle_keeps_the_uri_digest_never_the_uri() -> None:
    async def scenario() -> None:
        pool = mongo.Pool()
        handle = await pool.handle("ns/one", SECRET, 5)
        assert handle.digest == mongo.digest(SECRET)
        assert "pa55-w0rd" not in repr(handle)
        # Our fields (the driver's clients aside, which must hold it to connect) keep none
        # of it, directly or in a closure.
        ours = [v for v in vars(handle).values()
                if not type(v).__module__.startswith("pymongo.")]
        assert not [text for v in ours for text in _held(v) if "pa55-w0rd" in text]
        await pool.close()

    asyncio.run(scenario())


@pytest.mark.parametrize(("driver", "ours", "says"), [
    (ServerSelectionTimeoutError("127.0.0.1:9: [Errno 111] Connection refused, Timeout: 5s"),
     mongo.Unanswered, "127.0.0.1:9: [Errno 111] Connection refused"),
    (AutoReconnect("connection closed"), mongo.Unanswered, "connection closed"),
    (NetworkTimeout("timed out"), mongo.Unanswered, "timed out"),
    (OperationFailure("Authentication failed.", code=18), mongo.Refused,
     "Authentication failed."),
    (OperationFailure('Unsupported authentication mechanism "SCRAM-SHA-256"', code=334),
     mongo.Refused, "Unsupported authentication mechanism"),
    (OperationFailure("not authorized on smartid to execute command", code=13), mongo.Refused,
     "not authorized"),
    (ConfigurationError("Unknown authentication mechanism: X"), mongo.Refused, "Unknown"),
    (OperationFailure("cannot create index", code=67), mongo.MongoError, "cannot create index"),
    (DuplicateKeyError("E11000 duplicate key"), mongo.MongoError, "E11000"),
])
def test_driver_errors_leave_the_seam_as_ours(driver: PyMongoError, ours: type[Exception],
                                              says: str) -> None:
    with pytest.raises(mongo.MongoError) as caught, mongo.translated():
        raise driver
    assert type(caught.value) is ours
    assert says in str(caught.value) and "Timeout:" not in str(caught.value)
    assert caught.value.__cause__ is driver  # the driver's detail stays on the chain, for logs


def test_every_seam_function_translates(monkeypatch: pytest.MonkeyPatch) -> None:
    """The migration engine's calls, on a database whose server refuses the credentials."""
    class Refusing:
        def __getitem__(self, name: str) -> Refusing:
            return self

        def __getattr__(self, name: str) -> Any:
            def call(*args: Any, **kwargs: Any) -> Any:
                raise OperationFailure("Authentication failed.", code=18)
            return call

    db: Any = Refusing()
    calls = [lambda: mongo.list_collections(db), lambda: mongo.list_indexes(db, "c"),
             lambda: mongo.create_collection(db, "c"),
             lambda: mongo.create_index(db, "c", [("a", 1)], "a_1", {}),
             lambda: mongo.drop_index(db, "c", "a_1"),
             lambda: mongo.set_validator(db, "c", {}, "off", "error"),
             lambda: mongo.count_failing(db, "c", {}),
             lambda: mongo.lease_acquire(db, "l", "x", "me", None, None),  # type: ignore[arg-type]
             lambda: mongo.lease_renew(db, "l", "x", "me", None, None),  # type: ignore[arg-type]
             lambda: mongo.lease_release(db, "l", "x", "me"),
             lambda: mongo.lease_holder(db, "l", "x"), lambda: mongo.read_history(db, "h"),
             lambda: mongo.record(db, "h", {}), lambda: mongo.unrecord(db, "h", "m"),
             lambda: mongo.overwrite_checksum(db, "h", "m", "sha")]
    for call in calls:
        with pytest.raises(mongo.Refused):
            call()


def test_a_uri_the_driver_cannot_parse_is_a_config_error_naming_it() -> None:
    with pytest.raises(ConfigError) as caught:
        mongo.client_for("mongodb://[::1")
    assert caught.value.reason == "InvalidURI"
    assert caught.value.message.startswith("the MongoDB URI is invalid: ")


def test_a_refused_port_is_an_unanswered_check_not_a_refusal() -> None:
    async def scenario() -> mongo.Health:
        pool = mongo.Pool()
        try:
            return await mongo.check(await pool.handle("ns/one", A, 1))
        finally:
            await pool.close()

    health = asyncio.run(scenario())
    assert not health.reachable and health.failure == "unanswered"
    assert health.error == "connection refused by 127.0.0.1:9"
