"""Run a pod's command in its own mount namespace, its volumes mounted at their mountPaths.

The kubelet stand-in starts ``python -I mountns.py PLAN_JSON`` with the pod's environment; this
sets up the mounts and then ``exec``s the container's argv, so the pid, the process group and
the exit code are the program's own.  Standard library only: it runs isolated (``-I``).

How the view is built (all of it inside the new namespace; the host sees none of it):

1. ``unshare(CLONE_NEWNS)``, then every mount made private, so nothing propagates back.
2. A tmpfs on the pod's scratch directory ``root`` becomes the new ``/``; each entry of the host's
   ``/`` appears in it by recursive bind mount (symlinks copied), so the program sees the host's
   files, writes through to them and keeps every submount (``/proc``, ``/dev``, ``/tmp``...).
3. A mountPath whose directory is missing is created where it costs the host nothing: on the
   tmpfs, or inside a volume (as runc does).  If its parent is a host directory, that directory
   is first "exploded" the same way as ``/`` (a tmpfs over it in the namespace, its entries bound
   back), so the host never gains an empty ``/recordings`` or ``/run/secrets``.  So, as in a
   container, a new file made directly in ``/`` (or in an exploded directory) stays in the
   namespace; writes anywhere else reach the host's files.
4. Each volume is bind-mounted at its mountPath (read-only if asked); paths are resolved inside
   the new root, symlinks included (``/var/run`` -> ``/run``), as a container runtime does.
   Then the "image" (the interpreter, the venv and the project, which stand in for the image's
   root filesystem) is bound back wherever a volume hid it, e.g. an emptyDir on ``/tmp``
   while the project is checked out under ``/tmp``.
5. ``chroot`` into the new root, ``chdir`` to the working directory, ``exec``.

Exit code 128 and a message on stderr (the pod's log) mean the mounts could not be set up, as a
container runtime's start error does.  ``--probe`` tells the kubelet whether this works here.
"""

from __future__ import annotations

import ctypes
import json
import os
import sys
import tempfile
from typing import Any

CLONE_NEWNS = 0x00020000
MS_RDONLY, MS_NOSUID, MS_NODEV = 0x1, 0x2, 0x4
MS_REMOUNT, MS_BIND, MS_REC, MS_PRIVATE = 0x20, 0x1000, 0x4000, 0x40000
MNT_DETACH = 0x2
START_ERROR = 128

_libc = ctypes.CDLL(None, use_errno=True)


def _check(result: int, what: str) -> None:
    if result != 0:
        errno = ctypes.get_errno()
        raise OSError(errno, f"{what}: {os.strerror(errno)}")


def mount(source: str | None, target: str, fstype: str | None, flags: int,
          data: str | None = None) -> None:
    _check(_libc.mount(None if source is None else source.encode(), target.encode(),
                       None if fstype is None else fstype.encode(), ctypes.c_ulong(flags),
                       None if data is None else data.encode()),
           f"mount {source or fstype} on {target}")


def _join(root: str, path: str) -> str:
    return root if path == "/" else root + path


class NewRoot:
    """The namespace's new ``/`` under ``root`` and what each of its mounts is."""

    def __init__(self, root: str) -> None:
        self.root = root
        # container path -> (kind, host path, read-only); kind is "tmpfs" (ours: / and each
        # exploded directory), "host" (a host entry bound back) or "volume".
        self.mounts: dict[str, tuple[str, str, bool]] = {}

    def mirror(self, path: str, host: str) -> None:
        """A tmpfs at ``path`` holding the entries of host directory ``host``, bound back."""
        mount("tmpfs", _join(self.root, path), "tmpfs", MS_NOSUID | MS_NODEV, "mode=755")
        self.mounts[path] = ("tmpfs", host, False)
        for entry in os.scandir(host):
            child = path.rstrip("/") + "/" + entry.name
            target = _join(self.root, child)
            if entry.is_symlink():
                os.symlink(os.readlink(entry.path), target)
                continue
            if entry.is_dir(follow_symlinks=False):
                os.mkdir(target)
            else:
                open(target, "w").close()
            try:
                mount(entry.path, target, None, MS_BIND | MS_REC)
            except OSError as exc:  # an entry we may not bind (rare): leave it out
                print(f"smartid-testbed: not mirrored: {exc}", file=sys.stderr)
                continue
            self.mounts[child] = ("host", entry.path, False)
        # Binding the host directory that holds our scratch root (/tmp, say) copied the new
        # root into itself at root+root; detach the copy (EINVAL when there is none).
        _libc.umount2((self.root + self.root).encode(), MNT_DETACH)

    def resolve(self, path: str) -> str:
        """``path`` with every symlink followed inside the new root; the tail may not exist."""
        parts = [p for p in path.split("/") if p]
        done: list[str] = []
        hops = 0
        while parts:
            part = parts.pop(0)
            if part == ".":
                continue
            if part == "..":
                if done:
                    done.pop()
                continue
            here = _join(self.root, "/" + "/".join([*done, part]))
            if os.path.islink(here):
                hops += 1
                if hops > 40:
                    raise OSError(f"too many levels of symbolic links in {path}")
                link = os.readlink(here)
                if link.startswith("/"):
                    done = []
                parts = [p for p in link.split("/") if p] + parts
                continue
            done.append(part)
        return "/" + "/".join(done)

    def _owner(self, path: str) -> tuple[str, str, str]:
        """The deepest mount holding ``path``: (its container path, kind, host path)."""
        best = "/"
        for mounted in self.mounts:
            if _under(path, mounted) and len(mounted) > len(best):
                best = mounted
        kind, host, _ = self.mounts[best]
        return best, kind, host

    def _explode(self, path: str, host: str) -> None:
        """Shadow host directory ``path`` with a tmpfs of its entries, so that a mount point
        can be made in it; mounts already below it are hidden by that, so they are redone."""
        below = {p: m for p, m in self.mounts.items() if p != path and _under(p, path)}
        for p in below:
            del self.mounts[p]
        self.mirror(path, host)
        for p, (kind, source, read_only) in sorted(below.items(), key=lambda i: _depth(i[0])):
            if kind == "volume":
                self.bind(source, p, read_only)

    def make_mount_point(self, path: str, directory: bool) -> str:
        """Create the missing parts of ``path`` without touching any host directory."""
        parts = [p for p in path.split("/") if p]
        for depth in range(1, len(parts) + 1):
            current = "/" + "/".join(parts[:depth])
            full = _join(self.root, current)
            if os.path.lexists(full):
                continue
            parent = "/" + "/".join(parts[:depth - 1])
            mounted, kind, host = self._owner(parent)
            if kind == "host":
                self._explode(parent, host + parent[len(mounted):])
            if depth < len(parts) or directory:
                os.mkdir(full)
            else:
                open(full, "w").close()
        return _join(self.root, path)

    def bind(self, source: str, path: str, read_only: bool) -> None:
        resolved = self.resolve(path)
        if resolved == "/":
            raise OSError(f"cannot mount {source} over /")
        target = self.make_mount_point(resolved, os.path.isdir(source))
        mount(source, target, None, MS_BIND | MS_REC)
        if read_only:
            mount(None, target, None, MS_BIND | MS_REMOUNT | MS_RDONLY)
        self.mounts[resolved] = ("volume", source, read_only)


def _under(path: str, parent: str) -> bool:
    return parent == "/" or path == parent or path.startswith(parent + "/")


def _depth(path: str) -> int:
    return len([p for p in path.split("/") if p])


def enter(plan: dict[str, Any]) -> NewRoot:
    """The new namespace with the plan's mounts; the caller then chroots or exits."""
    _check(_libc.unshare(CLONE_NEWNS), "unshare(CLONE_NEWNS)")
    # Before anything else: no mount made below may propagate to the host's namespace.
    mount(None, "/", None, MS_REC | MS_PRIVATE)
    new_root = NewRoot(plan["root"])
    new_root.mirror("/", "/")
    # Parents before children, as container runtimes order them.
    for source, target, read_only in sorted(plan["mounts"], key=lambda m: _depth(m[1])):
        new_root.bind(source, target, bool(read_only))
    # The image's own files (the interpreter, the venv, the project's sources) are the
    # container's root filesystem: a volume mounted over their parent (an emptyDir on /tmp
    # while the project lives under /tmp) must not hide them, as it would not in an image.
    shown: list[str] = []
    for path in sorted(plan.get("image", []), key=_depth):
        if any(_under(path, done) for done in shown) or not os.path.isdir(path):
            continue
        if new_root._owner(new_root.resolve(path))[1] != "host":
            new_root.bind(path, path, False)
            shown.append(path)
    return new_root


def probe() -> bool:
    """Can this process build a namespace here?  Done in a child so the caller stays put."""
    with tempfile.TemporaryDirectory(prefix="smartid-mountns-") as scratch:
        os.mkdir(f"{scratch}/root")
        os.mkdir(f"{scratch}/volume")
        open(f"{scratch}/volume/ok", "w").close()
        pid = os.fork()
        if pid == 0:  # pragma: no cover - the child
            code = 1
            try:
                new_root = enter({"root": f"{scratch}/root",
                                  "mounts": [[f"{scratch}/volume", "/smartid-probe", True]]})
                os.chroot(new_root.root)
                code = 0 if os.path.exists("/smartid-probe/ok") else 2
            except BaseException as exc:
                print(f"smartid-testbed: mount namespaces unavailable: {exc}", file=sys.stderr)
            os._exit(code)
        _, status = os.waitpid(pid, 0)
        return os.waitstatus_to_exitcode(status) == 0


def main(argv: list[str]) -> int:
    if argv[1:] == ["--probe"]:
        return 0 if probe() else 1
    plan = json.loads(argv[1])
    try:
        new_root = enter(plan)
        os.chroot(new_root.root)
        try:
            os.chdir(plan.get("cwd") or "/")
        except OSError:
            os.chdir("/")
    except OSError as exc:
        print(f"smartid-testbed: cannot set up the pod's mounts: {exc}", file=sys.stderr)
        return START_ERROR
    command = plan["argv"]
    try:
        os.execvp(command[0], command)
    except OSError as exc:
        print(f"smartid-testbed: cannot run {command[0]!r}: {exc}", file=sys.stderr)
        return START_ERROR
    return START_ERROR  # not reached


if __name__ == "__main__":
    sys.exit(main(sys.argv))
