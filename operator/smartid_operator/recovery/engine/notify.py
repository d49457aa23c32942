"""When to walk: the kernel's word that something under the storage root changed (inotify,
through watchdog). Runs in the recovery agent's pod.

inotify reports what this kernel did: writes by processes on the agent's node, to a local,
hostPath or block volume (ext4, xfs, tmpfs, a cloud disk). Writes made by another node to a
network volume (NFS, CephFS, SMB, EFS) raise no event here; for those the agent's periodic
walk is the signal. So events only make walks come sooner: what changed is always the walk's
finding (``tree.Tree``), never the events' (a lost or overflowed event costs a few seconds,
never a recording).
"""

from __future__ import annotations

import logging
import threading
import warnings
from pathlib import Path

from watchdog.events import FileSystemEvent, FileSystemEventHandler
from watchdog.observers.inotify import InotifyObserver

from smartid_operator.recovery.engine import contract

log = logging.getLogger(__name__)
# watchdog warns when a directory is created again at a path it watched before (a pipeline's
# minute directory, a test's tree): it replaces the watch, which is what we want.
warnings.filterwarnings("ignore", message="Callback with id .* already exists",
                        category=RuntimeWarning)


class _Flag(FileSystemEventHandler):
    def __init__(self, spool: str) -> None:
        self.spool = spool
        self.event = threading.Event()

    def on_any_event(self, event: FileSystemEvent) -> None:
        if event.event_type in ("opened", "closed_no_write") or (
                event.is_directory and event.event_type == "modified"):
            return  # a directory's "modified" echoes the event of the entry within
        path = str(event.src_path)
        in_flight = contract.hidden(Path(path).name) and event.event_type != "moved"
        if path.startswith(self.spool) or in_flight:
            return  # the spool has its own watch; a hidden name is a write in flight
        self.event.set()


class Notifier:
    """Set when anything under the root changed since the last ``changed()``."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self._flag = _Flag(str(root / contract.SPOOL))
        self._observer: InotifyObserver | None = None

    def start(self) -> bool:
        """Watch the whole tree; False (and the walk alone) where inotify cannot."""
        try:
            observer = InotifyObserver()
            observer.schedule(self._flag, str(self.root), recursive=True)
            observer.start()
        except (OSError, RuntimeError) as exc:  # no inotify, or out of watches
            log.warning("no inotify on %s (%s): change is found by walking alone", self.root,
                        exc)
            return False
        self._observer = observer
        return True

    @property
    def active(self) -> bool:
        return self._observer is not None and self._observer.is_alive()

    def changed(self) -> bool:
        if self._flag.event.is_set():
            self._flag.event.clear()
            return True
        return False

    def stop(self) -> None:
        if self._observer is not None:
            self._observer.stop()
            self._observer.join(timeout=5)
            self._observer = None
