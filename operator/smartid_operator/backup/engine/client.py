"""The backup commands' own MongoDB client: one per command, short-lived, in a Job's process,
from ``smartid_operator.mongo`` (whose errors it raises). The URI comes from the environment
and is never logged. Documents stay raw BSON bytes end to end (``mongo.raw_collection``):
nothing is decoded, so a dump's bytes are the server's bytes and the memory per document is
its size.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator

from smartid_operator import mongo
from smartid_operator.errors import ConfigError
from smartid_operator.mongo import Client

URI_ENV = "SMARTID_MONGO_URI"
TIMEOUT_ENV = "SMARTID_MONGO_CONNECT_TIMEOUT_SECONDS"


class BackupError(Exception):
    """A backup, verification or restore cannot go on; the message says why."""


def uri_from_env() -> str:
    uri = os.environ.get(URI_ENV, "")
    if not uri:
        raise BackupError(f"${URI_ENV} is not set (the MongoDB URI is read from the environment "
                          f"only, never from arguments)")
    return uri


def timeout_from_env() -> float:
    try:
        return float(os.environ.get(TIMEOUT_ENV, "10"))
    except ValueError:
        raise BackupError(f"${TIMEOUT_ENV} must be a number of seconds") from None


@contextlib.contextmanager
def connect(uri: str, timeout_seconds: float | None = None) -> Iterator[Client]:
    """A client for one command's work, closed after it; what fails inside raises
    ``mongo.MongoError`` (``Unanswered``: no verdict on a dump), a bad URI ``BackupError``."""
    try:
        client = mongo.connect(uri, timeout_seconds or timeout_from_env(), app="backup")
    except ConfigError as exc:  # the driver's message names the problem, not the URI
        raise BackupError(exc.message) from None
    with client, mongo.translated():
        yield client


def server_version(client: Client) -> str:
    return str(client.admin.command("buildInfo").get("version", "unknown"))


def user_collections(client: Client, database: str) -> list[str]:
    """Collection names a restore would collide with (``system.*`` are the server's)."""
    return sorted(n for n in client[database].list_collection_names()
                  if not n.startswith("system."))
