"""The one Kubernetes REST client, against an injected httpx transport."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest

from entrypoint._internal.backends.k8s_sat.kube import ApiServer, KubeTrustError
from entrypoint._internal.kube.client import (
    KubeClient,
    KubeConfigError,
    KubeStatusError,
    KubeTransportError,
)

API = "https://kube.example:6443"


def client(handler: httpx.MockTransport, tmp_path: Path, token: str = "tok.en.value") -> KubeClient:
    token_file = tmp_path / "token"
    token_file.write_text(token + "\n")
    return KubeClient(API, token_file=str(token_file), transport=handler)


def test_requests_carry_the_bearer_token_and_json(tmp_path: Path) -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(201, json={"status": {"ok": True}})

    answer = client(httpx.MockTransport(handler), tmp_path).post_json("/apis/x", {"spec": {"a": 1}})
    assert answer == {"status": {"ok": True}}
    assert seen[0].headers["Authorization"] == "Bearer tok.en.value"
    assert seen[0].headers["Content-Type"] == "application/json"
    assert json.loads(seen[0].content) == {"spec": {"a": 1}}
    assert str(seen[0].url) == f"{API}/apis/x"


def test_a_status_error_carries_the_servers_own_message(tmp_path: Path) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        status = {"kind": "Status", "message": 'pods "p" is forbidden: denied request', "code": 403}
        return httpx.Response(403, json=status)

    with pytest.raises(KubeStatusError) as info:
        client(httpx.MockTransport(handler), tmp_path).get_json("/api/v1/pods")
    assert info.value.status == 403
    assert str(info.value) == f'{API}/api/v1/pods: HTTP 403: pods "p" is forbidden: denied request'


def test_no_answer_says_whether_it_timed_out(tmp_path: Path) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        raise httpx.ReadTimeout("timed out", request=request)

    with pytest.raises(KubeTransportError) as info:
        client(httpx.MockTransport(handler), tmp_path).get_json("/version")
    assert info.value.timed_out


def test_an_unusable_token_file_is_refused_before_any_request(tmp_path: Path) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        raise AssertionError("no request may be sent")

    with pytest.raises(KubeConfigError, match=r"token file .*not a bearer token"):
        client(httpx.MockTransport(handler), tmp_path, token="two words").get_json("/version")


def test_plain_http_is_refused() -> None:
    with pytest.raises(KubeConfigError, match="an https URL is required"):
        KubeClient("http://kube.example")


def test_the_verifiers_api_server_reports_failures_as_trust_errors(tmp_path: Path) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(503, text="overloaded")

    server = ApiServer(API, transport=httpx.MockTransport(handler))
    with pytest.raises(KubeTrustError, match="HTTP 503: overloaded"):
        server.get_json("/openid/v1/jwks")
