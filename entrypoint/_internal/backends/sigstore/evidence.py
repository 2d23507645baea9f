"""The ``sigstore-keyless`` backend's evidence: the Fulcio leaf certificate and the binding.

Tekton's format carries the leaf as ``SIGSTORE_CERT`` (PEM) and the binding, with the step and
the signing time, as ``SIGSTORE_BINDING``, signed like a result; the compact format as
``fulcio:<base64url of binding NUL DER>``, the step and time being the statement's.  Only the leaf
travels: the trusted root holds Fulcio's intermediates and root.  Each step has its own key and
certificate, so there is nothing an earlier step embedded to refer to.
"""

from __future__ import annotations

import base64
import datetime as dt
import time

from entrypoint._internal.backends.sigstore.common import (
    BACKEND,
    BINDING_ENTRY,
    CERT_ENTRY,
    MATERIAL_KIND,
    Binding,
    compact_material,
)
from entrypoint._internal.formats.entries import ResultType, RunResult
from entrypoint._internal.signing.errors import SigningError
from entrypoint._internal.signing.identity import Identity

# A certificate lives ten minutes, and Rekor must integrate the entry while it is valid: one
# with less than this left is replaced before signing.
REFRESH_WITHIN = 60.0
_TASK = int(ResultType.TASK_RUN_RESULT)


def leaf_pem(der: bytes) -> str:
    body = base64.b64encode(der).decode("ascii")
    lines = [body[i : i + 64] for i in range(0, len(body), 64)]
    return "-----BEGIN CERTIFICATE-----\n" + "\n".join(lines) + "\n-----END CERTIFICATE-----\n"


class CertEvidence:
    """A Fulcio leaf for the signing key, and what the signatures say they are for."""

    backend = BACKEND
    refresh_within = REFRESH_WITHIN

    def __init__(self, leaf_der: bytes, binding: Binding, not_after: dt.datetime) -> None:
        if not leaf_der:
            raise SigningError("sigstore-keyless: the identity has no certificate")
        if not_after.tzinfo is None:
            raise SigningError("sigstore-keyless: the certificate's expiry has no time zone")
        self.leaf_der = leaf_der
        self.binding = binding  # with the step; the signing time is added per signature
        self.not_after = not_after.astimezone(dt.UTC)

    def to_bytes(self) -> bytes:
        head = f"{self.not_after.isoformat()}\0{self.binding.encode()}\0".encode("ascii")
        return head + self.leaf_der

    def tekton_entries(self, identity: Identity) -> tuple[list[RunResult], list[RunResult]]:
        binding = self.binding.with_step(self.binding.step, int(time.time()))
        signed = RunResult(BINDING_ENTRY, binding.encode(), _TASK)
        return [RunResult(CERT_ENTRY, leaf_pem(self.leaf_der), _TASK), signed], [signed]

    def compact_material(self, identity: Identity) -> tuple[str, bytes, str]:
        b = self.binding
        return (
            MATERIAL_KIND,
            compact_material(Binding(b.namespace, b.taskrun, b.pod, b.pod_uid), self.leaf_der),
            "",
        )

    def warm_up(self) -> None:
        pass


def decode(data: bytes) -> CertEvidence:
    """:meth:`CertEvidence.to_bytes` read back."""
    expires, binding, leaf = data.split(b"\0", 2)
    return CertEvidence(
        leaf, Binding.decode(binding.decode("ascii")), dt.datetime.fromisoformat(expires.decode("ascii"))
    )
