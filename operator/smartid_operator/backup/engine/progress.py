"""Progress lines on long work: at most one every few seconds per collection, plus one at the
end of each, on stderr so stdout stays the command's result."""

from __future__ import annotations

import sys
import time
from typing import Protocol, TextIO


class Progress(Protocol):
    def update(self, action: str, namespace: str, done: int, total: int | None,
               nbytes: int) -> None:
        """``done`` documents (``nbytes`` BSON bytes) of ``total`` (an estimate, or None)."""

    def finished(self, action: str, namespace: str, done: int, nbytes: int) -> None: ...


class Quiet:
    def update(self, action: str, namespace: str, done: int, total: int | None,
               nbytes: int) -> None:
        pass

    def finished(self, action: str, namespace: str, done: int, nbytes: int) -> None:
        pass


class Lines:
    def __init__(self, out: TextIO = sys.stderr, every_seconds: float = 5.0) -> None:
        self.out = out
        self.every = every_seconds
        self.started: dict[str, float] = {}
        self.last: dict[str, float] = {}

    def _rate(self, key: str, done: int) -> str:
        elapsed = time.monotonic() - self.started.get(key, time.monotonic())
        return f"{done / elapsed:,.0f} docs/s" if elapsed > 0 else "-"

    def update(self, action: str, namespace: str, done: int, total: int | None,
               nbytes: int) -> None:
        key = f"{action} {namespace}"
        now = time.monotonic()
        self.started.setdefault(key, now)
        if now - self.last.get(key, self.started[key]) < self.every:
            return
        self.last[key] = now
        share = f" ({100 * done / total:.0f}%)" if total else ""
        of = f"/{total:,}" if total else ""
        print(f"{action} {namespace}: {done:,}{of} documents{share}, {nbytes / 1e6:,.1f} MB, "
              f"{self._rate(key, done)}", file=self.out, flush=True)

    def finished(self, action: str, namespace: str, done: int, nbytes: int) -> None:
        key = f"{action} {namespace}"
        self.started.setdefault(key, time.monotonic())
        print(f"{action} {namespace}: done, {done:,} documents, {nbytes / 1e6:,.1f} MB, "
              f"{self._rate(key, done)}", file=self.out, flush=True)
