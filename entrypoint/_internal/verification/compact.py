"""The compact format, ``cs2`` and ``cs1`` (docs/compact-format.md §6): one SIGNATURE entry whose
statement binds every entry of the message (cs2: all but the internal ones, plus the exit code and
start time the TaskRun records), the step, the signing time and the identity material.

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
    TAGS,
    UNSTATED_KEYS,
    CompactFormatError,
    SignatureValue,
    controller_view,
    observed_in,
    statement_for,
)
from entrypoint._internal.verification.reasons import Reason, VerificationFailed, fail_closed
from entrypoint._internal.verification.request import Outcome, Request
from entrypoint._internal.verification.signatures import is_valid, jose_checker
from entrypoint.termination import RunResult

NAME = "compact"
_PREFIXES = tuple(tag + "." for tag in TAGS)


def is_signing_entry(entry: RunResult) -> bool:
    # Whatever its type: the statement leaves out every SIGNATURE entry and log record, so none is
    # a result.
    return entry.key in UNSTATED_KEYS


def recognises(entries: Sequence[RunResult]) -> bool:
    return any(e.key == SIGNATURE_KEY and e.value.startswith(_PREFIXES) for e in entries)


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
    logs = {e.key for e in entries if e.key in UNSTATED_KEYS and e.key != SIGNATURE_KEY}
    for name in logs - set(backend.log_entries):
        # No statement lists a log record: only the backend that logs may carry one.
        raise VerificationFailed(
            Reason.MESSAGE_INVALID, f"{name}: a {backend.name} message carries no transparency log record"
        )
    check_identity = backend.module("verify").compact_identity
    if backend.log_entries:
        # Its log record commits to the statement, which the backend rebuilds from the message.
        identity, key = check_identity(value, request, message=entries)
    else:
        identity, key = check_identity(value, request)

    # (5) The step, when the caller knows which one the message must come from.
    _check_step(value, request, identity)

    # (6) The statement over every entry, with the algorithm the key allows.
    view = _check_statement(entries, value, key, identity)

    # (7) cs2: the step's end as the message and the TaskRun record it.
    if value.tag != TAG:
        _check_step_state(view, value, request, identity)
    return Outcome(
        identity=identity,
        signed_keys=tuple(e.key for e in view if value.tag == TAG or e.type != _INTERNAL),
        signing_keys=frozenset({SIGNATURE_KEY, *logs}),
        step=value.step,
        signed_at=value.signed_at,
        version=value.tag,
        exit_code=value.exit_code,
        started_at=value.started_at,
        backend=backend.name,
    )


_INTERNAL = 3


def _check_step_state(view: Sequence[RunResult], value: SignatureValue, request: Request, uri: str) -> None:
    """The exit code and start time cs2 binds must be the ones Tekton records: those the message's
    own ExitCode/StartedAt entries give (they are not in the statement, so they are checked here),
    and those the caller read from the TaskRun or pod."""
    in_entries = observed_in(view)
    observed = (request.exit_code, request.started_at)
    for what, reason, signed, from_entries, from_caller in (
        ("exit code", Reason.EXIT_CODE_MISMATCH, value.exit_code, in_entries[0], observed[0]),
        ("start time", Reason.START_TIME_MISMATCH, value.started_at, in_entries[1], observed[1]),
    ):
        for seen, where in ((from_entries, "the message's entries"), (from_caller, "the step's state")):
            if seen is not None and signed is not None and seen != signed:
                raise VerificationFailed(
                    reason, f"{SIGNATURE_KEY}: signed with {what} {signed}, but {where} record {seen}", uri
                )
            if seen is not None and signed is None and where == "the message's entries":
                # The signer derives the bound value from these entries: one it did not bind was
                # added after signing.
                raise VerificationFailed(
                    reason,
                    f"{SIGNATURE_KEY}: the message records {what} {seen}, which the signature does not bind",
                    uri,
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
        data = statement_for(value, view)
        if not is_valid(check, value.signature, data):
            hint = ""
            if value.tag == TAG and not any(e.type == _INTERNAL for e in view):
                hint = (
                    "; this cs1 message has no internal entries, as in a TaskRun's copy: cs1 binds "
                    "them, so it verifies only from the pod's termination message"
                )
            raise VerificationFailed(
                Reason.SIGNATURE_INVALID,
                f"{SIGNATURE_KEY}: invalid signature: it does not verify over the statement of the "
                "message's entries (an entry was changed, retyped, added, dropped or swapped, or the "
                f"signature itself was altered){hint}",
                uri,
            )
    return view
