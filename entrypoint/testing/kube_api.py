"""A Kubernetes API server for tests: real HTTPS on 127.0.0.1, issuing and reviewing bound SA tokens.

It serves the four endpoints a pod-bound-token signer and its verifiers touch (field survey §3), and answers
as kube-apiserver does (``pkg/registry/core/serviceaccount/storage/token.go``,
``pkg/serviceaccount/claims.go``, ``openidmetadata.go``):

* ``POST /api/v1/namespaces/{ns}/serviceaccounts/{sa}/token`` (TokenRequest, 201).  The caller authenticates
  with a token for the API audiences and may only request tokens for its own service account (the RBAC grant
  a signer's pod would have).  Errors are ``Status`` objects with the apiserver's codes: 401 unauthenticated,
  403 forbidden, 400 undecodable body, **422 Invalid** for ``expirationSeconds`` outside [600, 2^32], 404 for
  an unknown service account or pod, 409 when ``boundObjectRef.uid`` is not the pod's current UID, 400 when
  the pod runs as another service account.  Empty ``audiences`` default to the API audiences and
  ``max_token_seconds`` caps the lifetime silently, both as the apiserver does.
* ``POST /apis/authentication.k8s.io/v1/tokenreviews`` (TokenReview, 201).  A token is authenticated only if
  its signature verifies against a key still in the JWKS, it is within ``exp``/``nbf`` (60 s leeway, as
  go-jose's default), its audiences meet the requested ones, and its bound pod still exists with the same UID.
  As in Go's JSON encoding, ``authenticated``, ``audiences`` and ``error`` are omitted when empty.
* ``GET /.well-known/openid-configuration`` and ``GET /openid/v1/jwks``, readable without credentials (the
  common ``system:service-account-issuer-discovery`` binding).

Tokens are real JWTs (PyJWT), RS256 or ES256, ``kid`` = base64url(SHA-256(SPKI DER)) as the apiserver derives
it.  The issuer defaults to the server's own URL, so OIDC discovery from ``iss`` reaches this server.

Fault knobs, settable while serving: ``fail_status``/``fail_next`` (answer an error status), ``delay``
(bounded slow answers), ``unauthorized`` (401 for everything), ``deny_token_requests`` (RBAC not granted),
:meth:`KubeAPIServer.rotate_signing_key`.

Admission, settable while serving: ``own_pod_tokens_only`` simulates the ValidatingAdmissionPolicy that
docs/oidc-sa-token.md §6 recommends against one pod of a service account asking for a token bound to
another pod of the same service account.  A TokenRequest with an audience starting with
``signed-entrypoint:`` (after defaulting) must bind the token to the pod the caller's own token is bound
to: ``kind: Pod`` and the UID in the caller's ``userInfo.extra['authentication.kubernetes.io/pod-uid']``.
Otherwise the answer is the policy's denial, 403 Forbidden; a caller whose token is bound to no pod is
denied too.  As in kube-apiserver's TokenRequest storage, validating admission runs
after the service-account lookup (404) and the static validation (422), and before the bound object is
looked up (404/409/400).

Run standalone with ``python -m entrypoint.testing.kube_api --pod NS/NAME/UID --service-account SA``
(``--own-pod-tokens-only`` turns the admission policy on).
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import datetime
import hashlib
import ipaddress
import json
import os
import re
import signal
import socket
import socketserver
import ssl
import sys
import tempfile
import threading
import time
import traceback
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler
from types import FrameType, TracebackType
from typing import Any

import jwt
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from jwt.algorithms import ECAlgorithm, RSAAlgorithm

from entrypoint.testing.ca import CA_KEY_USAGE

__all__ = [
    "ALGORITHMS",
    "JWKS_PATH",
    "MAX_DELAY_SECONDS",
    "OPENID_CONFIG_PATH",
    "OWN_POD_POLICY",
    "OWN_POD_POLICY_AUDIENCE_PREFIX",
    "OWN_POD_POLICY_MESSAGE",
    "TOKEN_REVIEW_PATH",
    "KubeAPIServer",
    "Pod",
    "main",
    "token_request_path",
]

ALGORITHMS: frozenset[str] = frozenset({"RS256", "ES256"})
OPENID_CONFIG_PATH = "/.well-known/openid-configuration"
JWKS_PATH = "/openid/v1/jwks"
TOKEN_REVIEW_PATH = "/apis/authentication.k8s.io/v1/tokenreviews"  # noqa: S105  (a URL path, not a secret)
AUTH_API_VERSION = "authentication.k8s.io/v1"
# The delay knob simulates a slow apiserver; a cap keeps a mistyped value from hanging a test run.
MAX_DELAY_SECONDS = 30.0
# The simulated admission policy (own_pod_tokens_only): its name (and its binding's), and the audiences
# it applies to.
OWN_POD_POLICY = "signed-entrypoint-own-pod-tokens"
OWN_POD_POLICY_MESSAGE = "signed-entrypoint tokens must be bound to the pod that requests them"
OWN_POD_POLICY_AUDIENCE_PREFIX = "signed-entrypoint:"

_TOKEN_PATH = re.compile(r"^/api/v1/namespaces/([^/]+)/serviceaccounts/([^/]+)/token$")
# ValidateTokenRequest's bounds.
_MIN_EXPIRATION_SECONDS = 600
_MAX_EXPIRATION_SECONDS = 1 << 32
_DEFAULT_EXPIRATION_SECONDS = 3600
# What the kubelet asks for when it projects the default kube-api-access token.
_MOUNTED_TOKEN_SECONDS = 3607
# go-jose's jwt.DefaultLeeway, which the apiserver's token validator relies on.
_LEEWAY_SECONDS = 60
# kube-apiserver refuses request bodies above 3 MB.
_MAX_BODY_BYTES = 3 * 1024 * 1024
# Bounds the TLS handshake, each read, an idle keep-alive connection and a whole request body, so a
# stalled or trickling client can never pin a handler thread.
_IO_TIMEOUT_SECONDS = 5.0
_POLL_SECONDS = 0.05
_SERVICE_ACCOUNT_GROUP = "system:serviceaccounts"
_REASONS = {
    400: "BadRequest",
    401: "Unauthorized",
    403: "Forbidden",
    404: "NotFound",
    405: "MethodNotAllowed",
    409: "Conflict",
    411: "LengthRequired",
    413: "RequestEntityTooLarge",
    415: "UnsupportedMediaType",
    422: "Invalid",
    429: "TooManyRequests",
    500: "InternalError",
    503: "ServiceUnavailable",
    504: "Timeout",
}
_SERVING_DNS_NAMES = (
    "localhost",
    "kubernetes",
    "kubernetes.default",
    "kubernetes.default.svc",
    "kubernetes.default.svc.cluster.local",
)


def token_request_path(namespace: str, service_account: str) -> str:
    return f"/api/v1/namespaces/{namespace}/serviceaccounts/{service_account}/token"


def _rfc3339(epoch: int) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(epoch))


def _status(code: int, message: str, details: dict[str, str] | None = None) -> dict[str, Any]:
    """A ``metav1.Status`` failure, the body of every apiserver error response."""
    body: dict[str, Any] = {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": message,
        "reason": _REASONS.get(code, ""),
        "code": code,
    }
    if details:
        body["details"] = details
    return body


class _APIError(Exception):
    def __init__(self, code: int, message: str, details: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.details = details


def _not_found(resource: str, name: str) -> _APIError:
    return _APIError(404, f'{resource} "{name}" not found', {"name": name, "kind": resource})


def _invalid_token_request(field: str, value: object, detail: str) -> _APIError:
    # errors.NewInvalid's message layout.
    return _APIError(
        422,
        f'TokenRequest.authentication.k8s.io "" is invalid: {field}: Invalid value: {value}: {detail}',
        {"group": "authentication.k8s.io", "kind": "TokenRequest"},
    )


def _undecodable(kind: str, detail: str) -> _APIError:
    return _APIError(400, f'{kind} in version "v1" cannot be handled as a {kind}: {detail}')


# -- keys and certificates -------------------------------------------------------------------------------


SigningPrivateKey = rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey


@dataclass(frozen=True)
class _SigningKey:
    kid: str
    alg: str
    private: SigningPrivateKey

    def __repr__(self) -> str:
        return f"_SigningKey(kid={self.kid!r}, alg={self.alg!r})"

    @classmethod
    def generate(cls, alg: str) -> _SigningKey:
        if alg not in ALGORITHMS:
            raise ValueError(f"unsupported signing algorithm {alg!r}; expected one of {sorted(ALGORITHMS)}")
        private: SigningPrivateKey = (
            rsa.generate_private_key(public_exponent=65537, key_size=2048)
            if alg == "RS256"
            else ec.generate_private_key(ec.SECP256R1())
        )
        spki = private.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        kid = base64.urlsafe_b64encode(hashlib.sha256(spki).digest()).rstrip(b"=").decode("ascii")
        return cls(kid=kid, alg=alg, private=private)

    def jwk(self) -> dict[str, Any]:
        public = self.private.public_key()
        if isinstance(public, rsa.RSAPublicKey):
            fields = RSAAlgorithm.to_jwk(public, as_dict=True)
        else:
            fields = ECAlgorithm.to_jwk(public, as_dict=True)
        assert isinstance(fields, dict)
        return {"use": "sig", "kid": self.kid, "alg": self.alg, **fields}


@dataclass(frozen=True)
class _ServingCredentials:
    ca_pem: bytes
    context: ssl.SSLContext


def _serving_credentials() -> _ServingCredentials:
    """A cluster CA (``CN=kubernetes``, as kubeadm names it) and a serving certificate for 127.0.0.1."""
    now = datetime.datetime.now(datetime.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "kubernetes")])
    ca_cert = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(hours=1))
        .not_valid_after(now + datetime.timedelta(days=7))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(CA_KEY_USAGE, critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    sans: list[x509.GeneralName] = [x509.IPAddress(ipaddress.IPv4Address("127.0.0.1"))]
    sans += [x509.DNSName(name) for name in _SERVING_DNS_NAMES]
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "kube-apiserver")]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(hours=1))
        .not_valid_after(now + datetime.timedelta(days=7))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=False,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.SubjectAlternativeName(sans), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False
        )
        .sign(ca_key, hashes.SHA256())
    )
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    # load_cert_chain reads files only; the private key lives on disk just long enough to be loaded,
    # in a directory only this user can read.
    with tempfile.TemporaryDirectory(prefix="kube-api-tls") as tmp:
        cert_path, key_path = os.path.join(tmp, "tls.crt"), os.path.join(tmp, "tls.key")
        with open(cert_path, "wb") as f:
            f.write(cert.public_bytes(serialization.Encoding.PEM))
        fd = os.open(key_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(
                key.private_bytes(
                    serialization.Encoding.PEM,
                    serialization.PrivateFormat.PKCS8,
                    serialization.NoEncryption(),
                )
            )
        context.load_cert_chain(cert_path, key_path)
    return _ServingCredentials(ca_pem=ca_cert.public_bytes(serialization.Encoding.PEM), context=context)


# -- cluster objects -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Pod:
    """A scheduled pod as the server knows it; the UIDs are what bound tokens carry in their claims."""

    namespace: str
    name: str
    uid: str
    service_account: str
    service_account_uid: str
    node: str
    node_uid: str

    @property
    def username(self) -> str:
        return f"system:serviceaccount:{self.namespace}:{self.service_account}"


@dataclass(frozen=True)
class _Identity:
    """What a verified token says, after the bound-object checks."""

    namespace: str
    service_account: str
    service_account_uid: str
    audiences: tuple[str, ...]
    jti: str
    pod: tuple[str, str] | None
    node: tuple[str, str] | None

    @property
    def username(self) -> str:
        return f"system:serviceaccount:{self.namespace}:{self.service_account}"


# -- HTTP plumbing ---------------------------------------------------------------------------------------


class _TLSServer(socketserver.ThreadingMixIn, socketserver.TCPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, owner: KubeAPIServer, port: int, context: ssl.SSLContext) -> None:
        self.owner = owner
        self.context = context
        self._connections_lock = threading.Lock()
        self._connections: set[socket.socket] = set()
        super().__init__(("127.0.0.1", port), _Handler)

    def get_request(self) -> tuple[Any, Any]:
        sock, address = self.socket.accept()
        # The handshake happens in the handler thread, under a timeout, so that a client that connects and
        # never speaks TLS cannot block the accept loop.
        return self.context.wrap_socket(sock, server_side=True, do_handshake_on_connect=False), address

    def process_request(self, request: Any, client_address: Any) -> None:
        with self._connections_lock:
            self._connections.add(request)
        super().process_request(request, client_address)

    def shutdown_request(self, request: Any) -> None:
        with self._connections_lock:
            self._connections.discard(request)
        super().shutdown_request(request)

    def drop_connections(self) -> None:
        """Cut open keep-alive connections so that a stopped server answers nothing more."""
        with self._connections_lock:
            connections = list(self._connections)
        for conn in connections:
            # socket.socket's own shutdown: SSLSocket.shutdown would reset TLS state under a reading thread.
            with contextlib.suppress(OSError):
                socket.socket.shutdown(conn, socket.SHUT_RDWR)

    def handle_error(self, request: Any, client_address: Any) -> None:
        # Failed handshakes and clients that hang up are part of the tests (wrong CA, timeouts); a
        # traceback per connection would only bury the real failures.
        pass


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    timeout = _IO_TIMEOUT_SECONDS
    server_version = "kube-apiserver-test"
    sys_version = ""

    def setup(self) -> None:
        self.request.settimeout(_IO_TIMEOUT_SECONDS)
        self.request.do_handshake()
        super().setup()

    def log_message(self, format: str, *args: Any) -> None:
        pass  # request lines are recorded in KubeAPIServer.requests; nothing goes to stderr

    @property
    def _owner(self) -> KubeAPIServer:
        server = self.server
        assert isinstance(server, _TLSServer)
        return server.owner

    def do_GET(self) -> None:
        self._dispatch()

    def do_POST(self) -> None:
        self._dispatch()

    def do_PUT(self) -> None:
        self._dispatch()

    def do_PATCH(self) -> None:
        self._dispatch()

    def do_DELETE(self) -> None:
        self._dispatch()

    def _read_body(self) -> bytes | None:
        """The request body, or ``None`` after an error answer (the connection is then closed)."""
        if self.headers.get("Transfer-Encoding"):
            self._answer_error(_APIError(411, "a Content-Length is required"), close=True)
            return None
        raw = self.headers.get("Content-Length", "0")
        try:
            length = int(raw)
        except ValueError:
            length = -1
        if length < 0:
            self._answer_error(_APIError(400, f"invalid Content-Length {raw!r}"), close=True)
            return None
        if length > _MAX_BODY_BYTES:
            self._answer_error(_APIError(413, "the request body is too large"), close=True)
            return None
        deadline = time.monotonic() + _IO_TIMEOUT_SECONDS
        chunks: list[bytes] = []
        remaining = length
        while remaining:
            if time.monotonic() > deadline:
                self.close_connection = True
                return None
            chunk = self.rfile.read(min(remaining, 65536))
            if not chunk:
                self.close_connection = True
                return None
            chunks.append(chunk)
            remaining -= len(chunk)
        return b"".join(chunks)

    def _dispatch(self) -> None:
        owner = self._owner
        owner._record(self.command, self.path)
        body = self._read_body()
        if body is None:
            return
        if not owner._pause():
            self.close_connection = True  # the server is stopping: answer nothing
            return
        try:
            code, payload, content_type, headers = owner._handle(
                self.command,
                self.path,
                self.headers.get("Authorization"),
                self.headers.get("Content-Type"),
                body,
            )
        except _APIError as err:
            self._answer_error(err)
            return
        except Exception:
            # A bug in this double must show up as a failed request, not as a connection dropped in silence.
            traceback.print_exc()
            self._answer_error(_APIError(500, "Internal error occurred: the test server failed"), close=True)
            return
        self._send(code, payload, content_type, headers)

    def _answer_error(self, err: _APIError, *, close: bool = False) -> None:
        headers = {"Retry-After": "1"} if err.code in (429, 503) else {}
        if err.code == 401:
            headers["WWW-Authenticate"] = 'Bearer realm="kubernetes"'
        if close:
            self.close_connection = True
            headers["Connection"] = "close"
        self._send(err.code, _status(err.code, err.message, err.details), "application/json", headers)

    def _send(self, code: int, payload: dict[str, Any], content_type: str, headers: dict[str, str]) -> None:
        data = json.dumps(payload, separators=(",", ":")).encode("utf-8")
        self.send_response(code)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        if "Cache-Control" not in headers:
            self.send_header("Cache-Control", "no-cache, private")
        for name, value in headers.items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(data)


# -- the server ------------------------------------------------------------------------------------------


class KubeAPIServer:
    """An HTTPS Kubernetes API server on 127.0.0.1 serving TokenRequest, TokenReview and OIDC discovery.

    ``alg``: the token signing algorithm, ``"RS256"`` (the apiserver default) or ``"ES256"``.  ``issuer``:
    the ``iss`` of issued tokens; by default the server's URL (known once started).  ``api_audiences``: the
    audiences the API itself accepts (``--api-audiences``), by default ``[issuer]``; mounted tokens carry
    them and callers must present one.  ``max_token_seconds``: ``--service-account-max-token-expiration``.
    ``port``: 0 picks a free port, kept across restarts.  ``own_pod_tokens_only``: the admission policy
    of the module docstring (also an attribute, settable while serving).
    """

    def __init__(
        self,
        *,
        alg: str = "RS256",
        issuer: str | None = None,
        api_audiences: Sequence[str] | None = None,
        max_token_seconds: int | None = None,
        port: int = 0,
        own_pod_tokens_only: bool = False,
    ) -> None:
        if issuer is not None and (not issuer.startswith("https://") or any(c in issuer for c in "?#")):
            raise ValueError(f"issuer must be an https URL without query or fragment, got {issuer!r}")
        if api_audiences is not None and not api_audiences:
            raise ValueError("api_audiences, when given, must not be empty")
        self._lock = threading.Lock()
        self._keys = [_SigningKey.generate(alg)]
        self._issuer = issuer
        self._api_audiences = tuple(api_audiences) if api_audiences is not None else None
        self.max_token_seconds = max_token_seconds
        self._port = port
        self._credentials = _serving_credentials()
        self._pods: dict[tuple[str, str], Pod] = {}
        self._service_accounts: dict[tuple[str, str], str] = {}
        self._nodes: dict[str, str] = {}
        self._requests: list[tuple[str, str]] = []
        self._token_requests: list[dict[str, Any]] = []
        self._fail_status: int | None = None
        self._fail_remaining: int | None = None
        self._delay = 0.0
        self.unauthorized = False
        self.deny_token_requests = False
        self.own_pod_tokens_only = own_pod_tokens_only
        self._server: _TLSServer | None = None
        self._thread: threading.Thread | None = None
        self._stopping = threading.Event()

    def __repr__(self) -> str:
        where = self.url if self._port else "not started"
        return f"KubeAPIServer({where}, alg={self.alg!r})"

    # -- lifecycle ---------------------------------------------------------------------------------------

    def start(self) -> None:
        """Listen on 127.0.0.1.  A stopped server may be started again, on the same port."""
        if self._server is not None:
            raise RuntimeError("KubeAPIServer is already running")
        server = _TLSServer(self, self._port, self._credentials.context)
        self._port = server.server_address[1]
        self._stopping.clear()
        thread = threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": _POLL_SECONDS}, name="kube-api", daemon=True
        )
        thread.start()
        self._server, self._thread = server, thread

    def stop(self) -> None:
        """Stop serving: delayed answers are abandoned, open connections cut, the port released."""
        server, self._server = self._server, None
        thread, self._thread = self._thread, None
        if server is None:
            return
        self._stopping.set()
        server.shutdown()
        server.drop_connections()
        server.server_close()
        if thread is not None:
            thread.join(timeout=_IO_TIMEOUT_SECONDS)

    def __enter__(self) -> KubeAPIServer:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # -- where it is and what it trusts ------------------------------------------------------------------

    @property
    def port(self) -> int:
        if not self._port:
            raise RuntimeError("the server has no port until started")
        return self._port

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self.port}"

    @property
    def ca_pem(self) -> bytes:
        """PEM of the CA that issued the serving certificate: the in-cluster ``ca.crt``."""
        return self._credentials.ca_pem

    @property
    def issuer(self) -> str:
        return self._issuer if self._issuer is not None else self.url

    @property
    def api_audiences(self) -> tuple[str, ...]:
        return self._api_audiences if self._api_audiences is not None else (self.issuer,)

    @property
    def alg(self) -> str:
        with self._lock:
            return self._keys[0].alg

    @property
    def signing_kid(self) -> str:
        """``kid`` of the key that signs new tokens."""
        with self._lock:
            return self._keys[0].kid

    def jwks(self) -> dict[str, Any]:
        """The JWKS served at ``/openid/v1/jwks``: the signing key and any kept by a rotation."""
        with self._lock:
            keys = list(self._keys)
        return {"keys": [key.jwk() for key in keys]}

    def openid_configuration(self) -> dict[str, Any]:
        with self._lock:
            algs = sorted({key.alg for key in self._keys})
        return {
            "issuer": self.issuer,
            # The apiserver names its own external address unless --service-account-jwks-uri overrides it.
            "jwks_uri": self.url + JWKS_PATH,
            "response_types_supported": ["id_token"],
            "subject_types_supported": ["public"],
            "id_token_signing_alg_values_supported": algs,
        }

    def write_in_cluster_files(
        self, directory: str | os.PathLike[str], pod: Pod | None = None
    ) -> dict[str, str]:
        """Write ``token``, ``ca.crt`` and ``namespace`` as the kubelet mounts them for ``pod``.

        ``pod`` may be omitted when exactly one pod is known.  Returns ``KUBERNETES_SERVICE_HOST`` and
        ``KUBERNETES_SERVICE_PORT``, the environment that makes client libraries find this server.
        """
        if pod is None:
            with self._lock:
                pods = list(self._pods.values())
            if len(pods) != 1:
                raise ValueError(f"{len(pods)} pods are known; say which one the files are for")
            pod = pods[0]
        token = self.caller_token(pod.namespace, pod.service_account, pod.name)
        os.makedirs(directory, exist_ok=True)
        _write_atomically(os.path.join(directory, "ca.crt"), self.ca_pem, 0o644)
        _write_atomically(os.path.join(directory, "namespace"), pod.namespace.encode(), 0o644)
        _write_atomically(os.path.join(directory, "token"), token.encode(), 0o600)
        return {"KUBERNETES_SERVICE_HOST": "127.0.0.1", "KUBERNETES_SERVICE_PORT": str(self.port)}

    # -- cluster state -----------------------------------------------------------------------------------

    def add_service_account(self, namespace: str, name: str) -> str:
        """Create the service account if needed; returns its UID."""
        with self._lock:
            return self._service_accounts.setdefault((namespace, name), str(uuid.uuid4()))

    def add_pod(self, namespace: str, name: str, uid: str, service_account: str, node: str = "node-1") -> Pod:
        """Schedule a pod (creating its service account and node as needed).  Re-adding a name with a new
        UID is a delete and recreate: tokens bound to the old pod stop authenticating."""
        sa_uid = self.add_service_account(namespace, service_account)
        with self._lock:
            node_uid = self._nodes.setdefault(node, str(uuid.uuid4()))
            pod = Pod(namespace, name, uid, service_account, sa_uid, node, node_uid)
            self._pods[(namespace, name)] = pod
        return pod

    def delete_pod(self, namespace: str, name: str) -> None:
        with self._lock:
            if self._pods.pop((namespace, name), None) is None:
                raise KeyError(f"no pod {namespace}/{name}")

    def pod(self, namespace: str, name: str) -> Pod:
        with self._lock:
            try:
                return self._pods[(namespace, name)]
            except KeyError:
                raise KeyError(f"no pod {namespace}/{name}") from None

    # -- tokens ------------------------------------------------------------------------------------------

    def issue_token(
        self,
        namespace: str,
        service_account: str,
        pod_name: str | None = None,
        *,
        audiences: Sequence[str] | None = None,
        expires_in: float = _DEFAULT_EXPIRATION_SECONDS,
    ) -> str:
        """A token as TokenRequest would issue it, with any lifetime (negative: already expired)."""
        with self._lock:
            sa_uid = self._service_accounts.get((namespace, service_account))
            pod = self._pods.get((namespace, pod_name)) if pod_name is not None else None
        if sa_uid is None:
            raise KeyError(f"no service account {namespace}/{service_account}")
        if pod_name is not None and pod is None:
            raise KeyError(f"no pod {namespace}/{pod_name}")
        if pod is not None and pod.service_account != service_account:
            raise ValueError(f"pod {namespace}/{pod_name} runs as {pod.service_account!r}")
        token, _ = self._mint(
            namespace,
            service_account,
            sa_uid,
            pod,
            tuple(audiences) if audiences else self.api_audiences,
            expires_in,
        )
        return token

    def caller_token(self, namespace: str, service_account: str, pod_name: str) -> str:
        """The token the kubelet mounts into the pod: API audiences, bound to the pod, about an hour."""
        return self.issue_token(namespace, service_account, pod_name, expires_in=_MOUNTED_TOKEN_SECONDS)

    def rotate_signing_key(self, *, keep_old: bool = False, alg: str | None = None) -> str:
        """Sign with a new key from now on; returns its ``kid``.  Unless ``keep_old``, the previous keys leave
        the JWKS and tokens they signed stop authenticating."""
        with self._lock:
            key = _SigningKey.generate(alg or self._keys[0].alg)
            self._keys = [key, *self._keys] if keep_old else [key]
            return key.kid

    def _mint(
        self,
        namespace: str,
        service_account: str,
        sa_uid: str,
        pod: Pod | None,
        audiences: tuple[str, ...],
        lifetime: float,
    ) -> tuple[str, int]:
        now = int(time.time())
        exp = now + int(lifetime)
        private: dict[str, Any] = {
            "namespace": namespace,
            "serviceaccount": {"name": service_account, "uid": sa_uid},
        }
        if pod is not None:
            private["pod"] = {"name": pod.name, "uid": pod.uid}
            private["node"] = {"name": pod.node, "uid": pod.node_uid}
        claims = {
            "aud": list(audiences),
            "exp": exp,
            "iat": now,
            "nbf": now,
            "iss": self.issuer,
            "jti": str(uuid.uuid4()),
            "sub": f"system:serviceaccount:{namespace}:{service_account}",
            "kubernetes.io": private,
        }
        with self._lock:
            key = self._keys[0]
        return jwt.encode(claims, key.private, algorithm=key.alg, headers={"kid": key.kid}), exp

    def _verify(self, token: str) -> _Identity:
        """Authenticate a token as the apiserver's service-account authenticator does; the audience is the
        caller's business.  Raises ``_APIError`` whose message is the authenticator's error."""
        try:
            header = jwt.get_unverified_header(token)
        except jwt.InvalidTokenError:
            raise _APIError(401, "invalid bearer token") from None
        kid = header.get("kid")
        with self._lock:
            keys = [k for k in self._keys if kid is None or k.kid == kid]
        if not keys:
            raise _APIError(401, "invalid bearer token, square/go-jose: error in cryptographic primitive")
        claims: dict[str, Any] | None = None
        for key in keys:
            try:
                claims = jwt.decode(
                    token,
                    key.private.public_key(),
                    algorithms=[key.alg],
                    issuer=self.issuer,
                    leeway=_LEEWAY_SECONDS,
                    options={"verify_aud": False, "require": ["exp", "iat", "iss", "sub"]},
                )
                break
            except jwt.ExpiredSignatureError:
                raise _APIError(401, "invalid bearer token, service account token has expired") from None
            except jwt.ImmatureSignatureError:
                raise _APIError(401, "invalid bearer token, service account token is not valid yet") from None
            except jwt.InvalidSignatureError:
                continue
            except jwt.InvalidTokenError:
                raise _APIError(401, "invalid bearer token") from None
        if claims is None:
            raise _APIError(401, "invalid bearer token, square/go-jose: error in cryptographic primitive")
        return self._check_bound_objects(claims)

    def _check_bound_objects(self, claims: dict[str, Any]) -> _Identity:
        private = claims.get("kubernetes.io")
        sa = private.get("serviceaccount") if isinstance(private, dict) else None
        if not isinstance(private, dict) or not isinstance(sa, dict):
            raise _APIError(401, "invalid bearer token, service account token claims are malformed")
        namespace, name, sa_uid = private.get("namespace"), sa.get("name"), sa.get("uid")
        if claims.get("sub") != f"system:serviceaccount:{namespace}:{name}":
            raise _APIError(401, "invalid bearer token, service account token claims are malformed")
        pod_claim = private.get("pod")
        with self._lock:
            current_sa_uid = self._service_accounts.get((str(namespace), str(name)))
            pod = (
                self._pods.get((str(namespace), str(pod_claim.get("name"))))
                if isinstance(pod_claim, dict)
                else None
            )
        if current_sa_uid is None:
            raise _APIError(401, "invalid bearer token, service account token has been invalidated")
        if current_sa_uid != sa_uid:
            raise _APIError(
                401,
                f"invalid bearer token, service account UID ({current_sa_uid})"
                f" does not match claim ({sa_uid})",
            )
        bound_pod: tuple[str, str] | None = None
        if isinstance(pod_claim, dict):
            if pod is None:
                raise _APIError(401, "invalid bearer token, service account token has been invalidated")
            if pod.uid != pod_claim.get("uid"):
                raise _APIError(
                    401,
                    f"invalid bearer token, pod UID ({pod.uid})"
                    f" does not match claim ({pod_claim.get('uid')})",
                )
            bound_pod = (pod.name, pod.uid)
        node_claim = private.get("node")
        node = (
            (str(node_claim.get("name")), str(node_claim.get("uid")))
            if isinstance(node_claim, dict)
            else None
        )
        aud = claims.get("aud")
        audiences = (
            (aud,) if isinstance(aud, str) else tuple(str(a) for a in aud) if isinstance(aud, list) else ()
        )
        return _Identity(
            str(namespace), str(name), str(sa_uid), audiences, str(claims.get("jti", "")), bound_pod, node
        )

    # -- fault knobs -------------------------------------------------------------------------------------

    @property
    def fail_status(self) -> int | None:
        """While set, every request is answered with this status (and a ``Status`` body)."""
        with self._lock:
            return self._fail_status

    @fail_status.setter
    def fail_status(self, status: int | None) -> None:
        if status is not None and not 400 <= status <= 599:
            raise ValueError(f"fail_status must be an HTTP error status (400-599), got {status}")
        with self._lock:
            self._fail_status, self._fail_remaining = status, None

    def fail_next(self, times: int, status: int = 503) -> None:
        """Answer the next ``times`` requests with ``status``, then serve normally again."""
        if times < 1:
            raise ValueError("times must be at least 1")
        self.fail_status = status
        with self._lock:
            self._fail_remaining = times

    @property
    def delay(self) -> float:
        """Seconds to wait before answering each request, at most :data:`MAX_DELAY_SECONDS`."""
        with self._lock:
            return self._delay

    @delay.setter
    def delay(self, seconds: float) -> None:
        if not 0 <= seconds <= MAX_DELAY_SECONDS:
            raise ValueError(f"delay must be between 0 and {MAX_DELAY_SECONDS} seconds, got {seconds}")
        with self._lock:
            self._delay = seconds

    # -- what was asked ----------------------------------------------------------------------------------

    @property
    def requests(self) -> list[tuple[str, str]]:
        """``(method, path)`` of every request received, answered or not, oldest first."""
        with self._lock:
            return list(self._requests)

    @property
    def token_requests(self) -> list[dict[str, Any]]:
        """Decoded bodies of TokenRequest calls that passed authentication and authorization, oldest first.

        Kept so that tests can check what a client asked for; TokenRequest bodies hold no credentials
        (TokenReview bodies do, so they are not kept)."""
        with self._lock:
            return [json.loads(json.dumps(body)) for body in self._token_requests]

    def _record(self, method: str, path: str) -> None:
        with self._lock:
            self._requests.append((method, path))

    def _pause(self) -> bool:
        """Apply the delay knob; False if the server began stopping meanwhile."""
        delay = self.delay
        if delay:
            return not self._stopping.wait(delay)
        return not self._stopping.is_set()

    def _injected_failure(self) -> _APIError | None:
        with self._lock:
            status = self._fail_status
            if status is None:
                return None
            if self._fail_remaining is not None:
                self._fail_remaining -= 1
                if self._fail_remaining <= 0:
                    self._fail_status, self._fail_remaining = None, None
        message = {
            429: "Too many requests, please try again later.",
            503: "service unavailable",
            504: "Timeout: request did not complete within the allotted timeout",
        }.get(status, "Internal error occurred: injected failure")
        return _APIError(status, message)

    # -- request handling --------------------------------------------------------------------------------

    def _handle(
        self, method: str, raw_path: str, authorization: str | None, content_type: str | None, body: bytes
    ) -> tuple[int, dict[str, Any], str, dict[str, str]]:
        if self.unauthorized:
            raise _APIError(401, "Unauthorized")
        failure = self._injected_failure()
        if failure is not None:
            raise failure
        path = raw_path.split("?", 1)[0]
        token_path = _TOKEN_PATH.match(path)
        if path in (OPENID_CONFIG_PATH, JWKS_PATH):
            if method != "GET":
                raise _APIError(405, "the server does not allow this method on the requested resource")
            if path == JWKS_PATH:
                return 200, self.jwks(), "application/jwk-set+json", {"Cache-Control": "public, max-age=3600"}
            return (
                200,
                self.openid_configuration(),
                "application/json",
                {"Cache-Control": "public, max-age=3600"},
            )
        if token_path is None and path != TOKEN_REVIEW_PATH:
            raise _APIError(404, "the server could not find the requested resource")
        caller = self._authenticate(authorization)
        if method != "POST":
            raise _APIError(405, "the server does not allow this method on the requested resource")
        _require_json(content_type)
        if token_path is not None:
            return (
                201,
                self._token_request(caller, token_path[1], token_path[2], body),
                "application/json",
                {},
            )
        return 201, self._token_review(body), "application/json", {}

    def _authenticate(self, authorization: str | None) -> _Identity:
        scheme, _, token = (authorization or "").partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not token:
            raise _APIError(401, "Unauthorized")
        try:
            identity = self._verify(token)
        except _APIError:
            raise _APIError(401, "Unauthorized") from None
        if not set(identity.audiences) & set(self.api_audiences):
            raise _APIError(401, "Unauthorized")
        return identity

    def _token_request(self, caller: _Identity, namespace: str, name: str, body: bytes) -> dict[str, Any]:
        if self.deny_token_requests or (caller.namespace, caller.service_account) != (namespace, name):
            raise _APIError(
                403,
                f'serviceaccounts "{name}" is forbidden: User "{caller.username}" cannot create resource'
                f' "serviceaccounts/token" in API group "" in the namespace "{namespace}"',
                {"name": name, "kind": "serviceaccounts"},
            )
        request = _decode_object(body, "TokenRequest")
        with self._lock:
            self._token_requests.append(request)
        spec = request.get("spec", {})
        if not isinstance(spec, dict):
            raise _undecodable("TokenRequest", "spec must be an object")
        audiences = spec.get("audiences")
        if audiences is None:
            audiences = []
        if not isinstance(audiences, list) or not all(isinstance(a, str) for a in audiences):
            raise _undecodable("TokenRequest", "spec.audiences must be a list of strings")
        expiration = spec.get("expirationSeconds", _DEFAULT_EXPIRATION_SECONDS)
        if not isinstance(expiration, int) or isinstance(expiration, bool):
            raise _undecodable("TokenRequest", "spec.expirationSeconds must be an integer")
        if expiration < _MIN_EXPIRATION_SECONDS:
            raise _invalid_token_request(
                "spec.expirationSeconds", expiration, "may not specify a duration less than 10 minutes"
            )
        if expiration > _MAX_EXPIRATION_SECONDS:
            raise _invalid_token_request(
                "spec.expirationSeconds", expiration, "may not specify a duration larger than 2^32 seconds"
            )
        with self._lock:
            sa_uid = self._service_accounts.get((namespace, name))
        if sa_uid is None:
            raise _not_found("serviceaccounts", name)
        ref = spec.get("boundObjectRef")
        if ref is not None and (
            not isinstance(ref, dict) or not all(isinstance(v, str) for v in ref.values())
        ):
            raise _undecodable("TokenRequest", "spec.boundObjectRef must be an object of strings")
        if not audiences:
            audiences = list(self.api_audiences)
        if self.own_pod_tokens_only:
            _admit_own_pod_token(caller, name, audiences, ref)
        pod = self._bound_pod(namespace, name, ref)
        if self.max_token_seconds is not None and expiration > self.max_token_seconds:
            expiration = self.max_token_seconds
        token, exp = self._mint(namespace, name, sa_uid, pod, tuple(audiences), expiration)
        out_spec = {**spec, "audiences": audiences, "expirationSeconds": expiration}
        return {
            "kind": "TokenRequest",
            "apiVersion": AUTH_API_VERSION,
            "metadata": {"name": name, "namespace": namespace, "creationTimestamp": None},
            "spec": out_spec,
            "status": {"token": token, "expirationTimestamp": _rfc3339(exp)},
        }

    def _bound_pod(self, namespace: str, service_account: str, ref: dict[str, str] | None) -> Pod | None:
        if ref is None:
            return None
        api_version, kind = ref.get("apiVersion", ""), ref.get("kind", "")
        group = api_version.rpartition("/")[0] if "/" in api_version else ""
        name, uid = ref.get("name", ""), ref.get("uid", "")
        if group or kind not in ("Pod", "Secret"):
            version = api_version.rpartition("/")[2]
            raise _APIError(400, f"cannot bind token to object of type {group}/{version}, Kind={kind}")
        if not name:
            raise _APIError(400, "resource name may not be empty")
        if kind == "Secret":
            raise _not_found("secrets", name)  # this server keeps no secrets
        with self._lock:
            pod = self._pods.get((namespace, name))
        if pod is None:
            raise _not_found("pods", name)
        if pod.service_account != service_account:
            raise _APIError(
                400,
                f'cannot bind token for serviceaccount "{service_account}" to pod running with different'
                " serviceaccount name.",
            )
        if uid and uid != pod.uid:
            raise _APIError(
                409,
                f'Operation cannot be fulfilled on Pod "{name}": the UID in the bound object reference'
                f" ({uid}) does not match the UID in record."
                " The object might have been deleted and then recreated",
                {"name": name, "kind": "Pod"},
            )
        return pod

    def _token_review(self, body: bytes) -> dict[str, Any]:
        review = _decode_object(body, "TokenReview")
        spec = review.get("spec", {})
        if not isinstance(spec, dict):
            raise _undecodable("TokenReview", "spec must be an object")
        token, requested = spec.get("token", ""), spec.get("audiences")
        if not isinstance(token, str):
            raise _undecodable("TokenReview", "spec.token must be a string")
        if requested is not None and (
            not isinstance(requested, list) or not all(isinstance(a, str) for a in requested)
        ):
            raise _undecodable("TokenReview", "spec.audiences must be a list of strings")
        if not token:
            raise _APIError(400, "token is required for TokenReview in authentication")
        wanted = list(requested) if requested else list(self.api_audiences)
        # Go's encoding omits these when empty (``omitempty``); clients must treat absence as false/none.
        status: dict[str, Any] = {"user": {}}
        try:
            identity = self._verify(token)
        except _APIError as err:
            status["error"] = f"[{err.message}]"
        else:
            granted = [a for a in wanted if a in identity.audiences]
            if not granted:
                status["error"] = (
                    f"[invalid bearer token, token audiences {json.dumps(list(identity.audiences))}"
                    f" is invalid for the target audiences {json.dumps(wanted)}]"
                )
            else:
                status = {"authenticated": True, "user": _user_info(identity), "audiences": granted}
        return {
            "kind": "TokenReview",
            "apiVersion": AUTH_API_VERSION,
            "metadata": {"creationTimestamp": None},
            "spec": spec,
            "status": status,
        }


def _admit_own_pod_token(
    caller: _Identity, service_account: str, audiences: list[str], ref: dict[str, str] | None
) -> None:
    """The ``own_pod_tokens_only`` admission policy, docs/oidc-sa-token.md §6's ValidatingAdmissionPolicy:
    when ``object.spec.audiences.exists(a, a.startsWith('signed-entrypoint:'))``, admit only if::

        has(object.spec.boundObjectRef) && object.spec.boundObjectRef.kind == 'Pod' &&
        'authentication.kubernetes.io/pod-uid' in request.userInfo.extra &&
        object.spec.boundObjectRef.uid == request.userInfo.extra['authentication.kubernetes.io/pod-uid'][0]

    The name is not compared: the TokenRequest storage then finds the pod by name and refuses a UID that
    is not its own (409).  A reference without a UID is denied (in CEL, reading the absent field is an
    error, and the policy fails closed); so is a caller whose token is bound to no pod (no ``extra``).
    """
    if not any(a.startswith(OWN_POD_POLICY_AUDIENCE_PREFIX) for a in audiences):
        return
    if (
        caller.pod is not None
        and ref is not None
        and ref.get("kind") == "Pod"
        and ref.get("uid") is not None
        and ref.get("uid") == caller.pod[1]
    ):
        return
    # admission.NewForbidden's message around the policy plugin's.
    raise _APIError(
        403,
        f'serviceaccounts "{service_account}" is forbidden: ValidatingAdmissionPolicy'
        f" '{OWN_POD_POLICY}' with binding '{OWN_POD_POLICY}' denied request: {OWN_POD_POLICY_MESSAGE}",
        {"name": service_account, "kind": "serviceaccounts"},
    )


def _user_info(identity: _Identity) -> dict[str, Any]:
    extra: dict[str, list[str]] = {}
    if identity.pod is not None:
        extra["authentication.kubernetes.io/pod-name"] = [identity.pod[0]]
        extra["authentication.kubernetes.io/pod-uid"] = [identity.pod[1]]
    if identity.node is not None:
        extra["authentication.kubernetes.io/node-name"] = [identity.node[0]]
        extra["authentication.kubernetes.io/node-uid"] = [identity.node[1]]
    if identity.jti:
        extra["authentication.kubernetes.io/credential-id"] = [f"JTI={identity.jti}"]
    return {
        "username": identity.username,
        "uid": identity.service_account_uid,
        "groups": [
            _SERVICE_ACCOUNT_GROUP,
            f"{_SERVICE_ACCOUNT_GROUP}:{identity.namespace}",
            "system:authenticated",
        ],
        "extra": extra,
    }


def _require_json(content_type: str | None) -> None:
    media_type = (content_type or "").split(";", 1)[0].strip().lower()
    if media_type != "application/json":
        raise _APIError(
            415,
            "the body of the request was in an unknown format - accepted media types include:"
            f" application/json (got {media_type or 'none'!r})",
        )


def _decode_object(body: bytes, kind: str) -> dict[str, Any]:
    try:
        obj = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise _undecodable(kind, f"json parse error: {err}") from None
    if not isinstance(obj, dict):
        raise _undecodable(kind, "the body is not a JSON object")
    # The apiserver fills absent type fields from the URL, but refuses ones naming something else.
    api_version, got_kind = obj.get("apiVersion", AUTH_API_VERSION), obj.get("kind", kind)
    if api_version != AUTH_API_VERSION or got_kind != kind:
        raise _undecodable(
            kind, f"expected {AUTH_API_VERSION}, Kind={kind}, got {api_version}, Kind={got_kind}"
        )
    return obj


def _write_atomically(path: str, data: bytes, mode: int) -> None:
    # A reader (a step, a test) must never see half a token.
    tmp = f"{path}.tmp{os.getpid()}"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    with os.fdopen(fd, "wb") as f:
        f.write(data)
    os.replace(tmp, path)


def _parse_pod(value: str) -> tuple[str, str, str]:
    parts = value.split("/")
    if len(parts) != 3 or not all(parts):
        raise argparse.ArgumentTypeError(f"expected NAMESPACE/NAME/UID, got {value!r}")
    return parts[0], parts[1], parts[2]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m entrypoint.testing.kube_api",
        description="Serve a test Kubernetes API (TokenRequest, TokenReview, OIDC) until SIGTERM/SIGINT.",
    )
    parser.add_argument(
        "--pod",
        required=True,
        action="append",
        type=_parse_pod,
        metavar="NS/NAME/UID",
        help="a pod (repeatable)",
    )
    parser.add_argument(
        "--service-account", required=True, metavar="SA", help="service account the pods run as"
    )
    parser.add_argument("--node", default="node-1", help="node the pods run on")
    parser.add_argument("--alg", choices=sorted(ALGORITHMS), default="RS256", help="token signing algorithm")
    parser.add_argument("--port", type=int, default=0, help="port on 127.0.0.1 (default: any free port)")
    parser.add_argument("--issuer", help="token issuer (default: the server's URL)")
    parser.add_argument("--max-token-seconds", type=int, metavar="S", help="cap on issued token lifetimes")
    parser.add_argument(
        "--own-pod-tokens-only",
        action="store_true",
        help="admission policy: signed-entrypoint tokens may only be bound to the requesting pod",
    )
    parser.add_argument(
        "--in-cluster-dir",
        metavar="DIR",
        help="write token, ca.crt and namespace for the first pod here before 'ready'",
    )
    args = parser.parse_args(argv)

    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)

    try:
        server = KubeAPIServer(
            alg=args.alg,
            issuer=args.issuer,
            max_token_seconds=args.max_token_seconds,
            port=args.port,
            own_pod_tokens_only=args.own_pod_tokens_only,
        )
        pods = [server.add_pod(ns, name, uid, args.service_account, args.node) for ns, name, uid in args.pod]
        server.start()
    except (ValueError, OSError) as err:
        print(f"kube_api: {err}", file=sys.stderr)
        return 2
    try:
        if args.in_cluster_dir:
            server.write_in_cluster_files(args.in_cluster_dir, pods[0])
        print(f"ready {server.url}", flush=True)
        # A timed wait keeps the main thread returning to the interpreter, where signal handlers run.
        while not stop.wait(0.5):
            pass
    finally:
        server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
