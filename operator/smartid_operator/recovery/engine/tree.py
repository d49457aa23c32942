"""What changed on the recordings volume, at a cost that follows the change, not the volume.

Runs in the recovery agent's pod (and in ``smartid-operator reindex``). No Mongo here.

A directory's mtime moves whenever an entry is created, renamed in or out, or removed in it
(POSIX; a pipeline's write-then-rename moves it too), so a **walk** stats every known directory
and lists only those whose mtime moved: its cost is one ``stat`` per directory, plus a listing
of each directory that changed. Directories are remembered (mtime, subdirectories), not files:
memory follows the number of directories. Within a listed directory, the files that can be new
are those whose ``ctime`` (moved by a write and by a rename) is not older than the directory's
mtime at its previous listing: both are the volume's own clock, so a skew between the volume's
server and this host does not matter, and "not older" keeps a file of the same tick however
coarse the timestamps.

Timestamps are coarse (a kernel tick, or a second on some servers): a directory changed in the
same tick as the listing that saw it would keep its mtime, so a directory is listed again while
its mtime is within ``settle`` of its last listing.

Entries come sorted as their full paths sort (a directory's name continues with "/"), so
the full pass can merge the tree, directory by directory, against the index in Mongo's
order of ``storage_key``.
"""

from __future__ import annotations

import os
import stat
import time
from dataclasses import dataclass, field
from pathlib import Path

from smartid_operator.recovery.engine import contract


@dataclass(frozen=True)
class File:
    name: str
    ctime_ns: int
    regular: bool


@dataclass(frozen=True)
class Listing:
    """One directory's non-hidden entries, as listed now."""

    rel: str  # relative to the storage root, "" for the root itself
    files: tuple[File, ...]
    subdirs: tuple[str, ...]  # the ones walked
    previous_ns: int | None  # when it was listed before (this process), None if never
    previous_mtime_ns: int | None  # its mtime then (the volume's clock, like a file's ctime)
    previous_tick: frozenset[tuple[str, int]]  # the files it then had of that very tick
    unwalked: tuple[str, ...] = ()  # the root's directories that are not input's

    def path(self, name: str) -> str:
        return f"{self.rel}/{name}" if self.rel else name


@dataclass
class _Dir:
    mtime_ns: int
    subdirs: tuple[str, ...]
    listed_ns: int
    digest: int  # of the files' names and ctimes: a settling re-listing that saw nothing new
    tick: frozenset[tuple[str, int]]  # (name, ctime) of its files as new as its mtime


@dataclass
class Walk:
    """What one walk did: every directory stat'ed, the changed ones listed."""

    directories: int = 0
    listings: list[Listing] = field(default_factory=list)
    started_ns: int = 0
    seconds: float = 0.0


class Tree:
    """The directories under ``root`` that hold input, remembered between walks.

    Of the root's own directories only ``top`` are walked (the spool has its own reader).
    """

    def __init__(self, root: Path, *, top: frozenset[str],
                 settle_seconds: float = 2.0) -> None:
        self.root = root
        self.top = top
        self.settle_ns = int(settle_seconds * 1e9)
        self._dirs: dict[str, _Dir] = {}

    @property
    def known(self) -> int:
        return len(self._dirs)

    def walk(self) -> Walk:
        """Stat every known directory, list the ones that changed (and new ones)."""
        result = Walk(started_ns=time.time_ns())
        clock = time.perf_counter()
        stack = [""]
        while stack:
            rel = stack.pop()
            st = self._stat(rel)
            if st is None:
                self._forget(rel)
                continue
            result.directories += 1
            known = self._dirs.get(rel)
            if known is not None and st.st_mtime_ns == known.mtime_ns \
                    and st.st_mtime_ns < known.listed_ns - self.settle_ns:
                stack += [_join(rel, d) for d in known.subdirs]
                continue
            listing = self._list(rel, st.st_mtime_ns, known)
            if listing is None:
                continue
            if known is None or _digest(listing) != known.digest:
                result.listings.append(listing)
            stack += [_join(rel, d) for d in listing.subdirs]
        result.seconds = time.perf_counter() - clock
        return result

    def list_now(self, rel: str, *, remember: bool = True) -> Listing | None:
        """One directory listed now: the full pass lists every directory this way (and the
        walks after it start from what it saw); a tracked input is looked at again."""
        st = self._stat(rel)
        return None if st is None else self._list(rel, st.st_mtime_ns, self._dirs.get(rel),
                                                  remember=remember)

    # -- internals -------------------------------------------------------------------------

    def _stat(self, rel: str) -> os.stat_result | None:
        try:
            st = os.stat(self.root / rel, follow_symlinks=False)
        except (FileNotFoundError, NotADirectoryError):
            return None
        return st if stat.S_ISDIR(st.st_mode) else None

    def _list(self, rel: str, mtime_ns: int, known: _Dir | None, *,
              remember: bool = True) -> Listing | None:
        listed_ns = time.time_ns()  # before the listing: a change after it moves the mtime
        files: list[File] = []
        subdirs: list[str] = []
        unwalked: list[str] = []
        try:
            with os.scandir(self.root / rel) as it:
                for entry in it:
                    if contract.hidden(entry.name):
                        continue
                    if entry.is_dir(follow_symlinks=False):
                        (subdirs if rel or entry.name in self.top else unwalked).append(
                            entry.name)
                        continue
                    try:
                        st = entry.stat(follow_symlinks=False)
                    except FileNotFoundError:
                        continue
                    files.append(File(entry.name, st.st_ctime_ns, stat.S_ISREG(st.st_mode)))
        except (FileNotFoundError, NotADirectoryError):
            self._forget(rel)
            return None
        # Sorted as full paths sort: a directory's entries continue with "/".
        subdirs.sort(key=lambda d: d + "/")
        files.sort(key=lambda f: f.name)
        if remember and known is not None:
            for gone in set(known.subdirs) - set(subdirs):
                self._forget(_join(rel, gone))
        listing = Listing(rel, tuple(files), tuple(subdirs),
                          known.listed_ns if known is not None else None,
                          known.mtime_ns if known is not None else None,
                          known.tick if known is not None else frozenset(),
                          tuple(sorted(unwalked)))
        if remember:
            # The files of the mtime's own tick: "not older than the mtime" would take them
            # for new at the next listing; remembering them (a few) keeps them out.
            tick = frozenset((f.name, f.ctime_ns) for f in files if f.ctime_ns >= mtime_ns)
            self._dirs[rel] = _Dir(mtime_ns, listing.subdirs, listed_ns, _digest(listing), tick)
        return listing

    def _forget(self, rel: str) -> None:
        known = self._dirs.pop(rel, None)
        if known is not None:
            for sub in known.subdirs:
                self._forget(_join(rel, sub))


def _digest(listing: Listing) -> int:
    return hash((listing.files, listing.subdirs, listing.unwalked))


def _join(rel: str, name: str) -> str:
    return f"{rel}/{name}" if rel else name
