"""A real local Kubernetes control plane on loopback: etcd, kube-apiserver (TLS, RBAC,
ServiceAccount tokens, default admission plugins), kube-controller-manager, kube-scheduler.

``LocalCluster`` is the one entry point both the tests and the demo use::

    with LocalCluster.start() as cluster:
        cluster.kubeconfig            # admin (system:masters)
        cluster.service_account_kubeconfig("smartid", "smartid-operator")
"""

from __future__ import annotations

import json
import shutil
import ssl
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from types import TracebackType
from typing import Any

import yaml

from smartid_testbed import binaries
from smartid_testbed.pki import CertificateAuthority, KeyPair, service_account_keys
from smartid_testbed.processes import Child, free_port

SERVICE_CIDR = "10.96.0.0/16"
ISSUER = "https://kubernetes.default.svc.cluster.local"


class ClusterError(RuntimeError):
    pass


def wait_for(predicate: Callable[[], Any], *, timeout: float, what: str,
             interval: float = 0.2) -> Any:
    """Poll ``predicate`` until it returns a truthy value; raise naming ``what`` on timeout."""
    deadline = time.monotonic() + timeout
    last_error: Exception | None = None
    while time.monotonic() < deadline:
        try:
            result = predicate()
        except Exception as exc:  # keep polling: the thing may not exist yet
            last_error = exc
        else:
            if result:
                return result
        time.sleep(interval)
    detail = f" (last error: {last_error})" if last_error else ""
    raise TimeoutError(f"timed out after {timeout:.0f} s waiting for {what}{detail}")


def write_kubeconfig(path: Path, *, server: str, ca: Path, user: str,
                     cert: KeyPair | None = None, token: str | None = None,
                     namespace: str = "default") -> Path:
    credentials: dict[str, str] = {}
    if cert is not None:
        credentials = {"client-certificate": str(cert.cert), "client-key": str(cert.key)}
    if token is not None:
        credentials = {"token": token}
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "smartid-testbed",
                      "cluster": {"server": server, "certificate-authority": str(ca)}}],
        "users": [{"name": user, "user": credentials}],
        "contexts": [{"name": user, "context": {"cluster": "smartid-testbed", "user": user,
                                                 "namespace": namespace}}],
        "current-context": user,
    }
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    path.chmod(0o600)
    return path


class LocalCluster:
    def __init__(self, workdir: Path, *, keep_workdir: bool = False) -> None:
        self.workdir = workdir
        self.keep_workdir = keep_workdir
        self.children: list[Child] = []
        self.pki = workdir / "pki"
        self.logs = workdir / "logs"
        self.api_port = 0
        self.server = ""
        self.kubeconfig = workdir / "admin.kubeconfig"
        self.ca_cert = self.pki / "ca.crt"
        self._admin: KeyPair | None = None

    # -- lifecycle ---------------------------------------------------------------------------

    @classmethod
    def start(cls, workdir: Path | None = None, *, keep_workdir: bool = False) -> LocalCluster:
        owned = workdir is None
        cluster = cls(workdir or Path(tempfile.mkdtemp(prefix="smartid-testbed-")),
                      keep_workdir=keep_workdir or not owned)
        try:
            cluster._start()
        except BaseException:
            cluster.stop()
            raise
        return cluster

    def __enter__(self) -> LocalCluster:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()

    def stop(self) -> None:
        for child in reversed(self.children):
            # A throwaway cluster: no need to wait out kube-apiserver's graceful shutdown.
            child.stop(grace=2)
        self.children.clear()
        if not self.keep_workdir:
            shutil.rmtree(self.workdir, ignore_errors=True)

    def _start(self) -> None:
        bins = binaries.ensure_all(("etcd", "kube-apiserver", "kube-controller-manager",
                                    "kube-scheduler"))
        self.workdir.mkdir(parents=True, exist_ok=True)
        ca = CertificateAuthority(self.pki)
        sa = service_account_keys(self.pki)
        serving = ca.issue("apiserver", "kube-apiserver", server=True,
                           hosts=("127.0.0.1", "localhost", "10.96.0.1", "kubernetes",
                                  "kubernetes.default", "kubernetes.default.svc"))
        self._admin = ca.issue("admin", "smartid-testbed-admin", org="system:masters")
        kcm = ca.issue("controller-manager", "system:kube-controller-manager")
        scheduler = ca.issue("scheduler", "system:kube-scheduler")

        etcd_port, peer_port = free_port(), free_port()
        etcd_url = f"http://127.0.0.1:{etcd_port}"
        self._spawn("etcd", [
            str(bins["etcd"]), "--name=testbed", f"--data-dir={self.workdir / 'etcd'}",
            f"--listen-client-urls={etcd_url}", f"--advertise-client-urls={etcd_url}",
            f"--listen-peer-urls=http://127.0.0.1:{peer_port}",
            f"--initial-advertise-peer-urls=http://127.0.0.1:{peer_port}",
            f"--initial-cluster=testbed=http://127.0.0.1:{peer_port}",
            "--unsafe-no-fsync", "--log-level=warn",  # a throwaway store: speed over durability
        ])

        self.api_port = free_port()
        self.server = f"https://127.0.0.1:{self.api_port}"
        self._spawn("kube-apiserver", [
            str(bins["kube-apiserver"]), f"--etcd-servers={etcd_url}",
            "--bind-address=127.0.0.1", "--advertise-address=127.0.0.1",
            f"--secure-port={self.api_port}", f"--cert-dir={self.workdir / 'apiserver'}",
            f"--tls-cert-file={serving.cert}", f"--tls-private-key-file={serving.key}",
            f"--client-ca-file={ca.cert_path}",
            f"--service-account-issuer={ISSUER}", f"--service-account-key-file={sa.cert}",
            f"--service-account-signing-key-file={sa.key}",
            f"--service-cluster-ip-range={SERVICE_CIDR}",
            "--authorization-mode=Node,RBAC", "--allow-privileged=true",
            # The API server refuses loopback addresses in Endpoints, so it must not try to
            # publish its own; nothing here routes the kubernetes Service anyway.
            "--endpoint-reconciler-type=none", "--profiling=false",
        ])
        write_kubeconfig(self.kubeconfig, server=self.server, ca=ca.cert_path,
                         user="admin", cert=self._admin)
        wait_for(self._readyz, timeout=90, what="kube-apiserver /readyz")

        kcm_config = write_kubeconfig(self.workdir / "controller-manager.kubeconfig",
                                      server=self.server, ca=ca.cert_path,
                                      user="system:kube-controller-manager", cert=kcm)
        self._spawn("kube-controller-manager", [
            str(bins["kube-controller-manager"]), f"--kubeconfig={kcm_config}",
            f"--authentication-kubeconfig={kcm_config}", f"--authorization-kubeconfig={kcm_config}",
            "--bind-address=127.0.0.1", f"--secure-port={free_port()}", "--leader-elect=false",
            # One credential per controller, as kubeadm does: RBAC is exercised for real.
            "--use-service-account-credentials=true",
            f"--service-account-private-key-file={sa.key}", f"--root-ca-file={ca.cert_path}",
            f"--cluster-signing-cert-file={ca.cert_path}",
            f"--cluster-signing-key-file={self.pki / 'ca.key'}",
            f"--service-cluster-ip-range={SERVICE_CIDR}", "--profiling=false",
        ])
        sched_config = write_kubeconfig(self.workdir / "scheduler.kubeconfig", server=self.server,
                                        ca=ca.cert_path, user="system:kube-scheduler",
                                        cert=scheduler)
        self._spawn("kube-scheduler", [
            str(bins["kube-scheduler"]), f"--kubeconfig={sched_config}",
            f"--authentication-kubeconfig={sched_config}",
            f"--authorization-kubeconfig={sched_config}",
            "--bind-address=127.0.0.1", f"--secure-port={free_port()}", "--leader-elect=false",
            "--profiling=false",
        ])
        # The controller-manager is working once it has made the default ServiceAccount.
        wait_for(lambda: self.get("/api/v1/namespaces/default/serviceaccounts/default"),
                 timeout=90, what="kube-controller-manager (default ServiceAccount)")

    def _spawn(self, name: str, argv: list[str]) -> Child:
        child = Child(name, argv, self.logs / f"{name}.log")
        self.children.append(child)
        return child

    def check_alive(self) -> None:
        for child in self.children:
            if not child.alive():
                raise ClusterError(f"{child.name} exited ({child.proc.returncode}):\n"
                                   f"{child.tail()}")

    # -- talking to the API server -------------------------------------------------------------

    def _ssl(self) -> ssl.SSLContext:
        assert self._admin is not None
        ctx = ssl.create_default_context(cafile=str(self.ca_cert))
        ctx.load_cert_chain(str(self._admin.cert), str(self._admin.key))
        return ctx

    def get(self, path: str) -> Any:
        """GET an API path as admin: JSON for /api..., raw bytes for /readyz and such."""
        self.check_alive()
        with urllib.request.urlopen(self.server + path, context=self._ssl(), timeout=5) as resp:
            return json.loads(resp.read() or b"{}") if path.startswith("/api") else resp.read()

    def _readyz(self) -> bool:
        try:
            return bool(self.get("/readyz") == b"ok")
        except urllib.error.HTTPError:
            return False

    def _post(self, path: str, body: dict[str, Any]) -> Any:
        request = urllib.request.Request(self.server + path, data=json.dumps(body).encode(),
                                         headers={"Content-Type": "application/json"},
                                         method="POST")
        with urllib.request.urlopen(request, context=self._ssl(), timeout=10) as resp:
            return json.loads(resp.read())

    def service_account_token(self, namespace: str, name: str,
                              seconds: int = 24 * 3600) -> str:
        """A bound token for an existing ServiceAccount, through the TokenRequest API."""
        review = self._post(f"/api/v1/namespaces/{namespace}/serviceaccounts/{name}/token",
                            {"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest",
                             "spec": {"expirationSeconds": seconds}})
        return str(review["status"]["token"])

    def service_account_kubeconfig(self, namespace: str, name: str,
                                   path: Path | None = None) -> Path:
        """A kubeconfig that acts as ``system:serviceaccount:<namespace>:<name>``."""
        token = self.service_account_token(namespace, name)
        path = path or self.workdir / f"sa-{namespace}-{name}.kubeconfig"
        return write_kubeconfig(path, server=self.server, ca=self.ca_cert,
                                user=f"{namespace}-{name}", token=token, namespace=namespace)
