"""Tekton's signed-results format (§7.4), verified in the order of Tekton's ``VerifyTaskRunResults``
(§8.2) but deterministic, stricter where Tekton is lax (§10 item 30), and failing closed.

The signing entries are all type 1: ``SVID``, ``<key>.sig`` per signed result, ``RESULT_MANIFEST``
and ``RESULT_MANIFEST.sig``.  Only type-1 entries take part; others (e.g. an appended untyped
entry) are neither signed nor checked.  What stands in place of ``SVID`` and how it is checked is
the backend's (its ``verify`` module): with ``oidc-sa-token`` it is ``SA_TOKEN_KEY`` and
``SA_TOKEN`` (the token is signed like a result, so it has a ``.sig``).
"""

from __future__ import annotations

from collections.abc import Sequence

from entrypoint._internal.backends import BACKENDS, Backend, log_entry_names, tekton_entry_names
from entrypoint._internal.formats.paramvalue import canonical_value
from entrypoint._internal.go.json import Base64Error, decode_go_base64
from entrypoint._internal.verification.reasons import Reason, VerificationFailed
from entrypoint._internal.verification.reasons import fail_closed as _check
from entrypoint._internal.verification.request import Outcome, Request
from entrypoint._internal.verification.signatures import SignatureCheck, is_valid
from entrypoint.termination import ResultType, RunResult

NAME = "tekton"
MANIFEST = "RESULT_MANIFEST"
SIG_SUFFIX = ".sig"
_TASK = int(ResultType.TASK_RUN_RESULT)
# The manifest and every backend's evidence entries (SVID; SA_TOKEN_KEY, SA_TOKEN; ...).
_SIGNING_ENTRIES = frozenset({MANIFEST}) | tekton_entry_names()
_LOG_ENTRIES = log_entry_names()


def is_signing_entry(entry: RunResult) -> bool:
    return entry.type == _TASK and (entry.key in _SIGNING_ENTRIES or entry.key.endswith(SIG_SUFFIX))


def recognises(entries: Sequence[RunResult]) -> bool:
    return any(is_signing_entry(e) for e in entries)


def _utf8(text: str) -> bytes:
    # As the signer encodes: lone surrogates from undecodable input survive instead of failing.
    return text.encode("utf-8", "surrogatepass")


def _byte_order(key: str) -> bytes:
    return _utf8(key)


def verify(entries: Sequence[RunResult], request: Request) -> Outcome:
    # (1) Type-1 entries only, the last one per key winning, as the controller's map does.
    results: dict[str, RunResult] = {}
    for entry in entries:
        if entry.type == _TASK:
            results[entry.key] = entry

    # (2)-(6) belong to the backend whose evidence the message carries.
    backend = _backend_of(results)
    if request.step is not None and not backend.tekton_binds_step:
        # Asked to check the step, fail closed rather than pass a message that cannot show it.
        raise VerificationFailed(
            Reason.STEP_MISMATCH,
            f"step {request.step} was expected, but Tekton's format does not bind a message to its step",
            None,
        )
    for name in _LOG_ENTRIES - set(backend.log_entries):
        if name in results:
            # No signature covers a log record: only the backend that logs may carry one.
            raise VerificationFailed(
                Reason.MESSAGE_INVALID, f"{name}: a {backend.name} message carries no transparency log record"
            )

    def check_manifest(found: str | None) -> None:
        _check_manifest(results, found)

    identity, check, unsigned = backend.module("verify").tekton_identity(results, request, check_manifest)
    # (7) A signature for every type-1 key but the signatures and the evidence that is not signed
    # (the SVID; a token's key); so the manifest and type-1 keys it does not list are covered too.
    # Sorted, unlike Go's map order, so the same message always reports the same first failure.
    signed = _check_signatures(results, check, identity, skip=unsigned)
    used = {MANIFEST, *(e for e in backend.tekton_entries if e in results), *(k + SIG_SUFFIX for k in signed)}
    return Outcome(
        identity=identity, signed_keys=tuple(signed), signing_keys=frozenset(used), backend=backend.name
    )


def _backend_of(results: dict[str, RunResult]) -> Backend:
    """The first backend whose marker entry is there, else the first with any of its entries
    there (whose check then says which is missing); with none, the first backend (Tekton's "no
    SVID found")."""
    for backend in BACKENDS:
        if backend.tekton_entries[0] in results:
            return backend
    for backend in BACKENDS:
        if any(name in results for name in backend.tekton_entries):
            return backend
    return BACKENDS[0]


def _check_manifest(results: dict[str, RunResult], found: str | None) -> None:
    with _check(Reason.MANIFEST_INCOMPLETE, MANIFEST, found):
        manifest_entry = results.get(MANIFEST)
        if manifest_entry is None:
            raise VerificationFailed(
                Reason.MANIFEST_MISSING,
                f'{MANIFEST}: no manifest found in results (no type-1 entry "{MANIFEST}")',
                found,
            )
        manifest = canonical_value(manifest_entry.value)
        for listed in manifest.split(","):
            if listed and listed not in results:
                raise VerificationFailed(
                    Reason.MANIFEST_INCOMPLETE,
                    f"{MANIFEST}: no result found for {listed} but is part of the manifest {manifest}",
                    found,
                )


def _check_signatures(
    results: dict[str, RunResult], check: SignatureCheck, uri: str, *, skip: str | frozenset[str]
) -> list[str]:
    """A signature for every type-1 key but the signatures and ``skip`` (the evidence not signed)."""
    unsigned = frozenset({skip}) if isinstance(skip, str) else skip
    signed = sorted((k for k in results if k not in unsigned and not k.endswith(SIG_SUFFIX)), key=_byte_order)
    # One guard around the loop rather than one per entry: this is the verifier's hot path.
    with _check(Reason.SIGNATURE_INVALID, "signatures", uri):
        for key in signed:
            sig_key = key + SIG_SUFFIX
            sig_entry = results.get(sig_key)
            if sig_entry is None:
                raise VerificationFailed(
                    Reason.SIGNATURE_MISSING,
                    f'{key}: no signature found for {key} (no type-1 entry "{sig_key}")',
                    uri,
                )
            # Tekton canonicalises the signature text too; base64 has no JSON meaning, so this is
            # harmless, and doing the same keeps exotic-but-valid messages verifying alike.
            try:
                signature = decode_go_base64(_utf8(canonical_value(sig_entry.value)), padded=True)
            except Base64Error as exc:
                raise VerificationFailed(
                    Reason.SIGNATURE_INVALID, f"{sig_key}: invalid signature: {exc}", uri
                ) from exc
            if not is_valid(check, signature, _utf8(canonical_value(results[key].value))):
                raise VerificationFailed(
                    Reason.SIGNATURE_INVALID,
                    f"{sig_key}: invalid signature: it does not verify over the value of {key}",
                    uri,
                )
        return signed
