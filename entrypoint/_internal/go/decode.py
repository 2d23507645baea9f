"""Decoding JSON with Go's ``encoding/json`` rules (several inputs are written for Go decoders).

Python's decoder differs from Go's in ways that change results: it accepts NaN and Infinity,
keeps only the last of duplicate keys (and loses their order), matches no field names
case-insensitively, and keeps unpaired surrogate escapes.  These helpers let callers apply Go's
rules.  Not on the step's hot path: importing json and re costs a step several milliseconds.
"""

from __future__ import annotations

import json
import re
from typing import Any

# Lone surrogates come from ``surrogateescape``-decoded invalid bytes or from unpaired \uD800
# escapes; Go's decoder turns both into U+FFFD, one per byte / escape.
_SURROGATE = re.compile("[\ud800-\udfff]")


def fix_surrogates(text: str) -> str:
    """Replace lone surrogates with U+FFFD, as Go does for bad bytes inside JSON strings."""
    if text.isascii():  # the common case, answered from a flag without scanning
        return text
    return _SURROGATE.sub("\ufffd", text)


class JsonObject(list[tuple[str, Any]]):
    """A JSON object as decoded, before Go's key rules are applied (see :func:`go_json_loads`)."""


def _reject_constant(name: str) -> Any:
    # Python accepts NaN/Infinity as an extension; Go's decoder rejects them as syntax errors.
    raise ValueError(f"invalid character {name[0]!r} looking for beginning of value")


def go_json_loads(text: str) -> Any:
    """Parse JSON with Go's syntax (no NaN/Infinity) and keep objects as ordered key/value pairs.

    Raises ``ValueError`` (including ``json.JSONDecodeError``) for anything Go would reject.
    Objects come back as :class:`JsonObject` so that callers can apply Go's duplicate-key and
    case-folding rules; decoded strings may hold lone surrogates (see :func:`fix_surrogates`).
    """
    try:
        return json.loads(text, parse_constant=_reject_constant, object_pairs_hook=JsonObject)
    except RecursionError as exc:
        raise ValueError("exceeded max depth") from exc


def go_fold_name(name: str) -> str:
    """Go's key folding for struct-field matching: ASCII upper-casing, Unicode upper(lower(r))."""
    out: list[str] = []
    for ch in name:
        if ch < "\x80":
            out.append(ch.upper())
            continue
        # Go maps one rune to one rune, Python may expand: "İ".lower() is "i" + U+0307 where Go
        # gives "i", and "ß".upper() is "SS" where Go leaves "ß".  Keep to Go's single runes.
        lower = ch.lower()[0]
        upper = lower.upper()
        out.append(upper if len(upper) == 1 else lower)
    return "".join(out)


def json_kind(value: Any) -> str:
    """The JSON kind word Go's ``UnmarshalTypeError`` uses for a decoded value."""
    if isinstance(value, JsonObject):
        return "object"
    if isinstance(value, list):
        return "array"
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int | float):
        return "number"
    return "string"
