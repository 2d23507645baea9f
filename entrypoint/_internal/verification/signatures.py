"""One signature over one message, checked with the SVID's public key.

Tekton's format (spec §7.6, :func:`checker_for`): the data is the canonical value's UTF-8 bytes;
ECDSA and RSA hash it with SHA-256 (Tekton signs the digest, which is the same thing), Ed25519
signs it directly ("pure"), as Tekton's verifier expects.  Any other key type cannot verify
anything and fails the message.

The compact format (docs/compact-format.md §3, :func:`jose_checker`): the message names its
algorithm as JOSE does, which must fit the key; ECDSA signatures are JWS's raw ``r || s``.
"""

from __future__ import annotations

from collections.abc import Callable

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa
from cryptography.hazmat.primitives.asymmetric.types import CertificatePublicKeyTypes
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

from entrypoint._internal.verification.reasons import Reason, VerificationFailed

# Raises InvalidSignature when the signature does not verify.
SignatureCheck = Callable[[bytes, bytes], None]

# docs/compact-format.md §6: smaller RSA keys are refused (NIST SP 800-131A).
MIN_RSA_BITS = 2048

# Immutable parameter objects, built once: a verifier checks thousands of signatures a second.
_ECDSA_SHA256 = ec.ECDSA(hashes.SHA256())
_ECDSA_SHA384 = ec.ECDSA(hashes.SHA384())
_SHA256 = hashes.SHA256()
_PKCS1V15 = padding.PKCS1v15()


def checker_for(key: CertificatePublicKeyTypes, *, entry: str, identity: str | None) -> SignatureCheck:
    if isinstance(key, ec.EllipticCurvePublicKey):
        ec_key = key
        return lambda signature, data: ec_key.verify(signature, data, _ECDSA_SHA256)
    if isinstance(key, rsa.RSAPublicKey):
        if key.key_size < MIN_RSA_BITS:
            # Either format, either backend: a key that can be factored vouches for nothing.
            raise VerificationFailed(
                Reason.UNSUPPORTED_KEY,
                f"{entry}: the signing key is RSA with {key.key_size} bits; at least {MIN_RSA_BITS} required",
                identity,
            )
        rsa_key = key
        return lambda signature, data: rsa_key.verify(signature, data, _PKCS1V15, _SHA256)
    if isinstance(key, ed25519.Ed25519PublicKey):
        return key.verify
    raise VerificationFailed(
        Reason.UNSUPPORTED_KEY,
        f"{entry}: unsupported key type: {type(key).__name__} (ECDSA, RSA or Ed25519 expected)",
        identity,
    )


def jose_checker(
    alg: str, key: CertificatePublicKeyTypes, *, entry: str, identity: str | None
) -> SignatureCheck:
    """The check for a JOSE ``alg`` (RFC 7518 / 8037) with ``key``; the pairing is fixed so that a
    signature cannot be read under an algorithm its signer did not choose."""
    if alg == "ES256" and isinstance(key, ec.EllipticCurvePublicKey) and isinstance(key.curve, ec.SECP256R1):
        return _p1363_check(key, 32, _ECDSA_SHA256)
    if alg == "ES384" and isinstance(key, ec.EllipticCurvePublicKey) and isinstance(key.curve, ec.SECP384R1):
        return _p1363_check(key, 48, _ECDSA_SHA384)
    if alg == "RS256" and isinstance(key, rsa.RSAPublicKey) and key.key_size < MIN_RSA_BITS:
        raise VerificationFailed(
            Reason.UNSUPPORTED_KEY,
            f"{entry}: the leaf's RSA key has {key.key_size} bits; cs1 requires at least {MIN_RSA_BITS}",
            identity,
        )
    if alg == "RS256" and isinstance(key, rsa.RSAPublicKey):
        return checker_for(key, entry=entry, identity=identity)
    if alg == "EdDSA" and isinstance(key, ed25519.Ed25519PublicKey):
        return key.verify
    raise VerificationFailed(
        Reason.UNSUPPORTED_KEY,
        f"{entry}: algorithm {alg} does not fit the signing key ({_describe(key)}); "
        "expected ES256 with P-256, ES384 with P-384, RS256 with RSA or EdDSA with Ed25519",
        identity,
    )


def _p1363_check(key: ec.EllipticCurvePublicKey, size: int, algorithm: ec.ECDSA) -> SignatureCheck:
    def check(signature: bytes, data: bytes) -> None:
        # JWS's fixed-size r || s; cryptography verifies DER.  Any other length is malformed.
        if len(signature) != 2 * size:
            raise InvalidSignature(f"an ECDSA signature must be {2 * size} bytes, not {len(signature)}")
        r = int.from_bytes(signature[:size], "big")
        s = int.from_bytes(signature[size:], "big")
        key.verify(encode_dss_signature(r, s), data, algorithm)

    return check


def _describe(key: CertificatePublicKeyTypes) -> str:
    if isinstance(key, ec.EllipticCurvePublicKey):
        return f"ECDSA {key.curve.name}"
    if isinstance(key, rsa.RSAPublicKey):
        return f"RSA {key.key_size}"
    if isinstance(key, ed25519.Ed25519PublicKey):
        return "Ed25519"
    return type(key).__name__


def is_valid(check: SignatureCheck, signature: bytes, data: bytes) -> bool:
    try:
        check(signature, data)
    except InvalidSignature:
        return False
    return True
