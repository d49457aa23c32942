"""The whole test bed in one context manager: control plane + kubelet stand-in."""

from __future__ import annotations

import subprocess
import tempfile
from collections.abc import Callable
from pathlib import Path
from types import TracebackType

from smartid_testbed import binaries
from smartid_testbed.cluster import LocalCluster, wait_for
from smartid_testbed.kubelet import KubeletStandIn


class TestBed:
    __test__ = False  # not a pytest test class

    def __init__(self, cluster: LocalCluster, kubelet: KubeletStandIn) -> None:
        self.cluster = cluster
        self.kubelet = kubelet
        self.on_stop: list[Callable[[], None]] = []  # what runs beside it (a Prometheus)

    @property
    def kubeconfig(self) -> Path:
        return self.cluster.kubeconfig

    @property
    def workdir(self) -> Path:
        return self.cluster.workdir

    def kubectl(self, *args: str, input: str | None = None) -> str:
        """Run the pinned kubectl as admin; raise with its stderr on failure."""
        proc = subprocess.run([str(binaries.find("kubectl")), f"--kubeconfig={self.kubeconfig}",
                               *args], input=input, capture_output=True, text=True, timeout=120)
        if proc.returncode != 0:
            raise RuntimeError(f"kubectl {' '.join(args)} failed: {proc.stderr.strip()}")
        return proc.stdout

    def pod_logs(self, namespace: str, pod: str) -> str:
        """What the kubelet stand-in captured of a pod's containers (all its incarnations)."""
        logs = sorted((self.workdir / "pods" / namespace).glob(f"{pod}-*.log"))
        return "".join(path.read_text(errors="replace") for path in logs)

    def mongo_address(self, namespace: str, pod: str) -> str:
        """The loopback address a mongo pod's server listens on (reserved before it exists)."""
        return self.kubelet.addresses.address(namespace, pod)

    def claim_path(self, namespace: str, claim: str, timeout: float = 30.0) -> Path:
        """The host directory behind a PersistentVolumeClaim, once bound (waits up to
        ``timeout``).  A pod mounting the claim sees exactly these files: drop inputs here,
        read its outputs here."""
        api = self.kubelet.api()
        path: Path = wait_for(lambda: self.kubelet.claim_path(api, namespace, claim),
                              timeout=timeout, what=f"claim {namespace}/{claim} to bind")
        return path

    @property
    def volume_mode(self) -> str:
        """How operator-image pods see their volumes: ``namespace`` (a private mount namespace,
        the mountPaths themselves) or ``rewrite`` (mountPaths rewritten to host paths)."""
        return self.kubelet.volume_mode

    @classmethod
    def start(cls, workdir: Path | None = None) -> TestBed:
        keep = workdir is not None
        workdir = workdir or Path(tempfile.mkdtemp(prefix="smartid-testbed-"))
        cluster = LocalCluster.start(workdir, keep_workdir=True)
        cluster.keep_workdir = keep
        kubelet = KubeletStandIn(
            cluster.kubeconfig, workdir,
            mint_kubeconfig=lambda ns, sa, path: cluster.service_account_kubeconfig(ns, sa, path))
        try:
            kubelet.start()
            wait_for(lambda: cluster.get(f"/api/v1/nodes/{kubelet.node_name}"), timeout=30,
                     what="the test-bed Node")
        except BaseException:
            kubelet.stop()
            cluster.stop()
            raise
        return cls(cluster, kubelet)

    def stop(self) -> None:
        while self.on_stop:
            self.on_stop.pop()()
        self.kubelet.stop()
        self.cluster.stop()

    def __enter__(self) -> TestBed:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()
