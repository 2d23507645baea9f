"""Decoding the ``SVID`` entry: the leaf certificate, optionally followed by intermediates.

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
