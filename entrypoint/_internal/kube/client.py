"""One Kubernetes REST client, for everything here that talks to an API server.

The signer (TokenRequest), the verifier (OIDC discovery, JWKS, TokenReview) and a controller need
the same few things: an https URL, the cluster's CA, a bearer token (re-read for every request:
the kubelet rotates it), JSON in and out, and the API server's own words when it refuses (a
``Status`` object's message).  Retrying is the caller's: what is worth another attempt, and for
how long, differs between a step's signing budget and a controller's work queue, so errors carry
the status code and whether the request timed out.  ``transport`` lets tests inject an httpx
transport instead of a server.
"""

from __future__ import annotations

import contextlib
import json
import ssl
import threading
from collections.abc import Iterator, Mapping
from typing import Any

from entrypoint.errors import EntrypointError


class KubeError(EntrypointError):
    """A request to the Kubernetes API server failed; the text names the URL and the cause."""


class KubeConfigError(KubeError):
    """The client's own configuration is unusable: the CA file or the token file."""

    def __init__(self, what: str, path: str, why: str) -> None:
        super().__init__(f"{what} {path}: {why}")
        self.what, self.path, self.why = what, path, why


class KubeTransportError(KubeError):
    """No answer: the connection, TLS or the timeout failed."""

    def __init__(self, url: str, exc: Exception) -> None:
        super().__init__(f"{url}: {type(exc).__name__}: {exc}")
        import httpx

        self.timed_out = isinstance(exc, httpx.TimeoutException)


class KubeStatusError(KubeError):
    """The API server answered with an error status; ``message`` is its own explanation."""

    def __init__(self, url: str, status: int, message: str) -> None:
        super().__init__(f"{url}: HTTP {status}: {message}")
        self.url, self.status, self.message = url, status, message


def json_message(content: bytes) -> str | None:
    """The non-empty ``message`` of a JSON error object (a Kubernetes ``Status``, or Fulcio's and
    Rekor's ``{"code": N, "message": ...}``); None when the body has none."""
    try:
        doc = json.loads(content)
        message = doc.get("message") if isinstance(doc, dict) else None
    except ValueError:
        return None
    return message if isinstance(message, str) and message else None


def status_message(content: bytes) -> str:
    """The API server's own explanation (a ``Status`` object's message), else the body's start."""
    message = json_message(content)
    if message is not None:
        return message
    return content[:200].decode("utf-8", "replace") or "(empty body)"


def read_token(path: str) -> str:
    """A bearer token from a file; ValueError or OSError say why it is unusable."""
    from entrypoint._internal.bounded import TOKEN_FILE_LIMIT, read_file

    token = read_file(path, TOKEN_FILE_LIMIT).decode("ascii").strip()
    # Refused before it reaches an HTTP header, whose errors would quote it.
    if not token or any(c.isspace() or not c.isprintable() for c in token):
        raise ValueError("not a bearer token (empty, or with spaces or control characters)")
    return token


def _why(exc: BaseException) -> str:
    return (exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)) or type(exc).__name__


class KubeClient:
    """An API server URL, its CA, and a bearer token (given, or read from a file per request)."""

    def __init__(
        self,
        url: str,
        *,
        token_file: str | None = None,
        ca_file: str | None = None,
        timeout: float = 10.0,
        transport: Any = None,
        keep_alive: bool = False,
    ) -> None:
        if not url.startswith("https://"):
            # The bearer token goes in the request: never in clear text.
            raise KubeConfigError("Kubernetes API server", repr(url), "an https URL is required")
        self.url = url.rstrip("/")
        self.token_file = token_file
        self.ca_file = ca_file
        self.timeout = timeout
        self.transport = transport
        # A step makes one or two requests and exits; a controller makes thousands, and a TLS
        # handshake for each was most of its time per TaskRun: keep_alive reuses connections.
        self.keep_alive = keep_alive
        self._pooled: Any = None
        self._pool_lock = threading.Lock()

    def _client_options(self, timeout: Any) -> dict[str, Any]:
        options: dict[str, Any] = {"timeout": timeout, "trust_env": False}
        if self.transport is not None:
            options["transport"] = self.transport
        else:
            options["verify"] = self.ssl_context()
        return options

    @contextlib.contextmanager
    def _client(self, timeout: float) -> Iterator[Any]:
        import httpx

        if not self.keep_alive:
            with httpx.Client(**self._client_options(timeout)) as client:
                yield client
            return
        with self._pool_lock:
            if self._pooled is None:
                self._pooled = httpx.Client(**self._client_options(self.timeout))
            pooled = self._pooled
        yield pooled

    def close(self) -> None:
        with self._pool_lock:
            if self._pooled is not None:
                self._pooled.close()
                self._pooled = None

    def ssl_context(self) -> ssl.SSLContext:
        try:
            return ssl.create_default_context(cafile=self.ca_file)
        except (OSError, ssl.SSLError) as exc:
            raise KubeConfigError("CA file", str(self.ca_file), _why(exc)) from exc

    def bearer_token(self) -> str | None:
        if not self.token_file:
            return None
        try:
            return read_token(self.token_file)
        except (OSError, ValueError) as exc:
            raise KubeConfigError("token file", self.token_file, _why(exc)) from exc

    def request(
        self,
        method: str,
        path: str,
        body: Mapping[str, Any] | None = None,
        *,
        token: str | None = None,
        timeout: float | None = None,
        content_type: str = "application/json",
    ) -> dict[str, Any]:
        """One request; the answer's JSON object.  ``token`` overrides the token file."""
        import httpx

        url = self.url + path
        bearer = token if token is not None else self.bearer_token()
        headers = {"Authorization": f"Bearer {bearer}"} if bearer else {}
        if body is not None:
            headers["Content-Type"] = content_type
        content = None if body is None else json.dumps(body).encode()
        wait = self.timeout if timeout is None else timeout
        try:
            with self._client(wait) as client:
                response = client.request(method, url, content=content, headers=headers, timeout=wait)
        except httpx.HTTPError as exc:
            raise KubeTransportError(url, exc) from exc
        if response.status_code not in (200, 201):
            raise KubeStatusError(url, response.status_code, status_message(response.content))
        try:
            doc = response.json()
        except ValueError as exc:
            raise KubeError(f"{url}: not JSON: {exc}") from exc
        if not isinstance(doc, dict):
            raise KubeError(f"{url}: not a JSON object")
        return doc

    def get_json(self, path: str) -> dict[str, Any]:
        return self.request("GET", path)

    def post_json(self, path: str, body: Mapping[str, Any]) -> dict[str, Any]:
        return self.request("POST", path, body)

    def stream(self, path: str, *, read_timeout: float) -> Iterator[dict[str, Any]]:
        """A watch: the JSON objects of a streamed answer, one per line, as they arrive.  Ends when
        the server ends the stream; ``read_timeout`` bounds the silence between two lines."""
        import httpx

        url = self.url + path
        bearer = self.bearer_token()
        headers = {"Authorization": f"Bearer {bearer}"} if bearer else {}
        # A client of its own: a watch holds its connection for minutes.
        options = self._client_options(httpx.Timeout(self.timeout, read=read_timeout))
        try:
            with httpx.Client(**options) as client, client.stream("GET", url, headers=headers) as response:
                if response.status_code != 200:
                    raise KubeStatusError(url, response.status_code, status_message(response.read()))
                for line in response.iter_lines():
                    if not line.strip():
                        continue
                    try:
                        doc = json.loads(line)
                    except ValueError as exc:
                        raise KubeError(f"{url}: a watch event that is not JSON: {exc}") from exc
                    if not isinstance(doc, dict):
                        raise KubeError(f"{url}: a watch event that is not a JSON object")
                    yield doc
        except httpx.HTTPError as exc:
            raise KubeTransportError(url, exc) from exc
