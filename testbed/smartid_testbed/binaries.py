"""Find or build the test bed's binaries: the Kubernetes control plane, etcd and FerretDB.

They are built from pinned upstream Go modules by the helper modules in ``testbed/go``
(committed go.mod + go.sum), once, into a cache directory that later runs on the same
machine reuse.  ``KUBEBUILDER_ASSETS`` (the envtest convention) wins when it holds a
ready binary of the same name.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

KUBERNETES_VERSION = "v1.34.4"
ETCD_VERSION = "v3.6.4"
FERRETDB_VERSION = "v1.24.2"
HELM_VERSION = "v4.3.2"  # the newest v4 the Go module proxy serves (tests of charts/)

_VERSION_PKG = "k8s.io/component-base/version"
_KUBE_LDFLAGS = (
    f"-X {_VERSION_PKG}.gitVersion={KUBERNETES_VERSION}",
    f"-X {_VERSION_PKG}.gitMajor=1",
    f"-X {_VERSION_PKG}.gitMinor=34",
    f"-X {_VERSION_PKG}.gitTreeState=clean",
)


class BuildError(RuntimeError):
    """A binary could not be found nor built."""


@dataclass(frozen=True)
class Tool:
    name: str
    module: str  # helper module directory under testbed/go
    package: str  # Go package (a main package) to build
    version: str
    ldflags: tuple[str, ...] = ()


TOOLS: dict[str, Tool] = {
    t.name: t
    for t in (
        Tool("etcd", "etcd", ".", ETCD_VERSION),
        *(
            Tool(name, "kube", f"k8s.io/kubernetes/cmd/{name}", KUBERNETES_VERSION, _KUBE_LDFLAGS)
            for name in ("kube-apiserver", "kube-controller-manager", "kube-scheduler", "kubectl")
        ),
        Tool("ferretdb", "ferretdb", ".", FERRETDB_VERSION),
        Tool("helm", "helm", "helm.sh/helm/v4/cmd/helm", HELM_VERSION,
             (f"-X helm.sh/helm/v4/internal/version.version={HELM_VERSION}",
              "-X helm.sh/helm/v4/internal/version.gitTreeState=clean")),
    )
}


def repo_root() -> Path:
    return Path(__file__).resolve().parents[2]


def go_modules_dir() -> Path:
    return Path(os.environ.get("SMARTID_TESTBED_GO", repo_root() / "testbed" / "go"))


def cache_dir() -> Path:
    if env := os.environ.get("SMARTID_TESTBED_CACHE"):
        return Path(env)
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "smartid-testbed"


def build_key(tool: Tool) -> str:
    """A digest of everything that decides the binary: the helper module's files and flags."""
    h = hashlib.sha256()
    module = go_modules_dir() / tool.module
    for path in sorted(module.glob("*")):
        if path.suffix in {".mod", ".sum", ".go"}:
            h.update(path.name.encode())
            h.update(path.read_bytes())
    h.update(repr((tool.package, tool.ldflags)).encode())
    return h.hexdigest()[:12]


def cached_path(tool: Tool) -> Path:
    return cache_dir() / "bin" / f"{tool.name}-{tool.version}-{build_key(tool)}"


def _from_assets(name: str) -> Path | None:
    assets = os.environ.get("KUBEBUILDER_ASSETS")
    if not assets:
        return None
    candidate = Path(assets) / name
    return candidate if candidate.is_file() and os.access(candidate, os.X_OK) else None


def find(name: str, *, build: bool = True) -> Path:
    """Path to a ready binary ``name``; build it into the cache first if needed."""
    if (assets := _from_assets(name)) is not None:
        return assets
    tool = TOOLS[name]
    target = cached_path(tool)
    if target.is_file():
        return target
    if not build:
        raise BuildError(f"{name} is not built yet (expected {target})")
    with _lock(target.parent / ".build.lock"):
        if not target.is_file():  # another process may have built it while we waited
            _go_build(tool, target)
    return target


def ensure_all(names: tuple[str, ...] = tuple(TOOLS)) -> dict[str, Path]:
    return {name: find(name) for name in names}


@contextmanager
def _lock(path: Path) -> Iterator[None]:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _go_build(tool: Tool, target: Path) -> None:
    go = shutil.which("go")
    if go is None:
        raise BuildError("the Go toolchain ('go') is not on PATH; it builds the test bed")
    partial = target.with_name(target.name + ".partial")
    cmd = [go, "build", "-v", "-buildvcs=false",
           "-ldflags", " ".join(("-s", "-w", *tool.ldflags)), "-o", str(partial), tool.package]
    # Go keeps its module and build caches under $HOME; later runs on this machine reuse them.
    env = {"HOME": str(Path.home()), **os.environ, "CGO_ENABLED": "0"}
    _say(f"building {tool.name} {tool.version} from Go modules (first run only; "
         f"kube-apiserver takes ~3 min cold on 2 cores) ...")
    started = time.monotonic()
    proc = subprocess.Popen(cmd, cwd=go_modules_dir() / tool.module, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    assert proc.stdout is not None
    compiled = 0
    tail: list[str] = []
    done = threading.Event()

    def heartbeat() -> None:
        while not done.wait(15):
            _say(f"  {tool.name}: {compiled} packages compiled, "
                 f"{time.monotonic() - started:.0f} s")

    beat = threading.Thread(target=heartbeat, daemon=True)
    beat.start()
    for line in proc.stdout:
        compiled += 1
        tail = [*tail[-30:], line.rstrip()]
    rc = proc.wait()
    done.set()
    if rc != 0:
        partial.unlink(missing_ok=True)
        raise BuildError(f"go build of {tool.name} failed (exit {rc}):\n" + "\n".join(tail))
    partial.rename(target)
    _say(f"built {tool.name} in {time.monotonic() - started:.0f} s -> {target}")


def _say(message: str) -> None:
    print(f"[smartid-testbed] {message}", file=sys.stderr, flush=True)
