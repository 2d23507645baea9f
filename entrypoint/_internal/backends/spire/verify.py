"""Verifying the SPIRE backend's evidence: the SVID chain, the TaskRun's SPIFFE ID, the trust.

Each function runs the backend's share of a wire format's checks, in that format's order, and
returns who signed and the key to check the signatures with; the format checks the signatures.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping, Sequence

from cryptography.hazmat.primitives.asymmetric.types import CertificatePublicKeyTypes

from entrypoint._internal.backends.spire.spiffe_id import check_identity, peek_uri, single_uri, uri_sans
from entrypoint._internal.backends.spire.svid import (
    DecodedSvid,
    SvidDecodeError,
    decode_der_chain,
    decode_svid,
)
from entrypoint._internal.formats.compact import SIGNATURE_KEY, TAGS, SignatureValue
from entrypoint._internal.formats.paramvalue import canonical_value
from entrypoint._internal.verification.chain import (
    check_chain,
    check_leaf_validity,
    check_signed_within_validity,
)
from entrypoint._internal.verification.reasons import Reason, VerificationFailed, fail_closed
from entrypoint._internal.verification.request import Request
from entrypoint._internal.verification.signatures import SignatureCheck, checker_for
from entrypoint.termination import RunResult, parse_message

SVID = "SVID"
_PREFIXES = tuple(tag + "." for tag in TAGS)


def tekton_identity(
    results: Mapping[str, RunResult], request: Request, check_manifest: Callable[[str | None], None]
) -> tuple[str, SignatureCheck, str]:
    """Checks (2)-(6) of Tekton's order: the SVID, trust, the manifest (``check_manifest``), the
    SPIFFE ID, the chain.  Returns the identity, its signature check, and the entry not signed."""
    # (2) The SVID.  Tekton canonicalises it first; for PEM text that changes nothing.
    with fail_closed(Reason.SVID_INVALID, SVID):
        svid_entry = results.get(SVID)
        if svid_entry is None:
            raise VerificationFailed(Reason.SVID_MISSING, f'{SVID}: no SVID found (no type-1 entry "{SVID}")')
        try:
            svid = decode_svid(canonical_value(svid_entry.value))
        except SvidDecodeError as exc:
            raise VerificationFailed(Reason.SVID_INVALID, f"{SVID}: invalid SVID: {exc}") from exc
    found = peek_uri(svid.leaf, request.name, SVID)

    # (3) Trust: Tekton fetches its bundle here.  The trust domain is needed even without the chain.
    _require_trust(request, found)

    # (4) The manifest: every name it lists must be present.
    check_manifest(found)

    # (5) The SPIFFE ID of the TaskRun.
    with fail_closed(Reason.IDENTITY_MISMATCH, SVID, found):
        uri = single_uri(svid.leaf, request.name, SVID)
        assert request.trust_domain is not None  # checked with the trust
        check_identity(
            uri, trust_domain=request.trust_domain, namespace=request.namespace, name=request.name, entry=SVID
        )

    # (6) The chain of trust, at the requested time.
    with fail_closed(Reason.CHAIN_UNTRUSTED, SVID, uri):
        if request.check_chain:
            check_chain(svid.leaf, svid.intermediates, request.roots, request.at, entry=SVID, identity=uri)
        else:
            check_leaf_validity(svid.leaf, request.at, entry=SVID, identity=uri)

    with fail_closed(Reason.UNSUPPORTED_KEY, SVID, uri):
        check = checker_for(svid.leaf.public_key(), entry=SVID, identity=uri)
    return uri, check, SVID


def compact_identity(value: SignatureValue, request: Request) -> tuple[str, CertificatePublicKeyTypes]:
    """Checks (2)-(4) of docs/compact-format.md §6: the chain (embedded or referred to), trust,
    the SPIFFE ID, the chain at the requested time and the signing time within the leaf's validity."""
    # (2) The chain, embedded or referred to.
    with fail_closed(Reason.SVID_INVALID, SIGNATURE_KEY):
        chain = _chain(value, request.companions)
    try:
        uris: list[str] | None = uri_sans(chain.leaf, SIGNATURE_KEY)
    except VerificationFailed:
        uris = None  # reported by check 3 below; here only the identity to report is wanted
    found = uris[0] if uris is not None and len(uris) == 1 else None

    # Trust: the trust domain is needed even without the chain, for the SPIFFE ID.
    _require_trust(request, found)

    # (3) The SPIFFE ID names the TaskRun.
    with fail_closed(Reason.IDENTITY_MISMATCH, SIGNATURE_KEY, found):
        uri = single_uri(chain.leaf, request.name, SIGNATURE_KEY, uris)
        assert request.trust_domain is not None  # checked with the trust
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
        else:
            check_leaf_validity(chain.leaf, request.at, entry=SIGNATURE_KEY, identity=uri)
        check_signed_within_validity(chain.leaf, value.signed_at, entry=SIGNATURE_KEY, identity=uri)
    return uri, chain.leaf.public_key()


def _require_trust(request: Request, found: str | None) -> None:
    if request.trust_domain is None:
        raise VerificationFailed(Reason.TRUST_UNAVAILABLE, "no trust bundle is available", found)
    if request.check_chain and not request.roots:
        raise VerificationFailed(
            Reason.TRUST_UNAVAILABLE, f"the trust bundle of {request.trust_domain} has no roots", found
        )


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
        if entry.key == SIGNATURE_KEY and entry.value.startswith(_PREFIXES):
            value = SignatureValue.decode(entry.value)
            return value.material if value.material_kind == "x509" else None
    return None
