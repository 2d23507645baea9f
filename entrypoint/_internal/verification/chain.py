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


def check_leaf_validity(leaf: x509.Certificate, at: dt.datetime, *, entry: str, identity: str | None) -> None:
    """Without the chain, the leaf's own validity must still hold at ``at``: skipping the trust
    check must not make an expired (or not yet valid) key good."""
    if not leaf.not_valid_before_utc <= at <= leaf.not_valid_after_utc:
        raise VerificationFailed(
            Reason.CHAIN_UNTRUSTED,
            f"{entry}: the certificate is not valid at {_rfc3339(at)} (valid "
            f"{_rfc3339(leaf.not_valid_before_utc)} to {_rfc3339(leaf.not_valid_after_utc)})",
            identity,
        )


def check_signed_within_validity(
    leaf: x509.Certificate, signed_at: int, *, entry: str, identity: str | None
) -> None:
    """A signature claiming a time when its key was not certified is not vouched for by the chain,
    whatever time the chain itself is checked at.  RFC 5280's validity bounds are inclusive."""
    # Integers throughout: ``signed_at`` comes from the message and may exceed any datetime.
    start = int(leaf.not_valid_before_utc.timestamp())
    end = int(leaf.not_valid_after_utc.timestamp())
    if not start <= signed_at <= end:
        raise VerificationFailed(
            Reason.CHAIN_UNTRUSTED,
            f"{entry}: signed at {_unix(signed_at)}, outside the certificate's validity "
            f"({_rfc3339(leaf.not_valid_before_utc)} to {_rfc3339(leaf.not_valid_after_utc)})",
            identity,
        )


def _rfc3339(at: dt.datetime) -> str:
    return at.astimezone(dt.UTC).isoformat().replace("+00:00", "Z")


def _unix(seconds: int) -> str:
    try:
        return _rfc3339(dt.datetime.fromtimestamp(seconds, dt.UTC))
    except (OverflowError, ValueError, OSError):
        return f"Unix time {seconds}"
