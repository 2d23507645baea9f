"""JSON over HTTPS to Fulcio and Rekor, with the server's own reason in every error.

Retrying is the caller's (the fetch retries within the signing budget); errors say whether
another attempt may help: no answer, 408, 429 and 5xx may pass next time, anything else will not.
Nothing here ever puts the bearer token into an error.
"""

from __future__ import annotations

import json
from typing import Any

from entrypoint._internal.signing.errors import SigningError

_RETRY_STATUS = frozenset({408, 429}) | frozenset(range(500, 600))
# An answer from Fulcio or Rekor is a few KiB: a bound keeps a wrong URL from filling memory.
MAX_ANSWER_BYTES = 1024 * 1024


class SigstoreServerError(SigningError):
    """Fulcio or Rekor refused or did not answer; the text is the URL and the server's reason."""

    def __init__(
        self, text: str, *, status: int | None = None, retryable: bool = False, timed_out: bool = False
    ) -> None:
        super().__init__(text)
        self.status, self.retryable, self.timed_out = status, retryable, timed_out


def server_reason(content: bytes) -> str:
    """Fulcio's and Rekor's errors are ``{"code": N, "message": "..."}``; else the body's start."""
    from entrypoint._internal.kube.client import json_message

    message = json_message(content)
    if message is not None:
        return message.strip().splitlines()[0][:300]
    text = content.decode("utf-8", "replace").strip()
    return (text.splitlines()[0][:300] if text else "") or "no explanation"


class JsonClient:
    """One HTTPS endpoint's JSON requests (Fulcio or Rekor), trusting ``ca_file`` or the system's CAs."""

    def __init__(self, base_url: str, *, ca_file: str = "", what: str) -> None:
        if not base_url.startswith("https://"):
            # A token goes to Fulcio: never in clear text.  Rekor too, for the same reason of trust.
            raise SigningError(f"{what}: the address {base_url!r} must be an https URL")
        self.base_url = base_url.rstrip("/")
        self.ca_file = ca_file
        self.what = what
        self._client: Any = None

    def _http(self) -> Any:
        import httpx

        if self._client is None:
            if self.ca_file:
                import ssl

                try:
                    verify: Any = ssl.create_default_context(cafile=self.ca_file)
                except (OSError, ssl.SSLError) as exc:
                    raise SigningError(f"{self.what}: CA file {self.ca_file}: {exc}") from exc
            else:
                verify = True
            self._client = httpx.Client(verify=verify, follow_redirects=False)
        return self._client

    def request(
        self,
        method: str,
        path: str,
        body: object = None,
        *,
        timeout: float,
        token: str = "",
        headers: dict[str, str] | None = None,
    ) -> tuple[int, Any, Any]:
        """(status, JSON answer, headers) for a 2xx or a 409; SigstoreServerError otherwise."""
        import httpx

        url = self.base_url + path
        headers = {"Accept": "application/json", **(headers or {})}
        if token:
            headers["Authorization"] = f"Bearer {token}"
        try:
            with self._http().stream(
                method, url, json=body, headers=headers, timeout=max(timeout, 0.001)
            ) as answer:
                content = b""
                for chunk in answer.iter_bytes():
                    content += chunk
                    if len(content) > MAX_ANSWER_BYTES:
                        raise SigstoreServerError(
                            f"{self.what} {url}: answer larger than {MAX_ANSWER_BYTES} bytes"
                        )
                status = answer.status_code
                answer_headers = answer.headers
        except httpx.HTTPError as exc:
            # httpx's text names the URL and the cause, never a header.
            raise SigstoreServerError(
                f"{self.what} {url}: {type(exc).__name__}: {exc}",
                retryable=True,
                timed_out=isinstance(exc, httpx.TimeoutException),
            ) from exc
        if not (200 <= status < 300 or status == 409):
            raise SigstoreServerError(
                f"{self.what} {url}: HTTP {status}: {server_reason(content)}",
                status=status,
                retryable=status in _RETRY_STATUS,
            )
        try:
            doc = json.loads(content) if content else None
        except ValueError as exc:
            raise SigstoreServerError(f"{self.what} {url}: HTTP {status}: the answer is not JSON") from exc
        return status, doc, answer_headers

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None
