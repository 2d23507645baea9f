"""An identity: a private key and the material that proves who holds it.

Either a certificate chain (an X.509-SVID: the leaf certifies the key) or a token (a pod-bound
Kubernetes service-account JWT whose audience names the key's digest).
"""

from __future__ import annotations

import base64
import datetime as dt
from collections.abc import Sequence

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa
from cryptography.hazmat.primitives.asymmetric.types import PrivateKeyTypes

from entrypoint._internal.signing.errors import SigningError

SVID_REFRESH_WITHIN = 30.0
TOKEN_REFRESH_WITHIN = 480.0


class Identity:
    def __init__(
        self,
        key: PrivateKeyTypes,
        chain: Sequence[x509.Certificate],
        source: str,
        *,
        token: str = "",
        token_expires: dt.datetime | None = None,
    ) -> None:
        if not chain and not token:
            raise SigningError("returned workload svid does not have certificates")
        if token and token_expires is None:
            raise SigningError("a token identity needs the token's expiry time")
        self.key = key
        self.chain = tuple(chain)
        self.source = source  # e.g. the SPIFFE ID, for log lines (never the key or the token)
        self.token = token
        self._token_expires = token_expires
        # Fetched again before signing when closer to expiry than this.  A token lives only 10
        # minutes and must still be valid when the controller verifies it online (TokenReview)
        # after the step, so it is renewed unless most of its life is left; an SVID lives ~1 h.
        self.refresh_within = TOKEN_REFRESH_WITHIN if token else SVID_REFRESH_WITHIN

    def __repr__(self) -> str:
        # Never the key or the token: an identity may end up in a log line or a traceback.
        kind = "token" if self.token else "x509"
        return f"Identity({kind}, {self.source!r})"

    @property
    def leaf(self) -> x509.Certificate:
        if not self.chain:
            raise SigningError(f"the {self.source} identity has no certificate")
        return self.chain[0]

    @property
    def not_after(self) -> dt.datetime:
        if self._token_expires is not None:
            return self._token_expires
        return self.leaf.not_valid_after_utc

    def public_key_pem(self) -> str:
        return (
            self.key.public_key()
            .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
            .decode("ascii")
        )

    def expires_within(self, seconds: float) -> bool:
        now = dt.datetime.now(dt.UTC)
        return self.not_after <= now + dt.timedelta(seconds=seconds)

    def leaf_pem(self) -> str:
        """Go's ``pem.EncodeToMemory`` of the leaf: 64-character lines, trailing newline."""
        return _pem(self.leaf)

    def chain_pem(self) -> str:
        """The leaf, then any intermediates.  Tekton emits the leaf only, so a deployment whose
        SPIRE server has an upstream CA can never be verified from the bundle's roots; Tekton's
        verifier reads the first certificate and ignores the rest, so appending stays compatible."""
        return "".join(_pem(c) for c in self.chain)

    def sign(self, data: bytes) -> bytes:
        """Sign as Tekton does: SHA-256, ECDSA (DER) or RSA PKCS#1 v1.5.  Ed25519 signs the data
        itself (pure), which is what Tekton's verifier checks; Tekton's own signer fails there."""
        key = self.key
        if isinstance(key, ec.EllipticCurvePrivateKey):
            return key.sign(data, ec.ECDSA(hashes.SHA256()))
        if isinstance(key, rsa.RSAPrivateKey):
            return key.sign(data, padding.PKCS1v15(), hashes.SHA256())
        if isinstance(key, ed25519.Ed25519PrivateKey):
            return key.sign(data)
        raise SigningError(f"unsupported signing key type: {type(key).__name__}")


def _pem(cert: x509.Certificate) -> str:
    body = base64.b64encode(cert.public_bytes(serialization.Encoding.DER)).decode()
    lines = [body[i : i + 64] for i in range(0, len(body), 64)]
    return (
        "-----BEGIN CERTIFICATE-----\n" + "".join(f"{ln}\n" for ln in lines) + "-----END CERTIFICATE-----\n"
    )
