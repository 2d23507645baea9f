"""Reason codes of a verdict, and the exception a failed check raises."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from enum import StrEnum

from entrypoint.errors import VerificationError


class Reason(StrEnum):
    """Why a message was (not) verified.  Each check has its own code so that callers can act on
    the cause (refetch trust, re-run the TaskRun, alert on tampering) without parsing messages."""

    VERIFIED = "Verified"
    MESSAGE_INVALID = "MessageInvalid"
    UNKNOWN_FORMAT = "UnknownFormat"
    SVID_MISSING = "SVIDMissing"
    SVID_INVALID = "SVIDInvalid"
    TRUST_UNAVAILABLE = "TrustUnavailable"
    MANIFEST_MISSING = "ManifestMissing"
    MANIFEST_INCOMPLETE = "ManifestIncomplete"
    IDENTITY_MISMATCH = "IdentityMismatch"
    CHAIN_UNTRUSTED = "ChainUntrusted"
    SIGNATURE_MISSING = "SignatureMissing"
    SIGNATURE_INVALID = "SignatureInvalid"
    UNSUPPORTED_KEY = "UnsupportedKey"
    # The compact format (docs/compact-format.md): a message replayed from another step, and an
    # x509-ref whose chain none of the companion messages embeds.
    STEP_MISMATCH = "StepMismatch"
    MATERIAL_UNRESOLVED = "MaterialUnresolved"
    # Empty entries, or one key with different values: controllers of different versions would
    # not read the same results from the message.
    AMBIGUOUS_ENTRIES = "AmbiguousEntries"
    # The message is signed in a format the caller does not accept (e.g. only compact).
    FORMAT_NOT_ALLOWED = "FormatNotAllowed"
    # The oidc-sa-token backend: the token or its key is malformed or missing; no trusted source
    # vouches for the token (signature, issuer, validity, TokenReview); it vouches for another key.
    TOKEN_INVALID = "TokenInvalid"  # noqa: S105  (reason codes, not secrets)
    TOKEN_UNTRUSTED = "TokenUntrusted"  # noqa: S105
    KEY_MISMATCH = "KeyMismatch"
    # The compact format cs2: the exit code or start time the signature binds is not what the
    # message or the TaskRun records for the step.
    EXIT_CODE_MISMATCH = "ExitCodeMismatch"
    START_TIME_MISMATCH = "StartTimeMismatch"
    # The sigstore-keyless backend: an unreadable certificate; an SCT that does not verify; no
    # transparency log record where one is required, or one that does not check out; a binding
    # (TaskRun, pod, step) other than the TaskRun's, or one its certificate's identity cannot make.
    CERTIFICATE_INVALID = "CertificateInvalid"
    SCT_INVALID = "SCTInvalid"
    LOG_MISSING = "LogMissing"
    LOG_INVALID = "LogInvalid"
    BINDING_MISMATCH = "BindingMismatch"
    # Whole TaskRuns (Verifier.verify_taskrun).
    RESULT_MISMATCH = "ResultMismatch"  # a status result no verified step message vouches for
    RESULT_UNSIGNED = "ResultUnsigned"  # a status result whose step's signature does not cover it
    MANIFEST_REUSED = "ManifestReused"  # Tekton's format: one step's manifest in another's message
    NOT_DONE = "NotDone"  # the TaskRun has not finished: nothing to judge yet
    UNVERIFIABLE = "Unverifiable"  # e.g. results from sidecar logs: no signature reaches the status
    OBJECT_INVALID = "ObjectInvalid"  # not a TaskRun (or Pod) object this verifier can read


class VerificationFailed(VerificationError):
    """A check failed.  ``identity`` is the SPIFFE ID read from the SVID, when one was read
    before the failure, so that a verdict can say who presented the bad message."""

    def __init__(self, reason: Reason, message: str, identity: str | None = None) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message
        self.identity = identity


@contextmanager
def fail_closed(reason: Reason, entry: str, identity: str | None = None) -> Iterator[None]:
    """An unexpected error inside a check fails that check, never passes it."""
    try:
        yield
    except VerificationFailed:
        raise
    except Exception as exc:
        raise VerificationFailed(
            reason, f"{entry}: unexpected error: {type(exc).__name__}: {exc}", identity
        ) from exc
