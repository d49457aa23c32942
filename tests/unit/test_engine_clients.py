"""The engines' Mongo clients come from the seam: what fails in them raises our errors, never
the driver's (a closed port on this machine, no server needed)."""

from __future__ import annotations

import time

import pytest

from smartid_operator import mongo
from smartid_operator.backup.engine.client import BackupError, connect, server_version
from smartid_operator.recovery.engine.link import MongoLink

CLOSED = "mongodb://127.0.0.1:9/smartid"  # the discard port: nothing listens


def test_the_backup_client_raises_our_errors_not_the_drivers() -> None:
    with pytest.raises(mongo.Unanswered, match="refused"), connect(CLOSED, 0.5) as client:
        server_version(client)
    with pytest.raises(BackupError, match="the MongoDB URI is invalid"), \
            connect("mongodb://a:b@:x/smartid", 0.5):
        pass


def test_a_bounded_request_ends_within_its_bound_and_is_translated() -> None:
    client = mongo.connect(CLOSED, 10, app="test")  # the client alone would wait 10 s
    started = time.monotonic()
    with client, pytest.raises(mongo.Unanswered), mongo.translated(0.3):
        client.admin.command("ping")
    assert time.monotonic() - started < 3


def test_the_recovery_link_says_down_for_a_closed_port_or_a_bad_uri() -> None:
    for uri in (CLOSED, "mongodb://a:b@:x/smartid"):
        link = MongoLink(uri, "smartid", timeout=0.3, probe_timeout=0.1)
        link.hosts = []  # skip the port probe: the driver itself must answer "down"
        assert link.available() is False and not link.up
        link.close()
