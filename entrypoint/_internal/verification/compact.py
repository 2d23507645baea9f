"""The compact format `cs1` (docs/compact-format.md §6): one SIGNATURE entry whose statement binds
every entry of the message, the step, the signing time and the identity material.

The checks run in the document's order, each failing closed with its own reason.  Checks (2)-(4),
the material and its trust, are the backend's (its ``verify`` module, found by material kind).
"""

from __future__ import annotations

from collections.abc import Sequence

from cryptography.hazmat.primitives.asymmetric.types import CertificatePublicKeyTypes

from entrypoint._internal.backends import for_compact_kind
from entrypoint._internal.formats.compact import (
    SIGNATURE_KEY,
    TAG,
    CompactFormatError,
    SignatureValue,
    controller_view,
    statement_of_view,
)
from entrypoint._internal.verification.reasons import Reason, VerificationFailed, fail_closed
from entrypoint._internal.verification.request import Outcome, Request
from entrypoint._internal.verification.signatures import is_valid, jose_checker
from entrypoint.termination import RunResult

NAME = "compact"
_PREFIX = TAG + "."


def is_signing_entry(entry: RunResult) -> bool:
    # Whatever its type: the statement leaves out every SIGNATURE entry, so none is a result.
    return entry.key == SIGNATURE_KEY


def recognises(entries: Sequence[RunResult]) -> bool:
    return any(e.key == SIGNATURE_KEY and e.value.startswith(_PREFIX) for e in entries)


def verify(entries: Sequence[RunResult], request: Request) -> Outcome:
    # (1) Exactly one SIGNATURE, in the cs1 syntax.
    with fail_closed(Reason.MESSAGE_INVALID, SIGNATURE_KEY):
        value = _signature_value(entries)
        # The statement does not bind resourceName (nothing sets it since PipelineResources went);
        # a signer never writes one, so an entry that has one was changed after signing.
        for e in entries:
            if e.resource_name:
                raise VerificationFailed(
                    Reason.MESSAGE_INVALID,
                    f"{SIGNATURE_KEY}: entry {e.key!r} has a resourceName, which cs1 messages never carry",
                )
            # Beyond 2^53, RFC 8785 would write the number as a double; cs1 writes exact digits.
            if not -(2**53) < e.type < 2**53:
                raise VerificationFailed(
                    Reason.MESSAGE_INVALID,
                    f"{SIGNATURE_KEY}: entry {e.key!r} has type {e.type}, outside the range cs1 can bind",
                )

    # (2)-(4) belong to the backend whose material the signature carries.
    backend = for_compact_kind(value.material_kind)
    if backend is None:  # the codec accepts only the kinds of known backends
        raise VerificationFailed(Reason.MESSAGE_INVALID, f"{SIGNATURE_KEY}: unknown identity material")
    identity, key = backend.module("verify").compact_identity(value, request)

    # (5) The step, when the caller knows which one the message must come from.
    _check_step(value, request, identity)

    # (6) The statement over every entry, with the algorithm the key allows.
    view = _check_statement(entries, value, key, identity)
    return Outcome(
        identity=identity,
        signed_keys=tuple(e.key for e in view),
        signing_keys=frozenset({SIGNATURE_KEY}),
        step=value.step,
        signed_at=value.signed_at,
    )


def _signature_value(entries: Sequence[RunResult]) -> SignatureValue:
    found = [e for e in entries if e.key == SIGNATURE_KEY]
    if len(found) != 1:
        # parse_message keeps one per key; several here come from a caller's own list of entries,
        # and which of them the controller would keep is not for this check to guess.
        raise VerificationFailed(
            Reason.MESSAGE_INVALID, f"{SIGNATURE_KEY}: {len(found)} entries found, exactly one is allowed"
        )
    if found[0].type != 1:
        raise VerificationFailed(
            Reason.MESSAGE_INVALID,
            f"{SIGNATURE_KEY}: the entry has type {found[0].type}; cs1 requires type 1",
        )
    try:
        return SignatureValue.decode(found[0].value)
    except CompactFormatError as exc:
        raise VerificationFailed(Reason.MESSAGE_INVALID, _prefixed(str(exc))) from exc


def _prefixed(text: str) -> str:
    return text if text.startswith(SIGNATURE_KEY + ":") else f"{SIGNATURE_KEY}: {text}"


def _check_step(value: SignatureValue, request: Request, uri: str) -> None:
    if request.step is not None and value.step != request.step:
        claimed = f"step {value.step}" if value.step else "no step"
        raise VerificationFailed(
            Reason.STEP_MISMATCH,
            f"{SIGNATURE_KEY}: signed as {claimed}, but step {request.step} was expected",
            uri,
        )


def _check_statement(
    entries: Sequence[RunResult], value: SignatureValue, key: CertificatePublicKeyTypes, uri: str
) -> list[RunResult]:
    with fail_closed(Reason.UNSUPPORTED_KEY, SIGNATURE_KEY, uri):
        check = jose_checker(value.alg, key, entry=SIGNATURE_KEY, identity=uri)
    with fail_closed(Reason.SIGNATURE_INVALID, SIGNATURE_KEY, uri):
        view = controller_view(entries)
        data = statement_of_view(
            view, step=value.step, signed_at=value.signed_at, material_digest=value.material_digest
        )
        if not is_valid(check, value.signature, data):
            raise VerificationFailed(
                Reason.SIGNATURE_INVALID,
                f"{SIGNATURE_KEY}: invalid signature: it does not verify over the statement of the "
                "message's entries (an entry was changed, retyped, added, dropped or swapped, or the "
                "signature itself was altered)",
                uri,
            )
    return view
