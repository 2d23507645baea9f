"""A real control plane for the end-to-end tests: etcd and kube-apiserver built from the Go module
proxy by ``tools/peers.sh`` (``make e2e`` builds them: ~7 min cold), started on loopback with TLS,
a static admin token and a service-account issuer, and stopped after the session.

Collected only under ``make e2e`` (``E2E=1``): a cold build does not yet fit the budget CI gives
``make test``.
"""

from __future__ import annotations

import json
import os
import shutil
import ssl
import subprocess
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.support.paths import REPO

if os.environ.get("E2E") != "1":
    collect_ignore_glob = ["test_*.py"]

ADMIN_TOKEN = "e2e-admin-token"


def peer(name: str) -> str:
    p = subprocess.run(
        ["bash", str(REPO / "tools" / "peers.sh"), "path", name],
        capture_output=True, text=True, timeout=3600, check=False,
    )  # fmt: skip
    assert p.returncode == 0, f"tools/peers.sh path {name}: {p.stderr}"
    return p.stdout.strip()


@dataclass
class ControlPlane:
    """A running etcd and kube-apiserver, and how to talk to the API server."""

    url: str
    ca_file: Path
    token_file: Path
    directory: Path

    def request(self, method: str, path: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
        context = ssl.create_default_context(cafile=str(self.ca_file))
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(self.url + path, data=data, method=method)
        req.add_header("Authorization", f"Bearer {ADMIN_TOKEN}")
        req.add_header("Content-Type", "application/json")
        with urllib.request.urlopen(req, context=context, timeout=30) as resp:
            result: dict[str, Any] = json.load(resp)
        return result


def _openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True)


@pytest.fixture(scope="session")
def control_plane() -> Iterator[ControlPlane]:
    etcd, apiserver = peer("etcd"), peer("kube-apiserver")
    d = Path(tempfile.mkdtemp(prefix="e2e-kube-"))
    _openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key", "-out", "ca.crt",
             "-days", "1", "-subj", "/CN=e2e-ca", cwd=d)  # fmt: skip
    _openssl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", "srv.key", "-out", "srv.csr",
             "-subj", "/CN=kube-apiserver", cwd=d)  # fmt: skip
    (d / "ext").write_text("subjectAltName=IP:127.0.0.1,DNS:localhost")
    _openssl("x509", "-req", "-in", "srv.csr", "-CA", "ca.crt", "-CAkey", "ca.key", "-CAcreateserial",
             "-out", "srv.crt", "-days", "1", "-extfile", "ext", cwd=d)  # fmt: skip
    _openssl("ecparam", "-genkey", "-name", "prime256v1", "-noout", "-out", "sa.key", cwd=d)
    _openssl("ec", "-in", "sa.key", "-pubout", "-out", "sa.pub", cwd=d)
    (d / "tokens.csv").write_text(f"{ADMIN_TOKEN},admin,admin,system:masters\n")
    (d / "admin-token").write_text(ADMIN_TOKEN)
    url = "https://127.0.0.1:16443"
    procs = [
        subprocess.Popen(
            [etcd, "--data-dir", str(d / "etcd"), "--listen-client-urls", "http://127.0.0.1:22379",
             "--advertise-client-urls", "http://127.0.0.1:22379", "--listen-peer-urls", "http://127.0.0.1:22380"],
            stdout=open(d / "etcd.log", "wb"), stderr=subprocess.STDOUT,  # noqa: SIM115  (the child holds it)
        ),
    ]  # fmt: skip
    time.sleep(2)
    procs.append(
        subprocess.Popen(
            [apiserver, "--etcd-servers", "http://127.0.0.1:22379", "--bind-address", "127.0.0.1",
             "--secure-port", "16443", "--tls-cert-file", "srv.crt", "--tls-private-key-file", "srv.key",
             "--client-ca-file", "ca.crt", "--token-auth-file", "tokens.csv", "--authorization-mode", "RBAC",
             "--service-account-issuer", url, "--service-account-key-file", "sa.pub",
             "--service-account-signing-key-file", "sa.key", "--api-audiences", url,
             "--service-cluster-ip-range", "10.96.0.0/16", "--cert-dir", str(d / "certs")],
            cwd=d, stdout=open(d / "apiserver.log", "wb"), stderr=subprocess.STDOUT,  # noqa: SIM115
        )
    )  # fmt: skip
    plane = ControlPlane(url, d / "ca.crt", d / "admin-token", d)
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                context = ssl.create_default_context(cafile=str(plane.ca_file))
                req = urllib.request.Request(
                    url + "/readyz", headers={"Authorization": f"Bearer {ADMIN_TOKEN}"}
                )
                with urllib.request.urlopen(req, context=context, timeout=5) as resp:
                    if resp.read() == b"ok":
                        break
            except OSError:
                pass
            assert time.monotonic() < deadline, (d / "apiserver.log").read_text()[-3000:]
            time.sleep(1)
        yield plane
    finally:
        for p in reversed(procs):
            p.terminate()
            p.wait(30)
        shutil.rmtree(d, ignore_errors=True)
