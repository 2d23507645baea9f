"""One signature over one canonical value (spec §7.6), checked with the SVID's public key.

The data is the canonical value's UTF-8 bytes; ECDSA and RSA hash it with SHA-256 (Tekton signs
the digest, which is the same thing), Ed25519 signs it directly ("pure"), as Tekton's verifier
expects.  Any other key type cannot verify anything and fails the message.
"""

from __future__ import annotations

from collections.abc import Callable

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa
from cryptography.hazmat.primitives.asymmetric.types import CertificatePublicKeyTypes

from entrypoint._internal.verification.reasons import Reason, VerificationFailed

# Raises InvalidSignature when the signature does not verify.
SignatureCheck = Callable[[bytes, bytes], None]

# Immutable parameter objects, built once: a verifier checks thousands of signatures a second.
_ECDSA_SHA256 = ec.ECDSA(hashes.SHA256())
_SHA256 = hashes.SHA256()
_PKCS1V15 = padding.PKCS1v15()


def checker_for(key: CertificatePublicKeyTypes, *, entry: str, identity: str | None) -> SignatureCheck:
    if isinstance(key, ec.EllipticCurvePublicKey):
        ec_key = key
        return lambda signature, data: ec_key.verify(signature, data, _ECDSA_SHA256)
    if isinstance(key, rsa.RSAPublicKey):
        rsa_key = key
        return lambda signature, data: rsa_key.verify(signature, data, _PKCS1V15, _SHA256)
    if isinstance(key, ed25519.Ed25519PublicKey):
        return key.verify
    raise VerificationFailed(
        Reason.UNSUPPORTED_KEY,
        f"{entry}: unsupported key type: {type(key).__name__} (ECDSA, RSA or Ed25519 expected)",
        identity,
    )


def is_valid(check: SignatureCheck, signature: bytes, data: bytes) -> bool:
    try:
        check(signature, data)
    except InvalidSignature:
        return False
    return True
