"""The compact signed-results format `cs1` (docs/compact-format.md): statement and value codec.

Shared by the signer and the verifier, so that both build the signed bytes the same way; the
test suite checks both against an implementation written from the document alone.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass

from entrypoint._internal.backends import BACKENDS, for_compact_kind
from entrypoint._internal.go.json import valid_utf8
from entrypoint.errors import DecodeError
from entrypoint.termination import RunResult

TAG = "cs1"
SIGNATURE_KEY = "SIGNATURE"
ALGORITHMS = ("ES256", "ES384", "RS256", "EdDSA")
# Each backend's kinds (entrypoint._internal.backends); a kind's data is unpadded base64url of the
# material, unless its backend writes it as text (then its ``common`` module checks the text).
MATERIAL_KINDS = tuple(kind for backend in BACKENDS for kind in backend.compact_kinds)


class CompactFormatError(DecodeError):
    """A SIGNATURE value that does not follow the cs1 syntax; the text says which field."""


@dataclass(frozen=True)
class SignatureValue:
    """The fields of a cs1 ``SIGNATURE`` value, decoded strictly and encoded canonically."""

    step: str
    signed_at: int
    alg: str
    signature: bytes
    material_kind: str
    # x509: the DER chain; x509-ref: the chain's SHA-256; k8s-sat: the ASCII text
    # ``<base64url P-256 point>:<JWT>`` (a JWT is base64url already: no second encoding).
    material: bytes

    def encode(self) -> str:
        data = self.material.decode("ascii") if _is_text(self.material_kind) else b64url(self.material)
        fields = (TAG, self.step, str(self.signed_at), self.alg, b64url(self.signature))
        return ".".join((*fields, f"{self.material_kind}:{data}"))

    @property
    def material_digest(self) -> bytes:
        """What the statement binds: the SHA-256 of the material (for a chain, whichever way it
        travels; for a token, of the key and the token together, so that neither can be swapped)."""
        return self.material if self.material_kind == "x509-ref" else hashlib.sha256(self.material).digest()

    @classmethod
    def decode(cls, value: str) -> SignatureValue:
        # Five separators: only the last field, a k8s-sat material, may hold more (the JWT's own).
        fields = value.split(".", 5)
        if len(fields) != 6:
            raise CompactFormatError(f"SIGNATURE: expected 6 '.'-separated fields, found {len(fields)}")
        tag, step, signed_at, alg, signature, material = fields
        if tag != TAG:
            raise CompactFormatError(f"SIGNATURE: unknown format tag {tag!r} (expected {TAG!r})")
        if step and not _canonical_decimal(step, 9):
            raise CompactFormatError(f"SIGNATURE: step {step!r} is not a decimal index (no leading zeros)")
        if not _canonical_decimal(signed_at, 18):
            raise CompactFormatError(
                f"SIGNATURE: signedAt {signed_at!r} is not Unix seconds (no leading zeros)"
            )
        if alg not in ALGORITHMS:
            raise CompactFormatError(
                f"SIGNATURE: unknown algorithm {alg!r} (expected one of {', '.join(ALGORITHMS)})"
            )
        kind, sep, data = material.partition(":")
        if not sep or kind not in MATERIAL_KINDS:
            raise CompactFormatError(f"SIGNATURE: unknown identity material {kind!r}")
        sig_bytes = unb64url(signature, "signature")
        if _is_text(kind):
            return cls(step, int(signed_at), alg, sig_bytes, kind, _text_material(kind, data))
        material_bytes = unb64url(data, f"{kind} material")
        if kind == "x509-ref" and len(material_bytes) != 32:
            raise CompactFormatError("SIGNATURE: an x509-ref must be a 32-byte SHA-256 digest")
        return cls(step, int(signed_at), alg, sig_bytes, kind, material_bytes)


def _is_text(kind: str) -> bool:
    backend = for_compact_kind(kind)
    return backend is not None and backend.compact_text


def _text_material(kind: str, data: str) -> bytes:
    backend = for_compact_kind(kind)
    assert backend is not None
    try:
        return bytes(backend.module("common").check_compact_material(kind, data))
    except CompactFormatError:
        raise
    except ValueError as exc:
        raise CompactFormatError(f"SIGNATURE: {exc}") from exc


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


_B64URL = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")


def unb64url(text: str, what: str) -> bytes:
    """Strict: only the base64url alphabet, no padding, and the canonical encoding (zero trailing
    bits), so that a value has exactly one spelling (common decoders tolerate more)."""
    if not text or len(text) % 4 == 1 or not set(text) <= _B64URL:
        raise CompactFormatError(f"SIGNATURE: {what} is not canonical unpadded base64url")
    try:
        data = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (binascii.Error, ValueError) as exc:
        raise CompactFormatError(f"SIGNATURE: {what} is not canonical unpadded base64url") from exc
    if b64url(data) != text:
        raise CompactFormatError(f"SIGNATURE: {what} is not canonical unpadded base64url")
    return data


def _canonical_decimal(text: str, max_digits: int) -> bool:
    return (
        0 < len(text) <= max_digits and text.isascii() and text.isdigit() and (text == "0" or text[0] != "0")
    )


def controller_view(entries: Sequence[RunResult]) -> list[RunResult]:
    """The entries as Tekton's controller sees them: all-zero entries dropped, the last entry per
    key kept, sorted by key as UTF-8 bytes; without the signature entry."""
    by_key: dict[str, RunResult] = {}
    for e in entries:
        if not e.is_zero():
            # As they will read once written: bytes that are not UTF-8 become U+FFFD (gojson).
            key, value = valid_utf8(e.key), valid_utf8(e.value)
            if key is not e.key or value is not e.value:
                e = RunResult(key, value, e.type, e.resource_name)
            by_key[key] = e
    by_key.pop(SIGNATURE_KEY, None)
    return [by_key[k] for k in sorted(by_key, key=lambda k: k.encode("utf-8", "surrogatepass"))]


def statement(entries: Sequence[RunResult], *, step: str, signed_at: int, material_digest: bytes) -> bytes:
    """The signed bytes: RFC 8785 (JCS) serialisation of the statement over ``entries``."""
    return statement_of_view(
        controller_view(entries), step=step, signed_at=signed_at, material_digest=material_digest
    )


def statement_of_view(
    view: Sequence[RunResult], *, step: str, signed_at: int, material_digest: bytes
) -> bytes:
    """:func:`statement` for entries already put through :func:`controller_view`."""
    listed = [
        {
            "digest": hashlib.sha256(e.value.encode("utf-8", "surrogatepass")).hexdigest(),
            "name": e.key,
            "type": e.type,
        }
        for e in view
    ]
    body = {
        "entries": listed,
        "format": TAG,
        "material": material_digest.hex(),
        "signedAt": signed_at,
        "step": step,
    }
    # With only strings, non-negative integers, lists and ASCII-keyed objects, sorted keys and no
    # whitespace with raw UTF-8 is exactly RFC 8785's output (Python escapes the same characters).
    return json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
