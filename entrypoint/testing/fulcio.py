"""A Fulcio double: Sigstore's certificate authority, API v2 over HTTPS, as real Fulcio answers it.

What it serves (the grpc-gateway mapping of ``fulcio.proto``):

- ``POST /api/v2/signingCert``: an OIDC identity token (``Authorization: Bearer`` or
  ``credentials.oidcIdentityToken``) and a key, as a PEM CSR (``certificateSigningRequest``, its
  self-signature the proof of possession) or as ``publicKeyRequest`` with a signature over the token's
  ``sub``.  The token is checked as Fulcio's go-oidc verifier checks it: routed by its unverified ``iss``
  to a configured :class:`OIDCIssuer`, whose OIDC discovery document and JWKS are fetched over HTTPS
  (cached, the JWKS fetched again when no cached key verifies); then the signature, exact ``iss``,
  ``aud`` holding the client ID, ``exp`` and ``nbf``.  The answer is the chain leaf, intermediate,
  root, the leaf carrying an embedded SCT from a CT log.
- ``GET /api/v2/trustBundle`` and ``GET /api/v2/configuration``.

The certificates follow Fulcio's profile (``pkg/ca``, ``pkg/certificate``): a P-384 root and
intermediate, and a leaf with an empty subject, KeyUsage digitalSignature (critical), EKU codeSigning,
SKI, AKI, one critical URI SAN, the issuer in OIDs 1.3.6.1.4.1.57264.1.1 (raw) and .1.8 (UTF8String),
the token's ``sub`` in .1.24, and the SCT list last; valid ten minutes from now; ecdsa-with-SHA384.

Errors are grpc-gateway's: the HTTP status of the gRPC code and ``{"code", "message", "details"}`` in
Fulcio's words.  Like Fulcio, a refused token is ``InvalidArgument`` (400) whatever the reason; the
reason itself, which Fulcio only logs, is kept in :attr:`FulcioDouble.rejections`.

``python -m entrypoint.testing.fulcio`` serves one until SIGTERM or SIGINT.
"""

from __future__ import annotations

import argparse
import base64
import binascii
import datetime as dt
import json
import os
import re
import ssl
import sys
import threading
import time
import urllib.parse
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import httpx
import jwt
from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID, SignatureAlgorithmOID

from entrypoint.testing import sigstore_root
from entrypoint.testing._https import HTTPError, HTTPSDouble, Reply, serving_credentials
from entrypoint.testing._serving import serve_until, stop_on_signals
from entrypoint.testing.ctlog import SCT, CTLog, CTLogClient, CTLogError, sct_list_extension, sign_sct

__all__ = [
    "CONFIGURATION_PATH",
    "ISSUER_TYPES",
    "OID_ISSUER",
    "OID_ISSUER_V2",
    "OID_TOKEN_SUBJECT",
    "SCT_MODES",
    "SIGNING_CERT_PATH",
    "TRUST_BUNDLE_PATH",
    "FulcioDouble",
    "FulcioError",
    "OIDCIssuer",
    "main",
]

SIGNING_CERT_PATH = "/api/v2/signingCert"
TRUST_BUNDLE_PATH = "/api/v2/trustBundle"
CONFIGURATION_PATH = "/api/v2/configuration"
OID_ISSUER = x509.ObjectIdentifier("1.3.6.1.4.1.57264.1.1")
OID_ISSUER_V2 = x509.ObjectIdentifier("1.3.6.1.4.1.57264.1.8")
OID_TOKEN_SUBJECT = x509.ObjectIdentifier("1.3.6.1.4.1.57264.1.24")
SCT_MODES = ("embedded", "none", "wrong-key", "wrong-tbs")
ISSUER_TYPES = ("kubernetes", "spiffe")
LEAF_LIFETIME = dt.timedelta(minutes=10)
# go-oidc v3's allowance for a token's nbf (oidc/verify.go); exp gets none.
NBF_LEEWAY_SECONDS = 300
# Fulcio keeps a verifier per issuer; a short lifetime lets tests change an issuer under a running double.
DISCOVERY_TTL_SECONDS = 60.0
_FETCH_TIMEOUT_SECONDS = 5.0
_CA_BACKDATE = dt.timedelta(days=1)
_CA_LIFETIME = dt.timedelta(days=365)

# Fulcio's answers (pkg/server/error.go).
INVALID_SIGNATURE = "The signature supplied in the request could not be verified"
INVALID_PUBLIC_KEY = "The public key supplied in the request could not be parsed"
INVALID_CSR = "The certificate signing request could not be parsed"
FAILED_TO_ENTER_CERT_IN_CTL = "Error entering certificate in CTL"
INSECURE_PUBLIC_KEY = "The public key supplied in the request is insecure"
INVALID_IDENTITY_TOKEN = "There was an error processing the identity token"  # noqa: S105  (a message)
GENERIC_CA_ERROR = "error communicating with CA backend"

# gRPC codes and the HTTP status grpc-gateway answers for each (runtime.HTTPStatusFromCode).
INVALID_ARGUMENT, DEADLINE_EXCEEDED, NOT_FOUND, UNIMPLEMENTED, INTERNAL = 3, 4, 5, 12, 13
# Real Fulcio retries an unavailable CT log until the request's deadline (a client's Grpc-Timeout),
# with no bound of its own; the double bounds a request without one, so a test cannot hang.
CT_RETRY_SECONDS = 30.0
_CT_FIRST_PAUSE = 1.0
_HTTP_STATUS = {
    1: 499, 2: 500, 3: 400, 4: 504, 5: 404, 6: 409, 7: 403, 8: 429,
    9: 400, 10: 409, 11: 400, 12: 501, 13: 500, 14: 503, 15: 500, 16: 401,
}  # fmt: skip
# The other way, for answers the scaffold makes (fault knobs, unreadable bodies).
_GRPC_CODE = {400: 3, 401: 16, 403: 7, 404: 5, 409: 10, 411: 3, 413: 8, 429: 8, 499: 1, 500: 13,
              501: 12, 503: 14, 504: 4}  # fmt: skip
_PROTO_PACKAGE = "dev.sigstore.fulcio.v2"
# What go-oidc will verify; a discovery document naming none of them means RS256.
_JWT_ALGORITHMS = ("RS256", "RS384", "RS512", "ES256", "ES384", "ES512", "PS256", "PS384", "PS512", "EdDSA")
# go-spiffe's spiffeid grammar: a lower-case trust domain, then path segments, none "." or "..".
_SPIFFE_ID = re.compile(r"spiffe://([a-z0-9._-]+)((?:/[A-Za-z0-9._-]+)*)")
_TRUST_DOMAIN = re.compile(r"[a-z0-9._-]+")


class FulcioError(HTTPError):
    """An error answer of Fulcio's: a gRPC code (its HTTP status follows) and Fulcio's message."""

    def __init__(self, grpc_code: int, message: str) -> None:
        super().__init__(_HTTP_STATUS.get(grpc_code, 500), message)
        self.grpc_code = grpc_code


class _Rejected(Exception):
    """Why a request is refused: ``answer`` is what Fulcio says, the exception text what it logs."""

    def __init__(self, reason: str, answer: FulcioError) -> None:
        super().__init__(reason)
        self.answer = answer


def _bad_token(reason: str) -> _Rejected:
    return _Rejected(reason, FulcioError(INVALID_ARGUMENT, INVALID_IDENTITY_TOKEN))


@dataclass(frozen=True)
class OIDCIssuer:
    """One entry of Fulcio's ``OIDCIssuers``: whose tokens it accepts, and how it reaches the issuer.

    ``url``: the issuer (tokens' exact ``iss``).  ``type``: ``kubernetes`` or ``spiffe`` (which needs
    ``trust_domain``).  ``client_id``: the audience tokens must carry.  ``ca_pem``: a CA trusted, with the
    system's, for discovery.  ``bearer_token``: sent on discovery and JWKS requests to the issuer's host,
    as Fulcio sends its own service-account token to an in-cluster Kubernetes issuer.
    ``discovery_url``: where discovery is fetched when ``url`` does not resolve here (an in-cluster
    name such as ``https://kubernetes.default.svc``), as go-oidc's ``InsecureIssuerURLContext`` allows.
    """

    url: str
    type: str
    client_id: str = "sigstore"
    ca_pem: bytes | None = None
    bearer_token: str | None = None
    trust_domain: str | None = None
    discovery_url: str | None = None

    def __post_init__(self) -> None:
        if self.type not in ISSUER_TYPES:
            raise ValueError(f"issuer type must be one of {ISSUER_TYPES}, got {self.type!r}")
        for name, value in (("url", self.url), ("discovery_url", self.discovery_url)):
            if value is not None and not value.startswith("https://"):
                raise ValueError(f"{name} must be an https URL, got {value!r}")
        if not self.client_id:
            raise ValueError("client_id must not be empty")
        if self.type == "spiffe":
            if not self.trust_domain or not _TRUST_DOMAIN.fullmatch(self.trust_domain):
                raise ValueError(f"a spiffe issuer needs a valid trust domain, got {self.trust_domain!r}")
        elif self.trust_domain is not None:
            raise ValueError("only spiffe issuers have a trust domain")

    def __repr__(self) -> str:
        token = "<set>" if self.bearer_token is not None else None
        return (
            f"OIDCIssuer(url={self.url!r}, type={self.type!r}, client_id={self.client_id!r},"
            f" bearer_token={token})"
        )

    def configuration(self) -> dict[str, Any]:
        """This issuer as ``GET /api/v2/configuration`` lists it (grpc-gateway emits unset fields too)."""
        return {
            "issuerUrl": self.url,
            "audience": self.client_id,
            "challengeClaim": "sub",
            "spiffeTrustDomain": self.trust_domain or "",
            "issuerType": self.type,
            "subjectDomain": "",
            "skipEmailVerification": False,
        }


@dataclass(frozen=True)
class _Principal:
    name: str  # what a publicKeyRequest's proof of possession signs
    uri: str
    issuer: str
    subject: str


# -- tokens ------------------------------------------------------------------------------------------------


def _b64url(part: str) -> bytes:
    # Go's RawURLEncoding: no padding, URL alphabet only.
    if "=" in part or not re.fullmatch(r"[A-Za-z0-9_-]*", part):
        raise ValueError("illegal base64 data")
    return base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))


def _unverified_issuer(token: str) -> str:
    """The ``iss`` Fulcio routes a token by (``identity.extractIssuerURL``), before any verification."""
    if token.count(".") != 2:
        raise _bad_token("oidc: malformed jwt, token must have 3 parts")
    try:
        payload = json.loads(_b64url(token.split(".")[1]))
    except ValueError as err:
        raise _bad_token(f"oidc: malformed jwt payload: {err}") from None
    issuer = payload.get("iss", "") if isinstance(payload, dict) else None
    if not isinstance(issuer, str):
        raise _bad_token("oidc: failed to unmarshal claims")
    return issuer


@dataclass
class _Provider:
    jwks_uri: str
    algorithms: tuple[str, ...]
    fetched: float


class _IssuerVerifier:
    """One issuer's go-oidc verifier: its discovery document and keys, fetched and cached."""

    def __init__(self, issuer: OIDCIssuer) -> None:
        self.issuer = issuer
        self._base = (issuer.discovery_url or issuer.url).rstrip("/")
        self._context = ssl.create_default_context()
        if issuer.ca_pem is not None:
            self._context.load_verify_locations(cadata=issuer.ca_pem.decode("ascii"))
        self._lock = threading.Lock()
        self._provider: _Provider | None = None
        self._keys: list[dict[str, Any]] | None = None

    def _get(self, url: str) -> Any:
        headers = {}
        if self.issuer.bearer_token is not None:
            # Fulcio's bearerTokenTransport: the token goes to the issuer's host, and nowhere else.
            base_host, host = urllib.parse.urlsplit(self._base).netloc, urllib.parse.urlsplit(url).netloc
            if host != base_host:
                raise ValueError(f"issuer URL host {base_host} does not match request URL host {host}")
            headers["Authorization"] = f"Bearer {self.issuer.bearer_token}"
        try:
            with httpx.Client(verify=self._context, timeout=_FETCH_TIMEOUT_SECONDS) as client:
                response = client.get(url, headers=headers)
        except httpx.HTTPError as err:
            raise ValueError(f"GET {url}: {err}") from err
        if response.status_code != 200:
            raise ValueError(f"GET {url}: {response.status_code} {response.reason_phrase}: {response.text}")
        return response.json()

    def provider(self) -> _Provider:
        """The discovery document's part that verification needs (``oidc.NewProvider``)."""
        with self._lock:
            if (
                self._provider is not None
                and time.monotonic() - self._provider.fetched < DISCOVERY_TTL_SECONDS
            ):
                return self._provider
            doc = self._get(self._base + "/.well-known/openid-configuration")
            if not isinstance(doc, dict):
                raise ValueError("the discovery document is not a JSON object")
            if doc.get("issuer") != self.issuer.url:
                raise ValueError(
                    "oidc: issuer did not match the issuer returned by provider,"
                    f" expected {self.issuer.url!r} got {doc.get('issuer')!r}"
                )
            jwks_uri = doc.get("jwks_uri")
            if not isinstance(jwks_uri, str) or not jwks_uri:
                raise ValueError("the discovery document has no jwks_uri")
            advertised = doc.get("id_token_signing_alg_values_supported") or []
            algorithms = (
                tuple(a for a in advertised if a in _JWT_ALGORITHMS) if isinstance(advertised, list) else ()
            )
            self._provider = _Provider(jwks_uri, algorithms or ("RS256",), time.monotonic())
            self._keys = None
            return self._provider

    def _fetch_keys(self, provider: _Provider) -> list[dict[str, Any]]:
        jwks = self._get(provider.jwks_uri)
        keys = jwks.get("keys") if isinstance(jwks, dict) else None
        if not isinstance(keys, list):
            raise ValueError("oidc: failed to decode keys")
        with self._lock:
            self._keys = [k for k in keys if isinstance(k, dict)]
            return self._keys

    def verify_signature(
        self, provider: _Provider, header: dict[str, Any], signing_input: bytes, sig: bytes
    ) -> None:
        """Verify with the cached keys, then with the keys fetched again (go-oidc's RemoteKeySet)."""
        with self._lock:
            cached = self._keys
        if cached is not None and _verified_by(cached, header, signing_input, sig):
            return
        try:
            keys = self._fetch_keys(provider)
        except ValueError as err:
            raise _bad_token(f"failed to verify signature: fetching keys {err}") from None
        if not _verified_by(keys, header, signing_input, sig):
            raise _bad_token("failed to verify signature: failed to verify id token signature")


def _verified_by(
    keys: list[dict[str, Any]], header: dict[str, Any], signing_input: bytes, sig: bytes
) -> bool:
    alg, kid = header.get("alg"), header.get("kid")
    algorithm = jwt.get_algorithm_by_name(str(alg))
    for jwk in keys:
        if kid is not None and jwk.get("kid") != kid:
            continue
        if jwk.get("use", "sig") != "sig" or jwk.get("alg", alg) != alg:
            continue
        try:
            key = algorithm.from_jwk(jwk)
            if algorithm.verify(signing_input, key, sig):
                return True
        except Exception:  # noqa: S112  (a key of another type or curve: go-jose skips it too)
            continue
    return False


def _check_claims(claims: dict[str, Any], issuer: OIDCIssuer, now: float) -> None:
    """go-oidc's ``IDTokenVerifier.Verify`` claim checks, in its order."""
    if claims.get("iss") != issuer.url:
        raise _bad_token(
            "oidc: id token issued by a different provider,"
            f" expected {issuer.url!r} got {claims.get('iss')!r}"
        )
    aud = claims.get("aud")
    audiences = [aud] if isinstance(aud, str) else aud if isinstance(aud, list) else []
    if issuer.client_id not in audiences:
        raise _bad_token(f"oidc: expected audience {issuer.client_id!r} got {audiences!r}")
    exp, nbf = claims.get("exp", 0), claims.get("nbf")
    if not isinstance(exp, int | float) or (nbf is not None and not isinstance(nbf, int | float)):
        raise _bad_token("oidc: failed to unmarshal claims: exp and nbf must be numbers")
    # A token without exp has Go's zero time as its expiry: expired.
    if exp < now:
        raise _bad_token(f"oidc: token is expired (Token Expiry: {exp})")
    if nbf is not None and now + NBF_LEEWAY_SECONDS < nbf:
        raise _bad_token(f"oidc: current time {now} before the nbf (not before) time: {nbf}")


def _principal(claims: dict[str, Any], issuer: OIDCIssuer) -> _Principal:
    subject = claims.get("sub", "")
    if not isinstance(subject, str):
        raise _bad_token("oidc: failed to unmarshal claims: sub must be a string")
    if issuer.type == "kubernetes":
        # Fulcio reads these two claims as strings and builds the URI from whatever they are, even empty.
        k8s = claims.get("kubernetes.io", {})
        sa = k8s.get("serviceaccount", {}) if isinstance(k8s, dict) else None
        namespace = k8s.get("namespace", "") if isinstance(k8s, dict) else None
        name = sa.get("name", "") if isinstance(sa, dict) else None
        if not isinstance(namespace, str) or not isinstance(name, str):
            raise _bad_token("json: cannot unmarshal the kubernetes.io claim")
        uri = f"https://kubernetes.io/namespaces/{namespace}/serviceaccounts/{name}"
        return _Principal(subject, uri, issuer.url, subject)
    match = _SPIFFE_ID.fullmatch(subject)
    if match is None or any(seg in (".", "..") for seg in match[2].split("/")[1:]):
        raise _bad_token(f"invalid spiffe ID provided: {subject}")
    if match[1] != issuer.trust_domain:
        raise _bad_token(
            f"spiffe ID trust domain {match[1]} doesn't match configured trust domain {issuer.trust_domain}"
        )
    return _Principal(subject, subject, issuer.url, subject)


# -- keys --------------------------------------------------------------------------------------------------

PublicKey = ec.EllipticCurvePublicKey | rsa.RSAPublicKey | ed25519.Ed25519PublicKey


def _pem_block(data: bytes, types: Sequence[str]) -> bytes | None:
    """The DER of the first PEM block in ``data`` if its type is one of ``types`` (Go's ``pem.Decode``)."""
    match = re.search(rb"-----BEGIN ([A-Z0-9 ]+)-----\r?\n(.*?)-----END \1-----", data, re.S)
    if match is None or match[1].decode() not in types:
        return None
    try:
        return base64.b64decode(b"".join(match[2].split()), validate=True)
    except binascii.Error:
        return None


def _supported_key(key: Any) -> PublicKey:
    """Fulcio's goodkey checks: RSA 2048 to 4096 bits, ECDSA on P-256/P-384/P-521, or Ed25519."""
    if isinstance(key, rsa.RSAPublicKey):
        if not 2048 <= key.key_size <= 4096:
            raise ValueError(f"RSA key size {key.key_size} is not between 2048 and 4096")
        return key
    if isinstance(key, ec.EllipticCurvePublicKey):
        if not isinstance(key.curve, ec.SECP256R1 | ec.SECP384R1 | ec.SECP521R1):
            raise ValueError(f"unsupported ec curve {key.curve.name}")
        return key
    if isinstance(key, ed25519.Ed25519PublicKey):
        return key
    raise ValueError(f"unsupported public key type {type(key).__name__}")


def _go_type(key: PublicKey) -> str:
    if isinstance(key, ec.EllipticCurvePublicKey):
        return "*ecdsa.PublicKey"
    if isinstance(key, rsa.RSAPublicKey):
        return "*rsa.PublicKey"
    return "ed25519.PublicKey"


def _default_hash(key: PublicKey) -> hashes.HashAlgorithm | None:
    """The hash Fulcio pairs with a key (sigstore's default signature algorithm for it)."""
    if isinstance(key, ec.EllipticCurvePublicKey):
        return {256: hashes.SHA256(), 384: hashes.SHA384()}.get(key.curve.key_size, hashes.SHA512())
    if isinstance(key, rsa.RSAPublicKey):
        return hashes.SHA256()
    return None


def _check_permitted(key: PublicKey, digest: hashes.HashAlgorithm | None) -> None:
    """Fulcio's default ``--client-signing-algorithms``: each key with the one hash its default pairs."""
    permitted = type(digest) is type(_default_hash(key))
    if isinstance(key, rsa.RSAPublicKey):
        permitted = permitted and key.key_size in (2048, 3072, 4096)
    if not permitted:
        name = {"sha256": "SHA-256", "sha384": "SHA-384", "sha512": "SHA-512"}.get(
            digest.name if digest is not None else "", "unknown hash value 0"
        )
        message = f"signing algorithm not permitted: {_go_type(key)}, {name}"
        raise _Rejected(message, FulcioError(INVALID_ARGUMENT, message))


_CSR_HASHES: dict[x509.ObjectIdentifier, hashes.HashAlgorithm | None] = {
    SignatureAlgorithmOID.ECDSA_WITH_SHA256: hashes.SHA256(),
    SignatureAlgorithmOID.ECDSA_WITH_SHA384: hashes.SHA384(),
    SignatureAlgorithmOID.ECDSA_WITH_SHA512: hashes.SHA512(),
    SignatureAlgorithmOID.RSA_WITH_SHA256: hashes.SHA256(),
    SignatureAlgorithmOID.RSA_WITH_SHA384: hashes.SHA384(),
    SignatureAlgorithmOID.RSA_WITH_SHA512: hashes.SHA512(),
    SignatureAlgorithmOID.ED25519: None,
}


def _key_from_csr(csr_pem: bytes) -> PublicKey:
    der = _pem_block(csr_pem, ("CERTIFICATE REQUEST", "NEW CERTIFICATE REQUEST"))
    try:
        if der is None:
            raise ValueError("no CSR found while decoding")
        csr = x509.load_der_x509_csr(der)
        raw_key = csr.public_key()
    except (ValueError, UnsupportedAlgorithm) as err:
        raise _Rejected(f"parsing the CSR: {err}", FulcioError(INVALID_ARGUMENT, INVALID_CSR)) from None
    try:
        key = _supported_key(raw_key)
    except ValueError as err:
        raise _Rejected(str(err), FulcioError(INVALID_ARGUMENT, INSECURE_PUBLIC_KEY)) from None
    if not csr.is_signature_valid:
        raise _Rejected(
            "the CSR's signature does not verify", FulcioError(INVALID_ARGUMENT, INVALID_SIGNATURE)
        )
    oid = csr.signature_algorithm_oid
    if oid not in _CSR_HASHES:
        message = f"unrecognized signature algorithm: {oid.dotted_string}"
        raise _Rejected(message, FulcioError(INVALID_ARGUMENT, message))
    _check_permitted(key, _CSR_HASHES[oid])
    return key


def _key_from_request(content: str, proof: bytes, principal: _Principal) -> PublicKey:
    """A ``publicKeyRequest``'s key, once its proof of possession over the principal's name verifies."""
    raw = content.encode("utf-8")
    try:
        if not raw:
            raise ValueError("public key not provided")
        der = _pem_block(raw, ("PUBLIC KEY",))
        parsed = serialization.load_der_public_key(der if der is not None else raw)
    except (ValueError, UnsupportedAlgorithm) as err:
        raise _Rejected(str(err), FulcioError(INVALID_ARGUMENT, INVALID_PUBLIC_KEY)) from None
    try:
        key = _supported_key(parsed)
    except ValueError as err:
        raise _Rejected(str(err), FulcioError(INVALID_ARGUMENT, INSECURE_PUBLIC_KEY)) from None
    message = principal.name.encode("utf-8")
    try:
        if isinstance(key, ec.EllipticCurvePublicKey):
            digest = _default_hash(key)
            assert digest is not None
            key.verify(proof, message, ec.ECDSA(digest))
        elif isinstance(key, rsa.RSAPublicKey):
            key.verify(proof, message, padding.PKCS1v15(), hashes.SHA256())
        else:
            key.verify(proof, message)
    except InvalidSignature:
        raise _Rejected(
            f"the proof of possession is no signature over {principal.name!r}",
            FulcioError(INVALID_ARGUMENT, INVALID_SIGNATURE),
        ) from None
    _check_permitted(key, _default_hash(key))
    return key


# -- the request body (protojson: camelCase or proto names, bytes as base64) -------------------------------


def _proto_error(message: str) -> FulcioError:
    return FulcioError(INVALID_ARGUMENT, f"proto: {message}")


def _get(obj: dict[str, Any], json_name: str, proto_name: str) -> Any:
    value = obj.get(json_name)
    return obj.get(proto_name) if value is None else value


def _message(obj: dict[str, Any], json_name: str, proto_name: str) -> dict[str, Any]:
    value = _get(obj, json_name, proto_name)
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise _proto_error(f"invalid value for message field {json_name}: {json.dumps(value)}")
    return value


def _string(obj: dict[str, Any], json_name: str, proto_name: str) -> str:
    value = _get(obj, json_name, proto_name)
    if value is None:
        return ""
    if not isinstance(value, str):
        raise _proto_error(f"invalid value for string field {json_name}: {json.dumps(value)}")
    return value


def _bytes(obj: dict[str, Any], json_name: str, proto_name: str) -> bytes:
    value = _string(obj, json_name, proto_name)
    # protojson takes standard or URL-safe base64, padded or not.
    try:
        alphabet = value.replace("-", "+").replace("_", "/").rstrip("=")
        return base64.b64decode(alphabet + "=" * (-len(alphabet) % 4), validate=True)
    except (binascii.Error, ValueError):
        raise _proto_error(f"invalid value for bytes field {json_name}: {json.dumps(value)}") from None


@dataclass(frozen=True)
class _SigningRequest:
    token: str
    csr: bytes
    public_key: str
    proof: bytes


def _parse_signing_request(body: bytes, authorization: str | None) -> _SigningRequest:
    try:
        # An empty body is an empty request for grpc-gateway (io.EOF), not an error.
        request = json.loads(body) if body.strip() else {}
    except ValueError as err:
        raise _proto_error(f"syntax error: {err}") from None
    if not isinstance(request, dict):
        raise _proto_error(f"unexpected token {json.dumps(request)}")
    csr = _bytes(request, "certificateSigningRequest", "certificate_signing_request")
    key_request = _message(request, "publicKeyRequest", "public_key_request")
    if csr and key_request:
        raise _proto_error(
            f'error parsing "publicKeyRequest", oneof {_PROTO_PACKAGE}.CreateSigningCertificateRequest.key'
            " is already set"
        )
    token = _string(
        _message(request, "credentials", "credentials"), "oidcIdentityToken", "oidc_identity_token"
    )
    if not token:
        # The gateway's metadata from the header, exactly as cmd/app/http.go cuts it.
        token = (authorization or "").replace("Bearer ", "", 1)
    public_key = _message(key_request, "publicKey", "public_key")
    return _SigningRequest(
        token=token,
        csr=csr,
        public_key=_string(public_key, "content", "content"),
        proof=_bytes(key_request, "proofOfPossession", "proof_of_possession"),
    )


# -- the CA ------------------------------------------------------------------------------------------------


def _der_utf8(value: str) -> bytes:
    content = value.encode("utf-8")
    n = len(content)
    if n < 0x80:
        return bytes([0x0C, n]) + content
    size = n.to_bytes((n.bit_length() + 7) // 8, "big")
    return bytes([0x0C, 0x80 | len(size)]) + size + content


def _key_usage(*, digital_signature: bool = False, cert_sign: bool = False) -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=digital_signature,
        content_commitment=False,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=cert_sign,
        crl_sign=cert_sign,
        encipher_only=False,
        decipher_only=False,
    )


def _name(common_name: str) -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "signed-entrypoint tests"),
            x509.NameAttribute(NameOID.COMMON_NAME, common_name),
        ]
    )


def _pem(cert: x509.Certificate) -> str:
    return cert.public_bytes(serialization.Encoding.PEM).decode("ascii")


def _der(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.DER)


class _CA:
    """Fulcio's chain: a P-384 root (the trust anchor) and the P-384 intermediate that signs leaves."""

    def __init__(self) -> None:
        now = dt.datetime.now(dt.UTC)
        start, end = now - _CA_BACKDATE, now + _CA_LIFETIME
        self.root_key = ec.generate_private_key(ec.SECP384R1())
        root_name = _name("sigstore")
        # Fulcio's certmaker templates: the root may sign one level of CA, the intermediate only leaves.
        self.root = (
            x509.CertificateBuilder()
            .subject_name(root_name)
            .issuer_name(root_name)
            .public_key(self.root_key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(start)
            .not_valid_after(end)
            .add_extension(_key_usage(cert_sign=True), critical=True)
            .add_extension(x509.BasicConstraints(ca=True, path_length=1), critical=True)
            .add_extension(
                x509.SubjectKeyIdentifier.from_public_key(self.root_key.public_key()), critical=False
            )
            .sign(self.root_key, hashes.SHA384())
        )
        self.key = ec.generate_private_key(ec.SECP384R1())
        self.intermediate = (
            x509.CertificateBuilder()
            .subject_name(_name("sigstore-intermediate"))
            .issuer_name(root_name)
            .public_key(self.key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(start)
            .not_valid_after(end)
            .add_extension(_key_usage(cert_sign=True), critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CODE_SIGNING]), critical=False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(self.key.public_key()), critical=False)
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(
                    self.root.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
                ),
                critical=False,
            )
            .sign(self.root_key, hashes.SHA384())
        )
        self.intermediate_spki = self.key.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )

    def leaf(
        self, principal: _Principal, key: PublicKey, serial: int, not_before: dt.datetime
    ) -> x509.CertificateBuilder:
        """The leaf as Fulcio's ``MakeX509`` and ``principal.Embed`` make it, before any SCT."""
        aki = x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(
            self.intermediate.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
        )
        builder = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([]))
            .issuer_name(self.intermediate.subject)
            .public_key(key)
            .serial_number(serial)
            .not_valid_before(not_before)
            .not_valid_after(not_before + LEAF_LIFETIME)
            .add_extension(_key_usage(digital_signature=True), critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CODE_SIGNING]), critical=False)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key), critical=False)
            .add_extension(aki, critical=False)
            # With an empty subject the SAN is the identity, so it is critical (RFC 5280 §4.2.1.6).
            .add_extension(
                x509.SubjectAlternativeName([x509.UniformResourceIdentifier(principal.uri)]), critical=True
            )
            .add_extension(
                x509.UnrecognizedExtension(OID_ISSUER, principal.issuer.encode("utf-8")), critical=False
            )
            .add_extension(
                x509.UnrecognizedExtension(OID_ISSUER_V2, _der_utf8(principal.issuer)), critical=False
            )
        )
        if principal.subject:
            builder = builder.add_extension(
                x509.UnrecognizedExtension(OID_TOKEN_SUBJECT, _der_utf8(principal.subject)), critical=False
            )
        return builder

    def sign(self, builder: x509.CertificateBuilder) -> x509.Certificate:
        return builder.sign(self.key, hashes.SHA384())


# -- the server --------------------------------------------------------------------------------------------


class FulcioDouble(HTTPSDouble):
    """An HTTPS Fulcio (API v2) on 127.0.0.1 issuing code-signing certificates with embedded SCTs.

    ``issuers``: the OIDC issuers it accepts tokens from.  ``ct_log``: where SCTs come from, a
    :class:`~entrypoint.testing.ctlog.CTLog` in process (a new one by default) or a
    :class:`~entrypoint.testing.ctlog.CTLogClient` of a log served over HTTPS.  ``sct_mode``: one of
    :data:`SCT_MODES` (also an attribute, settable while serving).  ``port``: 0 picks a free port.
    """

    server_version = "fulcio-double"
    failure_messages = {  # noqa: RUF012  (the scaffold's ClassVar, overridden)
        429: "rate limit exceeded",
        500: GENERIC_CA_ERROR,
        503: 'connection error: desc = "transport: Error while dialing: connect: connection refused"',
        504: "context deadline exceeded",
    }

    def __init__(
        self,
        issuers: Sequence[OIDCIssuer],
        *,
        ct_log: CTLog | CTLogClient | None = None,
        sct_mode: str = "embedded",
        port: int = 0,
    ) -> None:
        urls = [issuer.url for issuer in issuers]
        if len(set(urls)) != len(urls):
            raise ValueError(f"issuer URLs must be unique, got {urls}")
        super().__init__(serving_credentials("fulcio", "fulcio"), port=port, name="fulcio")
        self._verifiers = {issuer.url: _IssuerVerifier(issuer) for issuer in issuers}
        self._ct_log = ct_log if ct_log is not None else CTLog()
        self._ca = _CA()
        self._stray_ct_key = ec.generate_private_key(ec.SECP256R1())
        self._created = dt.datetime.now(dt.UTC)
        self._sct_mode = "embedded"
        self.sct_mode = sct_mode
        self._issued: list[x509.Certificate] = []
        self._rejections: list[str] = []
        # Each request's deadline (its Grpc-Timeout), for the CT log's retries on its thread.
        self._request = threading.local()

    def __repr__(self) -> str:
        where = self.url if self._port else "not started"
        return f"FulcioDouble({where}, issuers={list(self._verifiers)}, sct_mode={self.sct_mode!r})"

    # -- knobs and records -------------------------------------------------------------------------------

    @property
    def sct_mode(self) -> str:
        """``embedded``; ``none`` (a detached answer without SCT, as Fulcio without a CT log gives);
        ``wrong-key`` (the SCT claims the log but another key signed it); ``wrong-tbs`` (the log signed
        the TBS of another certificate)."""
        with self._lock:
            return self._sct_mode

    @sct_mode.setter
    def sct_mode(self, mode: str) -> None:
        if mode not in SCT_MODES:
            raise ValueError(f"sct_mode must be one of {SCT_MODES}, got {mode!r}")
        with self._lock:
            self._sct_mode = mode

    @property
    def issued(self) -> list[x509.Certificate]:
        """The leaf certificates issued, oldest first."""
        with self._lock:
            return list(self._issued)

    @property
    def rejections(self) -> list[str]:
        """Why each refused signingCert request was refused: the detail Fulcio logs, not what it answers."""
        with self._lock:
            return list(self._rejections)

    # -- what other code trusts --------------------------------------------------------------------------

    @property
    def issuers(self) -> list[OIDCIssuer]:
        return [v.issuer for v in self._verifiers.values()]

    @property
    def root_der(self) -> bytes:
        return _der(self._ca.root)

    @property
    def intermediate_der(self) -> bytes:
        return _der(self._ca.intermediate)

    def chain_der(self) -> list[bytes]:
        """The CA chain, the trust anchor last: a trusted root's ``certChain``."""
        return [self.intermediate_der, self.root_der]

    @property
    def ctlog(self) -> CTLog | CTLogClient:
        """The CT log the SCTs come from (its ``public_key_der`` and ``log_id``)."""
        return self._ct_log

    def certificate_authority(self) -> dict[str, Any]:
        """This CA as a trusted root's ``certificateAuthorities`` entry."""
        return sigstore_root.certificate_authority(
            self.url,
            self.chain_der(),
            start=self._created - dt.timedelta(minutes=1),
            organization="signed-entrypoint tests",
            common_name="sigstore",
        )

    def ctlog_instance(self) -> dict[str, Any]:
        """The CT log as a trusted root's ``ctlogs`` entry (an in-process log lives at this URL)."""
        base = self._ct_log.url if isinstance(self._ct_log, CTLogClient) else self.url
        start = self._created - dt.timedelta(minutes=1)
        return sigstore_root.log_instance(base, self._ct_log.public_key_der, start=start)

    def write_trusted_root(self, path: str | os.PathLike[str]) -> None:
        """Write the ``certificateAuthorities`` and ``ctlogs`` sections of the trusted root at ``path``,
        keeping its other sections (a Rekor double's ``tlogs``)."""
        sigstore_root.merge_into(
            path, certificate_authorities=[self.certificate_authority()], ctlogs=[self.ctlog_instance()]
        )

    # -- requests ----------------------------------------------------------------------------------------

    def error_response(self, err: HTTPError) -> tuple[dict[str, Any], dict[str, str]]:
        code = err.grpc_code if isinstance(err, FulcioError) else _GRPC_CODE.get(err.code, 2)
        return {"code": code, "message": err.message, "details": []}, {}

    def handle(self, method: str, path: str, headers: Any, body: bytes) -> Reply:
        routes = {SIGNING_CERT_PATH: "POST", TRUST_BUNDLE_PATH: "GET", CONFIGURATION_PATH: "GET"}
        route = path.partition("?")[0]
        if route not in routes:
            raise FulcioError(NOT_FOUND, "Not Found")
        if method != routes[route]:
            # grpc-gateway's routing error for a path served under another method.
            raise FulcioError(UNIMPLEMENTED, "Method Not Allowed")
        if route == TRUST_BUNDLE_PATH:
            chain = [_pem(self._ca.intermediate), _pem(self._ca.root)]
            return 200, {"chains": [{"certificates": chain}]}, "application/json", {}
        if route == CONFIGURATION_PATH:
            issuers = [v.issuer.configuration() for v in self._verifiers.values()]
            return 200, {"issuers": issuers}, "application/json", {}
        self._request.deadline = _grpc_deadline(headers.get("Grpc-Timeout"))
        try:
            return 200, self._signing_cert(body, headers.get("Authorization")), "application/json", {}
        except _Rejected as rejected:
            self._reject(str(rejected))
            raise rejected.answer from None
        except FulcioError as err:
            self._reject(err.message)
            raise

    def _reject(self, reason: str) -> None:
        with self._lock:
            self._rejections.append(reason)

    def _signing_cert(self, body: bytes, authorization: str | None) -> dict[str, Any]:
        request = _parse_signing_request(body, authorization)
        principal = self._authenticate(request.token)
        if request.csr:
            key = _key_from_csr(request.csr)
        else:
            key = _key_from_request(request.public_key, request.proof, principal)
        mode = self.sct_mode
        leaf = self._issue(principal, key, mode)
        with self._lock:
            self._issued.append(leaf)
        chain = {"certificates": [_pem(leaf), _pem(self._ca.intermediate), _pem(self._ca.root)]}
        if mode == "none":
            return {"signedCertificateDetachedSct": {"chain": chain, "signedCertificateTimestamp": ""}}
        return {"signedCertificateEmbeddedSct": {"chain": chain}}

    def _authenticate(self, token: str) -> _Principal:
        issuer_url = _unverified_issuer(token)
        verifier = self._verifiers.get(issuer_url)
        if verifier is None:
            raise _bad_token(
                f"failed to match issuer URL {issuer_url} from token with any configured providers"
            )
        try:
            provider = verifier.provider()
        except ValueError as err:
            # Fulcio logs why the provider could not be made and answers as for an unknown issuer.
            raise _bad_token(f"unsupported issuer: {issuer_url} ({err})") from None
        header_part, payload_part, signature_part = token.split(".")
        try:
            header = json.loads(_b64url(header_part))
            claims = json.loads(_b64url(payload_part))
            signature = _b64url(signature_part)
        except ValueError as err:
            raise _bad_token(f"oidc: malformed jwt: {err}") from None
        if not isinstance(header, dict) or not isinstance(claims, dict):
            raise _bad_token("oidc: malformed jwt: header and claims must be JSON objects")
        _check_claims(claims, verifier.issuer, time.time())
        if header.get("alg") not in provider.algorithms:
            raise _bad_token(f"oidc: malformed jwt: unexpected signature algorithm {header.get('alg')!r}")
        verifier.verify_signature(
            provider, header, f"{header_part}.{payload_part}".encode("ascii"), signature
        )
        return _principal(claims, verifier.issuer)

    def _issue(self, principal: _Principal, key: PublicKey, mode: str) -> x509.Certificate:
        """Issue the leaf: without SCT, or by the recipe of embedded SCTs: sign the TBS without the SCT
        list, get the SCT over it, and sign again with the list appended last."""
        # DER times have whole seconds; truncating first keeps the validity exactly LEAF_LIFETIME.
        now = dt.datetime.now(dt.UTC).replace(microsecond=0)
        serial = x509.random_serial_number()
        plain = self._ca.sign(self._ca.leaf(principal, key, serial, now))
        if mode == "none":
            return plain
        tbs = plain.tbs_certificate_bytes
        if mode == "wrong-tbs":
            sct = self._sct(self._ca.leaf(principal, key, x509.random_serial_number(), now), "embedded")
        else:
            sct = self._sct(self._ca.leaf(principal, key, serial, now), mode)
        final = self._ca.sign(
            self._ca.leaf(principal, key, serial, now).add_extension(
                sct_list_extension([sct]), critical=False
            )
        )
        if final.tbs_precertificate_bytes != tbs:
            raise RuntimeError("the final certificate's TBS differs from the precertificate's")
        return final

    def _sct(self, builder: x509.CertificateBuilder, mode: str) -> bytes:
        """The SCT of the precertificate ``builder`` makes, from the CT log in use."""
        log = self._ct_log
        if isinstance(log, CTLog):
            tbs = self._ca.sign(builder).tbs_certificate_bytes
            return log.sign_precert(
                tbs, self._ca.intermediate_spki, wrong_key=True if mode == "wrong-key" else None
            )
        precert = self._ca.sign(builder.add_extension(x509.PrecertPoison(), critical=True))
        deadline = getattr(self._request, "deadline", None) or time.monotonic() + CT_RETRY_SECONDS
        pause = _CT_FIRST_PAUSE
        while True:
            try:
                sct = log.add_pre_chain([_der(precert), self.intermediate_der, self.root_der])
                break
            except CTLogError as err:
                if not err.retryable:
                    answer = FulcioError(INTERNAL, FAILED_TO_ENTER_CERT_IN_CTL)
                    raise _Rejected(f"CT log: {err}", answer) from None
                if time.monotonic() + pause >= deadline:
                    answer = FulcioError(DEADLINE_EXCEEDED, "context deadline exceeded")
                    raise _Rejected(f"CT log: {err}", answer) from None
                time.sleep(pause)
                pause *= 2
        if mode != "wrong-key":
            return sct
        tbs = self._ca.sign(builder).tbs_certificate_bytes
        timestamp = SCT.decode(sct).timestamp_ms
        return sign_sct(self._stray_ct_key, log.log_id, timestamp, self._ca.intermediate_spki, tbs).encode()


_GRPC_UNITS = {"H": 3600.0, "M": 60.0, "S": 1.0, "m": 1e-3, "u": 1e-6, "n": 1e-9}


def _grpc_deadline(header: str | None) -> float | None:
    """The monotonic deadline a ``Grpc-Timeout`` header (``<digits><unit>``) sets; None without one."""
    if not header or len(header) < 2 or header[-1] not in _GRPC_UNITS or not header[:-1].isdigit():
        return None
    return time.monotonic() + int(header[:-1]) * _GRPC_UNITS[header[-1]]


# -- python -m entrypoint.testing.fulcio -------------------------------------------------------------------


def _read(path: str | None) -> bytes | None:
    if path is None:
        return None
    with open(path, "rb") as f:
        return f.read()


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m entrypoint.testing.fulcio",
        description="Serve a test Fulcio (API v2) until SIGTERM/SIGINT.",
    )
    parser.add_argument("--kubernetes-issuer", metavar="URL", help="accept tokens of this Kubernetes issuer")
    parser.add_argument("--discovery-url", metavar="URL", help="fetch the Kubernetes issuer's discovery here")
    parser.add_argument("--issuer-ca", metavar="FILE", help="PEM CA to trust for the issuers' discovery")
    parser.add_argument(
        "--issuer-token-file",
        metavar="FILE",
        help="bearer token for the Kubernetes issuer's discovery (Fulcio's own service-account token)",
    )
    parser.add_argument("--spiffe-issuer", metavar="URL", help="accept JWT-SVIDs of this issuer")
    parser.add_argument("--trust-domain", metavar="TD", help="the SPIFFE issuer's trust domain")
    parser.add_argument(
        "--client-id", default="sigstore", help="audience tokens must carry (default: sigstore)"
    )
    parser.add_argument(
        "--ct-log-url", metavar="URL", help="submit precertificates to this CT log (default: in process)"
    )
    parser.add_argument(
        "--ct-log-public-key-path", metavar="FILE", help="PEM key of --ct-log-url, to verify SCTs"
    )
    parser.add_argument(
        "--ct-log-tls-ca-cert", metavar="FILE", help="PEM CA of --ct-log-url's serving certificate"
    )
    parser.add_argument("--sct-mode", choices=SCT_MODES, default="embedded", help="how SCTs are made")
    parser.add_argument("--port", type=int, default=0, help="port on 127.0.0.1 (default: any free port)")
    parser.add_argument(
        "--trusted-root", metavar="FILE", help="write the CA and CT log into this trusted_root.json"
    )
    parser.add_argument("--ca-out", metavar="FILE", help="write the serving CA (PEM) clients must trust here")
    args = parser.parse_args(argv)
    if not args.kubernetes_issuer and not args.spiffe_issuer:
        parser.error("give --kubernetes-issuer, --spiffe-issuer or both")
    if bool(args.spiffe_issuer) != bool(args.trust_domain):
        parser.error("--spiffe-issuer and --trust-domain go together")
    if bool(args.ct_log_url) != bool(args.ct_log_public_key_path):
        parser.error("--ct-log-url needs --ct-log-public-key-path")

    stop = stop_on_signals()
    try:
        ca_pem = _read(args.issuer_ca)
        token = _read(args.issuer_token_file)
        issuers = []
        if args.kubernetes_issuer:
            issuers.append(
                OIDCIssuer(
                    args.kubernetes_issuer,
                    "kubernetes",
                    client_id=args.client_id,
                    ca_pem=ca_pem,
                    bearer_token=token.decode().strip() if token is not None else None,
                    discovery_url=args.discovery_url,
                )
            )
        if args.spiffe_issuer:
            issuers.append(
                OIDCIssuer(
                    args.spiffe_issuer,
                    "spiffe",
                    client_id=args.client_id,
                    ca_pem=ca_pem,
                    trust_domain=args.trust_domain,
                )
            )
        ct_log: CTLogClient | None = None
        if args.ct_log_url:
            key_pem = _read(args.ct_log_public_key_path)
            assert key_pem is not None
            key_der = serialization.load_pem_public_key(key_pem).public_bytes(
                serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
            )
            ct_log = CTLogClient(args.ct_log_url, key_der, _read(args.ct_log_tls_ca_cert))
        server = FulcioDouble(issuers, ct_log=ct_log, sct_mode=args.sct_mode, port=args.port)
        server.start()
    except (ValueError, OSError) as err:
        print(f"fulcio: {err}", file=sys.stderr)
        return 2
    try:
        if args.ca_out:
            with open(args.ca_out, "wb") as f:
                f.write(server.ca_pem)
        if args.trusted_root:
            server.write_trusted_root(args.trusted_root)
        serve_until(stop, server.url)
    finally:
        server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
