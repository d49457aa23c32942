"""The operator's one seam for MongoDB I/O."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from typing import Any

import pymongo
from pymongo.errors import ConfigurationError, InvalidURI, PyMongoError

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
    text = str(exc).split(", Timeout:")[0]
    return text if len(text) <= 300 else text[:297] + "..."


def close_all() -> None:
    with _lock:
        for mc in _clients.values():
            mc.close()
        _clients.clear()
