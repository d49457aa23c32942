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

from smartid_operator import mongo
from smartid_operator.errors import ConfigError
from smartid_operator.mongo import Client, Database


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
        self.hosts = mongo.hosts(uri)
        self.up = False
        self._client: Client | None = None
        self._lock = threading.Lock()

    def _new_client(self) -> Client:
        return mongo.connect(self.uri, self.timeout, app=self.app,
                             socket_timeout_seconds=self.timeout * 5)

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
            with mongo.translated(self.timeout):
                self.database().command("ping")
        except (mongo.MongoError, ConfigError):  # ConfigError: a URI the driver cannot parse
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
