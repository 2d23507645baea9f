"""The compact format `cs1` (docs/compact-format.md §6): one SIGNATURE entry whose statement binds
every entry of the message, the step, the signing time and the chain.

The checks run in the document's order, each failing closed with its own reason.  Trust is
required where Tekton's verifier requires it: after the chain is read, before the identity.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

from cryptography.hazmat.primitives.asymmetric.types import CertificatePublicKeyTypes

from entrypoint._internal.backends.k8s_sat.common import MATERIAL_KIND, spki_from_p256_point
from entrypoint._internal.backends.k8s_sat.token import check_token
from entrypoint._internal.backends.spire.spiffe_id import check_identity, single_uri, uri_sans
from entrypoint._internal.backends.spire.svid import DecodedSvid, SvidDecodeError, decode_der_chain
from entrypoint._internal.formats.compact import (
    SIGNATURE_KEY,
    TAG,
    CompactFormatError,
    SignatureValue,
    controller_view,
    statement_of_view,
)
from entrypoint._internal.verification.chain import check_chain, check_signed_within_validity
from entrypoint._internal.verification.reasons import Reason, VerificationFailed, fail_closed
from entrypoint._internal.verification.request import Outcome, Request
from entrypoint._internal.verification.signatures import is_valid, jose_checker
from entrypoint.termination import RunResult, parse_message

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

    if value.material_kind == MATERIAL_KIND:
        return _verify_token(entries, value, request)

    # (2) The chain, embedded or referred to.
    with fail_closed(Reason.SVID_INVALID, SIGNATURE_KEY):
        chain = _chain(value, request.companions)
    try:
        uris: list[str] | None = uri_sans(chain.leaf, SIGNATURE_KEY)
    except VerificationFailed:
        uris = None  # reported by check 3 below; here only the identity to report is wanted
    found = uris[0] if uris is not None and len(uris) == 1 else None

    # Trust: the trust domain is needed even without the chain, for the SPIFFE ID.
    if request.trust_domain is None:
        raise VerificationFailed(Reason.TRUST_UNAVAILABLE, "no trust bundle is available", found)
    if request.check_chain and not request.roots:
        raise VerificationFailed(
            Reason.TRUST_UNAVAILABLE, f"the trust bundle of {request.trust_domain} has no roots", found
        )

    # (3) The SPIFFE ID names the TaskRun.
    with fail_closed(Reason.IDENTITY_MISMATCH, SIGNATURE_KEY, found):
        uri = single_uri(chain.leaf, request.name, SIGNATURE_KEY, uris)
        check_identity(
            uri,
            trust_domain=request.trust_domain,
            namespace=request.namespace,
            name=request.name,
            entry=SIGNATURE_KEY,
        )

    # (4) The chain at the requested time, and the signing time within the leaf's validity.  The
    # latter needs no trust, so it holds even when the chain is not checked.
    with fail_closed(Reason.CHAIN_UNTRUSTED, SIGNATURE_KEY, uri):
        if request.check_chain:
            check_chain(
                chain.leaf, chain.intermediates, request.roots, request.at, entry=SIGNATURE_KEY, identity=uri
            )
        check_signed_within_validity(chain.leaf, value.signed_at, entry=SIGNATURE_KEY, identity=uri)

    # (5) The step, when the caller knows which one the message must come from.
    _check_step(value, request, uri)

    # (6) The statement over every entry, with the algorithm the key allows.
    view = _check_statement(entries, value, chain.leaf.public_key(), uri)
    return Outcome(
        identity=uri, signed_keys=tuple(e.key for e in view), step=value.step, signed_at=value.signed_at
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


def _chain(value: SignatureValue, companions: Sequence[str]) -> DecodedSvid:
    der = value.material if value.material_kind == "x509" else _resolve(value.material, companions)
    try:
        return decode_der_chain(der)
    except SvidDecodeError as exc:
        raise VerificationFailed(Reason.SVID_INVALID, f"{SIGNATURE_KEY}: invalid x509 chain: {exc}") from exc


def _resolve(digest: bytes, companions: Sequence[str]) -> bytes:
    """The chain an ``x509-ref`` names, from a companion that embeds it.  The companion itself need
    not verify: the digest pins the bytes, and the chain is then judged as if embedded."""
    unreadable = 0
    for message in companions:
        try:
            embedded = _embedded_chain(message)
        except Exception:
            unreadable += 1
            continue
        if embedded is not None and hashlib.sha256(embedded).digest() == digest:
            return embedded
    if not companions:
        found = "no companion message was given"
    else:
        found = f"none of the {len(companions)} companion message(s) embeds it"
        if unreadable:
            found += f" ({unreadable} unreadable)"
    raise VerificationFailed(
        Reason.MATERIAL_UNRESOLVED,
        f"{SIGNATURE_KEY}: x509-ref {digest.hex()} names a chain the message does not carry, and "
        f"{found}; give the messages of the TaskRun's earlier steps as companions",
    )


def _embedded_chain(message: str) -> bytes | None:
    for entry in parse_message(message):
        if entry.key == SIGNATURE_KEY and entry.value.startswith(_PREFIX):
            value = SignatureValue.decode(entry.value)
            return value.material if value.material_kind == "x509" else None
    return None


def _verify_token(entries: Sequence[RunResult], value: SignatureValue, request: Request) -> Outcome:
    """(2)-(4) for a k8s-sat material: the key and token, trust, the token's vouching, binding and
    validity (at signing time too); then (5) and (6) as for a chain."""
    with fail_closed(Reason.TOKEN_INVALID, SIGNATURE_KEY):
        point, token = value.token_material()
        spki = spki_from_p256_point(point)
    if request.kube is None:
        raise VerificationFailed(
            Reason.TRUST_UNAVAILABLE, "no Kubernetes trust (JWKS snapshot or TokenReview)"
        )
    with fail_closed(Reason.TOKEN_UNTRUSTED, SIGNATURE_KEY):
        identity, key = check_token(token, spki, request, entry=SIGNATURE_KEY, signed_at=value.signed_at)
    _check_step(value, request, identity)
    view = _check_statement(entries, value, key, identity)  # type: ignore[arg-type]
    return Outcome(
        identity=identity, signed_keys=tuple(e.key for e in view), step=value.step, signed_at=value.signed_at
    )


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
