"""The SPIFFE ID a TaskRun's SVID must carry: ``spiffe://<trust domain>/ns/<namespace>/taskrun/<name>``.

Tekton checks the host and the path but not the scheme, so an ``https://`` URI with the right host
and path passes there; here the whole ID must match.  The texts follow Tekton's where it has one.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from cryptography import x509

from entrypoint._internal.verification.reasons import Reason, VerificationFailed

SPIFFE_PREFIX = "spiffe://"


def expected_path(namespace: str, name: str) -> str:
    return f"/ns/{namespace}/taskrun/{name}"


def expected_id(trust_domain: str, namespace: str, name: str) -> str:
    return SPIFFE_PREFIX + trust_domain + expected_path(namespace, name)


def uri_sans(cert: x509.Certificate, entry: str) -> list[str]:
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return []
    except ValueError as exc:  # a malformed extension is a bad certificate, not a wrong identity
        raise VerificationFailed(Reason.SVID_INVALID, f"{entry}: invalid SVID: {exc}") from exc
    return san.get_values_for_type(x509.UniformResourceIdentifier)


def single_uri(cert: x509.Certificate, name: str, entry: str, uris: list[str] | None = None) -> str:
    """The one URI SAN of an X509-SVID (the SPIFFE spec allows exactly one).  ``uris``, when the
    caller has already read them, saves parsing the extension again."""
    if uris is None:
        uris = uri_sans(cert, entry)
    if not uris:
        raise VerificationFailed(Reason.IDENTITY_MISMATCH, f"{entry}: cert uri missing for taskrun: {name}")
    if len(uris) > 1:
        raise VerificationFailed(
            Reason.IDENTITY_MISMATCH,
            f"{entry}: cert contains more than one URI for taskrun: {name} ({', '.join(uris)})",
        )
    return uris[0]


def peek_uri(cert: x509.Certificate, name: str, entry: str) -> str | None:
    """The SVID's URI for reporting, when it has exactly one; the identity check judges it properly."""
    try:
        return single_uri(cert, name, entry)
    except Exception:
        return None


def check_identity(uri: str, *, trust_domain: str, namespace: str, name: str, entry: str) -> None:
    def mismatch(text: str) -> VerificationFailed:
        return VerificationFailed(Reason.IDENTITY_MISMATCH, f"{entry}: {text}", identity=uri)

    if not uri.startswith(SPIFFE_PREFIX):
        raise mismatch(f"cert uri {uri} is not a SPIFFE ID (the scheme must be spiffe)")
    try:
        parts = urlsplit(uri)
    except ValueError as exc:
        raise mismatch(f"cert uri {uri} does not parse: {exc}") from exc
    if parts.netloc != trust_domain:
        raise mismatch(f"cert uri: {parts.netloc} does not match trust domain: {trust_domain}")
    path = expected_path(namespace, name)
    if parts.path != path:
        raise mismatch(f"cert uri: {parts.path} does not match taskrun: {path}")
    want = expected_id(trust_domain, namespace, name)
    if uri != want:  # e.g. a query or fragment, which a SPIFFE ID must not have
        raise mismatch(f"cert uri {uri} is not {want}")
