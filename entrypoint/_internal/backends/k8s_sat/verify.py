"""Verifying the ``oidc-sa-token`` backend's evidence: the key, and the token that vouches for it
(its share of each wire format's checks; docs/architecture.md has the contract)."""

from __future__ import annotations

from collections.abc import Callable, Mapping

from cryptography.hazmat.primitives.asymmetric.types import CertificatePublicKeyTypes
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat, load_pem_public_key

from entrypoint._internal.backends.k8s_sat.common import (
    KEY_ENTRY,
    TOKEN_ENTRY,
    spki_from_p256_point,
    split_material,
)
from entrypoint._internal.backends.k8s_sat.token import check_token
from entrypoint._internal.formats.compact import SIGNATURE_KEY, SignatureValue
from entrypoint._internal.formats.paramvalue import canonical_value
from entrypoint._internal.verification.reasons import Reason, VerificationFailed, fail_closed
from entrypoint._internal.verification.request import Request
from entrypoint._internal.verification.signatures import SignatureCheck, checker_for
from entrypoint.termination import RunResult


def tekton_identity(
    results: Mapping[str, RunResult], request: Request, check_manifest: Callable[[str | None], None]
) -> tuple[str, SignatureCheck, str]:
    """(2)-(6) for a token identity: the key and token, trust, the manifest, the token's vouching
    and binding.  The token itself is one of the signed entries; the key entry is not."""
    with fail_closed(Reason.TOKEN_INVALID, KEY_ENTRY):
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
    _require_trust(request)
    check_manifest(None)
    with fail_closed(Reason.TOKEN_UNTRUSTED, TOKEN_ENTRY):
        identity, key = check_token(token, spki, request, entry=TOKEN_ENTRY, signed_at=None)
    with fail_closed(Reason.UNSUPPORTED_KEY, KEY_ENTRY, identity):
        check = checker_for(key, entry=KEY_ENTRY, identity=identity)  # type: ignore[arg-type]
    return identity, check, KEY_ENTRY


def compact_identity(value: SignatureValue, request: Request) -> tuple[str, CertificatePublicKeyTypes]:
    """(2)-(4) for a k8s-sat material: the key and token, trust, the token's vouching, binding and
    validity (at signing time too)."""
    with fail_closed(Reason.TOKEN_INVALID, SIGNATURE_KEY):
        point, token = split_material(value.material)
        spki = spki_from_p256_point(point)
    _require_trust(request)
    with fail_closed(Reason.TOKEN_UNTRUSTED, SIGNATURE_KEY):
        identity, key = check_token(token, spki, request, entry=SIGNATURE_KEY, signed_at=value.signed_at)
    return identity, key  # type: ignore[return-value]


def _require_trust(request: Request) -> None:
    if request.kube is None:
        raise VerificationFailed(
            Reason.TRUST_UNAVAILABLE, "no Kubernetes trust (JWKS snapshot or TokenReview)"
        )
