"""The SPIRE backend's evidence: the X.509-SVID chain that certifies the key.

Tekton's format carries it as ``SVID`` (PEM, the leaf then any intermediates); the compact format
as the DER chain (``x509``), or as its SHA-256 (``x509-ref``) when an earlier step of the same pod
embedded the same chain.
"""

from __future__ import annotations

import base64
import datetime as dt
import struct
from collections.abc import Sequence

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric.types import PrivateKeyTypes
from cryptography.hazmat.primitives.serialization import Encoding

from entrypoint._internal.formats.entries import ResultType, RunResult
from entrypoint._internal.signing.errors import SigningError
from entrypoint._internal.signing.identity import Identity

BACKEND = "spire"
SVID_ENTRY = "SVID"
# An SVID lives ~1 h: fetched again only when about to expire.
REFRESH_WITHIN = 30.0
_TASK = int(ResultType.TASK_RUN_RESULT)
_U32 = struct.Struct("!I")


class X509Evidence:
    """A certificate chain whose leaf certifies the signing key."""

    backend = BACKEND
    refresh_within = REFRESH_WITHIN

    def __init__(self, chain: Sequence[x509.Certificate]) -> None:
        if not chain:
            raise SigningError("returned workload svid does not have certificates")
        self.chain = tuple(chain)

    @property
    def leaf(self) -> x509.Certificate:
        return self.chain[0]

    @property
    def not_after(self) -> dt.datetime:
        return self.leaf.not_valid_after_utc

    def leaf_pem(self) -> str:
        """Go's ``pem.EncodeToMemory`` of the leaf: 64-character lines, trailing newline."""
        return _pem(self.leaf)

    def chain_pem(self) -> str:
        """The leaf, then any intermediates.  Tekton emits the leaf only, so a deployment whose
        SPIRE server has an upstream CA can never be verified from the bundle's roots; Tekton's
        verifier reads the first certificate and ignores the rest, so appending stays compatible."""
        return "".join(_pem(c) for c in self.chain)

    def chain_der(self) -> bytes:
        return b"".join(c.public_bytes(Encoding.DER) for c in self.chain)

    def to_bytes(self) -> bytes:
        return b"".join(_U32.pack(len(d)) + d for d in (c.public_bytes(Encoding.DER) for c in self.chain))

    def tekton_entries(self, identity: Identity) -> tuple[list[RunResult], list[RunResult]]:
        return [RunResult(SVID_ENTRY, self.chain_pem(), _TASK)], []

    def compact_material(self, identity: Identity) -> tuple[str, bytes, str]:
        return "x509", self.chain_der(), "x509-ref"

    def warm_up(self) -> None:
        self.chain_pem()


def decode(data: bytes) -> X509Evidence:
    """:meth:`X509Evidence.to_bytes` read back (length-prefixed DER certificates)."""
    chain, view = [], memoryview(data)
    while view:
        size = _U32.unpack(view[:4])[0]
        chain.append(x509.load_der_x509_certificate(bytes(view[4 : 4 + size])))
        view = view[4 + size :]
    return X509Evidence(chain)


def x509_identity(key: PrivateKeyTypes, chain: Sequence[x509.Certificate], source: str) -> Identity:
    """An identity from a key and the SVID chain that certifies it."""
    return Identity(key, X509Evidence(chain), source)


def _pem(cert: x509.Certificate) -> str:
    body = base64.b64encode(cert.public_bytes(Encoding.DER)).decode()
    lines = [body[i : i + 64] for i in range(0, len(body), 64)]
    return (
        "-----BEGIN CERTIFICATE-----\n" + "".join(f"{ln}\n" for ln in lines) + "-----END CERTIFICATE-----\n"
    )
