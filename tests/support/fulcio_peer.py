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
and answers ``signedCertificateEmbeddedSct``.  A CT log that cannot be reached, or answers 408, 429
or 503, is retried with backoff for as long as the request's deadline allows, so
:meth:`FulcioPeer.signing_cert` sends one (``Grpc-Timeout``; 504 when it passes); any other error
answer of the log (400, 500), or an SCT that does not verify, is 500 "Error entering certificate in
CTL" at once (certificate-transparency-go's ``PostAndParseWithRetry``).  ``ct_log_ca_pem`` is the CA
of the log's TLS (``--ct-log.tls-ca-cert``: it then replaces the system roots for the log);
``ct_log_public_key_pem`` is the log's key (``--ct-log-public-key-path``), with which Fulcio verifies
each SCT before it embeds it (without it, any SCT is embedded).

Fulcio serves its HTTP API in clear text only (``--grpc-tls-*`` applies to the gRPC port alone); a
deployment terminates TLS in front of it, an ingress.  :attr:`FulcioPeer.https_url` is that ingress here
(:class:`TLSFront`, with a CA of its own, :attr:`FulcioPeer.ca_pem`), since the signer sends its token to
https URLs only.
"""

from __future__ import annotations

import base64
import json
import os
import socket
import subprocess
import time
import uuid
import warnings
from pathlib import Path
from types import TracebackType
from typing import IO, Any

import httpx
from cryptography import x509
from cryptography.x509.oid import NameOID

from entrypoint.testing import sigstore_root
from entrypoint.testing._https import HTTPSDouble, Reply, serving_credentials
from tests.support.paths import REPO

PEERS = REPO / "tools" / "peers.sh"
START_TIMEOUT = 30.0
STOP_TIMEOUT = 10.0
AUDIENCE = "sigstore"  # the issuer's ClientID: the audience tokens for Fulcio carry
UPSTREAM_TIMEOUT = 30.0  # a client that gives up first does not cancel Fulcio's request
# Not forwarded by the TLS front: hop-by-hop headers, and those its own client sets.
_UNFORWARDED = frozenset(
    {"host", "connection", "keep-alive", "content-length", "transfer-encoding", "accept-encoding", "te",
     "upgrade", "proxy-connection"}
)  # fmt: skip


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


class TLSFront(HTTPSDouble):
    """An HTTPS reverse proxy on 127.0.0.1 in front of a clear-text JSON API (Fulcio's ``--port``): each
    request goes to ``upstream`` with its headers (but hop-by-hop ones) and body; the answer comes back
    with its status and JSON body (re-encoded: the same document, not the same bytes).  The scaffold's
    fault knobs (``fail_status``, ``fail_next``, ``delay``) work here too."""

    server_version = "fulcio-tls-front"

    def __init__(self, upstream: str) -> None:
        super().__init__(serving_credentials("fulcio-ingress", "fulcio"), name="fulcio-tls-front")
        self.upstream = upstream.rstrip("/")
        self._client = httpx.Client(timeout=UPSTREAM_TIMEOUT, follow_redirects=False)

    def stop(self) -> None:
        super().stop()
        self._client.close()

    def handle(self, method: str, path: str, headers: Any, body: bytes) -> Reply:
        forwarded = {k: v for k, v in headers.items() if k.lower() not in _UNFORWARDED}
        try:
            r = self._client.request(method, self.upstream + path, headers=forwarded, content=body)
        except httpx.HTTPError as err:
            # As an ingress answers when its backend fails (and no traceback from the scaffold).
            reason = {"code": 14, "message": f"fulcio-tls-front: {str(err) or type(err).__name__}"}
            return 502, reason, "application/json", {}
        try:
            document = r.json()
        except ValueError:
            document = {"code": 2, "message": r.text.strip()}
        if not isinstance(document, dict):
            document = {"value": document}
        content_type = r.headers.get("Content-Type", "application/json")
        return r.status_code, document, content_type, {}


class FulcioPeer:
    """``fulcio serve`` trusting ``issuer_url`` (TLS anchored at ``issuer_ca_pem``) as a ``kubernetes``
    issuer whose tokens carry the audience ``sigstore``; an in-memory CA made at start (``ephemeralca``:
    a self-signed P-256 root, no intermediate).  Files (config, ``fulcio.log``) go to ``workdir``.
    ``ct_log_url``, ``ct_log_ca_pem``, ``ct_log_public_key_pem``: the CT log (see the module's text).

    Use as a context manager: started on entry (ready when ``/healthz`` answers), stopped on exit.
    """

    def __init__(
        self,
        issuer_url: str,
        issuer_ca_pem: bytes,
        *,
        ct_log_url: str = "",
        ct_log_ca_pem: bytes | None = None,
        ct_log_public_key_pem: bytes | None = None,
        workdir: Path,
        binary: Path | None = None,
    ) -> None:
        self.issuer_url = issuer_url
        self.issuer_ca_pem = issuer_ca_pem
        self.ct_log_url = ct_log_url
        self.ct_log_ca_pem = ct_log_ca_pem
        self.ct_log_public_key_pem = ct_log_public_key_pem
        self.workdir = workdir
        self.binary = binary
        self.log_file = workdir / "fulcio.log"
        self.config_file = workdir / "fulcio-config.json"
        self.process: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None
        self._url: str | None = None
        self._front: TLSFront | None = None

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
        if self.ct_log_ca_pem is not None:
            ca_file = self.workdir / "ct-log-tls-ca.pem"
            ca_file.write_bytes(self.ct_log_ca_pem)
            command += ["--ct-log.tls-ca-cert", str(ca_file)]
        if self.ct_log_public_key_pem is not None:
            key_file = self.workdir / "ct-log-public-key.pem"
            key_file.write_bytes(self.ct_log_public_key_pem)
            command += ["--ct-log-public-key-path", str(key_file)]
        # Viper reads FULCIO_SERVE_* as flags: none of the developer's shell.
        env = {k: v for k, v in os.environ.items() if not k.startswith("FULCIO_")}
        self._log = self.log_file.open("ab")
        self.process = subprocess.Popen(command, stdout=self._log, stderr=subprocess.STDOUT, env=env)
        self._url = f"http://127.0.0.1:{http_port}"
        try:
            self._wait_ready()
            self._front = TLSFront(self._url)
            self._front.start()
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
        if self._front is not None:
            self._front.stop()
            self._front = None
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

    @property
    def front(self) -> TLSFront:
        """The TLS front (its fault knobs, the requests it passed on)."""
        if self._front is None:
            raise RuntimeError("fulcio is not started")
        return self._front

    @property
    def https_url(self) -> str:
        """Fulcio behind its TLS front: the address a signer is given."""
        return self.front.url

    @property
    def ca_pem(self) -> bytes:
        """The CA of the TLS front's serving certificate: what a signer trusts for Fulcio's TLS."""
        return self.front.ca_pem

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

    def certificate_authorities(self) -> list[dict[str, Any]]:
        """The trust bundle as a trusted root's ``certificateAuthorities``: one a chain, its URI the
        front's, valid from its root's notBefore (``ephemeralca`` makes its root at start)."""
        authorities = []
        for chain in self.trust_bundle():
            root = x509.load_der_x509_certificate(chain[-1])
            authorities.append(
                sigstore_root.certificate_authority(
                    self.https_url,
                    chain,
                    start=root.not_valid_before_utc,
                    organization=_name_part(root, NameOID.ORGANIZATION_NAME),
                    common_name=_name_part(root, NameOID.COMMON_NAME),
                )
            )
        return authorities

    def write_trusted_root(self, path: str | os.PathLike[str]) -> None:
        """Write the ``certificateAuthorities`` section of the trusted root at ``path`` (from ``GET
        /api/v2/trustBundle``), keeping its other sections (the CT log's ``ctlogs``, Rekor's ``tlogs``)."""
        sigstore_root.merge_into(path, certificate_authorities=self.certificate_authorities())


def _name_part(cert: x509.Certificate, oid: x509.ObjectIdentifier) -> str:
    # ephemeralca's root has C=USA: cryptography warns that a country is two letters (RFC 5280).
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        values = cert.subject.get_attributes_for_oid(oid)
    return str(values[0].value) if values else ""
