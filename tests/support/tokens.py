"""A Kubernetes service-account token issuer for offline tests: a key, its JWKS, and bound tokens whose
claims each test chooses (the layout of a real pod-bound token, as the API server's TokenRequest
issues it).  Online tests use :class:`entrypoint.testing.kube.KubeAPIServer` instead.
"""

from __future__ import annotations

import base64
import hashlib
import time
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from jwt.algorithms import ECAlgorithm, RSAAlgorithm

from entrypoint.verify import KubeJwks

ISSUER = "https://kubernetes.default.svc.cluster.local"
NS, TR, SA = "builds", "build-1", "builder"
POD, POD_UID = f"{TR}-pod", "7c4a1f0e-2b6d-4f1e-9a3c-5d8e6f7a8b9c"
NOW = int(time.time())


def point(key: Any) -> bytes:
    """What the compact format carries of a key: its uncompressed P-256 point."""
    return bytes(
        key.public_key().public_bytes(
            serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
        )
    )


def spki(key: Any) -> bytes:
    return key.public_key().public_bytes(  # type: ignore[no-any-return]
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def audience(signing_key: Any) -> str:
    return "signed-entrypoint:spki-sha256:" + hashlib.sha256(spki(signing_key)).hexdigest()


class Issuer:
    """A cluster's service-account token issuer: a key, its JWKS, and tokens with any claims."""

    def __init__(self, alg: str = "ES256", issuer: str = ISSUER) -> None:
        self.alg = alg
        self.issuer = issuer
        self.key: Any = (
            ec.generate_private_key(ec.SECP256R1())
            if alg == "ES256"
            else rsa.generate_private_key(public_exponent=65537, key_size=2048)
        )
        self.kid = base64.urlsafe_b64encode(hashlib.sha256(spki(self.key)).digest()).rstrip(b"=").decode()

    def jwks(self) -> KubeJwks:
        algorithm = ECAlgorithm if self.alg == "ES256" else RSAAlgorithm
        jwk = algorithm.to_jwk(self.key.public_key(), as_dict=True)
        return KubeJwks(self.issuer, {"keys": [{"use": "sig", "kid": self.kid, "alg": self.alg, **jwk}]})

    def claims(self, signing_key: Any, **changes: Any) -> dict[str, Any]:
        claims: dict[str, Any] = {
            "aud": [audience(signing_key)],
            "exp": NOW + 600,
            "iat": NOW - 5,
            "nbf": NOW - 5,
            "iss": self.issuer,
            "jti": "2f3a",
            "sub": f"system:serviceaccount:{NS}:{SA}",
            "kubernetes.io": {
                "namespace": NS,
                "serviceaccount": {"name": SA, "uid": "sa-uid"},
                "pod": {"name": POD, "uid": POD_UID},
                "node": {"name": "node-1", "uid": "node-uid"},
            },
        }
        claims.update(changes)
        return {k: v for k, v in claims.items() if v is not None}

    def token(self, signing_key: Any, *, headers: dict[str, Any] | None = None, **changes: Any) -> str:
        return jwt.encode(
            self.claims(signing_key, **changes),
            self.key,
            algorithm=self.alg,
            headers={"kid": self.kid, **(headers or {})},
        )
