"""The compact signed-results format (docs/compact-format.md): statement and value codec.

Two versions: ``cs2``, which the entrypoint writes, binds what survives Tekton's copy of a message
into the TaskRun (no internal entries; the exit code and start time as the TaskRun records them);
``cs1`` bound the internal entries' exact bytes, so it verifies only from the pod, and is still
accepted.  Shared by the signer and the verifier, so that both build the signed bytes the same
way; the test suite checks both against an implementation written from the document alone.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass

from entrypoint._internal.backends import BACKENDS, for_compact_kind, log_entry_names
from entrypoint._internal.go.json import valid_utf8
from entrypoint.errors import DecodeError
from entrypoint.termination import ResultType, RunResult

_INTERNAL = int(ResultType.INTERNAL)
# Tekton reads these keys, whatever their type, into the step's terminated state (pkg/pod/status.go
# extractExitCodeFromResults, extractStartedAtTimeFromResults).
EXIT_CODE_KEY = "ExitCode"
STARTED_AT_KEY = "StartedAt"

TAG = "cs1"
TAG_V2 = "cs2"
TAGS = (TAG, TAG_V2)
SIGNATURE_KEY = "SIGNATURE"
# What no statement lists: the signature itself, and the records post-sign hooks add beside it
# (a transparency log's, whose own signatures cover the statement).
UNSTATED_KEYS = frozenset({SIGNATURE_KEY}) | log_entry_names()
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
    tag: str = TAG
    # cs2 only: the exit code and start time (Unix seconds) the TaskRun records for the step, as
    # Tekton derives them from the message; None when the signer could not know them.
    exit_code: int | None = None
    started_at: int | None = None

    def encode(self) -> str:
        data = self.material.decode("ascii") if _is_text(self.material_kind) else b64url(self.material)
        fields: tuple[str, ...] = (self.tag, self.step, str(self.signed_at))
        if self.tag == TAG_V2:
            fields += (_optional(self.exit_code), _optional(self.started_at))
        fields += (self.alg, b64url(self.signature))
        return ".".join((*fields, f"{self.material_kind}:{data}"))

    @property
    def material_digest(self) -> bytes:
        """What the statement binds: the SHA-256 of the material (for a chain, whichever way it
        travels; for a token, of the key and the token together, so that neither can be swapped)."""
        return self.material if self.material_kind == "x509-ref" else hashlib.sha256(self.material).digest()

    @classmethod
    def decode(cls, value: str) -> SignatureValue:
        tag = value.partition(".")[0]
        if tag not in TAGS:
            raise CompactFormatError(
                f"SIGNATURE: unknown format tag {tag!r} (expected one of {', '.join(TAGS)})"
            )
        count = 8 if tag == TAG_V2 else 6
        # Only the last field, a k8s-sat material, may hold more separators (the JWT's own).
        fields = value.split(".", count - 1)
        if len(fields) != count:
            raise CompactFormatError(
                f"SIGNATURE: expected {count} '.'-separated fields in a {tag} value, found {len(fields)}"
            )
        exit_code = started_at = None
        if tag == TAG_V2:
            tag, step, signed_at, exit_text, started_text, alg, signature, material = fields
            exit_code = _decode_optional(exit_text, "exitCode", signed=True)
            started_at = _decode_optional(started_text, "startedAt", signed=False)
        else:
            tag, step, signed_at, alg, signature, material = fields
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
            material_bytes = _text_material(kind, data)
        else:
            material_bytes = unb64url(data, f"{kind} material")
            if kind == "x509-ref" and len(material_bytes) != 32:
                raise CompactFormatError("SIGNATURE: an x509-ref must be a 32-byte SHA-256 digest")
        return cls(step, int(signed_at), alg, sig_bytes, kind, material_bytes, tag, exit_code, started_at)


def _optional(number: int | None) -> str:
    return "" if number is None else str(number)


def _decode_optional(text: str, what: str, *, signed: bool) -> int | None:
    if not text:
        return None
    digits = text[1:] if signed and text.startswith("-") else text
    # An exit code is Tekton's int32 (ParseInt(.., 10, 32)); a start time, Unix seconds.
    if not _canonical_decimal(digits, 10 if signed else 18) or (digits == "0" and text != digits):
        raise CompactFormatError(f"SIGNATURE: {what} {text!r} is not a canonical decimal")
    number = int(text)
    if signed and not -(2**31) <= number < 2**31:
        raise CompactFormatError(f"SIGNATURE: {what} {text!r} is outside a 32-bit exit code")
    return number


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
    key kept, sorted by key as UTF-8 bytes; without the signature entry and log records."""
    by_key: dict[str, RunResult] = {}
    for e in entries:
        if not e.is_zero():
            # As they will read once written: bytes that are not UTF-8 become U+FFFD (gojson).
            key, value = valid_utf8(e.key), valid_utf8(e.value)
            if key is not e.key or value is not e.value:
                e = RunResult(key, value, e.type, e.resource_name)
            by_key[key] = e
    for key in UNSTATED_KEYS:
        by_key.pop(key, None)
    return [by_key[k] for k in sorted(by_key, key=lambda k: k.encode("utf-8", "surrogatepass"))]


def statement(entries: Sequence[RunResult], *, step: str, signed_at: int, material_digest: bytes) -> bytes:
    """The signed bytes of a cs1 value: RFC 8785 (JCS) serialisation of the statement over ``entries``."""
    return statement_of_view(
        controller_view(entries), step=step, signed_at=signed_at, material_digest=material_digest
    )


def bound_entries(view: Sequence[RunResult], tag: str) -> list[RunResult]:
    """The entries of ``view`` a statement of version ``tag`` lists: cs2 leaves out the internal
    entries, which Tekton drops from the TaskRun's copy of the message."""
    if tag == TAG_V2:
        return [e for e in view if e.type != _INTERNAL]
    return list(view)


def statement_of_view(
    view: Sequence[RunResult],
    *,
    step: str,
    signed_at: int,
    material_digest: bytes,
    tag: str = TAG,
    exit_code: int | None = None,
    started_at: int | None = None,
) -> bytes:
    """The signed bytes for entries already put through :func:`controller_view`."""
    listed = [
        {
            "digest": hashlib.sha256(e.value.encode("utf-8", "surrogatepass")).hexdigest(),
            "name": e.key,
            "type": e.type,
        }
        for e in bound_entries(view, tag)
    ]
    body: dict[str, object] = {
        "entries": listed,
        "format": tag,
        "material": material_digest.hex(),
        "signedAt": signed_at,
        "step": step,
    }
    if tag == TAG_V2:
        body["exitCode"] = exit_code
        body["startedAt"] = started_at
    # With only strings, non-negative integers, lists and ASCII-keyed objects, sorted keys and no
    # whitespace with raw UTF-8 is exactly RFC 8785's output (Python escapes the same characters).
    return json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def statement_for(value: SignatureValue, view: Sequence[RunResult]) -> bytes:
    """The bytes ``value``'s signature must verify over, for entries put through :func:`controller_view`."""
    return statement_of_view(
        view,
        step=value.step,
        signed_at=value.signed_at,
        material_digest=value.material_digest,
        tag=value.tag,
        exit_code=value.exit_code,
        started_at=value.started_at,
    )


# Tekton's timeFormat for StartedAt ("2006-01-02T15:04:05.000Z07:00"): exactly three fractional
# digits, then Z or a numeric offset.
_STARTED_AT = r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}(?:Z|[+-]\d\d:\d\d)\Z"


def started_at_seconds(text: str) -> int | None:
    """Unix seconds of a StartedAt value as the TaskRun records it (truncated to the second, as
    metav1.Time serialises), or None when Tekton could not parse it either."""
    # Imported here: a signing step needs them once, and an unsigned one never.
    import datetime as dt
    import re

    if re.match(_STARTED_AT, text) is None:
        return None
    try:
        when = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    return int(when.timestamp() // 1)


def exit_code_entry(text: str) -> int | None:
    """An ExitCode value as Tekton reads it (strconv.ParseInt(v, 10, 32)), or None if it cannot."""
    body = text[1:] if text[:1] in "+-" else text
    if not body or not body.isascii() or not body.isdigit():
        return None
    number = int(text)
    return number if -(2**31) <= number < 2**31 else None


def observed_in(view: Sequence[RunResult]) -> tuple[int | None, int | None]:
    """The exit code and start time the entries themselves give the TaskRun (None: the kubelet's)."""
    by_key = {e.key: e for e in view}
    code = by_key.get(EXIT_CODE_KEY)
    started = by_key.get(STARTED_AT_KEY)
    return (
        exit_code_entry(code.value) if code is not None else None,
        started_at_seconds(started.value) if started is not None else None,
    )
