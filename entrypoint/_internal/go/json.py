"""Byte-exact Go ``encoding/json`` output for the shapes Tekton writes.

The 4096-byte limit is checked against Go's exact bytes, so the encoding must match: compact,
raw UTF-8, HTML-safe escapes for ``<``, ``>``, ``&``, escaped U+2028/U+2029, and each byte of
invalid UTF-8 replaced by its own U+FFFD (Python's default decoder replaces whole sub-sequences).
"""

from __future__ import annotations

import codecs

from entrypoint.errors import DecodeError

try:
    # The C string encoder behind the json module; importing json itself would pull in ``re``.
    from _json import encode_basestring as _encode_basestring
except ImportError:  # pragma: no cover - only on interpreters without the accelerator
    from json.encoder import py_encode_basestring as _encode_basestring

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

_ERROR_HANDLER = "entrypoint-go-bytewise"


def _bytewise_replace(exc: UnicodeError) -> tuple[str, int]:
    if not isinstance(exc, UnicodeDecodeError):
        raise exc
    # Replace one byte only and resume right after it, as Go's utf8.DecodeRune does.
    return "\ufffd", exc.start + 1


codecs.register_error(_ERROR_HANDLER, _bytewise_replace)


def decode_go_bytes(data: bytes) -> str:
    """Decode bytes as Go would see them when encoding a string to JSON."""
    return data.decode("utf-8", _ERROR_HANDLER)


_HTML_SAFE = str.maketrans(
    {"<": "\\u003c", ">": "\\u003e", "&": "\\u0026", "\u2028": "\\u2028", "\u2029": "\\u2029"}
)


def go_string(s: str) -> str:
    """One JSON string literal exactly as Go's ``encoding/json`` writes it."""
    if not s.isascii():
        s = valid_utf8(s)
    return _encode_basestring(s).translate(_HTML_SAFE)


def valid_utf8(s: str) -> str:
    """Strings from argv or file names can carry undecodable bytes as lone surrogates; Go writes
    each such byte as U+FFFD.  Returns ``s`` itself when it is already valid."""
    if s.isascii():
        return s
    try:
        s.encode("utf-8")
    except UnicodeEncodeError:
        try:
            raw = s.encode("utf-8", "surrogateescape")  # bytes that os/argv decoding escaped
        except UnicodeEncodeError:
            raw = s.encode("utf-8", "surrogatepass")  # any other lone surrogate
        return decode_go_bytes(raw)
    return s


def marshal(obj: Any) -> str:
    """``json.Marshal`` equivalent for dicts (in insertion order), lists, strings and ints."""
    import json

    # These characters can only occur inside JSON strings, so a global translation is safe.
    return json.dumps(obj, ensure_ascii=False, separators=(",", ":")).translate(_HTML_SAFE)


def marshal_bytes(obj: Any) -> bytes:
    return marshal(obj).encode("utf-8", "surrogatepass")


# -- Go encoding/base64 decoding ------------------------------------------------------------------

_B64_ALPHABET = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
_B64_VALUE = {byte: index for index, byte in enumerate(_B64_ALPHABET)}
_NEWLINES = (0x0A, 0x0D)
_PAD = 0x3D


class Base64Error(DecodeError):
    """Go's ``base64.CorruptInputError``: the text names the offending input offset."""

    def __init__(self, offset: int) -> None:
        self.offset = offset
        super().__init__(f"illegal base64 data at input byte {offset}")


def decode_go_base64(src: bytes, *, padded: bool) -> bytes:
    """See :func:`_decode_go_base64`; well-formed input takes C's fast path with the same result."""
    body = src.rstrip(b"=")
    canonical = len(src) - len(body) <= 2 and b"=" not in body  # C accepts "QUJD====", Go does not
    if padded and canonical and len(src) % 4 == 0 and b"\n" not in src and b"\r" not in src:
        import binascii

        try:
            return binascii.a2b_base64(src, strict_mode=True)
        except binascii.Error:
            pass  # malformed: the exact decoder below finds Go's error offset
    return _decode_go_base64(src, padded=padded)


def _decode_go_base64(src: bytes, *, padded: bool) -> bytes:
    """Go's ``base64.StdEncoding`` (``padded``) or ``RawStdEncoding`` ``Decode``, non-strict.

    CR and LF are skipped anywhere; every other byte outside the alphabet is an error.  Error
    offsets follow Go's quantum decoder exactly (they count the skipped newlines), e.g. ``!`` is
    byte 0, ``QQ=`` is byte 3 and ``QQ=A`` is byte 2.  Raises :class:`Base64Error`.
    """
    n = len(src)
    si = 0
    out = bytearray()
    while si < n:
        digits: list[int] = []
        while len(digits) < 4:
            if si == n:
                if not digits:
                    return bytes(out)
                if len(digits) == 1 or padded:
                    raise Base64Error(si - len(digits))
                break
            byte = src[si]
            si += 1
            value = _B64_VALUE.get(byte)
            if value is not None:
                digits.append(value)
                continue
            if byte in _NEWLINES:
                continue
            if not padded or byte != _PAD or len(digits) < 2:
                raise Base64Error(si - 1)
            if len(digits) == 2:  # a second "=" must follow, possibly after newlines
                while si < n and src[si] in _NEWLINES:
                    si += 1
                if si == n:
                    raise Base64Error(n)
                if src[si] != _PAD:
                    raise Base64Error(si - 1)
                si += 1
            while si < n and src[si] in _NEWLINES:
                si += 1
            if si < n:
                raise Base64Error(si)  # trailing garbage after the padding
            break
        count = len(digits)
        val = 0
        for shift, digit in zip((18, 12, 6, 0), digits, strict=False):
            val |= digit << shift
        out.extend(((val >> 16) & 0xFF, (val >> 8) & 0xFF, val & 0xFF)[: count - 1])
    return bytes(out)
