"""A Sigstore ``trusted_root.json``: Fulcio's CAs, the CT logs' keys, the Rekor logs' keys.

The format is protobuf-specs' ``TrustedRoot`` in JSON (what sigstore-python and cosign read).
Each key and CA is trusted only inside its ``validFor`` window (inclusive), at the time that
matters: the log's integrated time, or the signing time when there is no log.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import hashlib
import json
from collections.abc import Mapping, Sequence
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric.types import PublicKeyTypes
from cryptography.hazmat.primitives.serialization import load_der_public_key

from entrypoint.errors import TrustError

MEDIA_TYPES = (
    "application/vnd.dev.sigstore.trustedroot+json;version=0.1",
    "application/vnd.dev.sigstore.trustedroot.v0.2+json",
)
# A trusted root is a few KiB; this bounds what a wrong path can make the verifier read.
MAX_BYTES = 4 * 1024 * 1024


class SigstoreTrustError(TrustError):
    """A trusted root that cannot be read or parsed; the text names the file and the field."""


class Window:
    """A ``validFor`` time range, inclusive; no end means still valid."""

    __slots__ = ("end", "start")

    def __init__(self, start: dt.datetime, end: dt.datetime | None) -> None:
        self.start, self.end = start, end

    def contains(self, at: dt.datetime) -> bool:
        return self.start <= at and (self.end is None or at <= self.end)


class LogKey:
    """One transparency log's (Rekor's or a CT log's) key, its log ID, and when it is trusted."""

    __slots__ = ("base_url", "key", "log_id", "valid")

    def __init__(self, base_url: str, key: PublicKeyTypes, log_id: bytes, valid: Window) -> None:
        self.base_url, self.key, self.log_id, self.valid = base_url, key, log_id, valid


class CertificateAuthority:
    """A Fulcio CA: its chain (issuing certificate first, trust anchor last) and when it is trusted."""

    __slots__ = ("chain", "uri", "valid")

    def __init__(self, uri: str, chain: tuple[x509.Certificate, ...], valid: Window) -> None:
        self.uri, self.chain, self.valid = uri, chain, valid


class TrustedRoot:
    """The parts of a Sigstore trusted root this backend uses."""

    def __init__(
        self,
        authorities: Sequence[CertificateAuthority],
        tlogs: Sequence[LogKey],
        ctlogs: Sequence[LogKey],
        source: str = "trusted root",
    ) -> None:
        self.authorities = tuple(authorities)
        self.tlogs = tuple(tlogs)
        self.ctlogs = tuple(ctlogs)
        self.source = source

    @classmethod
    def from_file(cls, path: str) -> TrustedRoot:
        """Read and parse one; TrustError names the file and the field."""
        try:
            with open(path, "rb") as f:
                data = f.read(MAX_BYTES + 1)
        except OSError as exc:
            raise SigstoreTrustError(f"Sigstore trusted root {path}: {exc.strerror or exc}") from exc
        if len(data) > MAX_BYTES:
            raise SigstoreTrustError(f"Sigstore trusted root {path}: larger than {MAX_BYTES} bytes")
        return cls.from_json(data, source=path)

    @classmethod
    def from_json(cls, data: bytes | str, *, source: str = "trusted root") -> TrustedRoot:
        try:
            doc = json.loads(data)
        except ValueError as exc:
            raise SigstoreTrustError(f"Sigstore trusted root {source}: not JSON: {exc}") from exc
        try:
            return _parse(doc, source)
        except (SigstoreTrustError, KeyError, TypeError, ValueError) as exc:
            raise SigstoreTrustError(f"Sigstore trusted root {source}: {_why(exc)}") from exc

    def tlog(self, log_id: bytes, at: dt.datetime) -> LogKey | None:
        return _find(self.tlogs, log_id, at)

    def ctlog(self, log_id: bytes, at: dt.datetime) -> LogKey | None:
        return _find(self.ctlogs, log_id, at)

    def authorities_at(self, at: dt.datetime) -> list[CertificateAuthority]:
        return [ca for ca in self.authorities if ca.valid.contains(at)]


def _find(logs: Sequence[LogKey], log_id: bytes, at: dt.datetime) -> LogKey | None:
    for log in logs:
        if log.log_id == log_id and log.valid.contains(at):
            return log
    return None


def _why(exc: BaseException) -> str:
    if isinstance(exc, KeyError):
        return f"missing field {exc.args[0]!r}"
    return str(exc)


def _object(value: object, what: str) -> Mapping[str, Any]:
    if not isinstance(value, dict):
        raise SigstoreTrustError(f"{what} is not an object")
    return value


def _list(doc: Mapping[str, Any], name: str) -> list[Any]:
    value = doc.get(name, [])
    if not isinstance(value, list):
        raise SigstoreTrustError(f"{name} is not a list")
    return value


def _bytes(value: object, what: str) -> bytes:
    if not isinstance(value, str):
        raise SigstoreTrustError(f"{what} is not a base64 string")
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise SigstoreTrustError(f"{what} is not base64") from exc


def _time(value: object, what: str) -> dt.datetime:
    if not isinstance(value, str):
        raise SigstoreTrustError(f"{what} is not an RFC 3339 time")
    try:
        when = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError as exc:
        raise SigstoreTrustError(f"{what} {value!r} is not an RFC 3339 time") from exc
    if when.tzinfo is None:
        raise SigstoreTrustError(f"{what} {value!r} has no time zone")
    return when.astimezone(dt.UTC)


def _window(value: object, what: str) -> Window:
    doc = _object(value, what)
    if "start" not in doc:
        # A key with no start would be trusted for signatures made before it existed.
        raise SigstoreTrustError(f"{what}.start is missing")
    end = doc.get("end")
    return Window(
        _time(doc["start"], f"{what}.start"), _time(end, f"{what}.end") if end is not None else None
    )


def _log(value: object, what: str) -> LogKey:
    doc = _object(value, what)
    key_doc = _object(doc["publicKey"], f"{what}.publicKey")
    der = _bytes(key_doc["rawBytes"], f"{what}.publicKey.rawBytes")
    try:
        key = load_der_public_key(der)
    except ValueError as exc:
        raise SigstoreTrustError(f"{what}.publicKey.rawBytes is not a DER public key") from exc
    # The log ID is the SHA-256 of the key (Rekor v1, CT), whatever the file says: a logId that
    # disagreed would only let a wrong key be chosen.
    log_id = hashlib.sha256(der).digest()
    return LogKey(
        str(doc.get("baseUrl", "")),
        key,
        log_id,
        _window(key_doc.get("validFor"), f"{what}.publicKey.validFor"),
    )


def _authority(value: object, what: str) -> CertificateAuthority:
    doc = _object(value, what)
    certs = _list(_object(doc["certChain"], f"{what}.certChain"), "certificates")
    if not certs:
        raise SigstoreTrustError(f"{what}.certChain has no certificates")
    chain = []
    for i, cert in enumerate(certs):
        der = _bytes(
            _object(cert, f"{what}.certChain.certificates[{i}]")["rawBytes"], f"{what} certificate {i}"
        )
        try:
            chain.append(x509.load_der_x509_certificate(der))
        except ValueError as exc:
            raise SigstoreTrustError(f"{what}.certChain.certificates[{i}] is not a DER certificate") from exc
    return CertificateAuthority(
        str(doc.get("uri", "")), tuple(chain), _window(doc.get("validFor"), f"{what}.validFor")
    )


def _parse(doc: object, source: str) -> TrustedRoot:
    root = _object(doc, "the document")
    media = root.get("mediaType")
    if media not in MEDIA_TYPES:
        raise SigstoreTrustError(f"unsupported mediaType {media!r}")
    cas = [
        _authority(v, f"certificateAuthorities[{i}]")
        for i, v in enumerate(_list(root, "certificateAuthorities"))
    ]
    tlogs = [_log(v, f"tlogs[{i}]") for i, v in enumerate(_list(root, "tlogs"))]
    ctlogs = [_log(v, f"ctlogs[{i}]") for i, v in enumerate(_list(root, "ctlogs"))]
    if not cas:
        raise SigstoreTrustError("no certificateAuthorities")
    return TrustedRoot(cas, tlogs, ctlogs, source)
