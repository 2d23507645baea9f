"""An RFC 6962 Certificate Transparency log double: signed certificate timestamps for precertificates.

Fulcio submits every precertificate to a CT log (``POST /ct/v1/add-pre-chain``) and embeds the SCT the
log answers in the final certificate; sigstore-python refuses a Fulcio certificate without one.  This
module is that log: :class:`CTLog` signs SCTs in process (what the Fulcio double uses by default),
:class:`CTLogDouble` serves the same over HTTPS as a real log does, and :class:`CTLogClient` is Fulcio's
side of that call.  The log keeps no Merkle tree: nothing in Sigstore verification reads one back.

``python -m entrypoint.testing.ctlog`` serves a log until SIGTERM or SIGINT.
"""

from __future__ import annotations

import argparse
import base64
import binascii
import datetime as dt
import hashlib
import itertools
import json
import os
import ssl
import struct
import sys
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import httpx
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

from entrypoint.testing import sigstore_root
from entrypoint.testing._https import HTTPError, HTTPSDouble, Reply, serving_credentials
from entrypoint.testing._serving import serve_until, stop_on_signals

__all__ = [
    "ADD_PRE_CHAIN_PATH",
    "GET_ROOTS_PATH",
    "SCT",
    "SCT_LIST_OID",
    "CTLog",
    "CTLogClient",
    "CTLogDouble",
    "CTLogError",
    "main",
    "precert_entry",
    "precert_signed_data",
    "sct_list_extension",
    "sign_sct",
    "strip_poison",
]

ADD_PRE_CHAIN_PATH = "/ct/v1/add-pre-chain"
GET_ROOTS_PATH = "/ct/v1/get-roots"
SCT_LIST_OID = x509.ObjectIdentifier("1.3.6.1.4.1.11129.2.4.2")
PRECERT_SIGNING_EKU = x509.ObjectIdentifier("1.3.6.1.4.1.11129.2.4.4")
# The content octets of the poison extension's OID, 1.3.6.1.4.1.11129.2.4.3 (RFC 6962 §3.1).
_POISON_OID_CONTENT = bytes.fromhex("2b06010401d679020403")
# TLS HashAlgorithm.sha256 and SignatureAlgorithm.ecdsa (RFC 5246 §7.4.1.4.1).
HASH_SHA256 = 4
SIGNATURE_ECDSA = 3
_PRECERT_ENTRY = 1
_CLIENT_TIMEOUT_SECONDS = 5.0


class CTLogError(Exception):
    """A CT log refused a submission, or answered an SCT that does not verify.

    ``retryable``: no answer, or 408, 429 or 503, which real Fulcio retries until its request's
    deadline."""

    def __init__(self, message: str, *, retryable: bool = False) -> None:
        super().__init__(message)
        self.retryable = retryable


# -- DER, just enough to take the poison out of a TBSCertificate -------------------------------------------


def _tlv(data: bytes, pos: int) -> tuple[int, int, int]:
    """``(tag, start of value, end of element)`` of the DER element at ``pos``."""
    if pos + 2 > len(data):
        raise ValueError("truncated DER")
    tag, first = data[pos], data[pos + 1]
    if tag & 0x1F == 0x1F:
        raise ValueError("unexpected high-tag-number DER element")
    if first < 0x80:
        start, length = pos + 2, first
    else:
        count = first & 0x7F
        if not 1 <= count <= 4:
            raise ValueError("unsupported DER length")
        start = pos + 2 + count
        length = int.from_bytes(data[pos + 2 : start], "big")
    end = start + length
    if end > len(data):
        raise ValueError("truncated DER")
    return tag, start, end


def _der(tag: int, content: bytes) -> bytes:
    n = len(content)
    if n < 0x80:
        return bytes([tag, n]) + content
    size = n.to_bytes((n.bit_length() + 7) // 8, "big")
    return bytes([tag, 0x80 | len(size)]) + size + content


def strip_poison(tbs_der: bytes) -> bytes:
    """The TBSCertificate an SCT signs for a precertificate: its own, without the poison extension
    (RFC 6962 §3.2).  Raises ``ValueError`` if it has no poison."""
    tag, start, end = _tlv(tbs_der, 0)
    if tag != 0x30 or end != len(tbs_der):
        raise ValueError("not a DER TBSCertificate")
    parts: list[bytes] = []
    poisoned = False
    pos = start
    while pos < end:
        tag, value, element_end = _tlv(tbs_der, pos)
        element = tbs_der[pos:element_end]
        if tag == 0xA3:  # [3] EXPLICIT Extensions
            seq_tag, seq_start, seq_end = _tlv(tbs_der, value)
            if seq_tag != 0x30 or seq_end != element_end:
                raise ValueError("malformed extensions")
            kept: list[bytes] = []
            ext_pos = seq_start
            while ext_pos < seq_end:
                _, ext_value, ext_end = _tlv(tbs_der, ext_pos)
                oid_tag, oid_start, oid_end = _tlv(tbs_der, ext_value)
                if oid_tag == 0x06 and tbs_der[oid_start:oid_end] == _POISON_OID_CONTENT:
                    poisoned = True
                else:
                    kept.append(tbs_der[ext_pos:ext_end])
                ext_pos = ext_end
            element = _der(0xA3, _der(0x30, b"".join(kept))) if kept else b""
        parts.append(element)
        pos = element_end
    if not poisoned:
        raise ValueError("not a precertificate: it has no poison extension")
    return _der(0x30, b"".join(parts))


# -- SCTs --------------------------------------------------------------------------------------------------


def _spki_der(cert: x509.Certificate) -> bytes:
    return cert.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def precert_signed_data(
    timestamp_ms: int, issuer_spki_der: bytes, tbs_der: bytes, extensions: bytes = b""
) -> bytes:
    """The ``digitally-signed`` body of a precertificate SCT (RFC 6962 §3.2)."""
    return (
        struct.pack("!BBQH", 0, 0, timestamp_ms, _PRECERT_ENTRY)
        + hashlib.sha256(issuer_spki_der).digest()
        + len(tbs_der).to_bytes(3, "big")
        + tbs_der
        + struct.pack("!H", len(extensions))
        + extensions
    )


@dataclass(frozen=True)
class SCT:
    """One v1 SignedCertificateTimestamp: its fields, its TLS encoding and its JSON (AddChainResponse)."""

    log_id: bytes
    timestamp_ms: int
    signature: bytes
    extensions: bytes = b""
    version: int = 0
    hash_algorithm: int = HASH_SHA256
    signature_algorithm: int = SIGNATURE_ECDSA

    def encode(self) -> bytes:
        """The TLS encoding, as the SCT list extension carries it."""
        return (
            struct.pack("!B", self.version)
            + self.log_id
            + struct.pack("!QH", self.timestamp_ms, len(self.extensions))
            + self.extensions
            + struct.pack("!BBH", self.hash_algorithm, self.signature_algorithm, len(self.signature))
            + self.signature
        )

    @classmethod
    def decode(cls, data: bytes) -> SCT:
        try:
            version = data[0]
            log_id = data[1:33]
            timestamp_ms, ext_len = struct.unpack("!QH", data[33:43])
            extensions = data[43 : 43 + ext_len]
            pos = 43 + ext_len
            hash_alg, sig_alg, sig_len = struct.unpack("!BBH", data[pos : pos + 4])
            signature = data[pos + 4 :]
        except (IndexError, struct.error) as err:
            raise ValueError("truncated SCT") from err
        if len(log_id) != 32 or len(extensions) != ext_len or len(signature) != sig_len:
            raise ValueError("malformed SCT")
        return cls(log_id, timestamp_ms, signature, extensions, version, hash_alg, sig_alg)

    def to_json(self) -> dict[str, Any]:
        """The log's answer to add-(pre-)chain."""
        signed = struct.pack("!BBH", self.hash_algorithm, self.signature_algorithm, len(self.signature))
        return {
            "sct_version": self.version,
            "id": base64.b64encode(self.log_id).decode("ascii"),
            "timestamp": self.timestamp_ms,
            "extensions": base64.b64encode(self.extensions).decode("ascii"),
            "signature": base64.b64encode(signed + self.signature).decode("ascii"),
        }

    @classmethod
    def from_json(cls, body: Any) -> SCT:
        try:
            signed = base64.b64decode(body["signature"], validate=True)
            hash_alg, sig_alg, sig_len = struct.unpack("!BBH", signed[:4])
            sct = cls(
                log_id=base64.b64decode(body["id"], validate=True),
                timestamp_ms=int(body["timestamp"]),
                signature=signed[4:],
                extensions=base64.b64decode(body.get("extensions") or "", validate=True),
                version=int(body["sct_version"]),
                hash_algorithm=hash_alg,
                signature_algorithm=sig_alg,
            )
        except (KeyError, TypeError, ValueError, struct.error, binascii.Error) as err:
            raise ValueError(f"malformed AddChainResponse: {err}") from err
        if len(sct.log_id) != 32 or len(sct.signature) != sig_len:
            raise ValueError("malformed AddChainResponse")
        return sct


def sign_sct(
    key: ec.EllipticCurvePrivateKey, log_id: bytes, timestamp_ms: int, issuer_spki_der: bytes, tbs_der: bytes
) -> SCT:
    """An SCT claiming ``log_id``, signed by ``key`` over a precertificate's TBS (poison removed)."""
    data = precert_signed_data(timestamp_ms, issuer_spki_der, tbs_der)
    return SCT(log_id, timestamp_ms, key.sign(data, ec.ECDSA(hashes.SHA256())))


def sct_list_extension(scts: Sequence[bytes]) -> x509.UnrecognizedExtension:
    """The embedded SCT list extension (RFC 6962 §3.3) of TLS-encoded SCTs, for a CertificateBuilder."""
    body = b"".join(struct.pack("!H", len(sct)) + sct for sct in scts)
    return x509.UnrecognizedExtension(SCT_LIST_OID, _der(0x04, struct.pack("!H", len(body)) + body))


def _is_poisoned(cert: x509.Certificate) -> bool:
    try:
        ext = cert.extensions.get_extension_for_class(x509.PrecertPoison)
    except x509.ExtensionNotFound:
        return False
    return ext.critical


def _is_precert_signer(cert: x509.Certificate) -> bool:
    try:
        eku = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    except x509.ExtensionNotFound:
        return False
    return PRECERT_SIGNING_EKU in eku


def precert_entry(
    chain_der: Sequence[bytes], roots: Sequence[x509.Certificate] | None = None
) -> tuple[bytes, bytes]:
    """``(TBS without poison, issuer's DER SPKI)`` of an add-pre-chain chain (precertificate first, each
    certificate issued by the next), after the checks a log makes; ``roots``, when given, are the roots
    the chain must end at or under.  Raises ``ValueError``."""
    if len(chain_der) < 2:
        raise ValueError("a precertificate chain needs the precertificate and its issuer")
    try:
        chain = [x509.load_der_x509_certificate(der) for der in chain_der]
    except ValueError as err:
        raise ValueError(f"failed to parse certificate: {err}") from err
    if not _is_poisoned(chain[0]):
        raise ValueError("the first certificate is not a precertificate (no critical poison extension)")
    if _is_precert_signer(chain[1]):
        # The issuer then rewrites the TBS's issuer and AKI (RFC 6962 §3.1); Fulcio never uses one.
        raise ValueError("precertificate signing certificates are not supported")
    for child, parent in itertools.pairwise(chain):
        try:
            child.verify_directly_issued_by(parent)
        except (ValueError, TypeError, InvalidSignature) as err:
            raise ValueError(f"chain broken at {child.subject.rfc4514_string()!r}: {err}") from err
    if roots is not None and not _ends_in(chain[-1], roots):
        raise ValueError("the chain does not end in a root this log accepts")
    return strip_poison(chain[0].tbs_certificate_bytes), _spki_der(chain[1])


def _ends_in(last: x509.Certificate, roots: Sequence[x509.Certificate]) -> bool:
    for root in roots:
        if last == root:
            return True
        try:
            last.verify_directly_issued_by(root)
        except (ValueError, TypeError, InvalidSignature):
            continue
        return True
    return False


class CTLog:
    """The signing half of an RFC 6962 log: a P-256 key that issues SCTs over precertificates."""

    def __init__(self, key: ec.EllipticCurvePrivateKey | None = None) -> None:
        self._key = key if key is not None else ec.generate_private_key(ec.SECP256R1())
        if not isinstance(self._key.curve, ec.SECP256R1):
            raise ValueError("a CT log key must be P-256 (PKIX_ECDSA_P256_SHA_256)")
        self._public_key_der = self._key.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        self._stray = ec.generate_private_key(ec.SECP256R1())
        self._lock = threading.Lock()
        self._wrong_key = False

    @property
    def public_key_der(self) -> bytes:
        """The log's key as DER SubjectPublicKeyInfo, as a trusted root's ``ctlogs`` carries it."""
        return self._public_key_der

    @property
    def log_id(self) -> bytes:
        """SHA-256 of :attr:`public_key_der` (RFC 6962 §3.2)."""
        return hashlib.sha256(self._public_key_der).digest()

    @property
    def wrong_key(self) -> bool:
        """While set, SCTs still claim this log's ID but are signed by another key."""
        with self._lock:
            return self._wrong_key

    @wrong_key.setter
    def wrong_key(self, value: bool) -> None:
        with self._lock:
            self._wrong_key = value

    def sign_precert(
        self,
        tbs_precert_der: bytes,
        issuer_spki_der: bytes,
        timestamp_ms: int | None = None,
        *,
        wrong_key: bool | None = None,
    ) -> bytes:
        """A TLS-encoded SCT over a precertificate's TBS (poison removed) and its issuer's DER SPKI.

        ``timestamp_ms`` defaults to now; ``wrong_key`` overrides the :attr:`wrong_key` knob."""
        if timestamp_ms is None:
            timestamp_ms = time.time_ns() // 1_000_000
        stray = self.wrong_key if wrong_key is None else wrong_key
        key = self._stray if stray else self._key
        return sign_sct(key, self.log_id, timestamp_ms, issuer_spki_der, tbs_precert_der).encode()

    def add_pre_chain(
        self, chain_der: Sequence[bytes], roots: Sequence[x509.Certificate] | None = None
    ) -> SCT:
        """What the log answers to add-pre-chain (see :func:`precert_entry`); raises ``ValueError``."""
        tbs, issuer_spki = precert_entry(chain_der, roots)
        return SCT.decode(self.sign_precert(tbs, issuer_spki))


@dataclass(frozen=True)
class CTLogClient:
    """Fulcio's side of a CT log over HTTPS: add-pre-chain, and the check of the SCT against the log's key."""

    url: str
    public_key_der: bytes
    ca_pem: bytes | None = None
    timeout: float = _CLIENT_TIMEOUT_SECONDS

    @property
    def log_id(self) -> bytes:
        return hashlib.sha256(self.public_key_der).digest()

    def add_pre_chain(self, chain_der: Sequence[bytes]) -> bytes:
        """Submit a precertificate chain; returns the TLS-encoded SCT, verified as Fulcio's CT client
        verifies it when given the log's key.  Raises :class:`CTLogError`."""
        context = ssl.create_default_context()
        if self.ca_pem is not None:
            context.load_verify_locations(cadata=self.ca_pem.decode("ascii"))
        body = {"chain": [base64.b64encode(der).decode("ascii") for der in chain_der]}
        try:
            with httpx.Client(verify=context, timeout=self.timeout) as client:
                response = client.post(self.url.rstrip("/") + ADD_PRE_CHAIN_PATH, json=body)
        except httpx.HTTPError as err:
            raise CTLogError(f"add-pre-chain failed: {err}", retryable=True) from err
        if response.status_code != 200:
            raise CTLogError(
                f"add-pre-chain: {response.status_code}: {response.text}",
                retryable=response.status_code in (408, 429, 503),
            )
        try:
            sct = SCT.from_json(response.json())
            tbs, issuer_spki = precert_entry(chain_der)
        except ValueError as err:
            raise CTLogError(str(err)) from err
        key = serialization.load_der_public_key(self.public_key_der)
        if not isinstance(key, ec.EllipticCurvePublicKey):
            raise CTLogError("the CT log key is not an ECDSA key")
        try:
            key.verify(
                sct.signature,
                precert_signed_data(sct.timestamp_ms, issuer_spki, tbs),
                ec.ECDSA(hashes.SHA256()),
            )
        except InvalidSignature:
            raise CTLogError("the log's SCT does not verify with its public key") from None
        return sct.encode()


class CTLogDouble(HTTPSDouble):
    """An HTTPS CT log on 127.0.0.1 answering ``POST /ct/v1/add-pre-chain`` with SCTs, as a real log does.

    ``log``: the signer (a new :class:`CTLog` by default).  ``roots``: DER roots the submitted chains must
    end at or under (``accept_root`` adds more); ``None`` accepts any self-consistent chain, since a
    Fulcio double started after the log makes its root only then.
    """

    server_version = "ct-log-double"

    def __init__(
        self, log: CTLog | None = None, *, roots: Sequence[bytes] | None = None, port: int = 0
    ) -> None:
        super().__init__(serving_credentials("ct-log", "ct-log"), port=port, name="ct-log")
        self._log = log if log is not None else CTLog()
        self._roots: list[x509.Certificate] | None = (
            None if roots is None else [x509.load_der_x509_certificate(der) for der in roots]
        )
        self._submissions: list[list[bytes]] = []
        self._created = dt.datetime.now(dt.UTC)

    @property
    def log(self) -> CTLog:
        return self._log

    @property
    def public_key_der(self) -> bytes:
        return self._log.public_key_der

    @property
    def log_id(self) -> bytes:
        return self._log.log_id

    @property
    def wrong_key(self) -> bool:
        """The :attr:`CTLog.wrong_key` knob of the log served."""
        return self._log.wrong_key

    @wrong_key.setter
    def wrong_key(self, value: bool) -> None:
        self._log.wrong_key = value

    def accept_root(self, root_der: bytes) -> None:
        """Accept chains ending at or under this root too; a log made with ``roots=None`` (any chain)
        accepts only the roots given from its first call on."""
        root = x509.load_der_x509_certificate(root_der)
        with self._lock:
            self._roots = [*(self._roots or []), root]

    @property
    def submissions(self) -> list[list[bytes]]:
        """The DER chains of accepted add-pre-chain calls, oldest first."""
        with self._lock:
            return [list(chain) for chain in self._submissions]

    def client(self) -> CTLogClient:
        """A client of this log (for a Fulcio double submitting to it over HTTPS)."""
        return CTLogClient(self.url, self.public_key_der, self.ca_pem)

    def log_instance(self) -> dict[str, Any]:
        """This log's ``ctlogs`` entry of a trusted root."""
        start = self._created - dt.timedelta(minutes=1)
        return sigstore_root.log_instance(self.url, self.public_key_der, start=start)

    def write_trusted_root(self, path: str | os.PathLike[str]) -> None:
        """Write the ``ctlogs`` section of the trusted root at ``path``, keeping its other sections."""
        sigstore_root.merge_into(path, ctlogs=[self.log_instance()])

    def error_response(self, err: HTTPError) -> tuple[dict[str, Any], dict[str, str]]:
        # A real log answers errors as text/plain; this scaffold answers JSON, so the text is its one field.
        return {"error": err.message}, {}

    def handle(self, method: str, path: str, headers: Any, body: bytes) -> Reply:
        route = path.partition("?")[0]
        if route == GET_ROOTS_PATH:
            if method != "GET":
                raise HTTPError(405, "method not allowed")
            with self._lock:
                accepted = list(self._roots or [])
            certificates = [
                base64.b64encode(r.public_bytes(serialization.Encoding.DER)).decode("ascii") for r in accepted
            ]
            return 200, {"certificates": certificates}, "application/json", {}
        if route != ADD_PRE_CHAIN_PATH:
            raise HTTPError(404, "404 page not found")
        if method != "POST":
            raise HTTPError(405, "method not allowed")
        chain = _parse_chain(body)
        with self._lock:
            roots = None if self._roots is None else list(self._roots)
        try:
            sct = self._log.add_pre_chain(chain, roots)
        except ValueError as err:
            raise HTTPError(400, f"failed to verify add-chain contents: {err}") from None
        with self._lock:
            self._submissions.append(chain)
        return 200, sct.to_json(), "application/json", {}


def _parse_chain(body: bytes) -> list[bytes]:
    try:
        request = json.loads(body)
        chain = request["chain"]
        if not isinstance(chain, list) or not all(isinstance(c, str) for c in chain):
            raise TypeError("chain must be a list of base64 strings")
        return [base64.b64decode(c, validate=True) for c in chain]
    except (ValueError, KeyError, TypeError, binascii.Error) as err:
        raise HTTPError(400, f"failed to parse add-chain body: {err}") from None


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m entrypoint.testing.ctlog",
        description="Serve a test RFC 6962 CT log (add-pre-chain) until SIGTERM/SIGINT.",
    )
    parser.add_argument("--port", type=int, default=0, help="port on 127.0.0.1 (default: any free port)")
    parser.add_argument(
        "--root",
        action="append",
        default=None,
        metavar="FILE",
        help="PEM root(s) the chains must end in (repeatable; default: any self-consistent chain)",
    )
    parser.add_argument("--ca-out", metavar="FILE", help="write the serving CA (PEM) clients must trust here")
    parser.add_argument("--public-key-out", metavar="FILE", help="write the log's public key (PEM) here")
    parser.add_argument("--trusted-root", metavar="FILE", help="write the log into this trusted_root.json")
    args = parser.parse_args(argv)

    stop = stop_on_signals()
    try:
        roots = None
        if args.root is not None:
            roots = []
            for name in args.root:
                with open(name, "rb") as f:
                    roots += [
                        c.public_bytes(serialization.Encoding.DER)
                        for c in x509.load_pem_x509_certificates(f.read())
                    ]
        server = CTLogDouble(roots=roots, port=args.port)
        server.start()
    except (ValueError, OSError) as err:
        print(f"ctlog: {err}", file=sys.stderr)
        return 2
    try:
        if args.ca_out:
            _write(args.ca_out, server.ca_pem)
        if args.public_key_out:
            key = serialization.load_der_public_key(server.public_key_der)
            _write(
                args.public_key_out,
                key.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo),
            )
        if args.trusted_root:
            server.write_trusted_root(args.trusted_root)
        serve_until(stop, server.url)
    finally:
        server.stop()
    return 0


def _write(path: str, data: bytes) -> None:
    with open(path, "wb") as f:
        f.write(data)


if __name__ == "__main__":
    sys.exit(main())
