"""The ``oidc-sa-token`` backend's evidence: a pod-bound service-account token naming the key.

Tekton's format carries the public key as ``SA_TOKEN_KEY`` (PEM) and the token as ``SA_TOKEN``,
which is signed like a result so that it cannot be swapped for another token naming the same key;
the compact format as ``k8s-sat:<base64url P-256 point>:<JWT>``.  Each step has its own key and
token, so there is nothing an earlier step embedded to refer to.
"""

from __future__ import annotations

import datetime as dt

from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.types import PrivateKeyTypes
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from entrypoint._internal.backends.k8s_sat.common import BACKEND, KEY_ENTRY, MATERIAL_KIND, TOKEN_ENTRY
from entrypoint._internal.formats.compact import b64url
from entrypoint._internal.formats.entries import ResultType, RunResult
from entrypoint._internal.signing.errors import SigningError
from entrypoint._internal.signing.identity import Identity

# A token lives only 10 minutes and must still be valid when the controller verifies it online
# (TokenReview) after the step, so it is renewed unless most of its life is left.
REFRESH_WITHIN = 480.0
_TASK = int(ResultType.TASK_RUN_RESULT)


class TokenEvidence:
    """A pod-bound token whose audience names the SHA-256 of the signing key's SPKI."""

    backend = BACKEND
    refresh_within = REFRESH_WITHIN

    def __init__(self, token: str, expires: dt.datetime) -> None:
        if not token:
            raise SigningError("oidc-sa-token: the identity has no token")
        if expires.tzinfo is None:
            raise SigningError("oidc-sa-token: the token's expiry time has no time zone")
        self.token = token
        self.not_after = expires.astimezone(dt.UTC)

    def to_bytes(self) -> bytes:
        # A JWT has no spaces: the expiry, a space, the token.
        return f"{self.not_after.isoformat()} {self.token}".encode("ascii")

    def tekton_entries(self, identity: Identity) -> tuple[list[RunResult], list[RunResult]]:
        token = RunResult(TOKEN_ENTRY, self.token, _TASK)
        return [RunResult(KEY_ENTRY, identity.public_key_pem(), _TASK), token], [token]

    def compact_material(self, identity: Identity) -> tuple[str, bytes, str]:
        key = identity.key
        if not isinstance(key, ec.EllipticCurvePrivateKey) or not isinstance(key.curve, ec.SECP256R1):
            raise SigningError("the compact format carries token identities with P-256 keys only")
        point = key.public_key().public_bytes(Encoding.X962, PublicFormat.UncompressedPoint)
        return MATERIAL_KIND, f"{b64url(point)}:{self.token}".encode("ascii"), ""

    def warm_up(self) -> None:
        pass


def decode(data: bytes) -> TokenEvidence:
    """:meth:`TokenEvidence.to_bytes` read back."""
    expires, _, token = data.decode("ascii").partition(" ")
    return TokenEvidence(token, dt.datetime.fromisoformat(expires))


def token_identity(key: PrivateKeyTypes, token: str, expires: dt.datetime, source: str) -> Identity:
    """An identity from an ephemeral key and the token the API server issued for it."""
    return Identity(key, TokenEvidence(token, expires), source)
