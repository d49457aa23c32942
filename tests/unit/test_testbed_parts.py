"""Test-bed parts that need no servers: binary cache keys, the address map, certificates."""

from __future__ import annotations

import json
import ssl
from pathlib import Path

import pytest

from smartid_testbed import binaries
from smartid_testbed.kubelet import AddressBook
from smartid_testbed.pki import CertificateAuthority


def test_cache_key_follows_the_helper_module(tmp_path: Path,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    module = tmp_path / "etcd"
    module.mkdir()
    (module / "go.mod").write_text("module x\n")
    (module / "go.sum").write_text("")
    monkeypatch.setenv("SMARTID_TESTBED_GO", str(tmp_path))
    monkeypatch.setenv("SMARTID_TESTBED_CACHE", str(tmp_path / "cache"))
    tool = binaries.TOOLS["etcd"]
    first = binaries.cached_path(tool)
    assert first.parent == tmp_path / "cache" / "bin"
    (module / "go.sum").write_text("example.com/m v1.0.0 h1:x\n")
    assert binaries.cached_path(tool) != first  # a new pin means a new build


def test_kubebuilder_assets_win(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    ready = tmp_path / "kube-apiserver"
    ready.write_text("#!/bin/sh\n")
    ready.chmod(0o755)
    monkeypatch.setenv("KUBEBUILDER_ASSETS", str(tmp_path))
    assert binaries.find("kube-apiserver", build=False) == ready


def test_missing_binary_without_build_is_an_error(tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("KUBEBUILDER_ASSETS", raising=False)
    monkeypatch.setenv("SMARTID_TESTBED_CACHE", str(tmp_path))
    with pytest.raises(binaries.BuildError, match="not built yet"):
        binaries.find("kube-scheduler", build=False)


def test_addresses_are_stable_per_pod_and_persisted(tmp_path: Path) -> None:
    book = AddressBook(tmp_path / "addresses.json")
    a = book.address("smartid", "mongo-0")
    b = book.address("smartid", "mongo-1")
    assert a != b
    assert a.startswith("127.") and b.startswith("127.")
    assert book.address("smartid", "mongo-0") == a
    again = AddressBook(tmp_path / "addresses.json")
    assert again.address("smartid", "mongo-0") == a
    assert json.loads((tmp_path / "addresses.json").read_text())["pods"] == {
        "smartid/mongo-0": a, "smartid/mongo-1": b}


def test_certificates_chain_to_the_ca(tmp_path: Path) -> None:
    ca = CertificateAuthority(tmp_path)
    serving = ca.issue("server", "kube-apiserver", server=True, hosts=("127.0.0.1", "localhost"))
    ctx = ssl.create_default_context(cafile=str(ca.cert_path))
    ctx.load_cert_chain(str(serving.cert), str(serving.key))  # key matches cert
    assert (tmp_path / "ca.key").stat().st_mode & 0o777 == 0o600
