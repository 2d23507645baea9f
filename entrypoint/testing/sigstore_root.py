"""The ``trusted_root.json`` that matches a set of Sigstore doubles (Fulcio, its CT log, Rekor).

The format is protobuf-specs' ``TrustedRoot`` as JSON (camelCase names, bytes as standard base64),
with the media type sigstore-python 4.5 accepts.  Each double contributes its own section
(``certificateAuthorities``, ``ctlogs``, ``tlogs``); :func:`merge_into` lets doubles started one
by one write the same file.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import json
import os
import tempfile
from collections.abc import Sequence
from typing import Any

from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.hazmat.primitives.serialization import load_der_public_key

MEDIA_TYPE = "application/vnd.dev.sigstore.trustedroot+json;version=0.1"
SECTIONS = ("certificateAuthorities", "ctlogs", "tlogs", "timestampAuthorities")


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _time(when: dt.datetime) -> str:
    return when.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def key_details(public_key_der: bytes) -> str:
    """protobuf-specs' ``PublicKeyDetails`` name for a DER SubjectPublicKeyInfo."""
    key = load_der_public_key(public_key_der)
    if isinstance(key, ec.EllipticCurvePublicKey):
        if isinstance(key.curve, ec.SECP256R1):
            return "PKIX_ECDSA_P256_SHA_256"
        if isinstance(key.curve, ec.SECP384R1):
            return "PKIX_ECDSA_P384_SHA_384"
    if isinstance(key, ed25519.Ed25519PublicKey):
        return "PKIX_ED25519"
    if isinstance(key, rsa.RSAPublicKey):
        return "PKIX_RSA_PKCS1V15_2048_SHA256"
    raise ValueError(f"no PublicKeyDetails for {type(key).__name__}")


def log_instance(
    base_url: str, public_key_der: bytes, *, start: dt.datetime, end: dt.datetime | None = None
) -> dict[str, Any]:
    """A ``TransparencyLogInstance`` (a Rekor v1 log or a CT log): its key and its log ID, the
    SHA-256 of that key's DER SubjectPublicKeyInfo."""
    valid_for = {"start": _time(start)} | ({"end": _time(end)} if end is not None else {})
    return {
        "baseUrl": base_url,
        "hashAlgorithm": "SHA2_256",
        "publicKey": {
            "rawBytes": _b64(public_key_der),
            "keyDetails": key_details(public_key_der),
            "validFor": valid_for,
        },
        "logId": {"keyId": _b64(hashlib.sha256(public_key_der).digest())},
    }


def certificate_authority(
    uri: str,
    chain_der: Sequence[bytes],
    *,
    start: dt.datetime,
    end: dt.datetime | None = None,
    organization: str = "signed-entrypoint tests",
    common_name: str = "fulcio-double",
) -> dict[str, Any]:
    """A ``CertificateAuthority``: its chain, the issuing certificate first, the trust anchor last."""
    valid_for = {"start": _time(start)} | ({"end": _time(end)} if end is not None else {})
    return {
        "subject": {"organization": organization, "commonName": common_name},
        "uri": uri,
        "certChain": {"certificates": [{"rawBytes": _b64(der)} for der in chain_der]},
        "validFor": valid_for,
    }


def trusted_root(
    *,
    certificate_authorities: Sequence[dict[str, Any]] = (),
    tlogs: Sequence[dict[str, Any]] = (),
    ctlogs: Sequence[dict[str, Any]] = (),
) -> dict[str, Any]:
    """A whole trusted root (no timestamp authorities: Rekor v1's SET is the signed time)."""
    return {
        "mediaType": MEDIA_TYPE,
        "tlogs": list(tlogs),
        "certificateAuthorities": list(certificate_authorities),
        "ctlogs": list(ctlogs),
        "timestampAuthorities": [],
    }


def merge_into(
    path: str | os.PathLike[str],
    *,
    certificate_authorities: Sequence[dict[str, Any]] | None = None,
    tlogs: Sequence[dict[str, Any]] | None = None,
    ctlogs: Sequence[dict[str, Any]] | None = None,
) -> None:
    """Write the sections given into the trusted root at ``path`` (made if missing), keeping the
    others: a Fulcio double and a Rekor double started separately fill one file."""
    try:
        with open(path, encoding="utf-8") as f:
            root: dict[str, Any] = json.load(f)
    except FileNotFoundError:
        root = trusted_root()
    root["mediaType"] = MEDIA_TYPE
    for name, value in (
        ("certificateAuthorities", certificate_authorities),
        ("tlogs", tlogs),
        ("ctlogs", ctlogs),
    ):
        if value is not None:
            root[name] = list(value)
    for name in SECTIONS:
        root.setdefault(name, [])
    directory = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=".trusted_root.")
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        json.dump(root, f, indent=2)
        f.write("\n")
    os.replace(tmp, path)
