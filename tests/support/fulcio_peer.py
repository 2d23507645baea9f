"""The real Sigstore Fulcio (``tools/peers.sh build fulcio``) as a process on 127.0.0.1, for the keyless
signing tests: ``fulcio serve --ca ephemeralca`` trusting one Kubernetes issuer, its log kept in a file.

Fulcio discovers the issuer itself (``<issuer>/.well-known/openid-configuration``, then its JWKS) with
no credentials, so the issuer must let anonymous callers read them (``KubeAPIServer(...,
anonymous_discovery=True)``; a real cluster binds ``system:service-account-issuer-discovery`` to
``system:unauthenticated``).  The issuer URL is compared with the token's ``iss`` exactly.  Its TLS
is trusted through the issuer's ``CACert`` in Fulcio's config (added to the system roots for that
issuer alone).  Discovery that fails at start-up is retried on each signing request; until it works,
Fulcio answers 400 "There was an error processing the identity token".

Without a CT log (``ct_log_url=""``, passed as an empty ``--ct-log-url``: its default is
``http://localhost:6962/test``) Fulcio answers ``signedCertificateDetachedSct`` with an empty
``signedCertificateTimestamp``; with one, it sends the precertificate to ``<url>/ct/v1/add-pre-chain``
and answers ``signedCertificateEmbeddedSct``.  A CT log that fails is retried with backoff for as
long as the request's deadline allows, so :meth:`FulcioPeer.signing_cert` sends one (``Grpc-Timeout``;
504 when it passes).
"""

from __future__ import annotations

import base64
import json
import os
import socket
import subprocess
import time
import uuid
from pathlib import Path
from types import TracebackType
from typing import IO, Any

import httpx

from tests.support.paths import REPO

PEERS = REPO / "tools" / "peers.sh"
START_TIMEOUT = 30.0
STOP_TIMEOUT = 10.0
AUDIENCE = "sigstore"  # the issuer's ClientID: the audience tokens for Fulcio carry


class FulcioNotBuilt(RuntimeError):
    """The peer is not built (``tools/peers.sh build fulcio``); tests may skip on it."""


def fulcio_binary() -> Path:
    """The built executable; never builds it (that takes minutes with an empty module cache)."""
    built = subprocess.run(
        ["bash", str(PEERS), "built", "fulcio"], capture_output=True, text=True, timeout=60, check=False
    )
    if built.returncode != 0:
        raise FulcioNotBuilt((built.stdout + built.stderr).strip() or "tools/peers.sh built fulcio failed")
    path = subprocess.run(
        ["bash", str(PEERS), "path", "fulcio"], capture_output=True, text=True, timeout=60, check=True
    )
    return Path(path.stdout.strip())


def _free_ports(count: int) -> list[int]:
    sockets = []
    try:
        for _ in range(count):
            s = socket.socket()
            s.bind(("127.0.0.1", 0))
            sockets.append(s)
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


def pem_to_der(pem: str) -> bytes:
    body = "".join(line for line in pem.strip().splitlines() if not line.startswith("-----"))
    return base64.b64decode(body)


class FulcioPeer:
    """``fulcio serve`` trusting ``issuer_url`` (TLS anchored at ``issuer_ca_pem``) as a ``kubernetes``
    issuer whose tokens carry the audience ``sigstore``; an in-memory CA made at start (``ephemeralca``:
    a self-signed P-256 root, no intermediate).  Files (config, ``fulcio.log``) go to ``workdir``.

    Use as a context manager: started on entry (ready when ``/healthz`` answers), stopped on exit.
    """

    def __init__(
        self,
        issuer_url: str,
        issuer_ca_pem: bytes,
        *,
        ct_log_url: str = "",
        workdir: Path,
        binary: Path | None = None,
    ) -> None:
        self.issuer_url = issuer_url
        self.issuer_ca_pem = issuer_ca_pem
        self.ct_log_url = ct_log_url
        self.workdir = workdir
        self.binary = binary
        self.log_file = workdir / "fulcio.log"
        self.config_file = workdir / "fulcio-config.json"
        self.process: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None
        self._url: str | None = None

    # -- lifecycle ---------------------------------------------------------------------------------------

    def __enter__(self) -> FulcioPeer:
        self.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    def start(self) -> None:
        binary = self.binary or fulcio_binary()
        self.workdir.mkdir(parents=True, exist_ok=True)
        issuer = {"IssuerURL": self.issuer_url, "ClientID": AUDIENCE, "Type": "kubernetes",
                  "CACert": self.issuer_ca_pem.decode()}  # fmt: skip
        self.config_file.write_text(json.dumps({"OIDCIssuers": {self.issuer_url: issuer}}, indent=1))
        http_port, grpc_port = _free_ports(2)
        command = [
            str(binary), "serve", "--ca", "ephemeralca",
            "--host", "127.0.0.1", "--port", str(http_port),
            "--grpc-host", "127.0.0.1", "--grpc-port", str(grpc_port),
            # Prometheus on a port of its own choosing (default 2112); the legacy gRPC API on an
            # abstract socket of this instance's (the default one is shared by every instance).
            "--metrics-port", "0",
            "--legacy-unix-domain-socket", f"@fulcio-legacy-{uuid.uuid4().hex}",
            "--config-path", str(self.config_file),
            "--ct-log-url", self.ct_log_url,
            "--log_type", "prod",
        ]  # fmt: skip
        # Viper reads FULCIO_SERVE_* as flags: none of the developer's shell.
        env = {k: v for k, v in os.environ.items() if not k.startswith("FULCIO_")}
        self._log = self.log_file.open("ab")
        self.process = subprocess.Popen(command, stdout=self._log, stderr=subprocess.STDOUT, env=env)
        self._url = f"http://127.0.0.1:{http_port}"
        try:
            self._wait_ready()
        except BaseException:
            self.stop()
            raise

    def _wait_ready(self) -> None:
        assert self.process is not None
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            if self.process.poll() is not None:
                code = self.process.returncode
                raise RuntimeError(f"fulcio exited ({code}) before it was ready:\n{self.log()}")
            try:
                if httpx.get(self.url + "/healthz", timeout=2).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"fulcio did not answer /healthz within {START_TIMEOUT} s:\n{self.log()}")
            time.sleep(0.05)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        if self._log is not None:
            self._log.close()
            self._log = None

    # -- what it serves ----------------------------------------------------------------------------------

    @property
    def url(self) -> str:
        if self._url is None:
            raise RuntimeError("fulcio is not started")
        return self._url

    def log(self) -> str:
        return self.log_file.read_text(errors="replace") if self.log_file.exists() else ""

    def configuration(self) -> dict[str, Any]:
        """``GET /api/v2/configuration``: ``{"issuers": [{"issuerUrl", "audience", "challengeClaim",
        "issuerType", ...}]}``."""
        r = httpx.get(self.url + "/api/v2/configuration", timeout=10)
        r.raise_for_status()
        found: dict[str, Any] = r.json()
        return found

    def trust_bundle(self) -> list[list[bytes]]:
        """``GET /api/v2/trustBundle`` as DER certificates, one list a chain (intermediates, then the
        root; ``ephemeralca`` has one chain of one self-signed root)."""
        r = httpx.get(self.url + "/api/v2/trustBundle", timeout=10)
        r.raise_for_status()
        return [[pem_to_der(c) for c in chain["certificates"]] for chain in r.json()["chains"]]

    def signing_cert(self, token: str, csr_pem: bytes, *, timeout: float = 10.0) -> httpx.Response:
        """``POST /api/v2/signingCert`` for a PEM PKCS#10 request, the token as the bearer (as
        sigstore-python and cosign send it).  Fulcio gives up after ``timeout`` (504 then)."""
        body = {"certificateSigningRequest": base64.b64encode(csr_pem).decode()}
        headers = {"Authorization": f"Bearer {token}", "Grpc-Timeout": f"{int(timeout * 1000)}m"}
        return httpx.post(self.url + "/api/v2/signingCert", json=body, headers=headers, timeout=timeout + 5)
