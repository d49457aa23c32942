"""A MongoDB connection that knows quickly when the server is gone and when it is back.

A refused TCP connect is a definitive "down" and costs microseconds, where pymongo's server
selection would wait out its timeout; so while the server is down we probe its port first and
only ask pymongo once something listens. When the server returns we open a fresh client:
the old one's monitor may take up to half a second to notice on its own.
"""

from __future__ import annotations

import contextlib
import socket
import threading
from typing import Any

import pymongo
import pymongo.database
from pymongo.errors import ConfigurationError, InvalidURI, PyMongoError
from pymongo.uri_parser import parse_uri

from smartid_operator import __version__

Database = pymongo.database.Database[dict[str, Any]]
Client = pymongo.MongoClient[dict[str, Any]]


def hosts_of(uri: str) -> list[tuple[str, int]]:
    """The seed list of a URI; empty when it cannot be known without DNS (``mongodb+srv``)."""
    try:
        return [(str(h), int(p)) for h, p in parse_uri(uri, connect_timeout=1)["nodelist"]]
    except (ConfigurationError, InvalidURI, ValueError):
        return []


def port_answers(host: str, port: int, timeout: float) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


class MongoLink:
    """``link.database()`` while ``link.available()``; ``link.lost()`` after a failure."""

    def __init__(self, uri: str, database: str, *, timeout: float = 2.0,
                 probe_timeout: float = 0.25, app: str = "recovery") -> None:
        self.uri = uri
        self.database_name = database
        self.timeout = timeout
        self.probe_timeout = probe_timeout
        self.app = app
        self.hosts = hosts_of(uri)
        self.up = False
        self._client: Client | None = None
        self._lock = threading.Lock()

    def _new_client(self) -> Client:
        ms = max(int(self.timeout * 1000), 1)
        return pymongo.MongoClient(
            self.uri, serverSelectionTimeoutMS=ms, connectTimeoutMS=ms, socketTimeoutMS=ms * 5,
            appname=f"smartid-{self.app}/{__version__}")

    def database(self) -> Database:
        with self._lock:
            if self._client is None:
                self._client = self._new_client()
            return self._client[self.database_name]

    def listening(self) -> bool:
        """Cheap: does any seed host accept a TCP connection? (True if hosts are unknown.)"""
        if not self.hosts:
            return True
        return any(port_answers(h, p, self.probe_timeout) for h, p in self.hosts)

    def available(self) -> bool:
        """Does the server answer ``ping`` now? Refused ports answer "no" at once."""
        if not self.listening():
            self.lost()
            return False
        if not self.up:
            self._reset()
        try:
            with pymongo.timeout(self.timeout):
                self.database().command("ping")
        except PyMongoError:
            self.lost()
            return False
        self.up = True
        return True

    def lost(self) -> None:
        self.up = False

    def _reset(self) -> None:
        with self._lock:
            old, self._client = self._client, None
        if old is not None:
            with contextlib.suppress(Exception):
                old.close()

    def close(self) -> None:
        self._reset()
        self.up = False
