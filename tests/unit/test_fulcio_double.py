"""The Fulcio double over real HTTPS: tokens from the Kubernetes API double (TokenRequest, audience
``sigstore``) and from a SPIFFE OIDC issuer, certificates in Fulcio's profile whose chain a WebPKI
verifier accepts and whose embedded SCT an independent reading of RFC 6962 verifies, and Fulcio's own
error answers for what it refuses."""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import json
import signal
import ssl
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, SignatureAlgorithmOID
from cryptography.x509.verification import (
    Criticality,
    ExtensionPolicy,
    PolicyBuilder,
    Store,
    VerificationError,
)

from entrypoint.testing._https import HTTPError, HTTPSDouble, Reply, serving_credentials
from entrypoint.testing.ctlog import CTLogDouble, strip_poison
from entrypoint.testing.fulcio import (
    CONFIGURATION_PATH,
    SIGNING_CERT_PATH,
    TRUST_BUNDLE_PATH,
    FulcioDouble,
    OIDCIssuer,
)
from entrypoint.testing.kube import KubeAPIServer, token_request_path
from tests.support import doubles

NS, SA, POD, POD_UID = "builds", "builder", "build-1-pod", "5b0f3c1e-8d2a-4e6b-9f7c-1a2b3c4d5e6f"
FULCIO_NS, FULCIO_SA = "fulcio-system", "fulcio"
SUB = f"system:serviceaccount:{NS}:{SA}"
SAN = f"https://kubernetes.io/namespaces/{NS}/serviceaccounts/{SA}"
TD = "example.org"
SPIFFE_ID = f"spiffe://{TD}/ns/{NS}/taskrun/build-1"
TIMEOUT = 10.0
INVALID_TOKEN = "There was an error processing the identity token"
INVALID_SIGNATURE = "The signature supplied in the request could not be verified"
SCT_LIST_OID = "1.3.6.1.4.1.11129.2.4.2"


# -- the issuers -----------------------------------------------------------------------------------------


class _SpiffeIdP(HTTPSDouble):
    """A SPIRE OIDC Discovery Provider stand-in: discovery, its JWKS, and JWT-SVIDs with any claims."""

    def __init__(self, advertised: tuple[str, ...] = ("RS256", "ES256")) -> None:
        super().__init__(serving_credentials("idp", "idp"), name="idp")
        self.advertised = advertised
        self.keys: dict[str, rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey] = {
            "RS256": rsa.generate_private_key(65537, 2048),
            "ES256": ec.generate_private_key(ec.SECP256R1()),
        }

    def handle(self, method: str, path: str, headers: Any, body: bytes) -> Reply:
        if path == "/.well-known/openid-configuration":
            doc = {
                "issuer": self.url,
                "jwks_uri": self.url + "/keys",
                "id_token_signing_alg_values_supported": list(self.advertised),
            }
            return 200, doc, "application/json", {}
        if path == "/keys":
            keys = []
            for alg, key in self.keys.items():
                algorithm = jwt.get_algorithm_by_name(alg)
                jwk = json.loads(algorithm.to_jwk(key.public_key()))
                keys.append({**jwk, "kid": alg.lower(), "use": "sig", "alg": alg})
            return 200, {"keys": keys}, "application/json", {}
        raise HTTPError(404, "not found")

    def mint(self, alg: str = "ES256", **claims: Any) -> str:
        now = int(time.time())
        body = {"iss": self.url, "sub": SPIFFE_ID, "aud": ["sigstore"], "iat": now, "exp": now + 300} | claims
        return jwt.encode(body, self.keys[alg], algorithm=alg, headers={"kid": alg.lower()})


@pytest.fixture(scope="module")
def kube() -> Iterator[KubeAPIServer]:
    with KubeAPIServer() as srv:
        srv.add_pod(NS, POD, POD_UID, SA)
        srv.add_service_account(FULCIO_NS, FULCIO_SA)
        yield srv


def _kubernetes_issuer(kube: KubeAPIServer, **options: Any) -> OIDCIssuer:
    """Fulcio's configuration of an in-cluster issuer: the cluster CA and Fulcio's own token for discovery."""
    defaults: dict[str, Any] = {"ca_pem": kube.ca_pem}
    if "bearer_token" not in options:
        defaults["bearer_token"] = kube.issue_token(FULCIO_NS, FULCIO_SA)
    return OIDCIssuer(kube.issuer, "kubernetes", **(defaults | options))


@pytest.fixture(scope="module")
def idp() -> Iterator[_SpiffeIdP]:
    with _SpiffeIdP() as srv:
        yield srv


@pytest.fixture(scope="module")
def server(kube: KubeAPIServer, idp: _SpiffeIdP) -> Iterator[FulcioDouble]:
    spiffe = OIDCIssuer(idp.url, "spiffe", ca_pem=idp.ca_pem, trust_domain=TD)
    with FulcioDouble([_kubernetes_issuer(kube), spiffe]) as srv:
        yield srv


@pytest.fixture
def fulcio(server: FulcioDouble) -> Iterator[FulcioDouble]:
    """The module's Fulcio, its knobs reset after each test."""
    yield server
    server.sct_mode = "embedded"
    server.fail_status = None


def _https(url: str, ca_pem: bytes) -> httpx.Client:
    return httpx.Client(
        base_url=url, verify=ssl.create_default_context(cadata=ca_pem.decode()), timeout=TIMEOUT
    )


def _token(kube: KubeAPIServer, audiences: tuple[str, ...] = ("sigstore",), seconds: int = 600) -> str:
    """A token as the pod asks TokenRequest for one, over HTTPS with its mounted token."""
    body = {
        "apiVersion": "authentication.k8s.io/v1",
        "kind": "TokenRequest",
        "spec": {
            "audiences": list(audiences),
            "expirationSeconds": seconds,
            "boundObjectRef": {"apiVersion": "v1", "kind": "Pod", "name": POD, "uid": POD_UID},
        },
    }
    caller = kube.caller_token(NS, SA, POD)
    with _https(kube.url, kube.ca_pem) as client:
        response = client.post(
            token_request_path(NS, SA), json=body, headers={"Authorization": f"Bearer {caller}"}
        )
    assert response.status_code == 201, response.text
    return str(response.json()["status"]["token"])


@pytest.fixture(scope="module")
def token(kube: KubeAPIServer) -> str:
    return _token(kube)


# -- requests ----------------------------------------------------------------------------------------------


def _csr(key: Any, digest: hashes.SHA256 | hashes.SHA384 | None = None) -> bytes:
    builder = x509.CertificateSigningRequestBuilder().subject_name(x509.Name([]))
    return builder.sign(key, digest or hashes.SHA256()).public_bytes(serialization.Encoding.PEM)


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _csr_body(key: Any | None = None) -> dict[str, Any]:
    return {"certificateSigningRequest": _b64(_csr(key or ec.generate_private_key(ec.SECP256R1())))}


def _post(fulcio: FulcioDouble, body: Any, token: str | None = None) -> httpx.Response:
    headers = {"Authorization": f"Bearer {token}"} if token is not None else {}
    with _https(fulcio.url, fulcio.ca_pem) as client:
        if isinstance(body, bytes):
            return client.post(SIGNING_CERT_PATH, content=body, headers=headers)
        return client.post(SIGNING_CERT_PATH, json=body, headers=headers)


def _chain(response: httpx.Response, kind: str = "signedCertificateEmbeddedSct") -> list[x509.Certificate]:
    assert response.status_code == 200, response.text
    body = response.json()
    assert list(body) == [kind]
    return [x509.load_pem_x509_certificate(p.encode()) for p in body[kind]["chain"]["certificates"]]


def _refused(response: httpx.Response, message: str, status: int = 400, code: int = 3) -> None:
    """Fulcio's grpc-gateway error: the HTTP status of the gRPC code, and the status as JSON."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/json"
    assert response.json() == {"code": code, "message": message, "details": []}


def _der(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.DER)


def _spki(cert: x509.Certificate) -> bytes:
    return cert.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )


# -- independent checks --------------------------------------------------------------------------------


def _sct_verifies(leaf: x509.Certificate, issuer: x509.Certificate, ct_key_der: bytes) -> bool:
    """RFC 6962 §3.2 rebuilt from the leaf alone: the digitally-signed struct over the TBS without the SCT
    list, with the issuer's key hash, verified with the CT log's key, as sigstore-python's verify_sct does."""
    [sct] = list(
        leaf.extensions.get_extension_for_class(x509.PrecertificateSignedCertificateTimestamps).value
    )
    assert sct.log_id == hashlib.sha256(ct_key_der).digest()
    assert isinstance(sct.signature_hash_algorithm, hashes.SHA256)
    assert sct.extension_bytes == b""
    millis = (sct.timestamp.replace(tzinfo=dt.UTC) - dt.datetime(1970, 1, 1, tzinfo=dt.UTC)) // dt.timedelta(
        milliseconds=1
    )
    tbs = leaf.tbs_precertificate_bytes
    signed = (
        bytes([0, 0])
        + millis.to_bytes(8, "big")
        + (1).to_bytes(2, "big")  # precert_entry
        + hashlib.sha256(_spki(issuer)).digest()
        + len(tbs).to_bytes(3, "big")
        + tbs
        + (0).to_bytes(2, "big")
    )
    key = serialization.load_der_public_key(ct_key_der)
    assert isinstance(key, ec.EllipticCurvePublicKey)
    try:
        key.verify(sct.signature, signed, ec.ECDSA(hashes.SHA256()))
    except InvalidSignature:
        return False
    return True


def _code_signing(policy: Any, cert: x509.Certificate, eku: x509.ExtendedKeyUsage | None) -> None:
    if eku is None or ExtendedKeyUsageOID.CODE_SIGNING not in eku:
        raise ValueError("the leaf is not for code signing")


def _verify_chain(chain: list[x509.Certificate]) -> list[x509.Certificate]:
    """Chain building as sigstore-python does it (a client verifier with the EKU checks relaxed), with the
    code-signing EKU required of the leaf."""
    leaf, intermediate, root = chain
    ca_policy = ExtensionPolicy.webpki_defaults_ca().may_be_present(
        x509.ExtendedKeyUsage, Criticality.NON_CRITICAL, None
    )
    ee_policy = ExtensionPolicy.webpki_defaults_ee().require_present(
        x509.ExtendedKeyUsage, Criticality.NON_CRITICAL, _code_signing
    )
    verifier = (
        PolicyBuilder()
        .store(Store([root]))
        .time(leaf.not_valid_before_utc + dt.timedelta(seconds=1))
        .extension_policies(ca_policy=ca_policy, ee_policy=ee_policy)
        .build_client_verifier()
    )
    return list(verifier.verify(leaf, [intermediate]).chain)


def _utf8_string(value: bytes) -> str:
    """A DER UTF8String, short form (the values here are short)."""
    assert value[0] == 0x0C and value[1] == len(value) - 2, value
    return value[2:].decode("utf-8")


def _extension(cert: x509.Certificate, oid: str) -> bytes:
    ext = cert.extensions.get_extension_for_oid(x509.ObjectIdentifier(oid)).value
    assert isinstance(ext, x509.UnrecognizedExtension)
    return ext.value


# -- signingCert: the happy paths ----------------------------------------------------------------------------


def test_csr_gets_a_certificate_in_fulcio_profile(
    fulcio: FulcioDouble, kube: KubeAPIServer, token: str
) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    before = dt.datetime.now(dt.UTC).replace(microsecond=0)
    chain = _chain(_post(fulcio, {"certificateSigningRequest": _b64(_csr(key))}, token))
    leaf, intermediate, root = chain
    assert (
        [_der(intermediate), _der(root)] == fulcio.chain_der() == [fulcio.intermediate_der, fulcio.root_der]
    )
    assert fulcio.issued[-1] == leaf
    assert leaf.public_key() == key.public_key()
    assert leaf.subject == x509.Name([])
    assert leaf.issuer == intermediate.subject
    assert before <= leaf.not_valid_before_utc <= dt.datetime.now(dt.UTC)
    assert leaf.not_valid_after_utc - leaf.not_valid_before_utc == dt.timedelta(minutes=10)
    assert leaf.signature_algorithm_oid == SignatureAlgorithmOID.ECDSA_WITH_SHA384
    # Fulcio's extensions in Go's order, the SCT list last.
    assert [(e.oid.dotted_string, e.critical) for e in leaf.extensions] == [
        ("2.5.29.15", True),
        ("2.5.29.37", False),
        ("2.5.29.14", False),
        ("2.5.29.35", False),
        ("2.5.29.17", True),
        ("1.3.6.1.4.1.57264.1.1", False),
        ("1.3.6.1.4.1.57264.1.8", False),
        ("1.3.6.1.4.1.57264.1.24", False),
        (SCT_LIST_OID, False),
    ]
    usage = leaf.extensions.get_extension_for_class(x509.KeyUsage).value
    assert usage.digital_signature and not usage.key_cert_sign and not usage.content_commitment
    assert list(leaf.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value) == [
        ExtendedKeyUsageOID.CODE_SIGNING
    ]
    ski = leaf.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    assert ski == x509.SubjectKeyIdentifier.from_public_key(key.public_key())
    aki = leaf.extensions.get_extension_for_class(x509.AuthorityKeyIdentifier).value
    assert (
        aki.key_identifier
        == intermediate.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value.digest
    )
    san = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.UniformResourceIdentifier) == [SAN]
    assert len(list(san)) == 1
    assert _extension(leaf, "1.3.6.1.4.1.57264.1.1") == kube.issuer.encode()
    assert _utf8_string(_extension(leaf, "1.3.6.1.4.1.57264.1.8")) == kube.issuer
    assert _utf8_string(_extension(leaf, "1.3.6.1.4.1.57264.1.24")) == SUB
    assert _sct_verifies(leaf, intermediate, fulcio.ctlog.public_key_der)
    assert fulcio.ctlog.log_id == hashlib.sha256(fulcio.ctlog.public_key_der).digest()
    assert _verify_chain(chain) == chain


def test_the_ca_certificates_follow_fulcios_templates(fulcio: FulcioDouble) -> None:
    root = x509.load_der_x509_certificate(fulcio.root_der)
    intermediate = x509.load_der_x509_certificate(fulcio.intermediate_der)
    for cert in (root, intermediate):
        public = cert.public_key()
        assert isinstance(public, ec.EllipticCurvePublicKey) and isinstance(public.curve, ec.SECP384R1)
        assert cert.signature_algorithm_oid == SignatureAlgorithmOID.ECDSA_WITH_SHA384
        constraints = cert.extensions.get_extension_for_class(x509.BasicConstraints)
        assert constraints.critical and constraints.value.ca
        usage = cert.extensions.get_extension_for_class(x509.KeyUsage)
        assert usage.critical and usage.value.key_cert_sign and usage.value.crl_sign
        assert not usage.value.digital_signature
    root.verify_directly_issued_by(root)
    intermediate.verify_directly_issued_by(root)
    assert intermediate.extensions.get_extension_for_class(x509.BasicConstraints).value.path_length == 0
    assert list(intermediate.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value) == [
        ExtendedKeyUsageOID.CODE_SIGNING
    ]


def test_a_leaf_for_another_purpose_fails_the_chain_check(fulcio: FulcioDouble, token: str) -> None:
    """The chain check of these tests can fail: a leaf without code signing is refused."""
    leaf, intermediate, root = _chain(_post(fulcio, _csr_body(), token))
    builder = x509.CertificateBuilder().subject_name(leaf.subject).issuer_name(leaf.issuer)
    builder = builder.public_key(ec.generate_private_key(ec.SECP256R1()).public_key()).serial_number(1)
    builder = builder.not_valid_before(leaf.not_valid_before_utc).not_valid_after(leaf.not_valid_after_utc)
    for ext in leaf.extensions:
        if ext.oid.dotted_string != "2.5.29.37":
            builder = builder.add_extension(ext.value, critical=ext.critical)
    other = builder.add_extension(
        x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False
    ).sign(ec.generate_private_key(ec.SECP384R1()), hashes.SHA384())
    with pytest.raises(VerificationError):
        _verify_chain([other, intermediate, root])


def test_token_in_credentials_and_it_wins_over_the_header(fulcio: FulcioDouble, token: str) -> None:
    body = _csr_body() | {"credentials": {"oidcIdentityToken": token}}
    assert len(_chain(_post(fulcio, body))) == 3
    assert len(_chain(_post(fulcio, body, token="garbage"))) == 3
    # protojson also takes the proto field names.
    snake = {"certificate_signing_request": _csr_body()["certificateSigningRequest"]}
    assert len(_chain(_post(fulcio, snake | {"credentials": {"oidc_identity_token": token}}))) == 3


@pytest.mark.parametrize("curve", [ec.SECP256R1(), ec.SECP384R1()], ids=["p256", "p384"])
def test_public_key_request_with_proof_of_possession(
    fulcio: FulcioDouble, token: str, curve: ec.EllipticCurve
) -> None:
    key = ec.generate_private_key(curve)
    digest = hashes.SHA256() if isinstance(curve, ec.SECP256R1) else hashes.SHA384()
    pem = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    body = {
        "publicKeyRequest": {
            "publicKey": {"algorithm": "ECDSA", "content": pem.decode()},
            "proofOfPossession": _b64(key.sign(SUB.encode(), ec.ECDSA(digest))),
        }
    }
    leaf, intermediate, _ = _chain(_post(fulcio, body, token))
    assert leaf.public_key() == key.public_key()
    assert _sct_verifies(leaf, intermediate, fulcio.ctlog.public_key_der)


def test_rsa_keys_sign_their_proof_with_pkcs1v15(fulcio: FulcioDouble, token: str) -> None:
    from cryptography.hazmat.primitives.asymmetric import padding

    key = rsa.generate_private_key(65537, 2048)
    pem = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    proof = key.sign(SUB.encode(), padding.PKCS1v15(), hashes.SHA256())
    body = {"publicKeyRequest": {"publicKey": {"content": pem.decode()}, "proofOfPossession": _b64(proof)}}
    assert _chain(_post(fulcio, body, token))[0].public_key() == key.public_key()


# -- signingCert: what Fulcio refuses ----------------------------------------------------------------------


def test_bad_proof_of_possession(fulcio: FulcioDouble, token: str) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    pem = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    for proof in (
        key.sign(b"system:serviceaccount:other:sa", ec.ECDSA(hashes.SHA256())),  # another principal
        ec.generate_private_key(ec.SECP256R1()).sign(SUB.encode(), ec.ECDSA(hashes.SHA256())),  # another key
        b"",
    ):
        body = {
            "publicKeyRequest": {"publicKey": {"content": pem.decode()}, "proofOfPossession": _b64(proof)}
        }
        _refused(_post(fulcio, body, token), INVALID_SIGNATURE)
        assert "proof of possession" in fulcio.rejections[-1]


@pytest.mark.parametrize(
    ("case", "message"),
    [
        ("not PEM", "The certificate signing request could not be parsed"),
        ("a certificate", "The certificate signing request could not be parsed"),
        ("bad signature", INVALID_SIGNATURE),
        ("RSA 1024", "The public key supplied in the request is insecure"),
        ("P-256 with SHA-384", "signing algorithm not permitted: *ecdsa.PublicKey, SHA-384"),
        ("not base64", 'proto: invalid value for bytes field certificateSigningRequest: "%%%"'),
    ],
)
def test_bad_csr(fulcio: FulcioDouble, token: str, case: str, message: str) -> None:
    p256 = ec.generate_private_key(ec.SECP256R1())
    if case == "not PEM":
        field = _b64(b"-----BEGIN CERTIFICATE REQUEST-----\nAAAA\n-----END CERTIFICATE REQUEST-----\n")
    elif case == "a certificate":
        field = _b64(x509.load_der_x509_certificate(fulcio.root_der).public_bytes(serialization.Encoding.PEM))
    elif case == "bad signature":
        der = bytearray(x509.load_pem_x509_csr(_csr(p256)).public_bytes(serialization.Encoding.DER))
        der[-3] ^= 0x01  # inside the signature's integers: the CSR still parses
        pem = b"-----BEGIN CERTIFICATE REQUEST-----\n" + base64.encodebytes(bytes(der))
        field = _b64(pem + b"-----END CERTIFICATE REQUEST-----\n")
    elif case == "RSA 1024":
        field = _b64(_csr(rsa.generate_private_key(65537, 1024)))
    elif case == "P-256 with SHA-384":
        field = _b64(_csr(p256, hashes.SHA384()))
    else:
        field = "%%%"
    _refused(_post(fulcio, {"certificateSigningRequest": field}, token), message)


def test_bad_keys_and_bodies(fulcio: FulcioDouble, token: str) -> None:
    no_key = "The public key supplied in the request could not be parsed"
    _refused(_post(fulcio, {}, token), no_key)
    _refused(_post(fulcio, b"", token), no_key)
    _refused(_post(fulcio, {"publicKeyRequest": {"publicKey": {"content": "nonsense"}}}, token), no_key)
    both = _csr_body() | {"publicKeyRequest": {"publicKey": {"content": "x"}}}
    response = _post(fulcio, both, token)
    assert response.status_code == 400 and "oneof" in response.json()["message"]
    assert "oneof" in fulcio.rejections[-1]
    assert _post(fulcio, b"{not json", token).json()["code"] == 3
    assert _post(fulcio, [1, 2], token).status_code == 400


def _expired(kube: KubeAPIServer) -> str:
    return kube.issue_token(NS, SA, POD, audiences=["sigstore"], expires_in=-5)


def _tampered(kube: KubeAPIServer) -> str:
    header, payload, signature = _token(kube).split(".")
    flipped = "A" if signature[5] != "A" else "B"
    return f"{header}.{payload}.{signature[:5]}{flipped}{signature[6:]}"


def _foreign(kube: KubeAPIServer) -> str:
    with KubeAPIServer() as other:
        other.add_pod(NS, POD, POD_UID, SA)
        return other.issue_token(NS, SA, POD, audiences=["sigstore"])


@pytest.mark.parametrize(
    ("make", "reason"),
    [
        (lambda k: _token(k, audiences=("other",)), "expected audience 'sigstore'"),
        (_expired, "token is expired"),
        (_foreign, "failed to match issuer URL"),
        (_tampered, "failed to verify signature"),
        (lambda k: "not-a-jwt", "token must have 3 parts"),
        (lambda k: None, "token must have 3 parts"),
        (lambda k: "a.%%%.c", "malformed jwt payload"),
    ],
    ids=["wrong audience", "expired", "unknown issuer", "bad signature", "not a JWT", "none", "bad payload"],
)
def test_refused_tokens(fulcio: FulcioDouble, kube: KubeAPIServer, make: Any, reason: str) -> None:
    # Real Fulcio answers InvalidArgument, i.e. 400, for every token it refuses (grpc_server.go).
    issued = len(fulcio.issued)
    _refused(_post(fulcio, _csr_body(), make(kube)), INVALID_TOKEN)
    assert reason in fulcio.rejections[-1]
    assert len(fulcio.issued) == issued


def test_the_token_is_checked_before_the_key(fulcio: FulcioDouble) -> None:
    _refused(_post(fulcio, {"certificateSigningRequest": _b64(b"junk")}, "junk"), INVALID_TOKEN)


def test_discovery_needs_the_bearer_token_and_the_ca(kube: KubeAPIServer, token: str) -> None:
    """An in-cluster issuer's discovery is for service accounts only (kube-apiserver's default RBAC):
    without its token, or without the cluster CA, Fulcio cannot make a verifier for the issuer."""
    for issuer, why in (
        (_kubernetes_issuer(kube, bearer_token=None), "403"),
        (_kubernetes_issuer(kube, ca_pem=None), "CERTIFICATE_VERIFY_FAILED"),
    ):
        with FulcioDouble([issuer]) as fulcio:
            _refused(_post(fulcio, _csr_body(), token), INVALID_TOKEN)
            assert fulcio.rejections[-1].startswith(f"unsupported issuer: {kube.issuer}")
            assert why in fulcio.rejections[-1]


def test_discovery_url_reaches_an_issuer_named_for_inside_the_cluster() -> None:
    issuer = "https://kubernetes.default.svc"
    with KubeAPIServer(issuer=issuer, anonymous_discovery=True) as kube:
        kube.add_pod(NS, POD, POD_UID, SA)
        token = kube.issue_token(NS, SA, POD, audiences=["sigstore"])
        config = OIDCIssuer(issuer, "kubernetes", ca_pem=kube.ca_pem, discovery_url=kube.url)
        with FulcioDouble([config]) as fulcio:
            leaf = _chain(_post(fulcio, _csr_body(), token))[0]
    assert _extension(leaf, "1.3.6.1.4.1.57264.1.1") == issuer.encode()


def test_keys_are_cached_and_fetched_again_for_an_unknown_kid() -> None:
    # Anonymous discovery: Fulcio's own token would stop working with the rotation too.
    with KubeAPIServer(alg="ES256", anonymous_discovery=True) as kube:
        kube.add_pod(NS, POD, POD_UID, SA)
        with FulcioDouble([_kubernetes_issuer(kube, bearer_token=None)]) as fulcio:

            def fetches() -> int:
                return sum(1 for _, path in kube.requests if path == "/openid/v1/jwks")

            old = _token(kube)
            _chain(_post(fulcio, _csr_body(), old))
            _chain(_post(fulcio, _csr_body(), _token(kube)))
            assert fetches() == 1
            kube.rotate_signing_key()
            _chain(_post(fulcio, _csr_body(), _token(kube)))
            assert fetches() == 2
            # The old key left the JWKS with the rotation: its tokens fail, after one more fetch.
            _refused(_post(fulcio, _csr_body(), old), INVALID_TOKEN)
            assert "failed to verify signature" in fulcio.rejections[-1]
            assert fetches() == 3


def test_es256_tokens() -> None:
    with KubeAPIServer(alg="ES256") as kube:
        kube.add_pod(NS, POD, POD_UID, SA)
        kube.add_service_account(FULCIO_NS, FULCIO_SA)
        with FulcioDouble([_kubernetes_issuer(kube)]) as fulcio:
            assert len(_chain(_post(fulcio, _csr_body(), _token(kube)))) == 3
            # A token of another issuer's key with the right iss: refused after the refetch too.
            forged_claims = jwt.decode(_token(kube), options={"verify_signature": False})
            forged = jwt.encode(
                forged_claims,
                ec.generate_private_key(ec.SECP256R1()),
                "ES256",
                headers={"kid": kube.signing_kid},
            )
            _refused(_post(fulcio, _csr_body(), forged), INVALID_TOKEN)
            assert "failed to verify signature" in fulcio.rejections[-1]


# -- SPIFFE -------------------------------------------------------------------------------------------------


def test_spiffe_token_gets_its_spiffe_id(fulcio: FulcioDouble, idp: _SpiffeIdP) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    pem = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    body = {
        "publicKeyRequest": {
            "publicKey": {"content": pem.decode()},
            "proofOfPossession": _b64(key.sign(SPIFFE_ID.encode(), ec.ECDSA(hashes.SHA256()))),
        }
    }
    chain = _chain(_post(fulcio, body, idp.mint()))
    leaf = chain[0]
    san = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.UniformResourceIdentifier) == [SPIFFE_ID]
    assert _utf8_string(_extension(leaf, "1.3.6.1.4.1.57264.1.24")) == SPIFFE_ID
    assert _utf8_string(_extension(leaf, "1.3.6.1.4.1.57264.1.8")) == idp.url
    assert _verify_chain(chain) == chain
    assert len(_chain(_post(fulcio, _csr_body(), idp.mint("RS256")))) == 3


@pytest.mark.parametrize(
    ("claims", "reason"),
    [
        ({"sub": "spiffe://other.org/ns/builds/taskrun/x"}, "doesn't match configured trust domain"),
        ({"sub": SUB}, "invalid spiffe ID"),
        ({"sub": f"spiffe://{TD}/ns/../x"}, "invalid spiffe ID"),
        ({"sub": f"spiffe://{TD}/ns/"}, "invalid spiffe ID"),
        ({"nbf": int(time.time()) + 3600}, "before the nbf"),
        ({"aud": "sigstore-other"}, "expected audience"),
        ({"exp": None}, "failed to unmarshal claims"),
    ],
    ids=[
        "foreign trust domain",
        "not a SPIFFE ID",
        "dot segment",
        "trailing slash",
        "nbf",
        "aud",
        "exp null",
    ],
)
def test_refused_spiffe_tokens(
    fulcio: FulcioDouble, idp: _SpiffeIdP, claims: dict[str, Any], reason: str
) -> None:
    _refused(_post(fulcio, _csr_body(), idp.mint(**claims)), INVALID_TOKEN)
    assert reason in fulcio.rejections[-1]


def test_nbf_has_go_oidcs_leeway(fulcio: FulcioDouble, idp: _SpiffeIdP) -> None:
    assert len(_chain(_post(fulcio, _csr_body(), idp.mint(nbf=int(time.time()) + 120)))) == 3


def test_only_advertised_algorithms_are_accepted() -> None:
    with _SpiffeIdP(advertised=("RS256",)) as idp:
        issuer = OIDCIssuer(idp.url, "spiffe", ca_pem=idp.ca_pem, trust_domain=TD)
        with FulcioDouble([issuer]) as fulcio:
            assert len(_chain(_post(fulcio, _csr_body(), idp.mint("RS256")))) == 3
            _refused(_post(fulcio, _csr_body(), idp.mint("ES256")), INVALID_TOKEN)
            assert "unexpected signature algorithm" in fulcio.rejections[-1]


# -- SCT modes and fault knobs -------------------------------------------------------------------------------


def test_sct_mode_none_answers_a_detached_chain(fulcio: FulcioDouble, token: str) -> None:
    fulcio.sct_mode = "none"
    response = _post(fulcio, _csr_body(), token)
    chain = _chain(response, "signedCertificateDetachedSct")
    assert response.json()["signedCertificateDetachedSct"]["signedCertificateTimestamp"] == ""
    leaf = chain[0]
    assert SCT_LIST_OID not in [e.oid.dotted_string for e in leaf.extensions]
    assert leaf.extensions[-1].oid.dotted_string == "1.3.6.1.4.1.57264.1.24"
    assert _verify_chain(chain) == chain


@pytest.mark.parametrize("mode", ["wrong-key", "wrong-tbs"])
def test_bad_sct_modes(fulcio: FulcioDouble, token: str, mode: str) -> None:
    fulcio.sct_mode = mode
    chain = _chain(_post(fulcio, _csr_body(), token))
    leaf, intermediate, _ = chain
    assert leaf.extensions[-1].oid.dotted_string == SCT_LIST_OID
    assert not _sct_verifies(leaf, intermediate, fulcio.ctlog.public_key_der)
    assert _verify_chain(chain) == chain  # only the SCT is wrong
    fulcio.sct_mode = "embedded"
    leaf, intermediate, _ = _chain(_post(fulcio, _csr_body(), token))
    assert _sct_verifies(leaf, intermediate, fulcio.ctlog.public_key_der)


def test_sct_mode_is_checked(fulcio: FulcioDouble) -> None:
    with pytest.raises(ValueError, match="sct_mode"):
        fulcio.sct_mode = "detached"


def test_fault_knobs(fulcio: FulcioDouble, token: str) -> None:
    fulcio.fail_next(1, 503)
    response = _post(fulcio, _csr_body(), token)
    assert response.status_code == 503 and response.json()["code"] == 14
    assert len(_chain(_post(fulcio, _csr_body(), token))) == 3
    fulcio.fail_status = 500
    _refused(_post(fulcio, _csr_body(), token), "error communicating with CA backend", 500, 13)
    with _https(fulcio.url, fulcio.ca_pem) as client:
        assert client.get(TRUST_BUNDLE_PATH).status_code == 500


# -- the other endpoints ---------------------------------------------------------------------------------


def test_trust_bundle_and_configuration(fulcio: FulcioDouble, kube: KubeAPIServer, idp: _SpiffeIdP) -> None:
    with _https(fulcio.url, fulcio.ca_pem) as client:
        bundle = client.get(TRUST_BUNDLE_PATH).json()
        configuration = client.get(CONFIGURATION_PATH).json()
    [chain] = bundle["chains"]
    assert [
        _der(x509.load_pem_x509_certificate(p.encode())) for p in chain["certificates"]
    ] == fulcio.chain_der()
    assert configuration == {
        "issuers": [
            {
                "issuerUrl": kube.issuer,
                "audience": "sigstore",
                "challengeClaim": "sub",
                "spiffeTrustDomain": "",
                "issuerType": "kubernetes",
                "subjectDomain": "",
                "skipEmailVerification": False,
            },
            {
                "issuerUrl": idp.url,
                "audience": "sigstore",
                "challengeClaim": "sub",
                "spiffeTrustDomain": TD,
                "issuerType": "spiffe",
                "subjectDomain": "",
                "skipEmailVerification": False,
            },
        ]
    }


def test_routing_errors(fulcio: FulcioDouble) -> None:
    with _https(fulcio.url, fulcio.ca_pem) as client:
        _refused(client.get("/api/v1/signingCert"), "Not Found", 404, 5)
        _refused(client.get(SIGNING_CERT_PATH), "Method Not Allowed", 501, 12)
        _refused(client.post(TRUST_BUNDLE_PATH), "Method Not Allowed", 501, 12)


def test_write_trusted_root_merges_its_sections(fulcio: FulcioDouble, tmp_path: Path) -> None:
    path = tmp_path / "trusted_root.json"
    rekor = {"baseUrl": "https://rekor.test"}
    path.write_text(json.dumps({"tlogs": [rekor]}))
    fulcio.write_trusted_root(path)
    root = json.loads(path.read_text())
    assert root["mediaType"] == "application/vnd.dev.sigstore.trustedroot+json;version=0.1"
    assert root["tlogs"] == [rekor]
    [ca] = root["certificateAuthorities"]
    assert ca["uri"] == fulcio.url
    assert [base64.b64decode(c["rawBytes"]) for c in ca["certChain"]["certificates"]] == fulcio.chain_der()
    [ctlog] = root["ctlogs"]
    assert base64.b64decode(ctlog["publicKey"]["rawBytes"]) == fulcio.ctlog.public_key_der
    assert base64.b64decode(ctlog["logId"]["keyId"]) == fulcio.ctlog.log_id
    now = dt.datetime.now(dt.UTC)
    for valid_for in (ca["validFor"], ctlog["publicKey"]["validFor"]):
        start = dt.datetime.strptime(valid_for["start"], "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=dt.UTC)
        assert now - dt.timedelta(minutes=30) < start < now
        assert "end" not in valid_for


# -- with a CT log over HTTPS ------------------------------------------------------------------------------


def test_sct_from_a_ct_log_over_https(kube: KubeAPIServer, token: str) -> None:
    with (
        CTLogDouble(roots=[]) as ctlog,
        FulcioDouble([_kubernetes_issuer(kube)], ct_log=ctlog.client()) as fulcio,
    ):
        # The log accepts only the roots it knows.
        _refused(_post(fulcio, _csr_body(), token), "Error entering certificate in CTL", 500, 13)
        ctlog.accept_root(fulcio.root_der)
        leaf, intermediate, root = _chain(_post(fulcio, _csr_body(), token))
        assert fulcio.ctlog.log_id == ctlog.log_id
        assert _sct_verifies(leaf, intermediate, ctlog.public_key_der)
        # What the log got is Fulcio's precertificate: the same TBS, with the poison in place of the SCTs.
        precert_der, *rest = ctlog.submissions[-1]
        assert rest == [_der(intermediate), _der(root)]
        precert = x509.load_der_x509_certificate(precert_der)
        assert precert.extensions[-1].oid.dotted_string == "1.3.6.1.4.1.11129.2.4.3"
        assert precert.extensions[-1].critical
        assert strip_poison(precert.tbs_certificate_bytes) == leaf.tbs_precertificate_bytes
        fulcio.sct_mode = "wrong-key"
        leaf, intermediate, _ = _chain(_post(fulcio, _csr_body(), token))
        assert not _sct_verifies(leaf, intermediate, ctlog.public_key_der)
        fulcio.sct_mode = "wrong-tbs"
        leaf, intermediate, _ = _chain(_post(fulcio, _csr_body(), token))
        assert not _sct_verifies(leaf, intermediate, ctlog.public_key_der)
        # Fulcio checks the log's SCT with the log's key, and refuses to issue with a bad one.
        fulcio.sct_mode = "embedded"
        ctlog.wrong_key = True
        _refused(_post(fulcio, _csr_body(), token), "Error entering certificate in CTL", 500, 13)
        assert "does not verify" in fulcio.rejections[-1]


def test_an_unavailable_ct_log_is_retried_until_the_requests_deadline(
    kube: KubeAPIServer, token: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # As real Fulcio v1.8.8 does (tests/integration/test_sigstore_real_fulcio.py found it): a CT
    # log answering 503 is tried again with a doubling pause until the request's Grpc-Timeout,
    # then the answer is 504 "context deadline exceeded"; a 500 is refused at once.
    from entrypoint.testing import fulcio as fulcio_module

    monkeypatch.setattr(fulcio_module, "_CT_FIRST_PAUSE", 0.05)
    with CTLogDouble() as ctlog, FulcioDouble([_kubernetes_issuer(kube)], ct_log=ctlog.client()) as fulcio:
        ctlog.fail_next(2, 503)
        _chain(_post(fulcio, _csr_body(), token))
        assert len(ctlog.submissions) == 1
        ctlog.fail_status = 503
        headers = {"Authorization": f"Bearer {token}", "Grpc-Timeout": "500m"}
        with _https(fulcio.url, fulcio.ca_pem) as client:
            answer = client.post(SIGNING_CERT_PATH, json=_csr_body(), headers=headers)
        _refused(answer, "context deadline exceeded", 504, 4)
        ctlog.fail_status = 500
        _refused(_post(fulcio, _csr_body(), token), "Error entering certificate in CTL", 500, 13)


# -- configuration, and as a process ---------------------------------------------------------------------


def test_issuer_configuration_is_checked() -> None:
    with pytest.raises(ValueError, match="trust domain"):
        OIDCIssuer("https://idp.test", "spiffe")
    with pytest.raises(ValueError, match="issuer type"):
        OIDCIssuer("https://idp.test", "email")
    with pytest.raises(ValueError, match="https"):
        OIDCIssuer("http://idp.test", "kubernetes")
    with pytest.raises(ValueError, match="unique"):
        FulcioDouble([OIDCIssuer("https://a.test", "kubernetes")] * 2)
    assert "secret" not in repr(OIDCIssuer("https://a.test", "kubernetes", bearer_token="secret"))


@pytest.mark.slow
def test_module_runner_serves_until_sigterm(kube: KubeAPIServer, token: str, tmp_path: Path) -> None:
    issuer_ca, issuer_token = tmp_path / "kube-ca.crt", tmp_path / "token"
    issuer_ca.write_bytes(kube.ca_pem)
    issuer_token.write_text(kube.issue_token(FULCIO_NS, FULCIO_SA))
    ca, root = tmp_path / "fulcio-ca.pem", tmp_path / "trusted_root.json"
    args = [
        "--kubernetes-issuer", kube.issuer, "--issuer-ca", str(issuer_ca), "--issuer-token-file",
        str(issuer_token), "--trusted-root", str(root), "--ca-out", str(ca),
    ]  # fmt: skip
    with doubles.serving("entrypoint.testing.fulcio", *args) as (proc, url):
        with _https(url, ca.read_bytes()) as client:
            response = client.post(
                SIGNING_CERT_PATH, json=_csr_body(), headers={"Authorization": f"Bearer {token}"}
            )
        leaf, intermediate, anchor = _chain(response)
        trusted = json.loads(root.read_text())
        [authority] = trusted["certificateAuthorities"]
        certs = [base64.b64decode(c["rawBytes"]) for c in authority["certChain"]["certificates"]]
        assert certs == [_der(intermediate), _der(anchor)]
        [ctlog] = trusted["ctlogs"]
        assert _sct_verifies(leaf, intermediate, base64.b64decode(ctlog["publicKey"]["rawBytes"]))
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=10) == 0


def test_module_runner_needs_an_issuer() -> None:
    result = doubles.run("entrypoint.testing.fulcio", "--port", "0")
    assert result.returncode == 2
    assert "--kubernetes-issuer" in result.stderr
    assert "ready" not in result.stdout
