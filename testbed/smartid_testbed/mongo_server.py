"""The MongoDB wire-protocol stand-in (FerretDB on SQLite) as a process of its own: what the
kubelet stand-in runs for mongo pods, and what engine-level tests and benchmarks talk to."""

from __future__ import annotations

import time
from pathlib import Path
from types import TracebackType
from typing import Any

import pymongo

from smartid_testbed import binaries
from smartid_testbed.processes import Child, free_port


def ferretdb_argv(host: str, port: int, data: Path) -> list[str]:
    return [str(binaries.find("ferretdb")), f"--listen-addr={host}:{port}",
            f"--sqlite-url=file:{data}/", "--log-level=error"]


def answers_ping(host: str, port: int, timeout_ms: int = 1000) -> bool:
    with pymongo.MongoClient[dict[str, Any]](host, port, serverSelectionTimeoutMS=timeout_ms,
                             connectTimeoutMS=timeout_ms, directConnection=True) as mc:
        try:
            return bool(mc.admin.command("ping").get("ok"))
        except pymongo.errors.PyMongoError:
            return False


class MongoServer:
    """``with MongoServer(tmp_path) as server: server.uri``"""

    def __init__(self, data: Path, host: str = "127.0.0.1", port: int | None = None) -> None:
        self.data = data
        self.host = host
        self.port = port or free_port(host)
        self.child: Child | None = None

    @property
    def uri(self) -> str:
        return f"mongodb://{self.host}:{self.port}/"

    def start(self) -> MongoServer:
        self.data.mkdir(parents=True, exist_ok=True)
        self.child = Child("ferretdb", ferretdb_argv(self.host, self.port, self.data),
                           self.data.parent / f"{self.data.name}-ferretdb.log")
        deadline = time.monotonic() + 30
        while not answers_ping(self.host, self.port, 500):
            if not self.child.alive() or time.monotonic() > deadline:
                raise RuntimeError(f"FerretDB did not start:\n{self.child.tail()}")
            time.sleep(0.05)
        return self

    def stop(self) -> None:
        if self.child is not None:
            self.child.stop()
            self.child = None

    def __enter__(self) -> MongoServer:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()
