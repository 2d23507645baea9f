"""The service-account token signing keys of the Kubernetes API double, as kube-apiserver keeps them.

A key's ``kid`` is base64url(SHA-256(SPKI DER)), as the apiserver derives it; the JWKS it serves
lists every key still trusted (the signing one and any kept by a rotation).
"""

from __future__ import annotations

import base64
import hashlib
from dataclasses import dataclass
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from jwt.algorithms import ECAlgorithm, RSAAlgorithm

ALGORITHMS: frozenset[str] = frozenset({"RS256", "ES256"})

SigningPrivateKey = rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey


@dataclass(frozen=True)
class SigningKey:
    """One token signing key: its ``kid``, algorithm and private key."""

    kid: str
    alg: str
    private: SigningPrivateKey

    def __repr__(self) -> str:
        return f"SigningKey(kid={self.kid!r}, alg={self.alg!r})"

    @classmethod
    def generate(cls, alg: str) -> SigningKey:
        if alg not in ALGORITHMS:
            raise ValueError(f"unsupported signing algorithm {alg!r}; expected one of {sorted(ALGORITHMS)}")
        private: SigningPrivateKey = (
            rsa.generate_private_key(public_exponent=65537, key_size=2048)
            if alg == "RS256"
            else ec.generate_private_key(ec.SECP256R1())
        )
        spki = private.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        kid = base64.urlsafe_b64encode(hashlib.sha256(spki).digest()).rstrip(b"=").decode("ascii")
        return cls(kid=kid, alg=alg, private=private)

    def jwk(self) -> dict[str, Any]:
        public = self.private.public_key()
        if isinstance(public, rsa.RSAPublicKey):
            fields = RSAAlgorithm.to_jwk(public, as_dict=True)
        else:
            fields = ECAlgorithm.to_jwk(public, as_dict=True)
        assert isinstance(fields, dict)
        # PyJWT adds key_ops; the apiserver's JWKS has none (openidmetadata.go: use, kty, kid, alg and
        # the key's parameters).
        fields.pop("key_ops", None)
        return {"use": "sig", "kid": self.kid, "alg": self.alg, **fields}
