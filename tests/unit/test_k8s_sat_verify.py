"""``entrypoint.verify`` on ``oidc-sa-token`` messages built here: tokens minted by a test issuer whose claims
are chosen per test (the layout of a real bound service-account token), messages signed with the project's
two wire formats, checked offline against the issuer's JWKS and online against a KubeAPIServer.

The same backend through the real processes is in tests/integration/test_k8s_sat_signing.py.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from entrypoint._internal.backends.k8s_sat.common import split_material
from entrypoint._internal.backends.k8s_sat.evidence import token_identity
from entrypoint._internal.formats.compact import SignatureValue, b64url
from entrypoint._internal.signing.compact_format import CompactFormat
from entrypoint._internal.signing.tekton_format import TektonFormat
from entrypoint.termination import RunResult
from entrypoint.testing.kube import KubeAPIServer
from entrypoint.verify import ApiServer, KubeJwks, KubeTokenReview, KubeTrustError, Verdict, verify_entries
from tests.support.tokens import ISSUER, NOW, NS, POD, POD_UID, SA, TR, Issuer, audience, point

RESULTS = [RunResult("a", "1", 1), RunResult("b", '["x","y"]', 1), RunResult("StartedAt", "t", 3)]


def k8s(namespace: str = NS, sa: str = SA, pod: str = POD, uid: str = POD_UID) -> dict[str, Any]:
    return {
        "namespace": namespace,
        "serviceaccount": {"name": sa, "uid": "sa-uid"},
        "pod": {"name": pod, "uid": uid},
    }


def new_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def sign(fmt: str, key: Any, token: str, entries: list[RunResult] = RESULTS, *, step: str = "0",
         signed_at: int | None = None) -> list[RunResult]:  # fmt: skip
    identity = token_identity(key, token, dt.datetime.now(dt.UTC), "test")
    if fmt == "tekton":
        return [*entries, *TektonFormat().sign(list(entries), identity)]
    clock = (lambda: float(signed_at)) if signed_at is not None else time.time
    [option] = CompactFormat(step, clock).seal_options(list(entries), identity, frozenset())
    return option


def check(entries: list[RunResult], kube: KubeJwks | KubeTokenReview | None, **kw: Any) -> Verdict:
    return verify_entries(entries, namespace=kw.pop("namespace", NS), name=kw.pop("name", TR), trust=None,
                          kube=kube, **kw)  # fmt: skip


@pytest.fixture(params=["RS256", "ES256"], scope="module")
def issuer(request: pytest.FixtureRequest) -> Issuer:
    return Issuer(str(request.param))


@pytest.fixture(params=["tekton", "compact"])
def fmt(request: pytest.FixtureRequest) -> str:
    return str(request.param)


# -- verified ------------------------------------------------------------------------------------------


def test_signed_message_verifies_offline(issuer: Issuer, fmt: str) -> None:
    key = new_key()
    v = check(sign(fmt, key, issuer.token(key)), issuer.jwks(), pod_uid=POD_UID, service_account=SA)
    assert v.verified, v.message
    assert v.format == fmt
    assert v.identity == f"system:serviceaccount:{NS}:{SA} (pod {POD}, uid {POD_UID})"
    assert {r.key: r.value for r in v.results if r.type == 1} == {"a": "1", "b": '["x","y"]'}
    assert not {"SA_TOKEN", "SA_TOKEN_KEY", "SA_TOKEN.sig", "SIGNATURE"} & {r.key for r in v.results}
    if fmt == "compact":
        assert v.signed_at is not None and v.step == "0"


def test_a_token_with_several_audiences_vouches_for_each(issuer: Issuer, fmt: str) -> None:
    key = new_key()
    token = issuer.token(key, aud=["https://kubernetes.default.svc", audience(key)])
    assert check(sign(fmt, key, token), issuer.jwks()).verified


def test_long_taskrun_names_need_the_pod_name(issuer: Issuer) -> None:
    name = "t" * 60  # Tekton shortens the pod name with a hash: it cannot be derived
    key = new_key()
    message = sign("tekton", key, issuer.token(key, **{"kubernetes.io": k8s(pod="t-6f1e0c-pod")}))
    v = check(message, issuer.jwks(), name=name)
    assert v.reason == "IdentityMismatch" and "pod name" in v.message
    assert check(message, issuer.jwks(), name=name, pod_name="t-6f1e0c-pod").verified


# -- the token itself ---------------------------------------------------------------------------------


def _alg_none(issuer: Issuer, key: Any) -> str:
    return jwt.encode(issuer.claims(key), "", algorithm="none", headers={"kid": issuer.kid})


def _hmac_with_the_public_key(issuer: Issuer, key: Any) -> str:
    # Algorithm confusion: an HMAC keyed with the issuer's public key, which anyone has.
    public = issuer.key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    header = b64url(json.dumps({"alg": "HS256", "kid": issuer.kid, "typ": "JWT"}).encode())
    body = b64url(json.dumps(issuer.claims(key)).encode())
    import hmac

    mac = hmac.new(public, f"{header}.{body}".encode(), hashlib.sha256).digest()
    return f"{header}.{body}.{b64url(mac)}"


def _another_issuers_key(issuer: Issuer, key: Any) -> str:
    impostor = Issuer(issuer.alg)
    impostor.kid = issuer.kid  # claims to be signed by the cluster's key
    return impostor.token(key)


def _unknown_kid(issuer: Issuer, key: Any) -> str:
    return Issuer(issuer.alg).token(key)


def _another_issuer(issuer: Issuer, key: Any) -> str:
    return issuer.token(key, iss="https://other-cluster.example")


def _altered_claims(issuer: Issuer, key: Any) -> str:
    header, body, sig = issuer.token(key).split(".")
    claims = json.loads(base64.urlsafe_b64decode(body + "=="))
    claims["kubernetes.io"]["pod"]["uid"] = "other"
    return f"{header}.{b64url(json.dumps(claims).encode())}.{sig}"


def _another_key(issuer: Issuer, key: Any) -> str:
    return issuer.token(new_key())


def _no_kubernetes_claim(issuer: Issuer, key: Any) -> str:
    return issuer.token(key, **{"kubernetes.io": None})


def _no_exp(issuer: Issuer, key: Any) -> str:
    return issuer.token(key, exp=None)


def _not_pod_bound(issuer: Issuer, key: Any) -> str:
    return issuer.token(
        key, **{"kubernetes.io": {"namespace": NS, "serviceaccount": {"name": SA, "uid": "u"}}}
    )


def _other_namespace(issuer: Issuer, key: Any) -> str:
    return issuer.token(key, **{"kubernetes.io": k8s(namespace="prod")})


def _other_pod(issuer: Issuer, key: Any) -> str:
    return issuer.token(key, **{"kubernetes.io": k8s(pod="build-2-pod")})


def _other_pod_uid(issuer: Issuer, key: Any) -> str:
    return issuer.token(key, **{"kubernetes.io": k8s(uid="0000")})


def _other_service_account(issuer: Issuer, key: Any) -> str:
    return issuer.token(key, **{"kubernetes.io": k8s(sa="deployer")})


def _expired(issuer: Issuer, key: Any) -> str:
    return issuer.token(key, iat=NOW - 1200, nbf=NOW - 1200, exp=NOW - 600)


def _not_yet_valid(issuer: Issuer, key: Any) -> str:
    return issuer.token(key, iat=NOW + 600, nbf=NOW + 600, exp=NOW + 1200)


def _float_exp(issuer: Issuer, key: Any) -> str:
    return issuer.token(key, exp=NOW + 600.5)


TOKEN_CASES = {
    "alg none": (_alg_none, "TokenUntrusted"),
    "HMAC keyed with the public key": (_hmac_with_the_public_key, "TokenUntrusted"),
    "signed by another key under the cluster's kid": (_another_issuers_key, "TokenUntrusted"),
    "kid not in the JWKS": (_unknown_kid, "TokenUntrusted"),
    "another issuer": (_another_issuer, "TokenUntrusted"),
    "claims altered after signing": (_altered_claims, "TokenUntrusted"),
    "audience of another key": (_another_key, "KeyMismatch"),
    "no kubernetes.io claim": (_no_kubernetes_claim, "TokenInvalid"),
    "no exp": (_no_exp, "TokenInvalid"),
    "exp not an integer": (_float_exp, "TokenInvalid"),
    "not bound to a pod": (_not_pod_bound, "IdentityMismatch"),
    "another namespace": (_other_namespace, "IdentityMismatch"),
    "another pod": (_other_pod, "IdentityMismatch"),
    "another pod uid": (_other_pod_uid, "IdentityMismatch"),
    "another service account": (_other_service_account, "IdentityMismatch"),
    "expired": (_expired, "TokenUntrusted"),
    "not yet valid": (_not_yet_valid, "TokenUntrusted"),
}


@pytest.mark.parametrize("case", list(TOKEN_CASES))
def test_token_is_checked(issuer: Issuer, fmt: str, case: str) -> None:
    make, expected = TOKEN_CASES[case]
    if case == "alg none" and fmt == "compact":
        expected = "MessageInvalid"  # a JWT with no signature is not even k8s-sat material
    key = new_key()
    v = check(sign(fmt, key, make(issuer, key)), issuer.jwks(), pod_uid=POD_UID, service_account=SA)
    assert not v.verified
    assert v.reason == expected, v.message
    assert v.results  # shown, not vouched for


def test_token_must_use_the_algorithm_its_key_is_published_for(fmt: str) -> None:
    # The cluster's key is published for RS256; a token under its kid claiming PS256 (same RSA key,
    # another algorithm) is not what the API server issues, and must not be accepted.
    issuer = Issuer("RS256")
    key = new_key()
    token = jwt.encode(issuer.claims(key), issuer.key, algorithm="PS256", headers={"kid": issuer.kid})
    v = check(sign(fmt, key, token), issuer.jwks())
    assert v.reason == "TokenUntrusted", v.message


def test_validity_is_judged_at_the_given_time(issuer: Issuer, fmt: str) -> None:
    key = new_key()
    expired = issuer.token(key, iat=NOW - 1200, nbf=NOW - 1200, exp=NOW - 600)
    message = sign(fmt, key, expired, signed_at=NOW - 900)
    assert check(message, issuer.jwks()).reason == "TokenUntrusted"
    at = dt.datetime.fromtimestamp(NOW - 900, dt.UTC)
    v = check(message, issuer.jwks(), at=at)
    assert v.verified, v.message
    assert v.checked_at == at
    assert check(message, issuer.jwks(), at=dt.datetime.fromtimestamp(NOW - 600, dt.UTC)).reason == (
        "TokenUntrusted"  # exp is the first instant outside
    )


def test_compact_signing_time_must_fall_within_the_token(issuer: Issuer) -> None:
    key = new_key()
    token = issuer.token(key)
    for outside in (NOW - 3600, NOW + 3600):
        v = check(sign("compact", key, token, signed_at=outside), issuer.jwks())
        assert v.reason == "TokenUntrusted", v.message
        assert "outside the token's validity" in v.message


def test_no_kubernetes_trust(issuer: Issuer, fmt: str) -> None:
    key = new_key()
    v = check(sign(fmt, key, issuer.token(key)), None)
    assert v.reason == "TrustUnavailable"
    assert "Kubernetes trust" in v.message or "JWKS" in v.message


# -- the identity material swapped ------------------------------------------------------------------------


def replace_material(
    entries: list[RunResult], *, key: Any = None, token: str | None = None
) -> list[RunResult]:
    out = []
    for e in entries:
        if e.key == "SA_TOKEN_KEY" and key is not None:
            pem = key.public_key().public_bytes(
                serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
            )
            e = RunResult(e.key, pem.decode(), e.type)
        elif e.key == "SA_TOKEN" and token is not None:
            e = RunResult(e.key, token, e.type)
        elif e.key == "SIGNATURE":
            v = SignatureValue.decode(e.value)
            old_point, old_token = split_material(v.material)
            material = f"{b64url(point(key) if key is not None else old_point)}:{token or old_token}".encode()
            e = RunResult(e.key, SignatureValue(v.step, v.signed_at, v.alg, v.signature, v.material_kind,
                                                material).encode(), e.type)  # fmt: skip
        out.append(e)
    return out


def test_swapped_public_key(issuer: Issuer, fmt: str) -> None:
    key = new_key()
    message = sign(fmt, key, issuer.token(key))
    assert check(replace_material(message, key=new_key()), issuer.jwks()).reason == "KeyMismatch"


def test_swapped_public_key_with_a_genuine_token_for_it(issuer: Issuer, fmt: str) -> None:
    key, attacker = new_key(), new_key()
    message = sign(fmt, key, issuer.token(key))
    swapped = replace_material(message, key=attacker, token=issuer.token(attacker))
    assert check(swapped, issuer.jwks()).reason == "SignatureInvalid"


def test_another_genuine_token_for_the_same_key(issuer: Issuer, fmt: str) -> None:
    # Both tokens valid at the signing time and naming the key: the signed token is bound all the same
    # (tekton: SA_TOKEN.sig; compact: the statement's material digest).
    key = new_key()
    message = sign(fmt, key, issuer.token(key), signed_at=NOW)
    other = issuer.token(key, jti="another", iat=NOW - 60, nbf=NOW - 60)
    v = check(replace_material(message, token=other), issuer.jwks())
    assert v.reason == "SignatureInvalid", v.message


def test_token_signature_entry_is_required(issuer: Issuer) -> None:
    key = new_key()
    message = [e for e in sign("tekton", key, issuer.token(key)) if e.key != "SA_TOKEN.sig"]
    assert check(message, issuer.jwks()).reason == "SignatureMissing"


@pytest.mark.parametrize(
    ("point", "reason"),
    [
        # Not a 65-byte uncompressed point: the value's syntax is wrong.
        (b"AAAA", "MessageInvalid"),
        # The right shape, but not a point on P-256: the key itself does not parse.
        (b64url(b"\x04" + b"\x01" * 64).encode(), "TokenInvalid"),
    ],
)
def test_compact_material_that_does_not_parse(issuer: Issuer, point: bytes, reason: str) -> None:
    key = new_key()
    message = sign("compact", key, issuer.token(key))
    v = SignatureValue.decode(next(e.value for e in message if e.key == "SIGNATURE"))
    garbled = SignatureValue(v.step, v.signed_at, v.alg, v.signature, v.material_kind,
                             point + b":" + v.material.partition(b":")[2])  # fmt: skip
    broken = [RunResult(e.key, garbled.encode(), e.type) if e.key == "SIGNATURE" else e for e in message]
    assert check(broken, issuer.jwks()).reason == reason


# -- the JWKS snapshot --------------------------------------------------------------------------------


def test_snapshot_round_trip(tmp_path: Path, issuer: Issuer) -> None:
    path = tmp_path / "jwks.json"
    issuer.jwks().save(str(path))
    doc = json.loads(path.read_text())
    assert doc["kind"] == "signed-entrypoint/jwks-snapshot/v1" and doc["issuer"] == ISSUER
    key = new_key()
    assert check(sign("tekton", key, issuer.token(key)), KubeJwks.from_file(str(path))).verified


@pytest.mark.parametrize(
    ("content", "error"),
    [
        ("not json", "not JSON"),
        ('{"jwks": {"keys": []}}', "issuer and jwks"),
        (f'{{"issuer": "{ISSUER}", "jwks": {{"keys": []}}}}', "no keys"),
        ('{"issuer": "http://plain", "jwks": {"keys": [{"kty": "EC"}]}}', "not an https URL"),
        (f'{{"issuer": "{ISSUER}", "jwks": {{"keys": [{{"kty": "EC", "crv": "P-256"}}]}}}}', "key 0"),
    ],
)
def test_bad_snapshots_are_refused(tmp_path: Path, content: str, error: str) -> None:
    path = tmp_path / "jwks.json"
    path.write_text(content)
    with pytest.raises(KubeTrustError, match=error):
        KubeJwks.from_file(str(path))


def test_missing_snapshot() -> None:
    with pytest.raises(KubeTrustError, match="cannot read"):
        KubeJwks.from_file("/nonexistent/jwks.json")


# -- online: TokenReview against a KubeAPIServer ------------------------------------------------------------


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[KubeAPIServer, KubeTokenReview]]:
    base = tmp_path_factory.mktemp("kube")
    with KubeAPIServer(alg="ES256") as srv:
        srv.add_pod(NS, POD, POD_UID, SA)
        # The verifier's system:auth-delegator binding: without one, kube-apiserver v1.37.2 refuses
        # TokenReview with 403 (tests/e2e/test_double_vs_real.py).
        srv.allow_token_review("audit", "verifier")
        (base / "ca.crt").write_bytes(srv.ca_pem)
        (base / "token").write_text(srv.issue_token("audit", "verifier"))
        api = ApiServer(srv.url, token_file=str(base / "token"), ca_file=str(base / "ca.crt"))
        yield srv, KubeTokenReview(api)


def test_online_verified_and_bound(server: tuple[KubeAPIServer, KubeTokenReview], fmt: str) -> None:
    srv, review = server
    key = new_key()
    message = sign(fmt, key, srv.issue_token(NS, SA, POD, audiences=[audience(key)]))
    v = check(message, review, pod_uid=POD_UID, service_account=SA)
    assert v.verified, v.message
    assert v.identity == f"system:serviceaccount:{NS}:{SA} (pod {POD}, uid {POD_UID})"
    assert check(message, review, pod_uid="0000").reason == "IdentityMismatch"
    assert check(message, review, service_account="deployer").reason == "IdentityMismatch"
    assert check(message, review, namespace="prod").reason == "IdentityMismatch"


def test_online_token_for_another_key(server: tuple[KubeAPIServer, KubeTokenReview], fmt: str) -> None:
    srv, review = server
    key = new_key()
    message = sign(fmt, key, srv.issue_token(NS, SA, POD, audiences=[audience(new_key())]))
    v = check(message, review)
    assert v.reason == "KeyMismatch", v.message


def test_online_unbound_and_expired_tokens(server: tuple[KubeAPIServer, KubeTokenReview]) -> None:
    srv, review = server
    key = new_key()
    unbound = sign("tekton", key, srv.issue_token(NS, SA, audiences=[audience(key)]))
    assert check(unbound, review).reason == "IdentityMismatch"
    key = new_key()
    expired = sign("tekton", key, srv.issue_token(NS, SA, POD, audiences=[audience(key)], expires_in=-120))
    assert check(expired, review).reason == "TokenUntrusted"  # beyond the API server's 60 s leeway


def test_online_api_server_unreachable(tmp_path: Path) -> None:
    issuer = Issuer()
    key = new_key()
    review = KubeTokenReview(ApiServer("https://127.0.0.1:9", ca_file=None, timeout=2))
    v = check(sign("compact", key, issuer.token(key)), review)
    assert v.reason == "TrustUnavailable"
    assert "127.0.0.1:9" in v.message


def test_api_server_needs_https() -> None:
    with pytest.raises(KubeTrustError, match="https"):
        ApiServer("http://127.0.0.1:8080")
