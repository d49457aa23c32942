"""Dumps in an S3-compatible bucket: ``s3://bucket/prefix/<database>-<UTC time>/...``, the
same files as on a volume, so ``aws s3 cp --recursive`` or ``rclone copy`` of one dump's
prefix gives a directory the official ``mongorestore`` reads.

The manifest object is uploaded last and is what makes a dump exist: a run cut anywhere
before it leaves objects no listing counts (a later prune removes them after a grace). Each
object is read back and its SHA-256 compared with the manifest before the manifest goes up.
Files are streamed in parts of ``PART_SIZE`` (multipart uploads above it), so memory stays
flat whatever the dump's size.

The client is MinIO's (``minio``): boto3 cannot share an environment with the kubernetes
client (botocore pins python-dateutil below 3, kubernetes 37 needs 3 or later). It sends no
``x-amz-checksum-*`` headers unless asked, so S3-compatible servers that refuse them (the
trouble boto3's ``when_required`` setting works around) accept it as it is.

Credentials come from the environment as the AWS tools take them (``AWS_ACCESS_KEY_ID``,
``AWS_SECRET_ACCESS_KEY``, ``AWS_SESSION_TOKEN``, ``AWS_ENDPOINT_URL``, ``AWS_REGION``,
``AWS_CA_BUNDLE``); they are never logged, and a message that would carry the secret has it
replaced.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import sys
import tempfile
import urllib.parse
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

import certifi
import minio
import minio.sse
import urllib3
from minio.deleteobjects import DeleteObject
from minio.error import MinioException, S3Error

from smartid_operator.backup.engine.manifest import MANIFEST_FILE, Manifest, ManifestError
from smartid_operator.backup.engine.storage import DeleteDenied, Partial, Scan, StorageError

SCHEME = "s3://"
PART_SIZE = 16 * 1024 * 1024  # multipart above this; the memory a transfer holds
_CHUNK = 1 << 20
URL_ENV = "SMARTID_BACKUP_S3_URL"
PATH_STYLE_ENV = "SMARTID_BACKUP_S3_FORCE_PATH_STYLE"
SSE_ENV, KMS_KEY_ENV = "SMARTID_BACKUP_S3_SSE", "SMARTID_BACKUP_S3_SSE_KMS_KEY_ID"
CREDENTIALS_SECRET_ENV = "SMARTID_BACKUP_S3_CREDENTIALS_SECRET"  # its name, for messages
_REFUSED_CREDENTIALS = {"InvalidAccessKeyId", "SignatureDoesNotMatch", "InvalidToken",
                        "ExpiredToken", "InvalidSecurity"}


@dataclass(frozen=True)
class S3Config:
    bucket: str
    prefix: str = ""
    endpoint: str = ""           # "" = AWS; else scheme://host[:port]
    region: str = ""
    force_path_style: bool = False
    access_key: str = ""
    secret_key: str = ""
    session_token: str = ""
    sse: str = ""                # "" | "AES256" | "aws:kms"
    kms_key_id: str = ""
    ca_bundle: str = ""          # a PEM file; "" = the system's (certifi's) roots
    credentials_secret: str = ""  # the Secret's name (not its contents), for messages

    @property
    def location(self) -> str:
        return f"{SCHEME}{self.bucket}" + (f"/{self.prefix}" if self.prefix else "")

    def __repr__(self) -> str:  # never the keys
        return f"S3Config({self.location}, endpoint={self.endpoint or 'AWS'})"


def parse_url(url: str) -> tuple[str, str]:
    """``s3://bucket/some/prefix`` -> (bucket, "some/prefix")."""
    if not url.startswith(SCHEME):
        raise StorageError(f"not an S3 URL (s3://bucket/prefix): {url!r}")
    bucket, _, prefix = url[len(SCHEME):].partition("/")
    if not bucket:
        raise StorageError(f"no bucket in {url!r}")
    return bucket, prefix.strip("/")


def config_from_env(url: str, env: dict[str, str] | None = None) -> S3Config:
    """The storage at ``url`` with what the environment says (the AWS tools' variables)."""
    env = dict(os.environ if env is None else env)
    bucket, prefix = parse_url(url)
    access, secret = env.get("AWS_ACCESS_KEY_ID", ""), env.get("AWS_SECRET_ACCESS_KEY", "")
    if not access or not secret:
        raise StorageError("S3 credentials missing: set AWS_ACCESS_KEY_ID and "
                           "AWS_SECRET_ACCESS_KEY (a backup Job gets them from "
                           "spec.backup.storage.s3.credentialsSecretRef)")
    return S3Config(
        bucket=bucket, prefix=prefix,
        endpoint=env.get("AWS_ENDPOINT_URL_S3") or env.get("AWS_ENDPOINT_URL", ""),
        region=env.get("AWS_REGION") or env.get("AWS_DEFAULT_REGION", ""),
        force_path_style=env.get(PATH_STYLE_ENV, "").lower() in ("true", "1", "yes"),
        access_key=access, secret_key=secret, session_token=env.get("AWS_SESSION_TOKEN", ""),
        sse=env.get(SSE_ENV, ""), kms_key_id=env.get(KMS_KEY_ENV, ""),
        ca_bundle=env.get("AWS_CA_BUNDLE", ""),
        credentials_secret=env.get(CREDENTIALS_SECRET_ENV, ""))


def _client(config: S3Config) -> minio.Minio:
    endpoint = config.endpoint or (f"https://s3.{config.region}.amazonaws.com"
                                   if config.region else "https://s3.amazonaws.com")
    parts = urllib.parse.urlsplit(endpoint if "://" in endpoint else f"https://{endpoint}")
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise StorageError(f"S3 endpoint must be http(s)://host[:port], not {endpoint!r}")
    http = urllib3.PoolManager(
        timeout=urllib3.Timeout(connect=10, read=120), maxsize=4,
        cert_reqs="CERT_REQUIRED", ca_certs=config.ca_bundle or certifi.where(),
        retries=urllib3.Retry(total=3, backoff_factor=0.5,
                              status_forcelist=[500, 502, 503, 504]))
    client = minio.Minio(parts.netloc, access_key=config.access_key,
                         secret_key=config.secret_key,
                         session_token=config.session_token or None,
                         secure=parts.scheme == "https", region=config.region or None,
                         http_client=http)
    if config.force_path_style:
        client.disable_virtual_style_endpoint()  # type: ignore[no-untyped-call]
    return client


class S3Storage:
    def __init__(self, config: S3Config) -> None:
        self.config = config
        self.location = config.location
        self.client = _client(config)

    # -- names --------------------------------------------------------------------------------

    def _base(self) -> str:
        return f"{self.config.prefix}/" if self.config.prefix else ""

    def key(self, name: str, relative: str = "") -> str:
        return f"{self._base()}{name}/{relative}"

    # -- errors -------------------------------------------------------------------------------

    def _redact(self, text: str) -> str:
        for secret in filter(None, (self.config.secret_key, self.config.session_token)):
            text = text.replace(secret, "***")
        return text

    @contextlib.contextmanager
    def _calling(self, what: str) -> Iterator[None]:
        """Any client failure as a ``StorageError`` that says what to fix."""
        where = f"{self.location} at {self.config.endpoint or 'AWS'}"
        try:
            yield
        except S3Error as exc:
            code = exc.code or "error"
            if code == "NoSuchBucket":
                message = f"S3 bucket {self.config.bucket!r} does not exist ({where})"
            elif code in _REFUSED_CREDENTIALS:
                secret = f" in Secret {self.config.credentials_secret}" \
                    if self.config.credentials_secret else ""
                message = (f"S3 refused the credentials ({code}) for {where}: check the "
                           f"access key id and secret access key{secret}")
            else:
                message = f"S3 {what} on {where} failed: {code}: {exc.message}"
            raise (DeleteDenied if code == "AccessDenied" and what.startswith("delete")
                   else StorageError)(self._redact(message)) from None
        except (MinioException, urllib3.exceptions.HTTPError, OSError, ValueError) as exc:
            if isinstance(exc, OSError) and not isinstance(exc, ConnectionError) and \
                    exc.filename:
                raise  # a local file's trouble, not the server's
            reason = getattr(exc, "reason", None) or exc
            raise StorageError(self._redact(f"S3 {what} on {where} failed: "
                                            f"{type(reason).__name__}: {reason}")) from None

    def check_bucket(self) -> None:
        with self._calling("bucket lookup"):
            if not self.client.bucket_exists(self.config.bucket):
                raise StorageError(f"S3 bucket {self.config.bucket!r} does not exist "
                                   f"({self.location} at {self.config.endpoint or 'AWS'})")

    def _sse(self) -> minio.sse.Sse | None:
        if self.config.sse == "AES256":
            return minio.sse.SseS3()
        if self.config.sse == "aws:kms":
            return minio.sse.SseKMS(self.config.kms_key_id, {})
        return None

    # -- Storage ------------------------------------------------------------------------------

    def _objects(self) -> dict[str, list[Any]]:
        """Every object under the prefix, by dump name."""
        grouped: dict[str, list[Any]] = {}
        with self._calling("listing"):
            for obj in self.client.list_objects(self.config.bucket, prefix=self._base(),
                                                recursive=True):
                relative = str(obj.object_name)[len(self._base()):]
                name, sep, rest = relative.partition("/")
                if sep and rest:
                    grouped.setdefault(name, []).append(obj)
        return grouped

    def scan(self) -> Scan:
        dumps, broken, partial = [], [], []
        for name, objects in sorted(self._objects().items()):
            if not any(str(o.object_name) == self.key(name, MANIFEST_FILE) for o in objects):
                newest = max((o.last_modified.timestamp() for o in objects
                              if o.last_modified is not None), default=0.0)
                partial.append(Partial(name, newest))
                continue
            try:
                dumps.append(self._read_manifest(name))
            except ManifestError as exc:
                broken.append((name, str(exc)))
        dumps.sort(key=lambda m: (m.started_at, m.name))
        return Scan(dumps, broken, partial)

    def _read_manifest(self, name: str) -> Manifest:
        with self._calling("reading a manifest"):
            response = self.client.get_object(self.config.bucket, self.key(name, MANIFEST_FILE))
            try:
                data = response.read()
            finally:
                response.close()
                response.release_conn()
        try:
            return Manifest.from_dict(json.loads(data))
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise ManifestError(f"{name}: unreadable {MANIFEST_FILE}: {exc!r}") from None

    @contextlib.contextmanager
    def staging(self, name: str) -> Iterator[Path]:
        with tempfile.TemporaryDirectory(prefix="smartid-dump-") as temp:
            path = Path(temp) / name
            path.mkdir()
            yield path

    def publish(self, staged: Path, manifest: Manifest) -> None:
        self.check_bucket()
        print(f"uploading {manifest.name}: {len(manifest.files)} file(s), "
              f"{manifest.size_bytes / 1e6:,.1f} MB to {self.location}", file=sys.stderr,
              flush=True)
        for entry in manifest.files:
            with self._calling(f"upload of {entry.path}"):
                self.client.fput_object(self.config.bucket, self.key(manifest.name, entry.path),
                                        str(staged / entry.path), part_size=PART_SIZE,
                                        sse=self._sse())
        problems = self.check_objects(manifest)
        if problems:
            raise StorageError(f"{manifest.name} in {self.location} differs from what was "
                               f"uploaded (not published): " + "; ".join(problems[:3]))
        self.save_manifest(manifest)

    def check_objects(self, manifest: Manifest) -> list[str]:
        """Each object read back: its size and SHA-256 against the manifest."""
        problems = []
        for entry in manifest.files:
            digest, size = hashlib.sha256(), 0
            with self._calling(f"read-back of {entry.path}"):
                response = self.client.get_object(self.config.bucket,
                                                  self.key(manifest.name, entry.path))
                try:
                    for chunk in response.stream(_CHUNK):
                        digest.update(chunk)
                        size += len(chunk)
                finally:
                    response.close()
                    response.release_conn()
            if size != entry.size:
                problems.append(f"{entry.path}: {size} bytes stored, {entry.size} written")
            elif digest.hexdigest() != entry.sha256:
                problems.append(f"{entry.path}: stored sha256 differs from the manifest")
        return problems

    @contextlib.contextmanager
    def fetch(self, manifest: Manifest) -> Iterator[Path]:
        with tempfile.TemporaryDirectory(prefix="smartid-fetch-") as temp:
            root = Path(temp) / manifest.name
            root.mkdir()
            for obj in self._objects().get(manifest.name, []):
                relative = str(obj.object_name)[len(self.key(manifest.name)):]
                parts = PurePosixPath(relative).parts
                if relative == MANIFEST_FILE or not parts or ".." in parts:
                    continue
                target = root.joinpath(*parts)
                target.parent.mkdir(parents=True, exist_ok=True)
                with self._calling(f"download of {relative}"), open(target, "wb") as out:
                    response = self.client.get_object(self.config.bucket, str(obj.object_name))
                    try:
                        for chunk in response.stream(_CHUNK):
                            out.write(chunk)
                    finally:
                        response.close()
                        response.release_conn()
            yield root

    def save_manifest(self, manifest: Manifest) -> None:
        data = (json.dumps(manifest.to_dict(), indent=2) + "\n").encode()
        with self._calling("upload of the manifest"):
            self.client.put_object(self.config.bucket, self.key(manifest.name, MANIFEST_FILE),
                                   io.BytesIO(data), len(data),
                                   content_type="application/json", sse=self._sse())

    def delete(self, name: str) -> None:
        with self._calling("delete"):
            self.client.remove_object(self.config.bucket, self.key(name, MANIFEST_FILE))
        self.remove_partial(name)

    def remove_partial(self, name: str) -> None:
        keys = [DeleteObject(str(o.object_name)) for o in self._objects().get(name, [])]
        with self._calling("delete"):
            errors = list(self.client.remove_objects(self.config.bucket, iter(keys)))
        if errors:
            first = errors[0]
            raise (DeleteDenied if first.code == "AccessDenied" else StorageError)(
                self._redact(f"S3 delete in {self.location} failed for {len(errors)} "
                             f"object(s): {first.code}: {first.message}"))
