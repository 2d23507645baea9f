"""The Kubernetes API double (entrypoint/testing/kube/) against the real kube-apiserver, request by
request: the same TokenRequest, TokenReview and discovery calls, from the same pod's kubelet-style
token, to both; their answers are compared after the names that must differ (issuer URL, UIDs, JTIs)
are normalised.  ``make e2e`` builds the real one; without it this module is skipped, saying so.

Where the double still answers differently, the case is ``xfail(strict=True)`` and its reason names
the double's line to change: fixing the double turns the case into a failure until the mark goes.
"""

from __future__ import annotations

import base64
import json
import re
import ssl
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest

from entrypoint.testing.kube import KubeAPIServer
from tests.e2e.realkube import AUTH_API, KUBELET_TOKEN_SECONDS, ControlPlane

NS, SA, POD, NODE = "parity", "builder", "parity-1-pod", "node-1"
TOKEN_PATH = f"/api/v1/namespaces/{NS}/serviceaccounts/{SA}/token"
REVIEW_PATH = "/apis/authentication.k8s.io/v1/tokenreviews"
AUD = "signed-entrypoint:spki-sha256:00"
_UID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


@dataclass
class Side:
    """One API server as a caller sees it: the pod's mounted token, a reviewer, its issuer and keys."""

    name: str
    http: httpx.Client
    pod_token: str
    reviewer_token: str
    issuer: str
    sign: Callable[[dict[str, Any]], str]  # a JWT with these claims, signed by the server's key
    pod_uid: str

    def call(self, method: str, path: str, *, caller: str = "pod", **kwargs: Any) -> httpx.Response:
        token = {"pod": self.pod_token, "reviewer": self.reviewer_token, "anonymous": ""}.get(caller, caller)
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        headers.update(kwargs.pop("headers", {}))
        return self.http.request(method, path, headers=headers, **kwargs)


@dataclass
class Pair:
    real: Side
    double: Side


def _claims(token: str) -> dict[str, Any]:
    part = token.split(".")[1]
    found: dict[str, Any] = json.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)))
    return found


@pytest.fixture(scope="module")
def pair(control_plane: ControlPlane, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Pair]:
    admin = control_plane.client()
    admin.namespace(NS)
    admin.service_account(NS, SA)
    admin.allow_own_tokens(NS, SA)
    admin.node(NODE)
    pod = admin.pod(NS, POD, SA, node=NODE)
    reviewer_ns, reviewer = "parity-audit", "reviewer"
    admin.namespace(reviewer_ns)
    admin.service_account(reviewer_ns, reviewer)
    admin.bind_cluster_role("system:auth-delegator", reviewer_ns, reviewer)
    sa_key = (control_plane.run_dir / "pki" / "sa.key").read_bytes()
    real_kid = jwt.get_unverified_header(admin.token(NS, SA))["kid"]
    real = Side(
        "real",
        _client(control_plane.url, control_plane.ca_file),
        admin.token(NS, SA, seconds=KUBELET_TOKEN_SECONDS, pod=pod),
        admin.token(reviewer_ns, reviewer),
        control_plane.issuer,
        lambda claims: jwt.encode(claims, sa_key, algorithm="RS256", headers={"kid": real_kid, "typ": None}),
        pod["metadata"]["uid"],
    )
    ca = tmp_path_factory.mktemp("double") / "ca.crt"
    with KubeAPIServer(alg="RS256") as server:
        server.add_pod(NS, POD, pod["metadata"]["uid"], SA, node=NODE)
        ca.write_bytes(server.ca_pem)
        key = server._keys[0]  # the double's signing key, for the forged-claims cases
        server.allow_token_review(reviewer_ns, reviewer)  # its system:auth-delegator binding
        double = Side(
            "double",
            _client(server.url, ca),
            server.caller_token(NS, SA, POD),
            server.issue_token(reviewer_ns, reviewer),
            server.issuer,
            lambda claims: jwt.encode(claims, key.private, algorithm="RS256", headers={"kid": key.kid}),
            pod["metadata"]["uid"],
        )
        try:
            yield Pair(real, double)
        finally:
            real.http.close()
            double.http.close()
            admin.close()


def _client(url: str, ca_file: Path) -> httpx.Client:
    return httpx.Client(base_url=url, verify=ssl.create_default_context(cafile=str(ca_file)), timeout=30)


def token_request(side: Side, **spec: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "audiences": [AUD],
        "expirationSeconds": 600,
        "boundObjectRef": {"apiVersion": "v1", "kind": "Pod", "name": POD, "uid": side.pod_uid},
    }
    body.update(spec)
    return {
        "apiVersion": AUTH_API,
        "kind": "TokenRequest",
        "spec": {k: v for k, v in body.items() if v is not None},
    }


def review_body(token: str, audiences: list[str] | None = None) -> dict[str, Any]:
    spec: dict[str, Any] = {"token": token}
    if audiences is not None:
        spec["audiences"] = audiences
    return {"apiVersion": AUTH_API, "kind": "TokenReview", "spec": spec}


def normalised(side: Side, r: httpx.Response) -> dict[str, Any]:
    """What must agree: the status, the media type, the Status fields or the shape of the object."""
    text = r.text.replace(side.issuer, "<issuer>")
    text = _UID.sub("<uid>", text)
    out: dict[str, Any] = {
        "code": r.status_code,
        "type": r.headers.get("content-type", "").split(";")[0],
        "www-authenticate": r.headers.get("www-authenticate"),
    }
    try:
        body = json.loads(text)
    except ValueError:
        out["text"] = text.strip()
        return out
    if body.get("kind") == "Status":
        out.update({k: body.get(k) for k in ("reason", "message")})
        out["details"] = body.get("details") or {}
    elif body.get("kind") == "TokenReview":
        status = body.get("status", {})
        user = status.get("user", {})
        out.update(
            authenticated=status.get("authenticated"),
            error=status.get("error"),
            audiences=status.get("audiences"),
            user=sorted(user),
            extra=sorted(user.get("extra", {})),
            metadata=sorted(body.get("metadata", {})),
        )
    elif body.get("kind") == "TokenRequest":
        token = r.json()["status"]["token"]
        header = json.loads(base64.urlsafe_b64decode(token.split(".")[0] + "=="))
        claims = _claims(token)
        spec = body["spec"]
        out.update(
            spec=spec,
            metadata=sorted(body.get("metadata", {})),
            header=sorted(header),
            claims=sorted(claims),
            private=sorted(claims.get("kubernetes.io", {})),
            lifetime=claims["exp"] - claims["iat"],
        )
    else:
        out["keys"] = sorted(body)
        if "keys" in body:
            out["jwk"] = [sorted(k) for k in body["keys"]]
        if "issuer" in body:
            out["discovery"] = body
    return out


def both(pair: Pair, call: Callable[[Side], httpx.Response]) -> tuple[dict[str, Any], dict[str, Any]]:
    return normalised(pair.real, call(pair.real)), normalised(pair.double, call(pair.double))


def diff(real: dict[str, Any], double: dict[str, Any]) -> str:
    keys = sorted(set(real) | set(double))
    return "; ".join(
        f"{k}: real={real.get(k)!r} double={double.get(k)!r}" for k in keys if real.get(k) != double.get(k)
    )


def xfail(reason: str) -> pytest.MarkDecorator:
    return pytest.mark.xfail(strict=True, reason=f"the double differs: {reason}")


def now() -> int:
    return int(time.time())


def _signed(side: Side, **changes: Any) -> str:
    """A token with the claims the server would issue for the pod, changed as said (None removes),
    signed with the server's own key."""
    now = int(time.time())
    claims: dict[str, Any] = {
        "aud": [AUD],
        "exp": now + 600,
        "iat": now,
        "nbf": now,
        "iss": side.issuer,
        "jti": "00000000-0000-0000-0000-000000000000",
        "sub": f"system:serviceaccount:{NS}:{SA}",
        "kubernetes.io": _claims(side.pod_token)["kubernetes.io"],
    }
    claims["kubernetes.io"].pop("warnafter", None)
    claims.update(changes)
    return side.sign({k: v for k, v in claims.items() if v is not None})


# Each case: a name, the call made on each side, and the xfail reason where the double still differs.
Case = tuple[str, Callable[[Side], httpx.Response], str]


def _review(
    caller: str, token: Callable[[Side], str], audiences: list[str] | None = None
) -> Callable[[Side], httpx.Response]:
    return lambda s: s.call("POST", REVIEW_PATH, caller=caller, json=review_body(token(s), audiences))


def _request(caller: str = "pod", **spec: Any) -> Callable[[Side], httpx.Response]:
    return lambda s: s.call("POST", TOKEN_PATH, caller=caller, json=token_request(s, **spec))


CASES: list[Case] = [
    # -- TokenRequest ------------------------------------------------------------------------------------
    (
        "token request: the signer's",
        _request(),
        "",
    ),
    (
        "token request: no spec",
        lambda s: s.call(
            "POST", TOKEN_PATH, json={"apiVersion": AUTH_API, "kind": "TokenRequest", "spec": {}}
        ),
        "",
    ),
    ("token request: 599 s", _request(expirationSeconds=599), ""),
    (
        "token request: 2^32+1 s",
        _request(expirationSeconds=(1 << 32) + 1),
        "",
    ),
    (
        "token request: expirationSeconds a string",
        _request(expirationSeconds="600"),
        "",
    ),
    (
        "token request: audiences a string",
        _request(audiences="x"),
        "",
    ),
    (
        "token request: wrong pod uid",
        _request(boundObjectRef={"apiVersion": "v1", "kind": "Pod", "name": POD, "uid": "wrong"}),
        "",
    ),
    (
        "token request: no pod uid",
        _request(boundObjectRef={"apiVersion": "v1", "kind": "Pod", "name": POD}),
        "",
    ),
    (
        "token request: no such pod",
        _request(boundObjectRef={"apiVersion": "v1", "kind": "Pod", "name": "nopod", "uid": "x"}),
        "",
    ),
    (
        "token request: empty pod name",
        _request(boundObjectRef={"apiVersion": "v1", "kind": "Pod", "name": ""}),
        "",
    ),
    (
        "token request: a Deployment",
        _request(boundObjectRef={"apiVersion": "apps/v1", "kind": "Deployment", "name": "x"}),
        "",
    ),
    (
        "token request: a Secret",
        _request(boundObjectRef={"apiVersion": "v1", "kind": "Secret", "name": "x"}),
        "",
    ),
    (
        "token request: a Node",
        _request(boundObjectRef={"apiVersion": "v1", "kind": "Node", "name": NODE}),
        "",
    ),
    (
        "token request: another service account",
        lambda s: s.call(
            "POST", f"/api/v1/namespaces/{NS}/serviceaccounts/other/token", json=token_request(s)
        ),
        "",
    ),
    (
        "token request: a garbage bearer token",
        _request(caller="garbage"),
        "",
    ),
    (
        "token request: no credential",
        _request(caller="anonymous"),
        "",
    ),
    (
        "token request: text/plain",
        lambda s: s.call("POST", TOKEN_PATH, content=b"{}", headers={"Content-Type": "text/plain"}),
        "",
    ),
    (
        "token request: not JSON",
        lambda s: s.call(
            "POST", TOKEN_PATH, content=b"{not json", headers={"Content-Type": "application/json"}
        ),
        "",
    ),
    (
        "token request: another kind",
        lambda s: s.call("POST", TOKEN_PATH, json={"apiVersion": "v1", "kind": "Pod"}),
        "",
    ),
    (
        "token request: GET",
        lambda s: s.call("GET", TOKEN_PATH),
        "",
    ),
    # -- TokenReview ---------------------------------------------------------------------------------------
    (
        "token review: by the pod (no RBAC grant)",
        _review("pod", lambda s: "abc"),
        "",
    ),
    (
        "token review: the mounted token",
        _review("reviewer", lambda s: s.pod_token),
        "",
    ),
    (
        "token review: a signer's token",
        _review(
            "reviewer",
            lambda s: s.call("POST", TOKEN_PATH, json=token_request(s)).json()["status"]["token"],
            [AUD],
        ),
        "",
    ),
    (
        "token review: audience mismatch",
        _review(
            "reviewer", lambda s: s.call("POST", TOKEN_PATH, json=token_request(s)).json()["status"]["token"]
        ),
        "",
    ),
    (
        "token review: not a JWT",
        _review("reviewer", lambda s: "hello"),
        "",
    ),
    ("token review: no token", _review("reviewer", lambda s: ""), ""),
    (
        "token review: bad signature",
        _review(
            "reviewer", lambda s: s.pod_token[:-4] + ("AAAA" if not s.pod_token.endswith("AAAA") else "BBBB")
        ),
        "",
    ),
    (
        "token review: expired 30 s (leeway)",
        _review("reviewer", lambda s: _signed(s, iat=now() - 700, nbf=now() - 700, exp=now() - 30), [AUD]),
        "",
    ),
    (
        "token review: expired 90 s",
        _review("reviewer", lambda s: _signed(s, iat=now() - 700, nbf=now() - 700, exp=now() - 90), [AUD]),
        "",
    ),
    (
        "token review: nbf in 90 s",
        _review("reviewer", lambda s: _signed(s, nbf=now() + 90), [AUD]),
        "",
    ),
    (
        "token review: iat in 90 s",
        _review("reviewer", lambda s: _signed(s, iat=now() + 90), [AUD]),
        "",
    ),
    (
        "token review: no exp",
        _review("reviewer", lambda s: _signed(s, exp=None), [AUD]),
        "",
    ),
    (
        "token review: no iat",
        _review("reviewer", lambda s: _signed(s, iat=None), [AUD]),
        "",
    ),
    (
        "token review: another issuer",
        _review("reviewer", lambda s: _signed(s, iss="https://other.example"), [AUD]),
        "",
    ),
    (
        "token review: sub names another account",
        _review("reviewer", lambda s: _signed(s, sub=f"system:serviceaccount:{NS}:other"), [AUD]),
        "",
    ),
    (
        "token review: no kubernetes.io claim",
        _review("reviewer", lambda s: _signed(s, **{"kubernetes.io": None}), [AUD]),
        "",
    ),
    # -- OIDC discovery ----------------------------------------------------------------------------------
    (
        "discovery: anonymous",
        lambda s: s.call("GET", "/.well-known/openid-configuration", caller="anonymous"),
        "",
    ),
    (
        "jwks: anonymous",
        lambda s: s.call("GET", "/openid/v1/jwks", caller="anonymous"),
        "",
    ),
    ("discovery: a service account", lambda s: s.call("GET", "/.well-known/openid-configuration"), ""),
    (
        "jwks: a service account",
        lambda s: s.call("GET", "/openid/v1/jwks"),
        "",
    ),
    (
        "discovery: POST",
        lambda s: s.call("POST", "/openid/v1/jwks", json={}),
        "",
    ),
    (
        "unknown path",
        lambda s: s.call("GET", "/nosuch"),
        "",
    ),
]


@pytest.mark.parametrize(
    ("call", "differs"),
    [pytest.param(c, d, id=n, marks=[xfail(d)] if d else []) for n, c, d in CASES],
)
def test_the_double_answers_as_the_real_server(
    pair: Pair, call: Callable[[Side], httpx.Response], differs: str
) -> None:
    real, double = (_without(side, SHAPE) for side in both(pair, call))
    assert real == double, diff(real, double)


# The objects' metadata and the JWT header are compared once, below, rather than in every case.
SHAPE = ("metadata", "header")


def _without(found: dict[str, Any], keys: tuple[str, ...]) -> dict[str, Any]:
    return {k: v for k, v in found.items() if k not in keys}


def test_token_request_metadata(pair: Pair) -> None:
    real, double = both(pair, _request())
    assert real["metadata"] == double["metadata"], diff(real, double)


def test_token_header(pair: Pair) -> None:
    real, double = both(pair, _request())
    assert real["header"] == double["header"], diff(real, double)


def test_token_review_metadata(pair: Pair) -> None:
    real, double = both(pair, _review("reviewer", lambda s: s.pod_token))
    assert real["metadata"] == double["metadata"], diff(real, double)


def test_the_kubelets_token(pair: Pair) -> None:
    """The token a kubelet mounts (3607 s asked): real lives a year and carries warnafter."""
    real, double = _claims(pair.real.pod_token), _claims(pair.double.pod_token)
    assert real["exp"] - real["iat"] == 365 * 24 * 3600
    assert real["kubernetes.io"]["warnafter"] == real["iat"] + KUBELET_TOKEN_SECONDS
    # The double differs: caller_token lives the 3607 s asked, without warnafter.
    assert double["exp"] - double["iat"] == KUBELET_TOKEN_SECONDS
    assert "warnafter" not in double["kubernetes.io"]
