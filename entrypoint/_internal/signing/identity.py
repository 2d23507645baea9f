"""An identity: a private key and the evidence that proves who holds it.

The evidence is the backend's business (an X.509-SVID chain, a pod-bound token, ...): the wire
formats ask it for their entries, and the identity helper process carries it as opaque bytes
(:mod:`entrypoint._internal.backends`).  Here is only what every identity has: a key that signs
and a time after which it must be fetched again.
"""

from __future__ import annotations

import datetime as dt
from typing import Protocol

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa
from cryptography.hazmat.primitives.asymmetric.types import PrivateKeyTypes

from entrypoint._internal.signing.errors import SigningError
from entrypoint.termination import RunResult


class Evidence(Protocol):
    """What a backend shows for a key; each method serves one wire format or the helper's pipe."""

    backend: str  # the backend's flag value: which package decodes it again
    refresh_within: float  # fetched again before signing when closer to not_after than this

    @property
    def not_after(self) -> dt.datetime:
        """Aware, UTC: the end of the evidence's validity."""
        ...

    def to_bytes(self) -> bytes:
        """Opaque to everyone but the backend's ``evidence.decode``."""
        ...

    def tekton_entries(self, identity: Identity) -> tuple[list[RunResult], list[RunResult]]:
        """Tekton's format: the entries the evidence travels in, and those of them to sign."""
        ...

    def compact_material(self, identity: Identity) -> tuple[str, bytes, str]:
        """The compact format: material kind, material, and the kind that refers to the same
        material by digest when an earlier step embedded it (empty: it cannot be referred to)."""
        ...

    def warm_up(self) -> None:
        """Exercise the slow first uses of the encoding (before the command ends)."""
        ...


class Identity:
    """A private key and the evidence for it, as one backend's fetch returns them."""

    def __init__(self, key: PrivateKeyTypes, evidence: Evidence, source: str) -> None:
        self.key = key
        self.evidence = evidence
        self.source = source  # e.g. the SPIFFE ID, for log lines (never the key or the token)

    def __repr__(self) -> str:
        # Never the key or the token: an identity may end up in a log line or a traceback.
        return f"Identity({self.evidence.backend}, {self.source!r})"

    @property
    def not_after(self) -> dt.datetime:
        return self.evidence.not_after

    @property
    def refresh_within(self) -> float:
        return self.evidence.refresh_within

    def expires_within(self, seconds: float) -> bool:
        now = dt.datetime.now(dt.UTC)
        return self.not_after <= now + dt.timedelta(seconds=seconds)

    def public_key_pem(self) -> str:
        return (
            self.key.public_key()
            .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
            .decode("ascii")
        )

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
