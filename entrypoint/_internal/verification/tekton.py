"""Tekton's signed-results format (§7.4), verified in the order of Tekton's ``VerifyTaskRunResults``
(§8.2) but deterministic, stricter where Tekton is lax (§10 item 30), and failing closed.

The signing entries are all type 1: ``SVID``, ``<key>.sig`` per signed result, ``RESULT_MANIFEST``
and ``RESULT_MANIFEST.sig``.  Only type-1 entries take part; others (e.g. an appended untyped
entry) are neither signed nor checked.  With the ``oidc-sa-token`` backend ``SA_TOKEN_KEY`` and
``SA_TOKEN`` take the place of ``SVID`` (the token is signed like a result, so it has a ``.sig``).
"""

from __future__ import annotations

from collections.abc import Sequence

from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat, load_pem_public_key

from entrypoint._internal.backends.k8s_sat.common import KEY_ENTRY, TOKEN_ENTRY
from entrypoint._internal.backends.k8s_sat.token import check_token
from entrypoint._internal.backends.spire.spiffe_id import check_identity, peek_uri, single_uri
from entrypoint._internal.backends.spire.svid import SvidDecodeError, decode_svid
from entrypoint._internal.formats.paramvalue import canonical_value
from entrypoint._internal.go.json import Base64Error, decode_go_base64
from entrypoint._internal.verification.chain import check_chain
from entrypoint._internal.verification.reasons import Reason, VerificationFailed
from entrypoint._internal.verification.reasons import fail_closed as _check
from entrypoint._internal.verification.request import Outcome, Request
from entrypoint._internal.verification.signatures import SignatureCheck, checker_for, is_valid
from entrypoint.termination import ResultType, RunResult

NAME = "tekton"
SVID = "SVID"
MANIFEST = "RESULT_MANIFEST"
SIG_SUFFIX = ".sig"
_TASK = int(ResultType.TASK_RUN_RESULT)


def is_signing_entry(entry: RunResult) -> bool:
    return entry.type == _TASK and (
        entry.key in (SVID, MANIFEST, TOKEN_ENTRY, KEY_ENTRY) or entry.key.endswith(SIG_SUFFIX)
    )


def recognises(entries: Sequence[RunResult]) -> bool:
    return any(is_signing_entry(e) for e in entries)


def _utf8(text: str) -> bytes:
    # As the signer encodes: lone surrogates from undecodable input survive instead of failing.
    return text.encode("utf-8", "surrogatepass")


def _byte_order(key: str) -> bytes:
    return _utf8(key)


def verify(entries: Sequence[RunResult], request: Request) -> Outcome:
    if request.step is not None:
        # Asked to check the step, fail closed rather than pass a message that cannot show it.
        raise VerificationFailed(
            Reason.STEP_MISMATCH,
            f"step {request.step} was expected, but Tekton's format does not bind a message to its step",
            None,
        )
    # (1) Type-1 entries only, the last one per key winning, as the controller's map does.
    results: dict[str, RunResult] = {}
    for entry in entries:
        if entry.type == _TASK:
            results[entry.key] = entry

    if SVID not in results and TOKEN_ENTRY in results:
        return _verify_token(results, request)

    # (2) The SVID.  Tekton canonicalises it first; for PEM text that changes nothing.
    with _check(Reason.SVID_INVALID, SVID):
        svid_entry = results.get(SVID)
        if svid_entry is None:
            raise VerificationFailed(Reason.SVID_MISSING, f'{SVID}: no SVID found (no type-1 entry "{SVID}")')
        try:
            svid = decode_svid(canonical_value(svid_entry.value))
        except SvidDecodeError as exc:
            raise VerificationFailed(Reason.SVID_INVALID, f"{SVID}: invalid SVID: {exc}") from exc
    found = peek_uri(svid.leaf, request.name, SVID)

    # (3) Trust: Tekton fetches its bundle here.  The trust domain is needed even without the chain.
    if request.trust_domain is None:
        raise VerificationFailed(Reason.TRUST_UNAVAILABLE, "no trust bundle is available", found)
    if request.check_chain and not request.roots:
        raise VerificationFailed(
            Reason.TRUST_UNAVAILABLE, f"the trust bundle of {request.trust_domain} has no roots", found
        )

    # (4) The manifest: every name it lists must be present.
    _check_manifest(results, found)

    # (5) The SPIFFE ID of the TaskRun.
    with _check(Reason.IDENTITY_MISMATCH, SVID, found):
        uri = single_uri(svid.leaf, request.name, SVID)
        check_identity(
            uri, trust_domain=request.trust_domain, namespace=request.namespace, name=request.name, entry=SVID
        )

    # (6) The chain of trust, at the requested time.
    if request.check_chain:
        with _check(Reason.CHAIN_UNTRUSTED, SVID, uri):
            check_chain(svid.leaf, svid.intermediates, request.roots, request.at, entry=SVID, identity=uri)

    # (7) A signature for every type-1 key but the signatures and the SVID themselves; so the
    # manifest and type-1 keys it does not list are covered too.  Sorted, unlike Go's map order,
    # so the same message always reports the same first failure.
    with _check(Reason.UNSUPPORTED_KEY, SVID, uri):
        check = checker_for(svid.leaf.public_key(), entry=SVID, identity=uri)
    signed = _check_signatures(results, check, uri, skip=SVID)
    return Outcome(identity=uri, signed_keys=tuple(signed))


def _verify_token(results: dict[str, RunResult], request: Request) -> Outcome:
    """(2)-(6) for a token identity: the key and token, trust, the manifest, the token's vouching
    and binding; then (7) as for an SVID, the token itself being one of the signed entries."""
    with _check(Reason.TOKEN_INVALID, KEY_ENTRY):
        key_entry = results.get(KEY_ENTRY)
        if key_entry is None:
            raise VerificationFailed(
                Reason.TOKEN_INVALID, f'{KEY_ENTRY}: no public key found (no type-1 entry "{KEY_ENTRY}")'
            )
        try:
            spki = load_pem_public_key(canonical_value(key_entry.value).encode("ascii")).public_bytes(
                Encoding.DER, PublicFormat.SubjectPublicKeyInfo
            )
        except (ValueError, TypeError, UnicodeError) as exc:
            raise VerificationFailed(
                Reason.TOKEN_INVALID, f"{KEY_ENTRY}: not a PEM public key: {exc}"
            ) from exc
    token = canonical_value(results[TOKEN_ENTRY].value)
    if request.kube is None:
        raise VerificationFailed(
            Reason.TRUST_UNAVAILABLE, "no Kubernetes trust (JWKS snapshot or TokenReview)"
        )
    _check_manifest(results, None)
    with _check(Reason.TOKEN_UNTRUSTED, TOKEN_ENTRY):
        identity, key = check_token(token, spki, request, entry=TOKEN_ENTRY, signed_at=None)
    with _check(Reason.UNSUPPORTED_KEY, KEY_ENTRY, identity):
        check = checker_for(key, entry=KEY_ENTRY, identity=identity)  # type: ignore[arg-type]
    signed = _check_signatures(results, check, identity, skip=KEY_ENTRY)
    return Outcome(identity=identity, signed_keys=tuple(signed))


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
    results: dict[str, RunResult], check: SignatureCheck, uri: str, *, skip: str
) -> list[str]:
    """A signature for every type-1 key but the signatures and ``skip`` (the identity material)."""
    signed = sorted((k for k in results if k != skip and not k.endswith(SIG_SUFFIX)), key=_byte_order)
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
