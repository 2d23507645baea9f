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
from collections.abc import Iterator
from dataclasses import dataclass

from cryptography import x509

from entrypoint.errors import DecodeError

_LABEL = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789 ")


def _label_end(text: str, start: int) -> int:
    """End of a PEM label ([A-Z0-9 ]+) starting at ``start``, if "-----" follows it; else -1."""
    end = start
    while end < len(text) and text[end] in _LABEL:
        end += 1
    return end if end > start and text.startswith("-----", end) else -1


def _blocks(text: str) -> Iterator[tuple[int, str, str, str, int]]:
    """PEM blocks as (start, label, body, end label, end), found in linear time.

    A backtracking regular expression here took seconds on a few hundred bytes of crafted text
    (many BEGIN lines and no END), and the SVID entry comes from an untrusted message.
    """
    pos = 0
    while (begin := text.find("-----BEGIN ", pos)) >= 0:
        label_end = _label_end(text, begin + 11)
        body = label_end + 5
        if label_end < 0 or not (text.startswith("\n", body) or text.startswith("\r\n", body)):
            pos = begin + 1
            continue
        body += 1 if text[body] == "\n" else 2
        end = text.find("-----END ", body)
        while end >= 0 and _label_end(text, end + 9) < 0:
            end = text.find("-----END ", end + 1)
        if end < 0:
            return  # no END anywhere after: no later BEGIN can close either
        end_label_end = _label_end(text, end + 9)
        yield (
            begin,
            text[begin + 11 : label_end],
            text[body:end],
            text[end + 9 : end_label_end],
            end_label_end + 5,
        )
        pos = end_label_end + 5


class SvidDecodeError(DecodeError):
    """The text is not a PEM sequence of certificates; the message says where it broke."""


@dataclass(frozen=True)
class DecodedSvid:
    """An SVID's leaf certificate and the intermediates that followed it."""

    leaf: x509.Certificate
    intermediates: tuple[x509.Certificate, ...]


def decode_svid(text: str) -> DecodedSvid:
    certs: list[x509.Certificate] = []
    pos = 0
    for start, label, body, end_label, end in _blocks(text):
        index = len(certs)
        _expect_blank(text[pos:start], f"before PEM block {index}")
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
        pos = end
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
