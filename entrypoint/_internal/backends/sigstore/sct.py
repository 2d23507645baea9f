"""The certificate's embedded Signed Certificate Timestamp (RFC 6962 §3.2), checked against the
trusted root's CT log keys: proof that Fulcio published the certificate before issuing it.

The SCT signs the *precertificate*: the certificate's TBS without the SCT extension, and the
SHA-256 of the issuer's public key.  Used by the signer, before a certificate is used, and by
the verifier.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import struct

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from entrypoint._internal.backends.sigstore.trust import TrustedRoot

_EPOCH = dt.datetime(1970, 1, 1)
_PRECERT_ENTRY = 1


def check_embedded_sct(leaf: x509.Certificate, issuer: x509.Certificate, root: TrustedRoot) -> dt.datetime:
    """The one embedded SCT's time, once its signature verifies with a CT log key trusted then.
    ValueError says what is wrong."""
    try:
        scts = leaf.extensions.get_extension_for_class(x509.PrecertificateSignedCertificateTimestamps).value
    except x509.ExtensionNotFound:
        raise ValueError("the certificate has no embedded SCT") from None
    found = list(scts)
    if len(found) != 1:
        raise ValueError(f"the certificate has {len(found)} embedded SCTs; exactly one is expected")
    sct = found[0]
    when: dt.datetime = sct.timestamp.replace(tzinfo=dt.UTC)
    log = root.ctlog(sct.log_id, when)
    if log is None:
        raise ValueError(
            f"the SCT's CT log {sct.log_id.hex()} is not in {root.source} "
            f"(or not trusted at {when:%Y-%m-%dT%H:%M:%SZ})"
        )
    if not isinstance(sct.signature_hash_algorithm, hashes.SHA256) or not isinstance(
        log.key, ec.EllipticCurvePublicKey
    ):
        raise ValueError("the SCT is not an ECDSA SHA-256 signature by an ECDSA CT log key")
    issuer_key_hash = hashlib.sha256(
        issuer.public_key().public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)
    ).digest()
    tbs = leaf.tbs_precertificate_bytes
    millis = (sct.timestamp - _EPOCH) // dt.timedelta(milliseconds=1)
    signed = (
        struct.pack("!BBQH", 0, 0, millis, _PRECERT_ENTRY)
        + issuer_key_hash
        + len(tbs).to_bytes(3, "big")
        + tbs
        + struct.pack("!H", len(sct.extension_bytes))
        + sct.extension_bytes
    )
    try:
        log.key.verify(sct.signature, signed, ec.ECDSA(hashes.SHA256()))
    except InvalidSignature:
        raise ValueError("the SCT's signature does not verify with its CT log's key") from None
    return when
