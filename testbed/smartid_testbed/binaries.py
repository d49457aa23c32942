"""Find or build the test bed's binaries: the Kubernetes control plane, etcd, FerretDB, and
Prometheus with promtool (the alert rules' tests and a real Prometheus scraping the operator).

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
PROMETHEUS_VERSION = "v0.316.0"  # the Go module's tag of Prometheus 3.16.0

_VERSION_PKG = "k8s.io/component-base/version"
_KUBE_LDFLAGS = (
    f"-X {_VERSION_PKG}.gitVersion={KUBERNETES_VERSION}",
    f"-X {_VERSION_PKG}.gitMajor=1",
    f"-X {_VERSION_PKG}.gitMinor=34",
    f"-X {_VERSION_PKG}.gitTreeState=clean",
)


_PROM_LDFLAGS = (
    "-X github.com/prometheus/common/version.Version=3.16.0",
    "-X github.com/prometheus/common/version.Branch=v3.16.0",
)
# Without the remote service discoveries (cloud providers, Consul, Kubernetes, ...): the test
# bed's Prometheus reads file_sd; 1,284 packages to compile instead of 1,527.
_PROM_TAGS = ("remove_all_sd",)


class BuildError(RuntimeError):
    """A binary could not be found nor built."""


@dataclass(frozen=True)
class Tool:
    name: str
    module: str  # helper module directory under testbed/go
    package: str  # Go package (a main package) to build
    version: str
    ldflags: tuple[str, ...] = ()
    tags: tuple[str, ...] = ()


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
        *(
            Tool(name, "prometheus", f"github.com/prometheus/prometheus/cmd/{name}",
                 PROMETHEUS_VERSION, _PROM_LDFLAGS, _PROM_TAGS)
            for name in ("prometheus", "promtool")
        ),
    )
}
# Tools of these helper modules are built by one `go build`, sharing the compiled packages.
BUILT_TOGETHER = frozenset({"prometheus"})


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
    # Tags only where there are some: the other tools keep the keys (and caches) they had.
    h.update(repr((tool.package, tool.ldflags, *((tool.tags,) if tool.tags else ()))).encode())
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
            group = [t for t in TOOLS.values() if t.module == tool.module] \
                if tool.module in BUILT_TOGETHER else [tool]
            _go_build([t for t in group if not cached_path(t).is_file()])
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


def _go_build(tools: list[Tool]) -> None:
    """Build ``tools`` (one helper module, the same flags) with one ``go build``."""
    go = shutil.which("go")
    if go is None:
        raise BuildError("the Go toolchain ('go') is not on PATH; it builds the test bed")
    tool = tools[0]
    name = "+".join(t.name for t in tools)
    target = cached_path(tool)
    partial = target.with_name(target.name + ".partial")
    if len(tools) > 1:  # -o names a directory: each command lands under its own name
        shutil.rmtree(partial, ignore_errors=True)
        partial.mkdir(parents=True)
    cmd = [go, "build", "-v", "-buildvcs=false", "-tags", ",".join(tool.tags),
           "-ldflags", " ".join(("-s", "-w", *tool.ldflags)),
           "-o", str(partial) + ("/" if len(tools) > 1 else ""), *(t.package for t in tools)]
    # Go keeps its module and build caches under $HOME; later runs on this machine reuse them.
    env = {"HOME": str(Path.home()), **os.environ, "CGO_ENABLED": "0"}
    _say(f"building {name} {tool.version} from Go modules (first run only; "
         f"kube-apiserver takes ~3 min, prometheus+promtool ~4 min cold on 2 cores) ...")
    started = time.monotonic()
    proc = subprocess.Popen(cmd, cwd=go_modules_dir() / tool.module, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    assert proc.stdout is not None
    compiled = 0
    tail: list[str] = []
    done = threading.Event()

    def heartbeat() -> None:
        while not done.wait(15):
            _say(f"  {name}: {compiled} packages compiled, "
                 f"{time.monotonic() - started:.0f} s")

    beat = threading.Thread(target=heartbeat, daemon=True)
    beat.start()
    for line in proc.stdout:
        compiled += 1
        tail = [*tail[-30:], line.rstrip()]
    rc = proc.wait()
    done.set()
    if rc != 0:
        if partial.is_dir():
            shutil.rmtree(partial, ignore_errors=True)
        else:
            partial.unlink(missing_ok=True)
        raise BuildError(f"go build of {name} failed (exit {rc}):\n" + "\n".join(tail))
    if len(tools) == 1:
        partial.rename(target)
    else:
        for built in tools:
            (partial / built.name).rename(cached_path(built))
        partial.rmdir()
    _say(f"built {name} in {time.monotonic() - started:.0f} s -> {target.parent}")


def _say(message: str) -> None:
    print(f"[smartid-testbed] {message}", file=sys.stderr, flush=True)
