"""A throw-away SPIFFE certificate authority whose X509-SVIDs are shaped like the ones SPIRE issues.

The leaf profile follows SPIRE's server credential template (``pkg/server/credtemplate``): subject
``C=US, O=SPIRE``, exactly one ``spiffe://`` URI SAN, EKU serverAuth+clientAuth, KeyUsage
digitalSignature+keyEncipherment+keyAgreement, ``CA:FALSE``, SKI/AKI, and a ``notBefore`` backdated
by 10 s.  CA certificates carry the trust domain's SPIFFE ID as their URI SAN, as SPIRE's do.

With an EC or RSA CA key, every SVID (any leaf key type, with or without an intermediate) passes
``cryptography.x509.verification``'s client verifier, so verifiers under test may rely on it.  An
Ed25519 *CA* key is offered for negative tests only: that verifier forbids Ed25519 issuers by policy.
Ed25519 leaf keys exist because Tekton's signer cannot use them (spec §7.6); tests need to see that fail.
"""

from __future__ import annotations

import datetime
import threading
from dataclasses import dataclass

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

__all__ = ["KEY_TYPES", "PrivateKey", "Svid", "TestCA", "generate_key"]

PrivateKey = ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey | ed25519.Ed25519PrivateKey

# rsa-1024 is weak on purpose: verifiers must refuse it (tests of that refusal issue it).
KEY_TYPES: frozenset[str] = frozenset({"ec-p256", "ec-p384", "rsa-1024", "rsa-2048", "ed25519"})

# SPIRE backdates every certificate so that a workload whose clock runs slightly behind the agent's
# does not see a freshly issued SVID as "not yet valid".
_BACKDATE = datetime.timedelta(seconds=10)
# Generous enough that SVIDs crafted with a not_before weeks in the past still chain to a root
# that was valid at that time.
_CA_BACKDATE = datetime.timedelta(days=30)
_CA_LIFETIME = datetime.timedelta(days=365)


def generate_key(key_type: str) -> PrivateKey:
    """A fresh private key of one of :data:`KEY_TYPES`."""
    if key_type == "ec-p256":
        return ec.generate_private_key(ec.SECP256R1())
    if key_type == "ec-p384":
        return ec.generate_private_key(ec.SECP384R1())
    if key_type == "rsa-2048":
        return rsa.generate_private_key(public_exponent=65537, key_size=2048)
    if key_type == "rsa-1024":
        return rsa.generate_private_key(public_exponent=65537, key_size=1024)  # noqa: S505  (weak on purpose)
    if key_type == "ed25519":
        return ed25519.Ed25519PrivateKey.generate()
    raise ValueError(f"unknown key type {key_type!r}; expected one of {sorted(KEY_TYPES)}")


def _signature_hash(key: PrivateKey) -> hashes.SHA256 | hashes.SHA384 | None:
    if isinstance(key, ed25519.Ed25519PrivateKey):
        return None  # Ed25519 signs the message itself; cryptography requires algorithm=None.
    if isinstance(key, ec.EllipticCurvePrivateKey) and key.curve.key_size >= 384:
        return hashes.SHA384()  # Go's x509 pairs P-384 with SHA-384 by default.
    return hashes.SHA256()


def _now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


def _ca_name() -> x509.Name:
    # SPIRE puts a serial number in the CA subject; it also keeps successive roots distinguishable.
    return x509.Name(
        [
            x509.NameAttribute(NameOID.COUNTRY_NAME, "US"),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "SPIFFE"),
            x509.NameAttribute(NameOID.SERIAL_NUMBER, str(x509.random_serial_number())),
        ]
    )


_LEAF_NAME = x509.Name(
    [
        x509.NameAttribute(NameOID.COUNTRY_NAME, "US"),
        x509.NameAttribute(NameOID.ORGANIZATION_NAME, "SPIRE"),
    ]
)

# A CA certificate's key usage, shared by every test CA here (SPIRE's and the Kubernetes one).
CA_KEY_USAGE = x509.KeyUsage(
    digital_signature=True,
    content_commitment=False,
    key_encipherment=False,
    data_encipherment=False,
    key_agreement=False,
    key_cert_sign=True,
    crl_sign=True,
    encipher_only=False,
    decipher_only=False,
)

_LEAF_KEY_USAGE = x509.KeyUsage(
    digital_signature=True,
    content_commitment=False,
    key_encipherment=True,
    data_encipherment=False,
    key_agreement=True,
    key_cert_sign=False,
    crl_sign=False,
    encipher_only=False,
    decipher_only=False,
)


def _ski(cert: x509.Certificate) -> x509.SubjectKeyIdentifier:
    return cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value


def _ca_certificate(
    *,
    trust_domain: str,
    key: PrivateKey,
    issuer_key: PrivateKey,
    issuer: x509.Certificate | None,
    not_before: datetime.datetime,
    not_after: datetime.datetime,
) -> x509.Certificate:
    subject = _ca_name()
    aki = (
        x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(_ski(issuer))
        if issuer is not None
        else x509.AuthorityKeyIdentifier.from_issuer_public_key(key.public_key())
    )
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer.subject if issuer is not None else subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(CA_KEY_USAGE, critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(aki, critical=False)
        .add_extension(
            x509.SubjectAlternativeName([x509.UniformResourceIdentifier(f"spiffe://{trust_domain}")]),
            critical=False,
        )
    )
    return builder.sign(issuer_key, _signature_hash(issuer_key))


@dataclass(frozen=True)
class Svid:
    """An X509-SVID as the Workload API hands it out: the chain (leaf first) and the leaf's private key."""

    spiffe_id: str
    chain: tuple[x509.Certificate, ...]
    key: PrivateKey

    def __repr__(self) -> str:
        # The default dataclass repr would be harmless today (keys repr as an object address), but a
        # repr that never mentions the key keeps it out of assertion messages and logs for good.
        return f"Svid(spiffe_id={self.spiffe_id!r}, chain=<{len(self.chain)} certificate(s)>)"

    @property
    def leaf(self) -> x509.Certificate:
        return self.chain[0]

    def chain_der(self) -> bytes:
        """Concatenated DER, leaf first: the Workload API's ``x509_svid`` field."""
        return b"".join(cert.public_bytes(serialization.Encoding.DER) for cert in self.chain)

    def key_der(self) -> bytes:
        """Unencrypted PKCS#8 DER: the Workload API's ``x509_svid_key`` field."""
        return self.key.private_bytes(
            serialization.Encoding.DER, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )

    def leaf_pem(self) -> str:
        """PEM of the leaf only (64-char base64 lines, trailing newline): Tekton's ``SVID`` result value."""
        return self.leaf.public_bytes(serialization.Encoding.PEM).decode("ascii")


class TestCA:
    """A SPIFFE trust domain's CA: a root (the trust bundle), an optional intermediate, and X509-SVIDs."""

    __test__ = False  # not a pytest test class, despite the name

    def __init__(self, trust_domain: str = "example.org", key_type: str = "ec-p256") -> None:
        if not trust_domain or any(c in trust_domain for c in ":/ ") or trust_domain != trust_domain.lower():
            raise ValueError(f"invalid trust domain name {trust_domain!r} (expected e.g. 'example.org')")
        if key_type not in KEY_TYPES:
            raise ValueError(f"unknown key type {key_type!r}; expected one of {sorted(KEY_TYPES)}")
        self.trust_domain = trust_domain
        self.key_type = key_type
        # The Workload API server reads the CA from its worker threads while a test may rotate it.
        self._lock = threading.Lock()
        self.root_key, self.root_cert = self._new_root()
        self._intermediate: tuple[PrivateKey, x509.Certificate] | None = None

    def __repr__(self) -> str:
        return f"TestCA(trust_domain={self.trust_domain!r}, key_type={self.key_type!r})"

    def _new_root(self) -> tuple[PrivateKey, x509.Certificate]:
        key = generate_key(self.key_type)
        now = _now()
        cert = _ca_certificate(
            trust_domain=self.trust_domain,
            key=key,
            issuer_key=key,
            issuer=None,
            not_before=now - _CA_BACKDATE,
            not_after=now + _CA_LIFETIME,
        )
        return key, cert

    def _intermediate_ca(self) -> tuple[PrivateKey, x509.Certificate]:
        # Caller holds self._lock.  One intermediate per root, like a SPIRE server under an
        # UpstreamAuthority: SVIDs chain leaf -> server CA, and the bundle holds only the upstream root.
        if self._intermediate is None:
            key = generate_key(self.key_type)
            self._intermediate = (
                key,
                _ca_certificate(
                    trust_domain=self.trust_domain,
                    key=key,
                    issuer_key=self.root_key,
                    issuer=self.root_cert,
                    not_before=self.root_cert.not_valid_before_utc,
                    not_after=self.root_cert.not_valid_after_utc,
                ),
            )
        return self._intermediate

    @property
    def bundle(self) -> tuple[x509.Certificate, ...]:
        """The trust bundle's X.509 authorities."""
        with self._lock:
            return (self.root_cert,)

    def bundle_pem(self) -> bytes:
        """The trust bundle as PEM (what ``--bundle-out`` writes and offline verifiers load)."""
        return b"".join(cert.public_bytes(serialization.Encoding.PEM) for cert in self.bundle)

    def bundle_der(self) -> bytes:
        """The trust bundle as concatenated DER, as the Workload API carries bundles."""
        return b"".join(cert.public_bytes(serialization.Encoding.DER) for cert in self.bundle)

    def rotate(self) -> None:
        """Replace the root key and certificate; SVIDs issued before no longer chain to the bundle."""
        key, cert = self._new_root()
        with self._lock:
            self.root_key, self.root_cert = key, cert
            self._intermediate = None

    def issue_svid(
        self,
        spiffe_id: str,
        *,
        key_type: str = "ec-p256",
        ttl: datetime.timedelta = datetime.timedelta(hours=1),
        not_before: datetime.datetime | None = None,
        intermediate: bool = False,
        uri_sans: list[str] | None = None,
    ) -> Svid:
        """Issue an X509-SVID for ``spiffe_id``.

        Validity: with ``not_before`` given, exactly ``[not_before, not_before + ttl]``; otherwise SPIRE's
        ``[now - 10s, now + ttl]``.  ``uri_sans`` replaces the URI SAN list to craft invalid SVIDs: ``[]``
        omits the SAN extension, several entries give several URIs.  The ID itself is not validated, so
        foreign trust domains and malformed IDs can be issued on purpose.
        """
        key = generate_key(key_type)
        if not_before is None:
            now = _now()
            start, end = now - _BACKDATE, now + ttl
        else:
            start, end = not_before, not_before + ttl
        uris = [spiffe_id] if uri_sans is None else list(uri_sans)
        with self._lock:
            if intermediate:
                issuer_key, issuer_cert = self._intermediate_ca()
                extra: tuple[x509.Certificate, ...] = (issuer_cert,)
            else:
                issuer_key, issuer_cert = self.root_key, self.root_cert
                extra = ()
        builder = (
            x509.CertificateBuilder()
            .subject_name(_LEAF_NAME)
            .issuer_name(issuer_cert.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(start)
            .not_valid_after(end)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(_LEAF_KEY_USAGE, critical=True)
            .add_extension(
                x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]),
                critical=False,
            )
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(_ski(issuer_cert)),
                critical=False,
            )
        )
        if uris:
            builder = builder.add_extension(
                x509.SubjectAlternativeName([x509.UniformResourceIdentifier(u) for u in uris]),
                critical=False,
            )
        leaf = builder.sign(issuer_key, _signature_hash(issuer_key))
        return Svid(spiffe_id=spiffe_id, chain=(leaf, *extra), key=key)
