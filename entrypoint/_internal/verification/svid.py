"""Decoding an SVID's chain: the leaf certificate, optionally followed by intermediates.

Tekton's ``SVID`` entry carries it as PEM text (:func:`decode_svid`); the compact format's ``x509``
material as concatenated DER (:func:`decode_der_chain`).

Tekton writes the leaf alone (§7.4) and its verifier reads only the first PEM block, so a signer
may append the intermediate CAs of its X509-SVID as further blocks without breaking Tekton's
verifier; this one uses them to build the chain.  Anything else in the value is rejected: the
entry is produced by a machine, and leniency here would only widen what an attacker can shape.
"""

from __future__ import annotations

import binascii
import re
from dataclasses import dataclass

from cryptography import x509

_BLOCK = re.compile(r"-----BEGIN ([A-Z0-9 ]+)-----\r?\n(.*?)-----END ([A-Z0-9 ]+)-----", re.DOTALL)


class SvidDecodeError(ValueError):
    """The text is not a PEM sequence of certificates; the message says where it broke."""


@dataclass(frozen=True)
class DecodedSvid:
    leaf: x509.Certificate
    intermediates: tuple[x509.Certificate, ...]


def decode_svid(text: str) -> DecodedSvid:
    certs: list[x509.Certificate] = []
    pos = 0
    for match in _BLOCK.finditer(text):
        index = len(certs)
        _expect_blank(text[pos : match.start()], f"before PEM block {index}")
        label, body, end_label = match.groups()
        if label != "CERTIFICATE" or end_label != label:
            raise SvidDecodeError(f"PEM block {index} is {label!r}, not a CERTIFICATE")
        try:
            der = binascii.a2b_base64("".join(body.split()).encode("ascii"), strict_mode=True)
        except (binascii.Error, UnicodeEncodeError) as exc:
            raise SvidDecodeError(f"PEM block {index} has invalid base64: {exc}") from exc
        try:
            certs.append(x509.load_der_x509_certificate(der))
        except ValueError as exc:
            raise SvidDecodeError(f"certificate {index} does not parse: {exc}") from exc
        pos = match.end()
    if not certs:
        # Go's pem.Decode finds no block; Tekton's text here is "invalid SVID: %!w(<nil>)".
        raise SvidDecodeError("no PEM certificate block found")
    _expect_blank(text[pos:], "after the last PEM block")
    return DecodedSvid(certs[0], tuple(certs[1:]))


def _expect_blank(gap: str, where: str) -> None:
    if gap.strip():
        raise SvidDecodeError(f"unexpected text {where}: {gap.strip()[:40]!r}")


def decode_der_chain(data: bytes) -> DecodedSvid:
    """Consecutive DER certificates, leaf first, nothing before, between or after them."""
    certs: list[x509.Certificate] = []
    pos = 0
    while pos < len(data):
        index = len(certs)
        end = _der_element_end(data, pos, index)
        try:
            certs.append(x509.load_der_x509_certificate(data[pos:end]))
        except ValueError as exc:
            raise SvidDecodeError(f"certificate {index} does not parse: {exc}") from exc
        pos = end
    if not certs:
        raise SvidDecodeError("no certificate")
    return DecodedSvid(certs[0], tuple(certs[1:]))


def _der_element_end(data: bytes, pos: int, index: int) -> int:
    """Where the DER SEQUENCE starting at ``pos`` ends.  Only the outer header is read here, to
    split the chain; the certificate parser then checks the element itself, strictly."""
    where = f"certificate {index} (byte {pos})"
    if len(data) - pos < 2 or data[pos] != 0x30:
        raise SvidDecodeError(f"{where}: not a DER SEQUENCE")
    first = data[pos + 1]
    if first < 0x80:
        header, length = 2, first
    else:
        size = first & 0x7F
        # 0 is BER's indefinite length, which DER forbids; 4 bytes already exceed any message.
        if size == 0 or size > 4 or len(data) - pos < 2 + size:
            raise SvidDecodeError(f"{where}: invalid DER length")
        header, length = 2 + size, int.from_bytes(data[pos + 2 : pos + 2 + size], "big")
    end = pos + header + length
    if end > len(data):
        left = len(data) - pos - header
        raise SvidDecodeError(f"{where}: truncated ({length} bytes announced, {left} left)")
    return end
