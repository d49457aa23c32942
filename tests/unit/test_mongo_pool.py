"""The operator's Mongo handles: shared by URI, moved on rotation, closed when unused."""

from __future__ import annotations

import asyncio

from smartid_operator import mongo

A = "mongodb://127.0.0.1:9/?directConnection=true"
B = "mongodb://127.0.0.1:10/?directConnection=true"


def test_databases_on_one_uri_share_a_handle_and_the_last_one_out_closes_it() -> None:
    async def scenario() -> None:
        pool = mongo.Pool()
        one = await pool.handle("ns/one", A, 5)
        two = await pool.handle("ns/two", A, 5)
        assert one is two and len(pool) == 1
        assert "127.0.0.1" not in repr(one.digest)  # a digest, never the URI
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
