"""The SVID's chain of trust: leaf (plus any intermediates it came with) to the bundle's roots.

``cryptography``'s client verifier applies the Web PKI profile: validity at the given time,
CA constraints, key usage, clientAuth if an EKU is present, an AuthorityKeyIdentifier on every
issued certificate, and no Ed25519 or weak (< 2048-bit RSA) CA keys.  SPIRE's X509-SVIDs satisfy
it.  Tekton uses Go's defaults instead and always the current time, so an archived TaskRun fails
there once its (short-lived) SVID expires; here the caller picks the time.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

from cryptography import x509
from cryptography.x509.verification import PolicyBuilder, Store, VerificationError

from entrypoint._internal.verification.reasons import Reason, VerificationFailed


def check_chain(
    leaf: x509.Certificate,
    intermediates: Sequence[x509.Certificate],
    roots: Sequence[x509.Certificate],
    at: dt.datetime,
    *,
    entry: str,
    identity: str | None,
) -> None:
    if not roots:
        raise VerificationFailed(Reason.TRUST_UNAVAILABLE, "the trust bundle has no roots", identity)
    verifier = PolicyBuilder().store(Store(list(roots))).time(at).build_client_verifier()
    try:
        verifier.verify(leaf, list(intermediates))
    except VerificationError as exc:
        raise VerificationFailed(
            Reason.CHAIN_UNTRUSTED,
            f"{entry}: cert cannot be verified by provided roots at {_rfc3339(at)}: {exc}",
            identity,
        ) from exc


def _rfc3339(at: dt.datetime) -> str:
    return at.astimezone(dt.UTC).isoformat().replace("+00:00", "Z")
