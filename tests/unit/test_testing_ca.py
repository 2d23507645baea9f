"""The test CA issues SVIDs that real verifiers accept, shaped like SPIRE's, and bad ones on request."""

from __future__ import annotations

import datetime

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from cryptography.x509.verification import PolicyBuilder, Store, VerificationError
from spiffe import X509Svid

from entrypoint.testing.ca import Svid, TestCA

ID = "spiffe://example.org/ns/foo/taskrun/taskrun-example"
UTC = datetime.UTC


def _verify(
    ca: TestCA, svid: Svid, *, at: datetime.datetime | None = None, with_intermediates: bool = True
) -> None:
    """Raise VerificationError unless the SVID chains to the CA's bundle, as a client certificate."""
    verifier = (
        PolicyBuilder()
        .store(Store(list(ca.bundle)))
        .time(at or datetime.datetime.now(UTC))
        .build_client_verifier()
    )
    verified = verifier.verify(svid.leaf, list(svid.chain[1:]) if with_intermediates else [])
    assert verified.subjects == [x509.UniformResourceIdentifier(svid.spiffe_id)]


def _spki(key: object) -> bytes:
    assert isinstance(key, ec.EllipticCurvePublicKey | rsa.RSAPublicKey | ed25519.Ed25519PublicKey)
    return key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)


@pytest.mark.parametrize("ca_key", ["ec-p256", "ec-p384", "rsa-2048"])
@pytest.mark.parametrize("intermediate", [False, True])
def test_svids_pass_cryptography_client_verification(ca_key: str, intermediate: bool) -> None:
    ca = TestCA(key_type=ca_key)
    svid = ca.issue_svid(ID, intermediate=intermediate)
    _verify(ca, svid)
    assert len(svid.chain) == (2 if intermediate else 1)


@pytest.mark.parametrize("leaf_key", ["ec-p256", "ec-p384", "rsa-2048", "ed25519"])
def test_every_leaf_key_type_verifies_and_matches_the_served_key(ca: TestCA, leaf_key: str) -> None:
    svid = ca.issue_svid(ID, key_type=leaf_key)
    _verify(ca, svid)
    assert _spki(svid.leaf.public_key()) == _spki(svid.key.public_key())


@pytest.mark.parametrize(
    ("leaf_key", "key_class", "size"),
    [
        ("ec-p256", ec.EllipticCurvePrivateKey, 256),
        ("ec-p384", ec.EllipticCurvePrivateKey, 384),
        ("rsa-2048", rsa.RSAPrivateKey, 2048),
    ],
)
def test_key_type_selects_the_leaf_key(ca: TestCA, leaf_key: str, key_class: type, size: int) -> None:
    key = ca.issue_svid(ID, key_type=leaf_key).key
    assert isinstance(key, key_class)
    assert isinstance(key, ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey)
    assert key.key_size == size


def test_ed25519_ca_is_refused_by_the_cryptography_verifier() -> None:
    # Documented limitation: kept for negative tests only.
    ca = TestCA(key_type="ed25519")
    with pytest.raises(VerificationError, match="Forbidden public key algorithm"):
        _verify(ca, ca.issue_svid(ID))


def test_signature_hash_follows_the_ca_key() -> None:
    p384 = TestCA(key_type="ec-p384")
    assert isinstance(p384.issue_svid(ID).leaf.signature_hash_algorithm, hashes.SHA384)
    assert isinstance(TestCA(key_type="rsa-2048").issue_svid(ID).leaf.signature_hash_algorithm, hashes.SHA256)


def test_leaf_is_shaped_like_a_spire_x509_svid(ca: TestCA) -> None:
    before = datetime.datetime.now(UTC).replace(microsecond=0)
    leaf = ca.issue_svid(ID, ttl=datetime.timedelta(minutes=30)).leaf
    after = datetime.datetime.now(UTC)
    ext = leaf.extensions

    assert leaf.subject.get_attributes_for_oid(NameOID.COUNTRY_NAME)[0].value == "US"
    assert leaf.subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)[0].value == "SPIRE"
    assert ext.get_extension_for_class(x509.SubjectAlternativeName).value.get_values_for_type(
        x509.UniformResourceIdentifier
    ) == [ID]
    basic = ext.get_extension_for_class(x509.BasicConstraints)
    assert basic.critical
    assert not basic.value.ca
    usage = ext.get_extension_for_class(x509.KeyUsage)
    assert usage.critical
    assert usage.value.digital_signature
    assert usage.value.key_encipherment
    assert usage.value.key_agreement
    assert not usage.value.key_cert_sign
    assert list(ext.get_extension_for_class(x509.ExtendedKeyUsage).value) == [
        ExtendedKeyUsageOID.SERVER_AUTH,
        ExtendedKeyUsageOID.CLIENT_AUTH,
    ]
    ski = ext.get_extension_for_class(x509.SubjectKeyIdentifier).value
    assert ski == x509.SubjectKeyIdentifier.from_public_key(leaf.public_key())
    aki = ext.get_extension_for_class(x509.AuthorityKeyIdentifier).value
    root_ski = ca.root_cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    assert aki.key_identifier == root_ski.digest
    assert leaf.issuer == ca.root_cert.subject
    # SPIRE backdates notBefore by 10 s; notAfter is issue time + TTL.
    assert before - datetime.timedelta(seconds=11) <= leaf.not_valid_before_utc <= after
    assert before + datetime.timedelta(minutes=30) <= leaf.not_valid_after_utc
    assert leaf.not_valid_after_utc <= after + datetime.timedelta(minutes=30)


def test_ca_certificates_carry_the_trust_domain_id_and_may_sign(ca: TestCA) -> None:
    intermediate = ca.issue_svid(ID, intermediate=True).chain[1]
    for cert in (ca.root_cert, intermediate):
        ext = cert.extensions
        assert ext.get_extension_for_class(x509.BasicConstraints).value.ca
        assert ext.get_extension_for_class(x509.KeyUsage).value.key_cert_sign
        san = ext.get_extension_for_class(x509.SubjectAlternativeName).value
        assert san.get_values_for_type(x509.UniformResourceIdentifier) == ["spiffe://example.org"]
    assert intermediate.issuer == ca.root_cert.subject
    assert ca.root_cert.issuer == ca.root_cert.subject


def test_the_real_spiffe_library_accepts_the_svid(ca: TestCA) -> None:
    for intermediate in (False, True):
        svid = ca.issue_svid(ID, intermediate=intermediate)
        parsed = X509Svid.parse_raw(svid.chain_der(), svid.key_der())
        assert str(parsed.spiffe_id) == ID
        assert [c.public_bytes(serialization.Encoding.DER) for c in parsed.cert_chain] == [
            c.public_bytes(serialization.Encoding.DER) for c in svid.chain
        ]


def test_intermediate_chains_need_the_intermediate(ca: TestCA) -> None:
    svid = ca.issue_svid(ID, intermediate=True)
    assert svid.chain[1] not in ca.bundle
    assert svid.leaf.issuer == svid.chain[1].subject
    with pytest.raises(VerificationError):
        _verify(ca, svid, with_intermediates=False)
    # One intermediate per root, as one SPIRE server CA signs every SVID.
    assert ca.issue_svid(ID, intermediate=True).chain[1] == svid.chain[1]


def test_explicit_not_before_sets_the_exact_window(ca: TestCA) -> None:
    start = datetime.datetime(2024, 1, 1, 12, 0, tzinfo=UTC)
    svid = ca.issue_svid(ID, not_before=datetime.datetime.now(UTC) - datetime.timedelta(hours=2))
    leaf = ca.issue_svid(ID, not_before=start, ttl=datetime.timedelta(minutes=5)).leaf
    assert leaf.not_valid_before_utc == start
    assert leaf.not_valid_after_utc == start + datetime.timedelta(minutes=5)
    # Expired an hour ago: rejected now, accepted at a time inside its window.
    with pytest.raises(VerificationError, match="not valid at validation time"):
        _verify(ca, svid)
    _verify(ca, svid, at=svid.leaf.not_valid_before_utc + datetime.timedelta(minutes=1))


def test_rotate_replaces_the_bundle_and_orphans_old_svids() -> None:
    ca = TestCA()
    old_root, old_pem = ca.root_cert, ca.bundle_pem()
    old_svid, old_chained = ca.issue_svid(ID), ca.issue_svid(ID, intermediate=True)
    ca.rotate()
    assert ca.root_cert != old_root
    assert ca.bundle_pem() != old_pem
    assert old_root not in ca.bundle
    for svid in (old_svid, old_chained):
        with pytest.raises(VerificationError):
            _verify(ca, svid)
    _verify(ca, ca.issue_svid(ID))
    new_chained = ca.issue_svid(ID, intermediate=True)
    assert new_chained.chain[1] != old_chained.chain[1]
    _verify(ca, new_chained)


def test_bundle_encodings(ca: TestCA) -> None:
    assert x509.load_pem_x509_certificates(ca.bundle_pem()) == [ca.root_cert]
    assert ca.bundle_der() == ca.root_cert.public_bytes(serialization.Encoding.DER)


def test_uri_sans_crafts_invalid_svids(ca: TestCA) -> None:
    bare = ca.issue_svid(ID, uri_sans=[]).leaf
    with pytest.raises(x509.ExtensionNotFound):
        bare.extensions.get_extension_for_class(x509.SubjectAlternativeName)
    two = ["spiffe://example.org/a", "spiffe://example.org/b"]
    multi = ca.issue_svid(ID, uri_sans=two).leaf
    san = multi.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.UniformResourceIdentifier) == two
    # A real SPIFFE library refuses both.
    for crafted in (ca.issue_svid(ID, uri_sans=[]), ca.issue_svid(ID, uri_sans=two)):
        with pytest.raises(Exception, match="Invalid leaf certificate"):
            X509Svid.parse_raw(crafted.chain_der(), crafted.key_der())


def test_svid_encodings(ca: TestCA) -> None:
    svid = ca.issue_svid(ID, intermediate=True)
    der = [c.public_bytes(serialization.Encoding.DER) for c in svid.chain]
    assert svid.chain_der() == der[0] + der[1]
    key = serialization.load_der_private_key(svid.key_der(), password=None)
    assert _spki(key.public_key()) == _spki(svid.leaf.public_key())

    pem = svid.leaf_pem()
    lines = pem.split("\n")
    assert lines[0] == "-----BEGIN CERTIFICATE-----"
    assert pem.endswith("-----END CERTIFICATE-----\n")
    body = lines[1:-2]
    assert all(len(line) == 64 for line in body[:-1])
    assert 0 < len(body[-1]) <= 64
    assert x509.load_pem_x509_certificates(pem.encode()) == [svid.leaf]  # leaf only, no chain


def test_svid_repr_leaves_the_key_out(ca: TestCA) -> None:
    text = repr(ca.issue_svid(ID))
    assert ID in text
    assert "key" not in text.lower()


@pytest.mark.parametrize("bad", ["", "spiffe://example.org", "Example.org", "a/b"])
def test_invalid_trust_domain_is_refused(bad: str) -> None:
    with pytest.raises(ValueError, match="trust domain"):
        TestCA(bad)


def test_unknown_key_types_are_refused(ca: TestCA) -> None:
    with pytest.raises(ValueError, match="unknown key type"):
        TestCA(key_type="dsa")
    with pytest.raises(ValueError, match="unknown key type"):
        ca.issue_svid(ID, key_type="rsa-512")


def test_not_collected_by_pytest() -> None:
    assert TestCA.__test__ is False
