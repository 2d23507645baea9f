"""The compact wire format `cs1` (docs/compact-format.md): one signature per termination message.

Unlike Tekton's format, nothing is appended per results phase; instead every write of the
termination file is *sealed*: the previous SIGNATURE entry is replaced by one over a statement of
everything the message then holds.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.hazmat.primitives.asymmetric.padding import PKCS1v15
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from entrypoint._internal.formats.compact import SIGNATURE_KEY, SignatureValue, b64url, statement
from entrypoint._internal.signing.errors import SigningError
from entrypoint._internal.signing.identity import Identity
from entrypoint.termination import ResultType, RunResult

_TASK = int(ResultType.TASK_RUN_RESULT)


def chain_der(identity: Identity) -> bytes:
    return b"".join(c.public_bytes(Encoding.DER) for c in identity.chain)


def token_material(identity: Identity) -> bytes:
    key = identity.key
    if not isinstance(key, ec.EllipticCurvePrivateKey) or not isinstance(key.curve, ec.SECP256R1):
        raise SigningError("the compact format carries token identities with P-256 keys only")
    point = key.public_key().public_bytes(Encoding.X962, PublicFormat.UncompressedPoint)
    return f"{b64url(point)}:{identity.token}".encode("ascii")


def sign_jose(identity: Identity, data: bytes) -> tuple[str, bytes]:
    """Sign ``data`` and name the algorithm as JOSE does (RFC 7518 / 8037); ECDSA as raw r||s."""
    key = identity.key
    if isinstance(key, ec.EllipticCurvePrivateKey):
        size = (key.curve.key_size + 7) // 8
        digest: hashes.HashAlgorithm
        if isinstance(key.curve, ec.SECP256R1):
            alg, digest = "ES256", hashes.SHA256()
        elif isinstance(key.curve, ec.SECP384R1):
            alg, digest = "ES384", hashes.SHA384()
        else:
            raise SigningError(f"unsupported ECDSA curve for the compact format: {key.curve.name}")
        r, s = decode_dss_signature(key.sign(data, ec.ECDSA(digest)))
        return alg, r.to_bytes(size, "big") + s.to_bytes(size, "big")
    if isinstance(key, rsa.RSAPrivateKey):
        return "RS256", key.sign(data, PKCS1v15(), hashes.SHA256())
    if isinstance(key, ed25519.Ed25519PrivateKey):
        return "EdDSA", key.sign(data)
    raise SigningError(f"unsupported signing key type: {type(key).__name__}")


class CompactFormat:
    name = "compact"
    seals = True

    def __init__(self, step: str, clock: Callable[[], float] = time.time) -> None:
        self.step = step
        self.clock = clock

    def sign(self, entries: list[RunResult], identity: Identity) -> list[RunResult]:
        return []  # nothing per phase: each write of the message is sealed instead

    def warm_up(self, identity: Identity) -> None:
        self.seal_options([], identity, frozenset())

    def seal_options(
        self, entries: list[RunResult], identity: Identity, embedded_elsewhere: frozenset[bytes]
    ) -> list[list[RunResult]]:
        """The message's entries with a fresh SIGNATURE: first with the chain embedded, then, if
        an earlier step of the pod embedded the same chain (its SHA-256 is in
        ``embedded_elsewhere``), with a reference to it instead."""
        if identity.token:
            # Each step has its own key and token: nothing an earlier step embedded to refer to.
            chain, kinds = token_material(identity), ("k8s-sat", "")
        else:
            chain, kinds = chain_der(identity), ("x509", "x509-ref")
        digest = hashlib.sha256(chain).digest()
        signed_at = int(self.clock())
        body = [e for e in entries if e.key != SIGNATURE_KEY]
        stmt = statement(body, step=self.step, signed_at=signed_at, material_digest=digest)
        alg, signature = sign_jose(identity, stmt)
        options = []
        for kind, material in zip(kinds, (chain, digest), strict=False):
            if not kind or (kind == "x509-ref" and digest not in embedded_elsewhere):
                continue
            value = SignatureValue(self.step, signed_at, alg, signature, kind, material).encode()
            options.append([*body, RunResult(SIGNATURE_KEY, value, _TASK)])
        return options
