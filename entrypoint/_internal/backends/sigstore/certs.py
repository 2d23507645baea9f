"""A Fulcio certificate: its chain to a trusted CA at a given time, its identity and issuer.

Sigstore's profile, as sigstore-python checks it: the chain by pyca's Web PKI path builder (CA
constraints, validity, an AKI on the leaf), and on the leaf KeyUsage digitalSignature and the
codeSigning EKU.  The identity is the leaf's SAN (a URI for Kubernetes and SPIFFE identities);
the issuer is Fulcio's extension 1.3.6.1.4.1.57264.1.8 (a UTF8String), or the deprecated 1.1
(raw bytes) on certificates older than it.
"""

from __future__ import annotations

import datetime as dt

from cryptography import x509
from cryptography.x509.oid import ExtendedKeyUsageOID
from cryptography.x509.verification import (
    Criticality,
    ExtensionPolicy,
    PolicyBuilder,
    Store,
    VerificationError,
)

from entrypoint._internal.backends.sigstore.trust import CertificateAuthority, TrustedRoot
from entrypoint.errors import DecodeError

ISSUER_V1 = x509.ObjectIdentifier("1.3.6.1.4.1.57264.1.1")
ISSUER_V2 = x509.ObjectIdentifier("1.3.6.1.4.1.57264.1.8")


class CertificateProblem(DecodeError):
    """A certificate that fails Sigstore's profile or its chain; the text says which check."""


def check_chain(leaf: x509.Certificate, root: TrustedRoot, at: dt.datetime) -> CertificateAuthority:
    """The trusted CA that issued ``leaf``, its chain valid at ``at`` (aware)."""
    authorities = root.authorities_at(at)
    if not authorities:
        raise CertificateProblem(f"no Fulcio CA in {root.source} is trusted at {_rfc3339(at)}")
    last = ""
    for ca in authorities:
        builder = (
            PolicyBuilder()
            .store(Store([ca.chain[-1]]))
            .time(at)
            # Fulcio's leaf and intermediate carry the codeSigning EKU, which the Web PKI's
            # client profile refuses: the CA constraints are required here, the leaf's below.
            .extension_policies(ca_policy=_CA_POLICY, ee_policy=ExtensionPolicy.permit_all())
        )
        try:
            builder.build_client_verifier().verify(leaf, list(ca.chain[:-1]))
        except VerificationError as exc:
            last = str(exc)
            continue
        _check_usage(leaf)
        return ca
    raise CertificateProblem(
        f"the certificate cannot be verified by the Fulcio CAs of {root.source} at {_rfc3339(at)}: {last}"
    )


def _is_ca(policy: object, cert: x509.Certificate, ext: x509.BasicConstraints | None) -> None:
    if ext is None or not ext.ca:
        raise ValueError("an issuing certificate is not a CA (BasicConstraints)")


def _signs_certificates(policy: object, cert: x509.Certificate, ext: x509.KeyUsage | None) -> None:
    if ext is None or not ext.key_cert_sign:
        raise ValueError("an issuing certificate's key usage does not allow certificate signing")


_CA_POLICY = (
    ExtensionPolicy.permit_all()
    .require_present(x509.BasicConstraints, Criticality.CRITICAL, _is_ca)
    .require_present(x509.KeyUsage, Criticality.AGNOSTIC, _signs_certificates)
)


def _check_usage(leaf: x509.Certificate) -> None:
    try:
        usage = leaf.extensions.get_extension_for_class(x509.KeyUsage).value
        eku = leaf.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    except x509.ExtensionNotFound as exc:
        raise CertificateProblem(f"the certificate has no {exc.oid._name} extension") from exc
    if not usage.digital_signature:
        raise CertificateProblem("the certificate's key usage does not allow digital signatures")
    if ExtendedKeyUsageOID.CODE_SIGNING not in eku:
        raise CertificateProblem("the certificate is not for code signing (no codeSigning EKU)")


def identity_of(leaf: x509.Certificate) -> str:
    """The SAN Fulcio certified: the one URI, else the one email address."""
    try:
        san = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        raise CertificateProblem("the certificate has no subject alternative name") from None
    names = [
        *san.get_values_for_type(x509.UniformResourceIdentifier),
        *san.get_values_for_type(x509.RFC822Name),
    ]
    if len(names) != 1:
        raise CertificateProblem(
            f"the certificate has {len(names)} URI or email SANs; exactly one is expected"
        )
    return names[0]


def issuer_of(leaf: x509.Certificate) -> str:
    """The OIDC issuer Fulcio recorded (extension 1.8, else 1.1); empty if neither is there."""
    for oid in (ISSUER_V2, ISSUER_V1):
        try:
            raw = leaf.extensions.get_extension_for_oid(oid).value
        except x509.ExtensionNotFound:
            continue
        assert isinstance(raw, x509.UnrecognizedExtension)
        data = raw.value
        if oid == ISSUER_V2:
            data = _utf8_string(data)
        try:
            return data.decode("utf-8")
        except UnicodeError:
            raise CertificateProblem(
                f"the certificate's issuer extension {oid.dotted_string} is not UTF-8"
            ) from None
    return ""


def _utf8_string(der: bytes) -> bytes:
    # A DER UTF8String: tag 0x0c, a definite length (short or long form), the bytes.
    if len(der) < 2 or der[0] != 0x0C:
        raise CertificateProblem("the certificate's issuer extension 1.8 is not a UTF8String")
    length, offset = der[1], 2
    if length & 0x80:
        count = length & 0x7F
        if count == 0 or count > 4 or len(der) < 2 + count:
            raise CertificateProblem("the certificate's issuer extension 1.8 has a bad length")
        length, offset = int.from_bytes(der[2 : 2 + count], "big"), 2 + count
    if len(der) != offset + length:
        raise CertificateProblem("the certificate's issuer extension 1.8 has a bad length")
    return der[offset:]


def _rfc3339(at: dt.datetime) -> str:
    return at.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
