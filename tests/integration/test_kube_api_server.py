"""The test Kubernetes API server, exercised through real HTTPS with httpx and real JWT verification."""

from __future__ import annotations

import base64
import contextlib
import datetime
import json
import os
import queue
import signal
import ssl
import subprocess
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from entrypoint.testing.kube import (
    JWKS_PATH,
    MAX_DELAY_SECONDS,
    OPENID_CONFIG_PATH,
    OWN_POD_POLICY,
    OWN_POD_POLICY_MESSAGE,
    TOKEN_REVIEW_PATH,
    KubeAPIServer,
    Pod,
    token_request_path,
)
from tests.support import doubles

NS = "tekton-pipelines-tests"
SA = "signer"
POD = "taskrun-example-pod"
POD_UID = "0d8b260e-5e0a-4d1c-9a53-1d2c3b4a5f60"
AUDIENCE = "tekton-results:example"
REVIEWER = ("audit", "reviewer")
TIMEOUT = 5.0
RUNNER = "entrypoint.testing.kube_api"


@pytest.fixture(params=["RS256", "ES256"])
def alg(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def server(alg: str) -> Iterator[KubeAPIServer]:
    with KubeAPIServer(alg=alg) as srv:
        yield srv


@pytest.fixture
def rs256_server() -> Iterator[KubeAPIServer]:
    """For behaviour that does not depend on the signing algorithm."""
    with KubeAPIServer() as srv:
        yield srv


@pytest.fixture
def pod(server: KubeAPIServer) -> Pod:
    return server.add_pod(NS, POD, POD_UID, SA)


def _client(
    srv: KubeAPIServer, tmp_path: Path, timeout: float = TIMEOUT, token: str | None = None
) -> httpx.Client:
    """A client of ``srv``, sending ``token`` as its bearer on every request when given."""
    ca_file = tmp_path / "ca.crt"
    ca_file.write_bytes(srv.ca_pem)
    headers = {"Authorization": f"Bearer {token}"} if token is not None else {}
    return httpx.Client(
        base_url=srv.url,
        verify=ssl.create_default_context(cafile=str(ca_file)),
        timeout=timeout,
        headers=headers,
    )


def _sa_token(srv: KubeAPIServer) -> str:
    """A service account's token for the API, bound to no pod: enough to read OIDC discovery, which
    kube-apiserver v1.37.2 refuses to anonymous callers (tests/e2e/test_double_vs_real.py)."""
    srv.add_service_account(NS, SA)
    return srv.issue_token(NS, SA)


def _reviewer_token(srv: KubeAPIServer) -> str:
    """A verifier's token: its service account may create TokenReviews (system:auth-delegator), which
    kube-apiserver v1.37.2 grants no service account by default (tests/e2e/test_double_vs_real.py)."""
    srv.allow_token_review(*REVIEWER)
    return srv.issue_token(*REVIEWER)


@pytest.fixture
def client(server: KubeAPIServer, tmp_path: Path) -> Iterator[httpx.Client]:
    with _client(server, tmp_path) as c:
        yield c


@pytest.fixture
def caller(server: KubeAPIServer, pod: Pod) -> str:
    return server.caller_token(NS, SA, POD)


@pytest.fixture
def reviewer(server: KubeAPIServer) -> str:
    return _reviewer_token(server)


def _body(
    *,
    audiences: list[str] | None = None,
    expiration: object = 600,
    ref: dict[str, str] | None = None,
    **extra: object,
) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "audiences": [AUDIENCE] if audiences is None else audiences,
        "expirationSeconds": expiration,
        "boundObjectRef": {"apiVersion": "v1", "kind": "Pod", "name": POD, "uid": POD_UID}
        if ref is None
        else ref,
    }
    return {"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest", "spec": spec, **extra}


def _token_request(
    client: httpx.Client, bearer: str | None, body: Any, namespace: str = NS, sa: str = SA
) -> httpx.Response:
    headers = {"Authorization": f"Bearer {bearer}"} if bearer is not None else {}
    return client.post(token_request_path(namespace, sa), headers=headers, json=body)


def _issue(client: httpx.Client, caller: str, **spec: Any) -> str:
    response = _token_request(client, caller, _body(**spec))
    assert response.status_code == 201, response.text
    return str(response.json()["status"]["token"])


def _review(client: httpx.Client, caller: str, token: str, audiences: list[str] | None) -> dict[str, Any]:
    spec: dict[str, Any] = {"token": token}
    if audiences is not None:
        spec["audiences"] = audiences
    response = client.post(
        TOKEN_REVIEW_PATH,
        headers={"Authorization": f"Bearer {caller}"},
        json={"apiVersion": "authentication.k8s.io/v1", "kind": "TokenReview", "spec": spec},
    )
    assert response.status_code == 201, response.text
    body = response.json()
    assert body["kind"] == "TokenReview"
    assert body["apiVersion"] == "authentication.k8s.io/v1"
    status: dict[str, Any] = body["status"]
    return status


def _assert_status(response: httpx.Response, code: int, reason: str, message_part: str = "") -> None:
    assert response.status_code == code, response.text
    assert response.headers["content-type"] == "application/json"
    body = response.json()
    assert body["kind"] == "Status"
    assert body["apiVersion"] == "v1"
    assert body["status"] == "Failure"
    assert body["reason"] == reason
    assert body["code"] == code
    assert message_part in body["message"]


def _verify_with_jwks(
    client: httpx.Client, token: str, audience: str, issuer: str, bearer: str
) -> dict[str, Any]:
    """Verify ``token`` as an outside verifier would: JWKS fetched over HTTPS (as ``bearer``), key
    chosen by ``kid``."""
    keys = jwt.PyJWKSet.from_dict(_get(client, JWKS_PATH, bearer).json())
    kid = jwt.get_unverified_header(token)["kid"]
    key = next(k for k in keys.keys if k.key_id == kid)
    claims: dict[str, Any] = jwt.decode(
        token, key=key, algorithms=[str(key.algorithm_name)], audience=audience, issuer=issuer
    )
    return claims


def _get(client: httpx.Client, path: str, bearer: str) -> httpx.Response:
    return client.get(path, headers={"Authorization": f"Bearer {bearer}"})


def _unauthenticated(status: dict[str, Any], error_part: str) -> None:
    # Go's omitempty: a failed review has no "authenticated" key at all, and an empty user.
    assert "authenticated" not in status
    assert status["user"] == {}
    assert "audiences" not in status
    assert error_part in status["error"]


# -- TokenRequest --------------------------------------------------------------------------------------


def test_token_request_issues_a_jwt_that_verifies_against_the_jwks(
    server: KubeAPIServer, client: httpx.Client, caller: str, pod: Pod, alg: str
) -> None:
    before = int(time.time())
    response = _token_request(client, caller, _body())
    assert response.status_code == 201, response.text
    body = response.json()
    assert body["apiVersion"] == "authentication.k8s.io/v1"
    assert body["kind"] == "TokenRequest"
    # As kube-apiserver v1.37.2 answers (tests/e2e/test_double_vs_real.py): the service account's
    # metadata, and the field manager's record of the fields the request set.
    metadata = body["metadata"]
    assert {k: metadata[k] for k in ("name", "namespace", "uid")} == {
        "name": SA,
        "namespace": NS,
        "uid": pod.service_account_uid,
    }
    assert metadata["creationTimestamp"].endswith("Z")
    [managed] = metadata["managedFields"]
    assert {k: managed[k] for k in ("manager", "operation", "apiVersion", "subresource")} == {
        "manager": "python-httpx",
        "operation": "Update",
        "apiVersion": "authentication.k8s.io/v1",
        "subresource": "token",
    }
    assert managed["fieldsV1"] == {
        "f:spec": {
            "f:audiences": {},
            "f:boundObjectRef": {"f:apiVersion": {}, "f:kind": {}, "f:name": {}, "f:uid": {}},
            "f:expirationSeconds": {},
        }
    }
    assert body["spec"] == _body()["spec"]
    token = body["status"]["token"]

    header = jwt.get_unverified_header(token)
    assert header == {"alg": alg, "kid": server.signing_kid}  # no "typ", as the apiserver's
    claims = _verify_with_jwks(client, token, AUDIENCE, server.issuer, caller)
    assert claims["aud"] == [AUDIENCE]
    assert claims["iss"] == server.issuer == server.url
    assert claims["sub"] == f"system:serviceaccount:{NS}:{SA}"
    assert before <= claims["iat"] == claims["nbf"] <= int(time.time())
    assert claims["exp"] == claims["iat"] + 600
    uuid.UUID(claims["jti"])
    assert claims["kubernetes.io"] == {
        "namespace": NS,
        "pod": {"name": POD, "uid": POD_UID},
        "serviceaccount": {"name": SA, "uid": pod.service_account_uid},
        "node": {"name": "node-1", "uid": pod.node_uid},
    }
    expiry = datetime.datetime.strptime(body["status"]["expirationTimestamp"], "%Y-%m-%dT%H:%M:%SZ")
    assert expiry.replace(tzinfo=datetime.UTC).timestamp() == claims["exp"]
    assert server.token_requests == [_body()]


def test_each_token_has_its_own_jti(client: httpx.Client, caller: str) -> None:
    tokens = [_issue(client, caller) for _ in range(2)]
    jtis = {jwt.decode(t, options={"verify_signature": False})["jti"] for t in tokens}
    assert len(jtis) == 2


@pytest.mark.parametrize(
    ("expiration", "code", "reason", "message"),
    [
        (599, 422, "Invalid", "may not specify a duration less than 10 minutes"),
        (2**32 + 1, 422, "Invalid", "may not specify a duration larger than 2^32 seconds"),
        # Go's JSON errors, as kube-apiserver v1.37.2 words them (tests/e2e/test_double_vs_real.py).
        ("600", 400, "BadRequest", "cannot unmarshal string into Go struct field"),
        (True, 400, "BadRequest", "cannot unmarshal bool into Go struct field"),
        (1.5, 400, "BadRequest", "cannot unmarshal number 1.5 into Go struct field"),
    ],
)
def test_expiration_seconds_is_validated(
    client: httpx.Client, caller: str, expiration: object, code: int, reason: str, message: str
) -> None:
    _assert_status(_token_request(client, caller, _body(expiration=expiration)), code, reason, message)


def test_expiration_of_exactly_ten_minutes_is_accepted(client: httpx.Client, caller: str) -> None:
    assert _token_request(client, caller, _body(expiration=600)).status_code == 201


_UNRECOGNIZED = (
    "the object provided is unrecognized (must be of type TokenRequest): couldn't get version/kind;"
)
_UNHANDLED = 'TokenRequest in version "v1" cannot be handled as a TokenRequest: json: cannot unmarshal'


# In kube-apiserver v1.37.2's words (tests/e2e/test_double_vs_real.py): Go's JSON errors.
@pytest.mark.parametrize(
    ("body", "message"),
    [
        ("{not json", f"{_UNRECOGNIZED} json parse error: invalid character 'n' looking for beginning"),
        (["a", "list"], f"{_UNRECOGNIZED} json parse error: json: cannot unmarshal array into Go value"),
        (
            _body(kind="TokenReview"),
            'TokenReview in version "v1" cannot be handled as a TokenRequest:'
            " converting (v1.TokenReview) to (authentication.TokenRequest): unknown conversion",
        ),
        (
            _body(apiVersion="authentication.k8s.io/v1beta1"),
            'TokenRequest in version "v1beta1" cannot be handled as a TokenRequest: no kind "TokenRequest"'
            ' is registered for version "authentication.k8s.io/v1beta1"',
        ),
        (
            {"spec": "nope"},
            f"{_UNHANDLED} string into Go struct field TokenRequest.spec of type v1.TokenRequestSpec",
        ),
        (
            {"spec": {"audiences": "one-string"}},
            f"{_UNHANDLED} string into Go struct field TokenRequestSpec.spec.audiences of type []string",
        ),
        (
            {"spec": {"audiences": [1]}},
            f"{_UNHANDLED} number into Go struct field TokenRequestSpec.spec.audiences of type string",
        ),
        (
            {"spec": {"boundObjectRef": "pod"}},
            f"{_UNHANDLED} string into Go struct field TokenRequestSpec.spec.boundObjectRef"
            " of type v1.BoundObjectReference",
        ),
    ],
)
def test_undecodable_bodies_are_bad_requests(
    rs256_server: KubeAPIServer, tmp_path: Path, body: Any, message: str
) -> None:
    rs256_server.add_pod(NS, POD, POD_UID, SA)
    caller = rs256_server.caller_token(NS, SA, POD)
    with _client(rs256_server, tmp_path) as client:
        if isinstance(body, str):
            response = client.post(
                token_request_path(NS, SA),
                headers={"Authorization": f"Bearer {caller}", "Content-Type": "application/json"},
                content=body,
            )
        else:
            response = _token_request(client, caller, body)
    _assert_status(response, 400, "BadRequest", message)


def test_absent_type_fields_are_filled_from_the_url(client: httpx.Client, caller: str) -> None:
    # The apiserver decodes a body without apiVersion/kind as the endpoint's kind.
    response = _token_request(client, caller, {"spec": _body()["spec"]})
    assert response.status_code == 201, response.text


def test_empty_audiences_default_to_the_api_audiences(
    server: KubeAPIServer, client: httpx.Client, caller: str
) -> None:
    response = _token_request(client, caller, _body(audiences=[]))
    assert response.status_code == 201, response.text
    assert response.json()["spec"]["audiences"] == [server.issuer]
    claims = jwt.decode(response.json()["status"]["token"], options={"verify_signature": False})
    assert claims["aud"] == [server.issuer]


def test_max_token_seconds_caps_the_lifetime(tmp_path: Path) -> None:
    with KubeAPIServer(max_token_seconds=900) as srv, _client(srv, tmp_path) as client:
        srv.add_pod(NS, POD, POD_UID, SA)
        response = _token_request(client, srv.caller_token(NS, SA, POD), _body(expiration=7200))
    assert response.status_code == 201, response.text
    assert response.json()["spec"]["expirationSeconds"] == 900
    claims = jwt.decode(response.json()["status"]["token"], options={"verify_signature": False})
    assert claims["exp"] - claims["iat"] == 900


# As kube-apiserver v1.37.2 answers (tests/e2e/test_double_vs_real.py): a bearer token that fails is 401,
# without WWW-Authenticate; no bearer token at all is the anonymous user, forbidden (403).
@pytest.mark.parametrize("authorization", ["Bearer not-a-jwt", "Bearer eyJhbGciOiJub25lIn0.e30."])
def test_token_request_with_an_invalid_bearer_is_unauthorized(
    client: httpx.Client, pod: Pod, authorization: str
) -> None:
    response = client.post(token_request_path(NS, SA), headers={"Authorization": authorization}, json=_body())
    _assert_status(response, 401, "Unauthorized", "Unauthorized")
    assert "www-authenticate" not in response.headers


@pytest.mark.parametrize("authorization", [None, "Bearer", "Basic dXNlcjpwYXNz"])
def test_token_request_without_a_bearer_is_anonymous_and_forbidden(
    client: httpx.Client, pod: Pod, authorization: str | None
) -> None:
    headers = {"Authorization": authorization} if authorization is not None else {}
    response = client.post(token_request_path(NS, SA), headers=headers, json=_body())
    _assert_status(
        response,
        403,
        "Forbidden",
        f'serviceaccounts "{SA}" is forbidden: User "system:anonymous" cannot create resource'
        f' "serviceaccounts/token" in API group "" in the namespace "{NS}"',
    )


def test_bearer_scheme_is_case_insensitive(client: httpx.Client, caller: str) -> None:
    response = client.post(
        token_request_path(NS, SA), headers={"Authorization": f"bearer {caller}"}, json=_body()
    )
    assert response.status_code == 201, response.text


def test_callers_must_present_a_token_for_the_api_audience(
    server: KubeAPIServer, client: httpx.Client, pod: Pod
) -> None:
    # A token minted for a relying party must not double as an API credential.
    other = server.issue_token(NS, SA, POD, audiences=[AUDIENCE])
    _assert_status(_token_request(client, other, _body()), 401, "Unauthorized")


@pytest.mark.parametrize("how", ["deleted", "expired", "rotated"])
def test_a_dead_caller_token_is_unauthorized(
    server: KubeAPIServer, client: httpx.Client, pod: Pod, caller: str, how: str
) -> None:
    if how == "deleted":
        server.delete_pod(NS, POD)
    elif how == "expired":
        caller = server.issue_token(NS, SA, POD, expires_in=-120)
    else:
        server.rotate_signing_key()
    _assert_status(_token_request(client, caller, _body()), 401, "Unauthorized")


def test_tokens_for_another_service_account_are_forbidden(
    server: KubeAPIServer, client: httpx.Client, caller: str
) -> None:
    server.add_pod(NS, "other-pod", "other-uid", "other-sa")
    response = _token_request(client, caller, _body(ref={"kind": "Pod", "name": "other-pod"}), sa="other-sa")
    _assert_status(
        response,
        403,
        "Forbidden",
        f'User "system:serviceaccount:{NS}:{SA}" cannot create resource "serviceaccounts/token"',
    )
    assert response.json()["details"] == {"name": "other-sa", "kind": "serviceaccounts"}


def test_deny_token_requests_simulates_a_missing_rbac_grant(
    server: KubeAPIServer, client: httpx.Client, caller: str
) -> None:
    server.deny_token_requests = True
    _assert_status(_token_request(client, caller, _body()), 403, "Forbidden", "serviceaccounts/token")
    server.deny_token_requests = False
    assert _token_request(client, caller, _body()).status_code == 201


# -- the own-pod admission policy (own_pod_tokens_only) -------------------------------------------------

SIGNER_AUDIENCE = "signed-entrypoint:spki-sha256:" + "ab" * 32
SIBLING = "sibling-taskrun-pod"
SIBLING_UID = "5a5a5a5a-0000-4000-8000-000000000001"


def _ref(name: str = POD, uid: str | None = POD_UID, kind: str = "Pod") -> dict[str, str]:
    ref = {"apiVersion": "v1", "kind": kind, "name": name}
    if uid is not None:
        ref["uid"] = uid
    return ref


def _assert_policy_denial(response: httpx.Response) -> None:
    # 422 Invalid, as kube-apiserver v1.37.2 answers (tests/e2e/test_admission_policy.py): a
    # validation without a reason is Invalid, under admission.NewForbidden's message.
    _assert_status(response, 422, "Invalid")
    body = response.json()
    assert body["message"] == (
        f"serviceaccounts \"{SA}\" is forbidden: ValidatingAdmissionPolicy '{OWN_POD_POLICY}'"
        f" with binding '{OWN_POD_POLICY}' denied request: {OWN_POD_POLICY_MESSAGE}"
    )
    denial = f"ValidatingAdmissionPolicy '{OWN_POD_POLICY}' with binding '{OWN_POD_POLICY}' denied request: "
    assert body["details"] == {
        "name": SA,
        "kind": "serviceaccounts",
        "causes": [{"message": denial + OWN_POD_POLICY_MESSAGE}],
    }


def test_without_the_policy_a_pod_may_bind_a_token_to_a_sibling_pod(
    server: KubeAPIServer, client: httpx.Client, caller: str
) -> None:
    """What Kubernetes allows with RBAC alone: a token bound to any live pod of the same service account,
    whoever asks (the attack the admission policy exists for)."""
    assert server.own_pod_tokens_only is False
    server.add_pod(NS, SIBLING, SIBLING_UID, SA)
    body = _body(audiences=[SIGNER_AUDIENCE], ref=_ref(SIBLING, SIBLING_UID))
    response = _token_request(client, caller, body)
    assert response.status_code == 201, response.text
    claims = jwt.decode(response.json()["status"]["token"], options={"verify_signature": False})
    assert claims["kubernetes.io"]["pod"] == {"name": SIBLING, "uid": SIBLING_UID}


def test_own_pod_tokens_only_denies_a_token_bound_to_a_sibling_pod(
    server: KubeAPIServer, client: httpx.Client, caller: str
) -> None:
    server.add_pod(NS, SIBLING, SIBLING_UID, SA)
    cross = _body(audiences=[SIGNER_AUDIENCE], ref=_ref(SIBLING, SIBLING_UID))
    own = _body(audiences=[SIGNER_AUDIENCE])
    server.own_pod_tokens_only = True  # while serving
    _assert_policy_denial(_token_request(client, caller, cross))
    # The sibling's own token may: the policy compares the request with the requester.
    sibling_caller = server.caller_token(NS, SA, SIBLING)
    assert _token_request(client, sibling_caller, cross).status_code == 201
    issued = _token_request(client, caller, own)
    assert issued.status_code == 201, issued.text
    claims = jwt.decode(issued.json()["status"]["token"], options={"verify_signature": False})
    assert claims["kubernetes.io"]["pod"] == {"name": POD, "uid": POD_UID}
    assert claims["aud"] == [SIGNER_AUDIENCE]
    # Every request that passed authorization is recorded, those admission denied too.
    assert len(server.token_requests) == 3
    server.own_pod_tokens_only = False
    assert _token_request(client, caller, cross).status_code == 201


@pytest.mark.parametrize(
    "ref",
    [
        _ref(uid=None),
        _ref(uid="0d8b260e-0000-0000-0000-000000000000"),
        _ref(kind="Secret", uid=POD_UID),
        _ref("no-such-pod", uid=None),  # denied before the pod lookup (which would be a 404)
        None,
    ],
    ids=["own name without uid", "own name, other uid", "secret", "unknown pod", "unbound"],
)
def test_own_pod_tokens_only_needs_a_reference_to_the_requesting_pods_uid(
    rs256_server: KubeAPIServer, tmp_path: Path, ref: dict[str, str] | None
) -> None:
    rs256_server.own_pod_tokens_only = True
    rs256_server.add_pod(NS, POD, POD_UID, SA)
    body = _body(audiences=[SIGNER_AUDIENCE])
    if ref is None:
        del body["spec"]["boundObjectRef"]
    else:
        body["spec"]["boundObjectRef"] = ref
    with _client(rs256_server, tmp_path) as client:
        _assert_policy_denial(_token_request(client, rs256_server.caller_token(NS, SA, POD), body))


def test_own_pod_tokens_only_compares_the_uid_and_storage_the_name(
    server: KubeAPIServer, client: httpx.Client, caller: str
) -> None:
    # The documented policy checks the UID only: a sibling's name with the requester's own UID passes
    # admission, and the TokenRequest storage refuses it, as it refuses any stale UID.
    server.own_pod_tokens_only = True
    server.add_pod(NS, SIBLING, SIBLING_UID, SA)
    body = _body(audiences=[SIGNER_AUDIENCE], ref=_ref(SIBLING, POD_UID))
    _assert_status(_token_request(client, caller, body), 409, "Conflict", f"({POD_UID}) does not match")


def test_own_pod_tokens_only_denies_a_requester_bound_to_no_pod(
    server: KubeAPIServer, client: httpx.Client, pod: Pod
) -> None:
    server.own_pod_tokens_only = True
    unbound = server.issue_token(NS, SA)  # e.g. a legacy secret-based token: no pod in userInfo.extra
    _assert_policy_denial(_token_request(client, unbound, _body(audiences=[SIGNER_AUDIENCE])))


@pytest.mark.parametrize(
    "audiences",
    [[AUDIENCE], [], ["signed-entrypoint"], ["x-signed-entrypoint:abc"]],
    ids=["other", "defaulted", "no colon", "not a prefix"],
)
def test_own_pod_tokens_only_leaves_other_audiences_alone(
    server: KubeAPIServer, client: httpx.Client, caller: str, audiences: list[str]
) -> None:
    server.own_pod_tokens_only = True
    server.add_pod(NS, SIBLING, SIBLING_UID, SA)
    response = _token_request(client, caller, _body(audiences=audiences, ref=_ref(SIBLING, SIBLING_UID)))
    assert response.status_code == 201, response.text


def test_own_pod_tokens_only_matches_any_signer_audience_among_several(
    server: KubeAPIServer, client: httpx.Client, caller: str
) -> None:
    server.own_pod_tokens_only = True
    server.add_pod(NS, SIBLING, SIBLING_UID, SA)
    body = _body(audiences=[AUDIENCE, SIGNER_AUDIENCE], ref=_ref(SIBLING, SIBLING_UID))
    _assert_policy_denial(_token_request(client, caller, body))


def test_own_pod_tokens_only_runs_after_rbac_and_validation(
    server: KubeAPIServer, client: httpx.Client, caller: str
) -> None:
    # As in kube-apiserver: authorization (403 RBAC), then static validation (422), then admission.
    server.own_pod_tokens_only = True
    server.add_pod(NS, SIBLING, SIBLING_UID, SA)
    cross = _ref(SIBLING, SIBLING_UID)
    _assert_status(
        _token_request(client, caller, _body(audiences=[SIGNER_AUDIENCE], ref=cross, expiration=60)),
        422,
        "Invalid",
        "spec.expirationSeconds",
    )
    server.deny_token_requests = True
    response = _token_request(client, caller, _body(audiences=[SIGNER_AUDIENCE], ref=cross))
    _assert_status(response, 403, "Forbidden", 'cannot create resource "serviceaccounts/token"')
    assert "ValidatingAdmissionPolicy" not in response.json()["message"]


@pytest.mark.parametrize(
    ("ref", "code", "reason", "message"),
    [
        (
            {"apiVersion": "v1", "kind": "Pod", "name": "no-such-pod"},
            404,
            "NotFound",
            'pods "no-such-pod" not found',
        ),
        (
            {"apiVersion": "v1", "kind": "Pod", "name": POD, "uid": "stale-uid"},
            409,
            "Conflict",
            "the UID in the bound object reference (stale-uid) does not match the UID in record",
        ),
        (
            {"apiVersion": "v1", "kind": "Pod", "name": "foreign-pod"},
            400,
            "BadRequest",
            'cannot bind token for serviceaccount "signer" to pod running with different serviceaccount name',
        ),
        ({"apiVersion": "v1", "kind": "ConfigMap", "name": POD}, 400, "BadRequest", "Kind=ConfigMap"),
        ({"apiVersion": "apps/v1", "kind": "Pod", "name": POD}, 400, "BadRequest", "apps/v1, Kind=Pod"),
        ({"apiVersion": "v1", "kind": "Secret", "name": "s"}, 404, "NotFound", 'secrets "s" not found'),
        # As kube-apiserver v1.37.2 answers (tests/e2e/test_double_vs_real.py).
        ({"apiVersion": "v1", "kind": "Pod", "name": ""}, 400, "BadRequest", "Name parameter required."),
        (
            {"apiVersion": "v1", "kind": "Node", "name": "no-node"},
            404,
            "NotFound",
            'nodes "no-node" not found',
        ),
        (
            {"apiVersion": "v1", "kind": "Node", "name": "node-1", "uid": "stale-uid"},
            409,
            "Conflict",
            'on Node "node-1": the UID in the bound object reference (stale-uid) does not match',
        ),
    ],
)
def test_bound_object_ref_must_name_this_service_accounts_live_pod(
    server: KubeAPIServer,
    client: httpx.Client,
    caller: str,
    ref: dict[str, str],
    code: int,
    reason: str,
    message: str,
) -> None:
    server.add_pod(NS, "foreign-pod", "foreign-uid", "someone-else")
    _assert_status(_token_request(client, caller, _body(ref=ref)), code, reason, message)


def test_a_token_bound_to_a_node_lives_as_long_as_the_node(
    server: KubeAPIServer, client: httpx.Client, caller: str, reviewer: str, pod: Pod
) -> None:
    # kube-apiserver v1.37.2 binds tokens to Nodes (tests/e2e/test_double_vs_real.py).
    ref = {"apiVersion": "v1", "kind": "Node", "name": "node-1"}
    response = _token_request(client, caller, _body(ref=ref))
    assert response.status_code == 201, response.text
    assert response.json()["spec"]["boundObjectRef"] == ref
    token = response.json()["status"]["token"]
    claims = jwt.decode(token, options={"verify_signature": False})
    assert claims["kubernetes.io"]["node"] == {"name": "node-1", "uid": pod.node_uid}
    assert "pod" not in claims["kubernetes.io"]
    status = _review(client, reviewer, token, [AUDIENCE])
    assert status["authenticated"] is True
    assert sorted(status["user"]["extra"]) == [
        "authentication.kubernetes.io/credential-id",
        "authentication.kubernetes.io/node-name",
        "authentication.kubernetes.io/node-uid",
    ]
    server.delete_pod(NS, POD)  # the node stays
    assert _review(client, reviewer, token, [AUDIENCE])["authenticated"] is True


def test_a_pod_recreated_under_the_same_name_conflicts(
    server: KubeAPIServer, client: httpx.Client, caller: str
) -> None:
    server.add_pod(NS, POD, "new-uid", SA)
    # The caller's own mounted token is bound to the old pod, so it stops authenticating too.
    _assert_status(_token_request(client, caller, _body()), 401, "Unauthorized")
    fresh = server.caller_token(NS, SA, POD)
    _assert_status(_token_request(client, fresh, _body()), 409, "Conflict", "(0d8b260e")
    assert (
        _token_request(client, fresh, _body(ref={"kind": "Pod", "name": POD, "uid": "new-uid"})).status_code
        == 201
    )


def test_unbound_token_requests_are_allowed_as_in_kubernetes(client: httpx.Client, caller: str) -> None:
    body = _body()
    del body["spec"]["boundObjectRef"]
    response = _token_request(client, caller, body)
    assert response.status_code == 201, response.text
    claims = jwt.decode(response.json()["status"]["token"], options={"verify_signature": False})
    assert "pod" not in claims["kubernetes.io"]


def test_token_request_needs_a_json_content_type(client: httpx.Client, caller: str) -> None:
    response = client.post(
        token_request_path(NS, SA),
        headers={"Authorization": f"Bearer {caller}", "Content-Type": "text/plain"},
        content=json.dumps(_body()),
    )
    _assert_status(response, 415, "UnsupportedMediaType", "application/json")


def test_token_path_only_takes_post(client: httpx.Client, caller: str) -> None:
    # Authorized before routed, as kube-apiserver v1.37.2 answers (tests/e2e/test_double_vs_real.py):
    # the caller may only create its token, so any other verb is 403, not 405.
    response = client.get(token_request_path(NS, SA), headers={"Authorization": f"Bearer {caller}"})
    _assert_status(response, 403, "Forbidden", 'cannot get resource "serviceaccounts/token"')


def test_unknown_resources_are_forbidden_and_discovery_not_found(client: httpx.Client, caller: str) -> None:
    # As kube-apiserver v1.37.2 answers (tests/e2e/test_double_vs_real.py): nobody is granted a resource
    # this server does not serve; discovery, which it does not serve either, is 404.
    bearer = {"Authorization": f"Bearer {caller}"}
    response = client.get("/api/v1/namespaces/x/secrets", headers=bearer)
    _assert_status(
        response,
        403,
        "Forbidden",
        f'secrets is forbidden: User "system:serviceaccount:{NS}:{SA}" cannot list resource "secrets"'
        ' in API group "" in the namespace "x"',
    )
    assert response.json()["details"] == {"kind": "secrets"}
    response = client.get("/apis/foo.example/v1/bars?watch=true", headers=bearer)
    _assert_status(
        response, 403, "Forbidden", 'cannot watch resource "bars" in API group "foo.example" at the'
    )
    response = client.get("/apis/foo.example/v1", headers=bearer)
    _assert_status(response, 404, "NotFound", "the server could not find the requested resource")


def test_unknown_non_resource_paths_are_forbidden(client: httpx.Client, caller: str) -> None:
    # As kube-apiserver v1.37.2 answers (tests/e2e/test_double_vs_real.py): nobody is granted the URL.
    response = client.get("/nosuch", headers={"Authorization": f"Bearer {caller}"})
    _assert_status(
        response,
        403,
        "Forbidden",
        f'forbidden: User "system:serviceaccount:{NS}:{SA}" cannot get path "/nosuch"',
    )


# -- TokenReview ---------------------------------------------------------------------------------------


def test_review_authenticates_a_live_token_for_a_requested_audience(
    server: KubeAPIServer, client: httpx.Client, caller: str, reviewer: str, pod: Pod
) -> None:
    token = _issue(client, caller, audiences=[AUDIENCE, "another"])
    jti = jwt.decode(token, options={"verify_signature": False})["jti"]
    status = _review(client, reviewer, token, ["unrelated", AUDIENCE])
    assert status["authenticated"] is True
    assert status["audiences"] == [AUDIENCE]
    assert "error" not in status
    assert status["user"] == {
        "username": f"system:serviceaccount:{NS}:{SA}",
        "uid": pod.service_account_uid,
        "groups": ["system:serviceaccounts", f"system:serviceaccounts:{NS}", "system:authenticated"],
        "extra": {
            "authentication.kubernetes.io/pod-name": [POD],
            "authentication.kubernetes.io/pod-uid": [POD_UID],
            "authentication.kubernetes.io/node-name": ["node-1"],
            "authentication.kubernetes.io/node-uid": [pod.node_uid],
            "authentication.kubernetes.io/credential-id": [f"JTI={jti}"],
        },
    }


def test_review_without_audiences_checks_the_api_audiences(
    server: KubeAPIServer, client: httpx.Client, caller: str, reviewer: str
) -> None:
    status = _review(client, reviewer, caller, None)
    assert status["authenticated"] is True
    assert status["audiences"] == [server.issuer]
    _unauthenticated(
        _review(client, reviewer, _issue(client, caller), None), "is invalid for the target audiences"
    )


def test_review_rejects_a_token_for_another_audience(
    client: httpx.Client, caller: str, reviewer: str
) -> None:
    token = _issue(client, caller, audiences=["someone-else", "and-another"])
    # Go's %q of the audience lists, as kube-apiserver words it.
    _unauthenticated(
        _review(client, reviewer, token, [AUDIENCE, "x"]),
        '[invalid bearer token, token audiences ["someone-else" "and-another"] is invalid for the target'
        ' audiences ["tekton-results:example" "x"]]',
    )


def test_review_rejects_a_token_whose_pod_was_deleted(
    server: KubeAPIServer, client: httpx.Client, caller: str, reviewer: str
) -> None:
    token = _issue(client, caller)
    assert _review(client, reviewer, token, [AUDIENCE])["authenticated"] is True
    server.delete_pod(NS, POD)
    _unauthenticated(_review(client, reviewer, token, [AUDIENCE]), "has been invalidated")


def test_review_rejects_a_token_whose_pod_was_recreated(
    server: KubeAPIServer, client: httpx.Client, caller: str, reviewer: str
) -> None:
    token = _issue(client, caller)
    server.add_pod(NS, POD, "recreated-uid", SA)
    _unauthenticated(
        _review(client, reviewer, token, [AUDIENCE]), "pod UID (recreated-uid) does not match claim"
    )


def test_review_rejects_an_expired_token_beyond_the_leeway(
    server: KubeAPIServer, client: httpx.Client, pod: Pod, reviewer: str
) -> None:
    within_leeway = server.issue_token(NS, SA, POD, audiences=[AUDIENCE], expires_in=-30)
    assert _review(client, reviewer, within_leeway, [AUDIENCE])["authenticated"] is True
    expired = server.issue_token(NS, SA, POD, audiences=[AUDIENCE], expires_in=-120)
    _unauthenticated(_review(client, reviewer, expired, [AUDIENCE]), "service account token has expired")


def test_review_rejects_a_token_signed_by_a_rotated_out_key(
    server: KubeAPIServer, client: httpx.Client, caller: str
) -> None:
    old_token = _issue(client, caller)
    old_kid = server.signing_kid
    new_kid = server.rotate_signing_key()
    assert new_kid != old_kid
    fresh_caller = server.caller_token(NS, SA, POD)
    reviewer = _reviewer_token(server)  # the old key signed the old reviewer token too
    assert [k["kid"] for k in _get(client, JWKS_PATH, fresh_caller).json()["keys"]] == [new_kid]
    _unauthenticated(_review(client, reviewer, old_token, [AUDIENCE]), "cryptographic primitive")
    new_token = _issue(client, fresh_caller)
    assert jwt.get_unverified_header(new_token)["kid"] == new_kid
    assert _review(client, reviewer, new_token, [AUDIENCE])["authenticated"] is True


def test_rotation_with_keep_old_still_accepts_old_tokens(
    server: KubeAPIServer, client: httpx.Client, caller: str, reviewer: str
) -> None:
    old_token = _issue(client, caller)
    old_kid = server.signing_kid
    new_kid = server.rotate_signing_key(keep_old=True)
    assert [k["kid"] for k in _get(client, JWKS_PATH, caller).json()["keys"]] == [new_kid, old_kid]
    assert _review(client, reviewer, old_token, [AUDIENCE])["authenticated"] is True
    _verify_with_jwks(client, old_token, AUDIENCE, server.issuer, caller)


def test_review_rejects_a_forged_token_that_reuses_the_kid(
    server: KubeAPIServer, client: httpx.Client, caller: str, reviewer: str, alg: str
) -> None:
    genuine = jwt.decode(_issue(client, caller), options={"verify_signature": False})
    # Same algorithm, same kid, a stranger's key: only the signature check can catch it.
    stranger = (
        rsa.generate_private_key(public_exponent=65537, key_size=2048)
        if alg == "RS256"
        else ec.generate_private_key(ec.SECP256R1())
    )
    forged = jwt.encode(genuine, stranger, algorithm=alg, headers={"kid": server.signing_kid})
    _unauthenticated(_review(client, reviewer, forged, [AUDIENCE]), "cryptographic primitive")


def test_review_rejects_a_token_with_a_tampered_payload(
    client: httpx.Client, caller: str, reviewer: str
) -> None:
    header, payload, signature = _issue(client, caller).split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    claims["aud"] = ["evil"]
    forged_payload = base64.urlsafe_b64encode(json.dumps(claims).encode()).rstrip(b"=").decode()
    _unauthenticated(
        _review(client, reviewer, f"{header}.{forged_payload}.{signature}", ["evil"]),
        "[invalid bearer token, go-jose/go-jose: error in cryptographic primitive]",
    )


def test_a_basic_credential_is_not_a_bearer_even_if_it_holds_a_valid_token(
    client: httpx.Client, caller: str
) -> None:
    response = client.post(
        token_request_path(NS, SA), headers={"Authorization": f"Basic {caller}"}, json=_body()
    )
    _assert_status(response, 403, "Forbidden", 'User "system:anonymous"')  # no bearer: anonymous


def test_review_rejects_garbage(client: httpx.Client, reviewer: str) -> None:
    # A token no authenticator takes as its own: the error is bare, as kube-apiserver v1.37.2's
    # (tests/e2e/test_double_vs_real.py); an authenticator's own errors are bracketed.
    status = _review(client, reviewer, "not-a-jwt", [AUDIENCE])
    _unauthenticated(status, "invalid bearer token")
    assert status["error"] == "invalid bearer token"


def test_review_ignores_sub_and_accepts_tokens_without_exp_or_iat(
    server: KubeAPIServer, client: httpx.Client, caller: str, reviewer: str
) -> None:
    # As kube-apiserver v1.37.2 answers (tests/e2e/test_double_vs_real.py): the identity is the
    # kubernetes.io claim's, and go-jose checks exp, nbf and iat only where present.
    claims = jwt.decode(_issue(client, caller), options={"verify_signature": False})
    claims["sub"] = "system:serviceaccount:elsewhere:someone"
    del claims["exp"], claims["iat"]
    forged = jwt.encode(
        claims, server._keys[0].private, algorithm=server.alg, headers={"kid": server.signing_kid}
    )
    status = _review(client, reviewer, forged, [AUDIENCE])
    assert status["authenticated"] is True
    assert status["user"]["username"] == f"system:serviceaccount:{NS}:{SA}"


def test_review_needs_the_grant_and_a_token(client: httpx.Client, caller: str, reviewer: str) -> None:
    # As kube-apiserver v1.37.2 answers (tests/e2e/test_double_vs_real.py): only a caller granted
    # create on tokenreviews (system:auth-delegator) may review; without credentials one is anonymous.
    body = {"apiVersion": "authentication.k8s.io/v1", "kind": "TokenReview", "spec": {"token": caller}}
    for user, headers in (
        ("system:anonymous", {}),
        (f"system:serviceaccount:{NS}:{SA}", {"Authorization": f"Bearer {caller}"}),
    ):
        _assert_status(
            client.post(TOKEN_REVIEW_PATH, headers=headers, json=body),
            403,
            "Forbidden",
            f'tokenreviews.authentication.k8s.io is forbidden: User "{user}" cannot create resource'
            ' "tokenreviews" in API group "authentication.k8s.io" at the cluster scope',
        )
    _assert_status(
        client.post(TOKEN_REVIEW_PATH, headers={"Authorization": f"Bearer {reviewer}"}, json={"spec": {}}),
        400,
        "BadRequest",
        "token is required for TokenReview",
    )


# -- discovery -----------------------------------------------------------------------------------------


def test_discovery_and_jwks_have_the_apiserver_shape(server: KubeAPIServer, tmp_path: Path, alg: str) -> None:
    # Any service account may read them (the default system:service-account-issuer-discovery binding).
    client = _client(server, tmp_path, token=_sa_token(server))
    response = client.get(OPENID_CONFIG_PATH)
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    config = response.json()
    assert config == {
        "issuer": server.issuer,
        "jwks_uri": server.url + JWKS_PATH,
        "response_types_supported": ["id_token"],
        "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": [alg],
    }
    assert config["issuer"].startswith("https://")
    # Discovery from the issuer must lead back to the same document, as OIDC verifiers do it.
    assert client.get(config["issuer"] + OPENID_CONFIG_PATH).json() == config
    jwks_response = client.get(config["jwks_uri"])
    assert jwks_response.headers["content-type"] == "application/jwk-set+json"
    jwks = jwks_response.json()
    assert jwks == server.jwks()
    [key] = jwks["keys"]
    assert key["use"] == "sig"
    assert key["alg"] == alg
    assert key["kid"] == server.signing_kid
    assert key["kty"] == ("RSA" if alg == "RS256" else "EC")
    assert "d" not in key  # public half only
    # The apiserver's fields and no others (no key_ops), as kube-apiserver v1.37.2 serves them
    # (tests/e2e/test_double_vs_real.py).
    assert set(key) == {"use", "kty", "kid", "alg"} | ({"n", "e"} if alg == "RS256" else {"crv", "x", "y"})
    parsed = jwt.PyJWK.from_dict(key)
    assert parsed.algorithm_name == alg
    client.close()


def test_discovery_is_refused_to_anonymous_callers_unless_the_cluster_allows_it(
    server: KubeAPIServer, client: httpx.Client, caller: str
) -> None:
    # As kube-apiserver v1.37.2 answers (tests/e2e/test_double_vs_real.py): the default binding is to
    # system:serviceaccounts only, and it grants GET only.
    for path in (OPENID_CONFIG_PATH, JWKS_PATH):
        _assert_status(
            client.get(path), 403, "Forbidden", f'forbidden: User "system:anonymous" cannot get path "{path}"'
        )
        posted = client.post(path, headers={"Authorization": f"Bearer {caller}"}, json={})
        _assert_status(posted, 403, "Forbidden", f'cannot post path "{path}"')
    server.anonymous_discovery = True  # a cluster that binds the role to system:unauthenticated too
    assert client.get(OPENID_CONFIG_PATH).json() == server.openid_configuration()
    assert client.get(JWKS_PATH).json() == server.jwks()


def test_explicit_issuer_and_api_audiences(tmp_path: Path) -> None:
    issuer = "https://kubernetes.default.svc.cluster.local"
    with (
        KubeAPIServer(issuer=issuer, api_audiences=["api-aud"]) as srv,
        _client(srv, tmp_path) as client,
    ):
        srv.add_pod(NS, POD, POD_UID, SA)
        caller = srv.caller_token(NS, SA, POD)
        assert jwt.decode(caller, options={"verify_signature": False})["aud"] == ["api-aud"]
        config = _get(client, OPENID_CONFIG_PATH, caller).json()
        assert config["issuer"] == issuer
        assert config["jwks_uri"] == srv.url + JWKS_PATH
        token = _issue(client, caller)
        assert _verify_with_jwks(client, token, AUDIENCE, issuer, caller)["iss"] == issuer


@pytest.mark.parametrize(
    "issuer", ["http://insecure.example", "https://x.example/?q=1", "https://x.example/#f"]
)
def test_issuer_must_be_https_without_query_or_fragment(issuer: str) -> None:
    with pytest.raises(ValueError, match="https URL"):
        KubeAPIServer(issuer=issuer)


# -- fault knobs ---------------------------------------------------------------------------------------


def test_fail_status_answers_every_request_until_cleared(rs256_server: KubeAPIServer, tmp_path: Path) -> None:
    with _client(rs256_server, tmp_path, token=_sa_token(rs256_server)) as client:
        rs256_server.fail_status = 500
        for _ in range(3):
            _assert_status(client.get(OPENID_CONFIG_PATH), 500, "InternalError")
        rs256_server.fail_status = None
        assert client.get(OPENID_CONFIG_PATH).status_code == 200


def test_fail_next_fails_n_requests_then_recovers(
    server: KubeAPIServer, client: httpx.Client, caller: str
) -> None:
    server.fail_next(2, status=503)
    for _ in range(2):
        response = _token_request(client, caller, _body())
        _assert_status(response, 503, "ServiceUnavailable")
        assert response.headers["retry-after"] == "1"
    assert _token_request(client, caller, _body()).status_code == 201
    assert server.fail_status is None


def test_fail_status_must_be_an_error_status(rs256_server: KubeAPIServer) -> None:
    with pytest.raises(ValueError, match="400-599"):
        rs256_server.fail_status = 200
    with pytest.raises(ValueError, match="at least 1"):
        rs256_server.fail_next(0)


def test_unauthorized_answers_401_to_everything(
    server: KubeAPIServer, client: httpx.Client, caller: str
) -> None:
    server.unauthorized = True
    _assert_status(client.get(OPENID_CONFIG_PATH), 401, "Unauthorized")
    _assert_status(client.get(JWKS_PATH), 401, "Unauthorized")
    _assert_status(_token_request(client, caller, _body()), 401, "Unauthorized")
    server.unauthorized = False
    assert _token_request(client, caller, _body()).status_code == 201


def test_delay_slows_answers_and_clients_time_out(rs256_server: KubeAPIServer, tmp_path: Path) -> None:
    token = _sa_token(rs256_server)
    rs256_server.delay = 0.4
    with _client(rs256_server, tmp_path, token=token) as client:
        started = time.monotonic()
        assert client.get(OPENID_CONFIG_PATH).status_code == 200
        assert time.monotonic() - started >= 0.4
    with _client(rs256_server, tmp_path, timeout=0.1) as impatient, pytest.raises(httpx.ReadTimeout):
        impatient.get(OPENID_CONFIG_PATH)
    rs256_server.delay = 0
    with _client(rs256_server, tmp_path, token=token) as client:
        started = time.monotonic()
        assert client.get(OPENID_CONFIG_PATH).status_code == 200
        assert time.monotonic() - started < 0.4


def test_delay_is_bounded(rs256_server: KubeAPIServer) -> None:
    for bad in (-1.0, MAX_DELAY_SECONDS + 1):
        with pytest.raises(ValueError, match="delay"):
            rs256_server.delay = bad


def test_stop_abandons_a_delayed_answer_promptly(tmp_path: Path) -> None:
    srv = KubeAPIServer()
    srv.start()
    srv.delay = MAX_DELAY_SECONDS
    errors: queue.Queue[BaseException | None] = queue.Queue()

    def call() -> None:
        try:
            with _client(srv, tmp_path) as client:
                client.get(OPENID_CONFIG_PATH)
            errors.put(None)
        except BaseException as err:
            errors.put(err)

    threading.Thread(target=call, daemon=True).start()
    deadline = time.monotonic() + TIMEOUT
    while not srv.requests:
        assert time.monotonic() < deadline
        time.sleep(0.01)
    started = time.monotonic()
    srv.stop()
    assert time.monotonic() - started < 2
    assert isinstance(errors.get(timeout=TIMEOUT), httpx.HTTPError)


# -- TLS, lifecycle, bookkeeping -----------------------------------------------------------------------


def test_tls_is_verified_against_the_cluster_ca_only(rs256_server: KubeAPIServer, tmp_path: Path) -> None:
    with httpx.Client(timeout=TIMEOUT) as system_trust, pytest.raises(httpx.ConnectError):
        system_trust.get(rs256_server.url + OPENID_CONFIG_PATH)
    ca_file = tmp_path / "ca.crt"
    ca_file.write_bytes(rs256_server.ca_pem)
    context = ssl.create_default_context(cafile=str(ca_file))
    url = f"https://localhost:{rs256_server.port}{OPENID_CONFIG_PATH}"
    headers = {"Authorization": f"Bearer {_sa_token(rs256_server)}"}
    with httpx.Client(verify=context, timeout=TIMEOUT, headers=headers) as by_name:
        assert by_name.get(url).status_code == 200


def test_requests_are_recorded_in_order(server: KubeAPIServer, client: httpx.Client, caller: str) -> None:
    server.unauthorized = True
    client.get(OPENID_CONFIG_PATH + "?x=1")
    server.unauthorized = False
    _token_request(client, caller, _body())
    client.get(JWKS_PATH)
    assert server.requests == [
        ("GET", OPENID_CONFIG_PATH + "?x=1"),
        ("POST", token_request_path(NS, SA)),
        ("GET", JWKS_PATH),
    ]


def test_a_stopped_server_refuses_and_can_start_again_on_the_same_url(
    rs256_server: KubeAPIServer, tmp_path: Path
) -> None:
    url = rs256_server.url
    token = _sa_token(rs256_server)
    rs256_server.stop()
    with _client(rs256_server, tmp_path, token=token) as client:
        with pytest.raises(httpx.ConnectError):
            client.get(OPENID_CONFIG_PATH)
        rs256_server.start()
        assert rs256_server.url == url
        assert client.get(OPENID_CONFIG_PATH).status_code == 200


def test_the_server_binds_loopback_only(rs256_server: KubeAPIServer) -> None:
    assert rs256_server._server is not None
    assert rs256_server._server.server_address[0] == "127.0.0.1"
    assert rs256_server.url == f"https://127.0.0.1:{rs256_server.port}"


def test_write_in_cluster_files_mounts_a_working_identity(
    server: KubeAPIServer, pod: Pod, tmp_path: Path
) -> None:
    mount = tmp_path / "serviceaccount"
    env = server.write_in_cluster_files(mount)
    assert sorted(os.listdir(mount)) == ["ca.crt", "namespace", "token"]
    assert (mount / "namespace").read_text() == NS
    assert (mount / "ca.crt").read_bytes() == server.ca_pem
    assert env == {"KUBERNETES_SERVICE_HOST": "127.0.0.1", "KUBERNETES_SERVICE_PORT": str(server.port)}
    # What an in-cluster client does with them (client-go's InClusterConfig).
    host = f"https://{env['KUBERNETES_SERVICE_HOST']}:{env['KUBERNETES_SERVICE_PORT']}"
    context = ssl.create_default_context(cafile=str(mount / "ca.crt"))
    with httpx.Client(base_url=host, verify=context, timeout=TIMEOUT) as client:
        response = _token_request(client, (mount / "token").read_text(), _body())
    assert response.status_code == 201, response.text


def test_write_in_cluster_files_needs_to_know_which_pod(rs256_server: KubeAPIServer, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="0 pods"):
        rs256_server.write_in_cluster_files(tmp_path)
    rs256_server.add_pod(NS, "a", "uid-a", SA)
    second = rs256_server.add_pod(NS, "b", "uid-b", SA)
    with pytest.raises(ValueError, match="2 pods"):
        rs256_server.write_in_cluster_files(tmp_path)
    rs256_server.write_in_cluster_files(tmp_path, second)
    claims = jwt.decode((tmp_path / "token").read_text(), options={"verify_signature": False})
    assert claims["kubernetes.io"]["pod"] == {"name": "b", "uid": "uid-b"}


def test_repr_never_shows_key_material(rs256_server: KubeAPIServer) -> None:
    text = repr(rs256_server) + repr(rs256_server._keys)
    assert "PRIVATE" not in text
    assert rs256_server.url in text


# -- the module runner ---------------------------------------------------------------------------------


@contextlib.contextmanager
def _runner(*args: str) -> Iterator[tuple[subprocess.Popen[str], str]]:
    """The module runner with ``args``, once it has printed ``ready <url>``; killed if still up."""
    with doubles.serving(RUNNER, *args) as (proc, url):
        assert url.startswith("https://127.0.0.1:")
        yield proc, url


@pytest.mark.slow
def test_module_runner_prints_ready_and_serves(tmp_path: Path) -> None:
    mount = tmp_path / "sa"
    pod = ("--pod", f"{NS}/{POD}/{POD_UID}", "--service-account", SA, "--token-reviewer", f"{NS}/{SA}")
    with _runner(*pod, "--alg", "ES256", "--in-cluster-dir", str(mount)) as (proc, url):
        context = ssl.create_default_context(cafile=str(mount / "ca.crt"))
        with httpx.Client(base_url=url, verify=context, timeout=TIMEOUT) as client:
            caller = (mount / "token").read_text()
            token = _issue(client, caller)
            assert jwt.get_unverified_header(token)["alg"] == "ES256"
            claims = _verify_with_jwks(client, token, AUDIENCE, url, caller)
            assert claims["kubernetes.io"]["pod"] == {"name": POD, "uid": POD_UID}
            assert _review(client, caller, token, [AUDIENCE])["authenticated"] is True
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=10) == 0


@pytest.mark.slow
def test_module_runner_stops_on_sigint() -> None:
    with _runner("--pod", f"{NS}/{POD}/{POD_UID}", "--service-account", SA) as (proc, _):
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=10) == 0


@pytest.mark.slow
def test_module_runner_own_pod_tokens_only(tmp_path: Path) -> None:
    mount = tmp_path / "sa"
    pods = ("--pod", f"{NS}/{POD}/{POD_UID}", "--pod", f"{NS}/{SIBLING}/{SIBLING_UID}")
    flags = ("--service-account", SA, "--in-cluster-dir", str(mount), "--own-pod-tokens-only")
    with _runner(*pods, *flags) as (proc, url):
        context = ssl.create_default_context(cafile=str(mount / "ca.crt"))
        with httpx.Client(base_url=url, verify=context, timeout=TIMEOUT) as client:
            caller = (mount / "token").read_text()  # the first pod's
            cross = _body(audiences=[SIGNER_AUDIENCE], ref=_ref(SIBLING, SIBLING_UID))
            _assert_policy_denial(_token_request(client, caller, cross))
            assert _token_request(client, caller, _body(audiences=[SIGNER_AUDIENCE])).status_code == 201
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=10) == 0


def test_module_runner_rejects_a_malformed_pod() -> None:
    result = doubles.run(RUNNER, "--pod", "only/two", "--service-account", SA)
    assert result.returncode == 2
    assert "NAMESPACE/NAME/UID" in result.stderr
    assert "ready" not in result.stdout
