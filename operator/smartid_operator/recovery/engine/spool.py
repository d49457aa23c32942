"""The segment spool: append-only JSON Lines files on the shared volume.

A writer appends to its own ``spool/<name>.jsonl.open``, one ``write`` and one ``fsync`` per
batch, and holds an exclusive ``flock`` on it for as long as it lives (the file appears under
that name only once the lock is held). It seals the file by renaming it to ``.jsonl``: when it
reaches Mongo again, grows past its size limit, or closes. The reindexer replays sealed files
and retires them (unlink) once every line's upsert is acknowledged; it also replays the
complete lines of live ``.open`` files (never retiring them) and seals the ``.open`` files of
dead writers, whose lock the kernel released when they died, even by SIGKILL.
"""

from __future__ import annotations

import contextlib
import datetime
import fcntl
import os
import uuid
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from smartid_operator.recovery.engine import contract
from smartid_operator.recovery.engine.contract import ContractError


class SpoolWriter:
    """One writer's spool: ``append(records)`` durably, ``seal()`` to hand the file over."""

    def __init__(self, storage: Path, writer_id: str, max_bytes: int = 64 << 20) -> None:
        self.directory = storage / contract.SPOOL
        self.writer_id = writer_id
        self.max_bytes = max_bytes
        self.path: Path | None = None
        self._fd: int | None = None
        self._size = 0

    def _open(self) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        now = datetime.datetime.now(datetime.UTC)
        name = f"seg-{now:%Y%m%dT%H%M%S%f}Z-{self.writer_id}-{uuid.uuid4().hex[:6]}"
        temp = self.directory / f"{contract.TEMP_PREFIX}tmp-{name}"
        fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_APPEND, 0o644)
        fcntl.flock(fd, fcntl.LOCK_EX)  # before the name is visible: never taken for dead
        path = self.directory / (name + contract.OPEN_SUFFIX)
        os.rename(temp, path)
        contract.fsync_dir(self.directory)
        self._fd, self.path, self._size = fd, path, 0

    def append(self, records: Sequence[Mapping[str, Any]]) -> None:
        """One line per record, written and fsynced before returning."""
        if not records:
            return
        if self._fd is None:
            self._open()
        assert self._fd is not None
        data = b"".join(contract.dumps(r) + b"\n" for r in records)
        view = memoryview(data)
        while view:
            written = os.write(self._fd, view)
            view = view[written:]
        os.fsync(self._fd)
        self._size += len(data)
        if self._size >= self.max_bytes:
            self.seal()

    @property
    def holding(self) -> bool:
        return self._fd is not None

    def seal(self) -> Path | None:
        """Rename the open file to ``.jsonl`` (ready for replay) and release it."""
        if self._fd is None or self.path is None:
            return None
        fd, path = self._fd, self.path
        sealed = path.with_name(path.name.removesuffix(contract.OPEN_SUFFIX)
                                + contract.SEALED_SUFFIX)
        try:
            os.fsync(fd)
            os.rename(path, sealed)
            contract.fsync_dir(self.directory)
        finally:
            os.close(fd)
            self._fd, self.path = None, None
        return sealed


# -- reading ------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Line:
    number: int  # 1-based
    end: int  # byte offset just after this line's newline
    record: dict[str, Any] | None
    error: ContractError | None = None


def read_lines(path: Path, *, start: int = 0, first_line: int = 1,
               live: bool = False) -> Iterator[Line]:
    """Records from byte ``start``. A last line without its newline is a crash's cut in a
    sealed file (reported), and a write in progress in a live one (left for later)."""
    with path.open("rb") as f:
        f.seek(start)
        offset, number = start, first_line
        for raw in f:
            if not raw.endswith(b"\n"):
                if not live:
                    yield Line(number, offset + len(raw), None, ContractError(
                        "truncated-line", f"{len(raw)} bytes without a newline (cut by a crash)"))
                return
            offset += len(raw)
            if raw.strip():
                try:
                    yield Line(number, offset, contract.parse_spool_line(raw[:-1]))
                except ContractError as exc:
                    yield Line(number, offset, None, exc)
            number += 1


@contextlib.contextmanager
def _writer_lock(path: Path) -> Iterator[bool | None]:
    """The writer's lock on an open spool file, if no writer holds it: True while we hold
    it, False if a writer does, None if the file is gone."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        yield None
        return
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            yield False
        else:
            yield True
    finally:
        os.close(fd)  # also drops the lock if we took it


def writer_alive(path: Path) -> bool | None:
    """Is a writer holding this open spool file? None if the file is gone."""
    with _writer_lock(path) as taken:
        return None if taken is None else not taken


def seal_orphan(path: Path) -> Path | None:
    """Seal the open file of a writer that died; None if a writer holds it or it is gone."""
    with _writer_lock(path) as taken:
        if not taken:
            return None
        sealed = path.with_name(path.name.removesuffix(contract.OPEN_SUFFIX)
                                + contract.SEALED_SUFFIX)
        try:
            os.rename(path, sealed)
        except FileNotFoundError:  # sealed by another pass meanwhile
            return None
        contract.fsync_dir(path.parent)
        return sealed


def retire(path: Path, *, rejected: bool, storage: Path) -> tuple[bool, Path | None]:
    """Remove a fully replayed sealed file, or move it to ``spool/rejected/`` if it held
    lines that could not be indexed. Returns (done by us, where it was kept): a file another
    pass retired first is simply gone."""
    try:
        if rejected:
            target = storage / contract.REJECTED / path.name
            target.parent.mkdir(parents=True, exist_ok=True)
            os.rename(path, target)
            contract.fsync_dir(path.parent)
            return True, target
        path.unlink()
    except FileNotFoundError:
        return False, None
    contract.fsync_dir(path.parent)
    return True, None


def count_lines(path: Path, start: int = 0) -> int:
    with contextlib.suppress(FileNotFoundError), path.open("rb") as f:
        f.seek(start)
        return sum(chunk.count(b"\n") for chunk in iter(lambda: f.read(1 << 20), b""))
    return 0
