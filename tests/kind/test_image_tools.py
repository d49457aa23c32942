"""deploy/Dockerfile's MongoDB Database Tools step, run by sh with stand-ins for apt-get, curl
and dpkg that record every call: which build each architecture fetches (Debian 12 x86_64 for
amd64, Ubuntu 22.04 arm64 for Apple Silicon), a given checksum enforced, other architectures
left on the built-in engine. Runs everywhere; no Docker needed (the image itself is built
only where Docker is: `make image`, the kind tier)."""

from __future__ import annotations

import hashlib
import os
import re
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
URL = "https://fastdl.mongodb.org/tools/db/mongodb-database-tools-{}-100.10.0.deb"
# curl writes a body naming the URL, so each build has its own checksum.
STANDINS = {
    "apt-get": 'echo "apt-get $*" >>"$LOG"',
    "curl": 'echo "curl $*" >>"$LOG"\nwhile [ $# -gt 1 ]; do\n'
            '  [ "$1" = -o ] && out=$2; url=$2; shift\ndone\necho "body of $url" >"$out"',
    "dpkg": 'echo "$HOST_ARCH"',
    "mongodump": 'echo "mongodump $*" >>"$LOG"',
    "mongorestore": 'echo "mongorestore $*" >>"$LOG"',
}


def tools_step() -> str:
    """The RUN instruction that installs the tools, as the shell gets it."""
    text = (ROOT / "deploy/Dockerfile").read_text()
    match = re.search(r"^RUN (arch=.*?[^\\])$", text, re.M | re.S)
    assert match, "no RUN arch=... step in deploy/Dockerfile"
    return match.group(1)


def build(tmp_path: Path, *, target: str, host: str = "amd64",
          build_args: dict[str, str] | None = None
          ) -> tuple[subprocess.CompletedProcess[str], list[str]]:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    for name, body in STANDINS.items():
        (bin_dir / name).write_text(f"#!/bin/sh\n{body}\n")
        (bin_dir / name).chmod(0o755)
    log = tmp_path / "log"
    log.write_text("")
    args = {"MONGO_TOOLS_VERSION": "100.10.0", "MONGO_TOOLS_SHA256_AMD64": "",
            "MONGO_TOOLS_SHA256_ARM64": "", **(build_args or {}), "TARGETARCH": target}
    env = {**os.environ, **args, "PATH": f"{bin_dir}:{os.environ['PATH']}", "LOG": str(log),
           "HOST_ARCH": host}
    script = tools_step().replace("/tmp/", f"{tmp_path}/")
    proc = subprocess.run(["sh", "-c", script], env=env, capture_output=True, text=True,
                          timeout=30)
    return proc, log.read_text().splitlines()


def sha256(url: str) -> str:
    return hashlib.sha256(f"body of {url}\n".encode()).hexdigest()


@pytest.mark.parametrize(("target", "host", "build_name"), [
    ("amd64", "amd64", "debian12-x86_64"),
    ("arm64", "amd64", "ubuntu2204-arm64"),   # BuildKit cross-build: TARGETARCH decides
    ("", "arm64", "ubuntu2204-arm64"),        # the classic builder on Apple Silicon: dpkg
])
def test_each_architecture_installs_its_build_and_checks_it(
        tmp_path: Path, target: str, host: str, build_name: str) -> None:
    url = URL.format(build_name)
    arch = target or host
    proc, calls = build(tmp_path, target=target, host=host,
                        build_args={f"MONGO_TOOLS_SHA256_{arch.upper()}": sha256(url)})
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert [c for c in calls if c.startswith("curl ")] == [
        f"curl -fsSL --retry 3 -o {tmp_path}/mongodb-database-tools.deb {url}"]
    assert "mongodb-database-tools.deb: OK" in proc.stdout
    installed = [c for c in calls if c.startswith("apt-get install")]
    assert installed[-1].endswith(f" {tmp_path}/mongodb-database-tools.deb")
    assert calls[-2:] == ["mongodump --version", "mongorestore --version"]
    assert not list(tmp_path.glob("mongodb-database-tools.*"))  # cleaned up


@pytest.mark.parametrize("arch", ["amd64", "arm64"])
def test_a_wrong_checksum_stops_the_build_before_installing(tmp_path: Path, arch: str) -> None:
    proc, calls = build(tmp_path, target=arch,
                        build_args={f"MONGO_TOOLS_SHA256_{arch.upper()}": "0" * 64})
    assert proc.returncode != 0
    assert "FAILED" in proc.stdout + proc.stderr
    assert not [c for c in calls if c.startswith("apt-get install") and ".deb" in c]


def test_no_checksum_given_is_said(tmp_path: Path) -> None:
    proc, _ = build(tmp_path, target="arm64")
    assert proc.returncode == 0, proc.stderr
    assert "ubuntu2204-arm64-100.10.0.deb: no checksum given" in proc.stdout


@pytest.mark.parametrize(("target", "version"), [("s390x", "100.10.0"), ("amd64", "")])
def test_otherwise_the_built_in_engine_stays(tmp_path: Path, target: str, version: str) -> None:
    proc, calls = build(tmp_path, target=target, build_args={"MONGO_TOOLS_VERSION": version})
    assert proc.returncode == 0, proc.stderr
    assert calls == []
    assert f"MongoDB Database Tools not installed ({target})" in proc.stdout
