"""The HTTPS scaffold every HTTP test double shares: a threaded TLS server on 127.0.0.1.

A double (the Kubernetes API server, and next Fulcio and Rekor) subclasses :class:`HTTPSDouble` and
implements :meth:`HTTPSDouble.handle`; the scaffold gives it a CA and a serving certificate of its
own, a port kept across restarts, bounded reads, JSON answers, a log of the requests, and the fault
knobs every double wants (``fail_status``, ``fail_next``, ``delay``), settable while serving.

``handle`` answers with an :data:`Answer` (one JSON body) or a :class:`StreamedAnswer` (newline-delimited
JSON documents in chunked encoding, each sent as soon as it is produced, as a Kubernetes watch is).
"""

from __future__ import annotations

import contextlib
import datetime
import ipaddress
import json
import os
import socket
import socketserver
import ssl
import tempfile
import threading
import time
import traceback
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from typing import Any, ClassVar

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from entrypoint.testing._serving import Serving
from entrypoint.testing.ca import CA_KEY_USAGE

# Bounded so that a forgotten knob cannot hang a test run.
MAX_DELAY_SECONDS = 30.0
IO_TIMEOUT_SECONDS = 5.0
MAX_BODY_BYTES = 3 * 1024 * 1024
_POLL_SECONDS = 0.05


class HTTPError(Exception):
    """An error answer: the status code, a message, and details for the double's error body."""

    def __init__(self, code: int, message: str, details: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.details = details


@dataclass(frozen=True)
class ServingCredentials:
    """A double's own CA (its PEM is what clients trust) and the server's TLS context."""

    ca_pem: bytes
    context: ssl.SSLContext


def serving_credentials(
    ca_name: str, server_name: str, dns_names: Sequence[str] = ("localhost",)
) -> ServingCredentials:
    """A CA named ``ca_name`` and a serving certificate for 127.0.0.1 and ``dns_names``."""
    now = datetime.datetime.now(datetime.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    issuer = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, ca_name)])
    ca_cert = (
        x509.CertificateBuilder()
        .subject_name(issuer)
        .issuer_name(issuer)
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
    sans += [x509.DNSName(name) for name in dns_names]
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, server_name)]))
        .issuer_name(issuer)
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
    with tempfile.TemporaryDirectory(prefix="test-double-tls") as tmp:
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
    return ServingCredentials(ca_pem=ca_cert.public_bytes(serialization.Encoding.PEM), context=context)


class _TLSServer(socketserver.ThreadingMixIn, socketserver.TCPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, owner: HTTPSDouble, port: int, context: ssl.SSLContext) -> None:
        self.owner = owner
        self.context = context
        self._connections_lock = threading.Lock()
        self._connections: set[socket.socket] = set()
        super().__init__(("127.0.0.1", port), _Handler)

    def get_request(self) -> tuple[Any, Any]:
        sock, address = self.socket.accept()
        # Headers and body leave in separate writes; with Nagle's algorithm against the client's delayed
        # ACK, each answer would wait ~40 ms for the second one.
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
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
    timeout = IO_TIMEOUT_SECONDS
    sys_version = ""

    def setup(self) -> None:
        self.request.settimeout(IO_TIMEOUT_SECONDS)
        self.request.do_handshake()
        super().setup()
        self.server_version = self._owner.server_version

    def log_message(self, format: str, *args: Any) -> None:
        pass  # request lines are recorded in HTTPSDouble.requests; nothing goes to stderr

    @property
    def _owner(self) -> HTTPSDouble:
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
            self._answer_error(HTTPError(411, "a Content-Length is required"), close=True)
            return None
        raw = self.headers.get("Content-Length", "0")
        try:
            length = int(raw)
        except ValueError:
            length = -1
        if length < 0:
            self._answer_error(HTTPError(400, f"invalid Content-Length {raw!r}"), close=True)
            return None
        if length > MAX_BODY_BYTES:
            self._answer_error(HTTPError(413, "the request body is too large"), close=True)
            return None
        deadline = time.monotonic() + IO_TIMEOUT_SECONDS
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
            owner.check_faults()
            reply = owner.handle(self.command, self.path, self.headers, body)
        except HTTPError as err:
            self._answer_error(err)
            return
        except Exception:
            # A bug in a double must show up as a failed request, not as a connection dropped in silence.
            traceback.print_exc()
            self._answer_error(HTTPError(500, "Internal error occurred: the test server failed"), close=True)
            return
        if isinstance(reply, StreamedAnswer):
            self._stream(reply)
        else:
            self._send(*reply)

    def _answer_error(self, err: HTTPError, *, close: bool = False) -> None:
        payload, headers = self._owner.error_response(err)
        if close:
            self.close_connection = True
            headers["Connection"] = "close"
        self._send(err.code, payload, "application/json", headers)

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

    def _stream(self, answer: StreamedAnswer) -> None:
        try:
            self.send_response(answer.code)
            self.send_header("Content-Type", answer.content_type)
            self.send_header("Transfer-Encoding", "chunked")
            if "Cache-Control" not in answer.headers:
                self.send_header("Cache-Control", "no-cache, private")
            for name, value in answer.headers.items():
                self.send_header(name, value)
            self.end_headers()
            for item in answer.lines:
                line = item if isinstance(item, bytes) else json.dumps(item, separators=(",", ":")).encode()
                # One write per chunk: wfile is unbuffered, so every document leaves at once.
                self.wfile.write(b"%x\r\n%s\n\r\n" % (len(line) + 1, line))
            self.wfile.write(b"0\r\n\r\n")
        except OSError:
            self.close_connection = True  # the client went away, or the server is stopping
        except Exception:
            # Headers are gone already: all a failing stream can do is end without its last chunk.
            traceback.print_exc()
            self.close_connection = True
        finally:
            answer.close()


Answer = tuple[int, dict[str, Any], str, dict[str, str]]  # status, JSON body, content type, headers


def _nothing() -> None:
    pass


@dataclass(frozen=True)
class StreamedAnswer:
    """An answer streamed as newline-delimited JSON: each of ``lines`` (a document, or one already
    encoded without its newline) is sent as it comes; ``close`` runs however the stream ends."""

    code: int
    lines: Iterator[Mapping[str, Any] | bytes]
    content_type: str = "application/json"
    headers: dict[str, str] = field(default_factory=dict)
    close: Callable[[], None] = _nothing


Reply = Answer | StreamedAnswer


class HTTPSDouble(Serving):
    """A test double serving HTTPS on 127.0.0.1; subclasses answer requests in :meth:`handle`.

    ``port``: 0 picks a free port, kept across restarts.
    """

    server_version = "test-double"
    # Answers of the fault knobs, by status; subclasses may use their server's own wording.
    failure_messages: ClassVar[dict[int, str]] = {
        429: "Too many requests, please try again later.",
        503: "service unavailable",
        504: "Timeout: request did not complete within the allotted timeout",
    }

    def __init__(self, credentials: ServingCredentials, *, port: int = 0, name: str = "https-double") -> None:
        self._credentials = credentials
        self._port = port
        self._name = name
        self._lock = threading.Lock()
        self._requests: list[tuple[str, str]] = []
        self._fail_status: int | None = None
        self._fail_remaining: int | None = None
        self._delay = 0.0
        self._server: _TLSServer | None = None
        self._thread: threading.Thread | None = None
        self._stopping = threading.Event()

    # -- what a double implements ------------------------------------------------------------------------

    def handle(self, method: str, path: str, headers: Any, body: bytes) -> Reply:
        """Answer one request (``headers`` as http.server gives them); raise HTTPError to refuse."""
        raise HTTPError(404, "not found")

    def check_faults(self) -> None:
        """Raise the answer a fault knob asks for, before :meth:`handle` sees the request."""
        failure = self._injected_failure()
        if failure is not None:
            raise failure

    def error_response(self, err: HTTPError) -> tuple[dict[str, Any], dict[str, str]]:
        """The JSON body and headers of an error answer."""
        return {"code": err.code, "message": err.message}, {}

    # -- lifecycle ---------------------------------------------------------------------------------------

    def start(self) -> None:
        """Listen on 127.0.0.1.  A stopped server may be started again, on the same port."""
        if self._server is not None:
            raise RuntimeError(f"{type(self).__name__} is already running")
        server = _TLSServer(self, self._port, self._credentials.context)
        self._port = server.server_address[1]
        self._stopping.clear()
        thread = threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": _POLL_SECONDS}, name=self._name, daemon=True
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
            thread.join(timeout=IO_TIMEOUT_SECONDS)

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
        """PEM of the CA that issued the serving certificate: what a client must trust."""
        return self._credentials.ca_pem

    # -- fault knobs -------------------------------------------------------------------------------------

    @property
    def fail_status(self) -> int | None:
        """While set, every request is answered with this status (and the double's error body)."""
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

    @property
    def requests(self) -> list[tuple[str, str]]:
        """``(method, path)`` of every request received, answered or not, oldest first."""
        with self._lock:
            return list(self._requests)

    def _record(self, method: str, path: str) -> None:
        with self._lock:
            self._requests.append((method, path))

    def _pause(self) -> bool:
        """Apply the delay knob; False if the server began stopping meanwhile."""
        delay = self.delay
        if delay:
            return not self._stopping.wait(delay)
        return not self._stopping.is_set()

    def _injected_failure(self) -> HTTPError | None:
        with self._lock:
            status = self._fail_status
            if status is None:
                return None
            if self._fail_remaining is not None:
                self._fail_remaining -= 1
                if self._fail_remaining <= 0:
                    self._fail_status, self._fail_remaining = None, None
        return HTTPError(
            status, self.failure_messages.get(status, "Internal error occurred: injected failure")
        )
