"""JWT-SVIDs from the Workload API double, verified as Fulcio's ``spiffe`` issuer does: by OIDC discovery
on the token's ``iss`` against the discovery double, then the JWKS it names."""

from __future__ import annotations

import datetime
import json
import os
import queue
import shutil
import ssl
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from typing import Any

import grpc
import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from spiffe import JwtSvid, SpiffeId, TrustDomain, WorkloadApiClient
from spiffe._proto import workload_pb2, workload_pb2_grpc
from spiffe.errors import ArgumentError
from spiffe.workloadapi.errors import FetchJwtSvidError, ValidateJwtSvidError

from entrypoint.testing.ca import TestCA
from entrypoint.testing.spiffe_oidc import JWKS_PATH, OPENID_CONFIG_PATH, SpiffeOIDCDiscovery
from entrypoint.testing.workload_api import JWTAuthority, WorkloadAPIServer
from tests.support.pki import SPIFFE_ID

TD = TrustDomain("example.org")
AUDIENCE = "sigstore"
TIMEOUT = 5.0
HEADER = [("workload.spiffe.io", "true")]
OTHER_ID = "spiffe://example.org/ns/foo/taskrun/other"


@pytest.fixture
def sock_dir() -> Iterator[str]:
    # pytest's tmp_path can exceed the 107-byte AF_UNIX limit.
    path = tempfile.mkdtemp(prefix="wlj", dir="/tmp")
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def socket_path(sock_dir: str) -> str:
    return os.path.join(sock_dir, "agent.sock")


@pytest.fixture
def server(socket_path: str, ca: TestCA) -> Iterator[WorkloadAPIServer]:
    with WorkloadAPIServer(socket_path, ca, SPIFFE_ID) as srv:
        yield srv


@pytest.fixture
def client(server: WorkloadAPIServer) -> Iterator[WorkloadApiClient]:
    with WorkloadApiClient(socket_path=server.address, default_timeout=TIMEOUT) as c:
        yield c


@pytest.fixture
def discovery(server: WorkloadAPIServer) -> Iterator[SpiffeOIDCDiscovery]:
    with SpiffeOIDCDiscovery(server) as d:
        yield d


def _tls(discovery: SpiffeOIDCDiscovery) -> ssl.SSLContext:
    return ssl.create_default_context(cadata=discovery.ca_pem.decode("ascii"))


def _get(url: str, context: ssl.SSLContext, method: str = "GET") -> tuple[int, Any, Any]:
    """Status, JSON body and headers of one request (error answers included)."""
    request = urllib.request.Request(url, method=method, data=b"" if method != "GET" else None)
    try:
        with urllib.request.urlopen(request, context=context, timeout=TIMEOUT) as response:
            return response.status, json.load(response), response.headers
    except urllib.error.HTTPError as err:
        with err:
            return err.code, json.load(err), err.headers


def _verify_as_fulcio(token: str, context: ssl.SSLContext) -> dict[str, Any]:
    """Verify ``token`` knowing only how to reach its issuer: discovery on ``iss``, then its JWKS."""
    issuer = jwt.decode(token, options={"verify_signature": False})["iss"]
    status, document, _ = _get(issuer.rstrip("/") + OPENID_CONFIG_PATH, context)
    assert status == 200
    # go-oidc refuses a provider whose document names another issuer than the one it was asked for.
    assert document["issuer"] == issuer
    keys = jwt.PyJWKClient(document["jwks_uri"], cache_jwk_set=False, ssl_context=context)
    claims: dict[str, Any] = jwt.decode(
        token,
        keys.get_signing_key_from_jwt(token),
        algorithms=document["id_token_signing_alg_values_supported"],
        audience=AUDIENCE,
        issuer=issuer,
        options={"require": ["iss", "sub", "aud", "exp", "iat"]},
    )
    return claims


def _fetch_jwt_raw(
    address: str, audience: list[str], *, metadata: list[tuple[str, str]] | None = HEADER, spiffe_id: str = ""
) -> Any:
    with grpc.insecure_channel(address) as channel:
        stub = workload_pb2_grpc.SpiffeWorkloadAPIStub(channel)  # type: ignore[no-untyped-call]
        request = workload_pb2.JWTSVIDRequest(audience=audience, spiffe_id=spiffe_id)
        return stub.FetchJWTSVID(request, metadata=metadata, timeout=TIMEOUT)


def _rpc_error(address: str, audience: list[str], **kwargs: Any) -> Any:
    with pytest.raises(grpc.RpcError) as info:
        _fetch_jwt_raw(address, audience, **kwargs)
    return info.value


def _spki(key: Any) -> bytes:
    der: bytes = key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return der


# -- what a signer gets, and how Fulcio checks it --------------------------------------------------------


@pytest.mark.parametrize(("key_type", "alg"), [("ec-p256", "ES256"), ("rsa-2048", "RS256")])
def test_jwt_svid_verifies_through_oidc_discovery(
    socket_path: str, ca: TestCA, key_type: str, alg: str
) -> None:
    authority = JWTAuthority(ca.trust_domain, key_type)
    with (
        WorkloadAPIServer(socket_path, ca, SPIFFE_ID, jwt_authority=authority) as server,
        SpiffeOIDCDiscovery(server) as discovery,
        WorkloadApiClient(socket_path=server.address, default_timeout=TIMEOUT) as client,
    ):
        assert server.jwt_issuer == discovery.url
        svid = client.fetch_jwt_svid({AUDIENCE})
        claims = _verify_as_fulcio(svid.token, _tls(discovery))
        _, document, _ = _get(discovery.url + OPENID_CONFIG_PATH, _tls(discovery))
    assert str(svid.spiffe_id) == SPIFFE_ID
    assert svid.audience == {AUDIENCE}
    assert claims["sub"] == SPIFFE_ID
    assert claims["aud"] == [AUDIENCE]
    assert claims["iss"] == discovery.url
    assert claims["exp"] - claims["iat"] == 300
    assert abs(claims["iat"] - time.time()) < 5
    assert jwt.get_unverified_header(svid.token) == {"alg": alg, "kid": authority.kid, "typ": "JWT"}
    assert document == {
        "issuer": discovery.url,
        "jwks_uri": discovery.url + JWKS_PATH,
        "authorization_endpoint": "",
        "response_types_supported": ["id_token"],
        "subject_types_supported": [],
        "id_token_signing_alg_values_supported": [alg],
    }


def test_without_jwt_issuer_there_is_no_iss(client: WorkloadApiClient) -> None:
    svid = client.fetch_jwt_svid({AUDIENCE})
    claims = jwt.decode(svid.token, options={"verify_signature": False})
    assert set(claims) == {"sub", "aud", "exp", "iat"}
    bundle = client.fetch_jwt_bundles().get_bundle_for_trust_domain(TD)
    assert bundle is not None
    assert str(JwtSvid.parse_and_validate(svid.token, bundle, {AUDIENCE}).spiffe_id) == SPIFFE_ID


def test_configure_issuer_false_leaves_the_tokens_without_iss(server: WorkloadAPIServer) -> None:
    with SpiffeOIDCDiscovery(server, configure_issuer=False) as discovery:
        assert server.jwt_issuer is None
        token = server.issue_jwt_svid([AUDIENCE])
        assert "iss" not in jwt.decode(token, options={"verify_signature": False})
        assert discovery.openid_configuration()["issuer"] == discovery.url


def test_an_issuer_with_a_path_is_discovered_under_it(
    server: WorkloadAPIServer, client: WorkloadApiClient, discovery: SpiffeOIDCDiscovery
) -> None:
    discovery.issuer = server.jwt_issuer = discovery.url + "/tenant"
    claims = _verify_as_fulcio(client.fetch_jwt_svid({AUDIENCE}).token, _tls(discovery))
    assert claims["iss"] == discovery.url + "/tenant"


def test_an_explicit_issuer_is_named_in_the_document_and_the_tokens(server: WorkloadAPIServer) -> None:
    with SpiffeOIDCDiscovery(server, issuer="https://oidc.example.org") as discovery:
        _, document, _ = _get(discovery.url + OPENID_CONFIG_PATH, _tls(discovery))
    assert document["issuer"] == "https://oidc.example.org"
    assert document["jwks_uri"] == discovery.url + JWKS_PATH
    token = server.issue_jwt_svid([AUDIENCE])
    assert jwt.decode(token, options={"verify_signature": False})["iss"] == "https://oidc.example.org"


def test_every_requested_audience_is_in_aud_in_order(server: WorkloadAPIServer) -> None:
    response = _fetch_jwt_raw(server.address, ["sigstore", "other", ""])
    [svid] = response.svids
    assert svid.spiffe_id == SPIFFE_ID
    assert jwt.decode(svid.svid, options={"verify_signature": False})["aud"] == ["sigstore", "other"]


def test_sub_and_ttl_follow_the_configuration(server: WorkloadAPIServer, client: WorkloadApiClient) -> None:
    server.spiffe_id = OTHER_ID
    server.jwt_svid_ttl = datetime.timedelta(minutes=1)
    claims = jwt.decode(client.fetch_jwt_svid({AUDIENCE}).token, options={"verify_signature": False})
    assert claims["sub"] == OTHER_ID
    assert claims["exp"] - claims["iat"] == 60
    assert str(client.fetch_x509_svid().spiffe_id) == OTHER_ID, "one identity for both kinds of SVID"


def test_a_requested_spiffe_id_filters_the_answer(
    server: WorkloadAPIServer, client: WorkloadApiClient
) -> None:
    assert str(client.fetch_jwt_svid({AUDIENCE}, subject=SpiffeId(SPIFFE_ID)).spiffe_id) == SPIFFE_ID
    assert not _fetch_jwt_raw(server.address, [AUDIENCE], spiffe_id=OTHER_ID).svids
    with pytest.raises(FetchJwtSvidError, match="response is empty"):
        client.fetch_jwt_svid({AUDIENCE}, subject=SpiffeId(OTHER_ID))


# -- refusals --------------------------------------------------------------------------------------------


def test_an_empty_audience_is_refused(server: WorkloadAPIServer, client: WorkloadApiClient) -> None:
    with pytest.raises(ArgumentError):
        client.fetch_jwt_svid(set())  # py-spiffe refuses before calling; the raw calls reach the server
    for audience in ([], [""]):
        err = _rpc_error(server.address, audience)
        assert err.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert err.details() == "audience must be specified"
    assert server.jwt_calls == 2


def test_jwt_deny_first_answers_no_identity_then_serves(socket_path: str, ca: TestCA) -> None:
    with (
        WorkloadAPIServer(socket_path, ca, SPIFFE_ID, jwt_deny_first=2) as server,
        WorkloadApiClient(socket_path=server.address, default_timeout=TIMEOUT) as client,
    ):
        err = _rpc_error(server.address, [AUDIENCE])
        assert err.code() == grpc.StatusCode.PERMISSION_DENIED
        assert err.details() == "no identity issued"
        with pytest.raises(FetchJwtSvidError, match=r"no identity issued \(StatusCode.PERMISSION_DENIED\)"):
            client.fetch_jwt_svid({AUDIENCE})
        assert str(client.fetch_jwt_svid({AUDIENCE}).spiffe_id) == SPIFFE_ID
        assert str(client.fetch_x509_svid().spiffe_id) == SPIFFE_ID, "the X.509 side is not denied"
        assert (server.jwt_calls, server.calls) == (3, 1)
        server.jwt_deny_first = 10  # settable while serving; the count goes on
        with pytest.raises(FetchJwtSvidError, match="no identity issued"):
            client.fetch_jwt_svid({AUDIENCE})


def test_deny_for_and_down_apply_to_jwt_calls(socket_path: str, ca: TestCA) -> None:
    with WorkloadAPIServer(socket_path, ca, SPIFFE_ID, deny_for=30.0) as server:
        assert _rpc_error(server.address, [AUDIENCE]).code() == grpc.StatusCode.PERMISSION_DENIED
        server.down = True
        assert _rpc_error(server.address, [AUDIENCE]).code() == grpc.StatusCode.UNAVAILABLE


def test_the_security_header_is_checked_before_the_audience(server: WorkloadAPIServer) -> None:
    err = _rpc_error(server.address, [], metadata=None)
    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert err.details() == "security header missing from request"


# -- bundles and rotation --------------------------------------------------------------------------------


def test_jwt_bundles_carry_the_authority_and_follow_rotation(
    server: WorkloadAPIServer, client: WorkloadApiClient, discovery: SpiffeOIDCDiscovery
) -> None:
    authority = server.jwt_authority
    bundle = client.fetch_jwt_bundles().get_bundle_for_trust_domain(TD)
    assert bundle is not None
    assert {kid: _spki(key) for kid, key in bundle.jwt_authorities.items()} == {
        authority.kid: _spki(authority.signing_key.private_key.public_key())
    }
    old = client.fetch_jwt_svid({AUDIENCE}).token

    new_key = authority.rotate()
    new = client.fetch_jwt_svid({AUDIENCE}).token
    assert jwt.get_unverified_header(new)["kid"] == new_key.kid
    bundle = client.fetch_jwt_bundles().get_bundle_for_trust_domain(TD)
    assert bundle is not None
    assert set(bundle.jwt_authorities) == {new_key.kid, jwt.get_unverified_header(old)["kid"]}
    for token in (old, new):  # a rotated-out key still verifies what it signed, by both routes
        JwtSvid.parse_and_validate(token, bundle, {AUDIENCE})
        _verify_as_fulcio(token, _tls(discovery))

    authority.rotate(keep_previous=False)
    with pytest.raises(jwt.PyJWKClientError):
        _verify_as_fulcio(old, _tls(discovery))
    _, keys, _ = _get(discovery.jwks_uri, _tls(discovery))
    assert [key["kid"] for key in keys["keys"]] == [authority.kid]


def test_the_bundle_is_empty_until_a_jwt_authority_exists_and_open_streams_then_get_it(
    server: WorkloadAPIServer, client: WorkloadApiClient
) -> None:
    updates: queue.Queue[Any] = queue.Queue()
    handler = client.stream_jwt_bundles(updates.put, updates.put, retry_connect=False)
    try:
        first = updates.get(timeout=TIMEOUT)
        assert first.get_bundle_for_trust_domain(TD).jwt_authorities == {}
        token = client.fetch_jwt_svid({AUDIENCE}).token
        second = updates.get(timeout=TIMEOUT)
        assert set(second.get_bundle_for_trust_domain(TD).jwt_authorities) == {server.jwt_authority.kid}
        assert jwt.get_unverified_header(token)["kid"] == server.jwt_authority.kid
    finally:
        handler.cancel()


def test_a_jwt_authority_of_another_trust_domain_is_refused(socket_path: str, ca: TestCA) -> None:
    with pytest.raises(ValueError, match="trust domain"):
        WorkloadAPIServer(socket_path, ca, SPIFFE_ID, jwt_authority=JWTAuthority("other.org"))
    server = WorkloadAPIServer(socket_path, ca, SPIFFE_ID)
    with pytest.raises(ValueError, match="trust domain"):
        server.jwt_authority = JWTAuthority("other.org")


# -- ValidateJWTSVID --------------------------------------------------------------------------------------


def test_validate_jwt_svid_accepts_its_own_tokens(client: WorkloadApiClient) -> None:
    token = client.fetch_jwt_svid({AUDIENCE}).token
    assert str(client.validate_jwt_svid(token, AUDIENCE).spiffe_id) == SPIFFE_ID


@pytest.mark.parametrize(
    ("make", "audience", "message"),
    [
        (lambda s: s.issue_jwt_svid([AUDIENCE]), "other", "expected audience"),
        (lambda s: JWTAuthority(s.ca.trust_domain).issue(SPIFFE_ID, [AUDIENCE]), AUDIENCE, "not found"),
        (
            lambda s: JWTAuthority("other.org").issue("spiffe://other.org/w", [AUDIENCE]),
            AUDIENCE,
            'no keys found for trust domain "spiffe://other.org"',
        ),
        (
            lambda s: s.jwt_authority.issue(
                SPIFFE_ID,
                [AUDIENCE],
                issued_at=datetime.datetime.now(datetime.UTC) - datetime.timedelta(hours=1),
            ),
            AUDIENCE,
            "expired",
        ),
        (lambda s: "not.a.jwt", AUDIENCE, "unable to parse"),
    ],
    ids=["wrong-audience", "unknown-key", "foreign-domain", "expired", "malformed"],
)
def test_validate_jwt_svid_refuses(
    server: WorkloadAPIServer, client: WorkloadApiClient, make: Any, audience: str, message: str
) -> None:
    with pytest.raises(ValidateJwtSvidError, match="INVALID_ARGUMENT") as info:
        client.validate_jwt_svid(make(server), audience)
    assert message in str(info.value)


# -- the discovery double itself ---------------------------------------------------------------------------


def test_discovery_serves_get_only_and_known_paths(discovery: SpiffeOIDCDiscovery) -> None:
    status, _, headers = _get(discovery.jwks_uri, _tls(discovery))
    assert status == 200
    assert headers["Cache-Control"] == "no-cache, no-store, must-revalidate"
    assert _get(discovery.jwks_uri, _tls(discovery), method="POST")[0] == 405
    assert _get(discovery.url + "/.well-known/openid-configuration?x=1", _tls(discovery))[0] == 200
    assert _get(discovery.url + "/nope", _tls(discovery))[0] == 404


def test_set_key_use_marks_every_key_for_signatures(server: WorkloadAPIServer) -> None:
    server.jwt_authority.rotate()
    with SpiffeOIDCDiscovery(server, set_key_use=True) as discovery:
        _, keys, _ = _get(discovery.jwks_uri, _tls(discovery))
        assert len(keys["keys"]) == 2
        assert all(key["use"] == "sig" for key in keys["keys"])
        _verify_as_fulcio(server.issue_jwt_svid([AUDIENCE]), _tls(discovery))


def test_the_bundle_jwks_has_no_use_or_alg(server: WorkloadAPIServer) -> None:
    [key] = server.jwt_authority.jwks()["keys"]
    assert set(key) == {"kty", "kid", "crv", "x", "y"}


# -- the JWT authority -------------------------------------------------------------------------------------


def test_authority_key_types_kid_and_crafted_claims() -> None:
    authority = JWTAuthority("example.org", "ec-p384", kid="fixed")
    assert (authority.kid, authority.alg, authority.algorithms) == ("fixed", "ES384", ["ES384"])
    authority.rotate("rsa-2048")
    assert authority.algorithms == ["ES384", "RS256"]
    token = authority.issue(SPIFFE_ID, [AUDIENCE], claims={"iat": None, "nbf": 1})
    claims = jwt.decode(token, options={"verify_signature": False})
    assert "iat" not in claims
    assert claims["nbf"] == 1
    with pytest.raises(ValueError, match="unknown JWT key type"):
        JWTAuthority("example.org", "ed25519")
