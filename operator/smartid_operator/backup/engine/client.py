"""The backup commands' own MongoDB client: one per command, short-lived, in a Job's process.

(The operator's pooled clients live in ``smartid_operator.mongo``; a backup run is another
process with another lifetime.) The URI comes from the environment and is never logged.
"""

from __future__ import annotations

import os
from typing import Any, cast

import pymongo
from bson.codec_options import CodecOptions
from bson.raw_bson import RawBSONDocument
from pymongo.collection import Collection
from pymongo.errors import ConfigurationError, InvalidURI

from smartid_operator import __version__

Client = pymongo.MongoClient[dict[str, Any]]
# Documents stay raw BSON bytes end to end: nothing is decoded, so a dump's bytes are the
# server's bytes and the memory per document is its size.
RAW: CodecOptions[RawBSONDocument] = CodecOptions(document_class=RawBSONDocument)
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


def connect(uri: str, timeout_seconds: float | None = None) -> Client:
    timeout_ms = int((timeout_seconds or timeout_from_env()) * 1000)
    try:
        return pymongo.MongoClient(uri, serverSelectionTimeoutMS=timeout_ms,
                                   connectTimeoutMS=timeout_ms,
                                   appname=f"smartid-backup/{__version__}")
    except (InvalidURI, ConfigurationError, ValueError) as exc:
        # pymongo's message names the problem, not the URI's contents.
        raise BackupError(f"the MongoDB URI is invalid: {exc}") from None


def raw_collection(client: Client, database: str, name: str) -> Collection[RawBSONDocument]:
    # pymongo types a collection by its database's document class, not by the codec options.
    return cast("Collection[RawBSONDocument]",
                client[database].get_collection(name, codec_options=RAW))


def server_version(client: Client) -> str:
    return str(client.admin.command("buildInfo").get("version", "unknown"))


def user_collections(client: Client, database: str) -> list[str]:
    """Collection names a restore would collide with (``system.*`` are the server's)."""
    return sorted(n for n in client[database].list_collection_names()
                  if not n.startswith("system."))
