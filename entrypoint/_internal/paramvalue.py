"""Tekton's "ParamValue" typing rule (spec §5.3) and the canonical value used for signing (§7.5).

The entrypoint writes result files to the termination message untyped; whoever reads them (the
controller, SPIRE canonicalisation, step-result substitution) types the raw text with one fixed
rule taken from Go's ``ParamValue.UnmarshalJSON``.  Reproducing that rule byte for byte matters
because a different decision changes the signed bytes and the substituted values.

Raw text is a ``str``.  Callers that read files should decode them with ``surrogateescape`` so
that undecodable bytes survive in the verbatim fallback (as they do in Go); inside decoded JSON
strings such bytes become U+FFFD, as Go's decoder does.

The small Go-compatible JSON decoding helpers used by the when-expression and substitution
modules live here too, because this rule is their first user.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Literal

__all__ = [
    "JsonObject",
    "ParamValue",
    "canonical_value",
    "fix_surrogates",
    "go_fold_name",
    "go_json_loads",
    "json_kind",
    "parse_param_value",
]

_EMPTY_OBJ: Mapping[str, str] = MappingProxyType({})

# Lone surrogates come from ``surrogateescape``-decoded invalid bytes or from unpaired \uD800
# escapes; Go's decoder turns both into U+FFFD, one per byte / escape.
_SURROGATE = re.compile("[\ud800-\udfff]")


@dataclass(frozen=True)
class ParamValue:
    """A typed value.  Only the field matching ``kind`` is meaningful; the others stay empty.

    ``obj`` is a read-only mapping (``MappingProxyType``); it is excluded from hashing because
    mappings are not hashable.
    """

    kind: Literal["string", "array", "object"]
    string: str = ""
    array: tuple[str, ...] = ()
    obj: Mapping[str, str] = field(default_factory=lambda: _EMPTY_OBJ, hash=False)


def fix_surrogates(text: str) -> str:
    """Replace lone surrogates with U+FFFD, as Go does for bad bytes inside JSON strings."""
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


def _as_string_or_null(value: Any) -> str | None:
    """The Go ``string`` a JSON value decodes into, or ``None`` when Go would report a type error."""
    if value is None:
        return ""
    if isinstance(value, str):
        return fix_surrogates(value)
    return None


def parse_param_value(raw: str) -> ParamValue:
    """Type ``raw`` exactly as Go's ``ParamValue.UnmarshalJSON`` does (§5.3)."""
    if raw == "":
        return ParamValue("string")
    first = raw[0]
    if first in "[{":
        try:
            decoded = go_json_loads(raw)
        except ValueError:
            decoded = None
        if first == "[" and isinstance(decoded, list) and not isinstance(decoded, JsonObject):
            items = [_as_string_or_null(v) for v in decoded]
            if all(v is not None for v in items):
                return ParamValue("array", array=tuple(v for v in items if v is not None))
        if first == "{" and isinstance(decoded, JsonObject):
            obj: dict[str, str] = {}
            for key, value in decoded:
                text = _as_string_or_null(value)
                if text is None:
                    break
                # A later duplicate key overwrites an earlier one, as in Go's map decoding.
                obj[fix_surrogates(key)] = text
            else:
                return ParamValue("object", obj=MappingProxyType(obj))
    try:
        decoded = go_json_loads(raw)
    except ValueError:
        return ParamValue("string", string=raw)
    text = _as_string_or_null(decoded)
    if text is None:
        return ParamValue("string", string=raw)
    return ParamValue("string", string=text)


def canonical_value(raw: str) -> str:
    """The string that SPIRE signs for a result value (§7.5)."""
    value = parse_param_value(raw)
    if value.kind == "array":
        return ",".join(value.array)
    if value.kind == "object":
        # Go sorts map keys by their UTF-8 bytes; encoding makes that explicit.
        keys = sorted(value.obj, key=lambda k: k.encode("utf-8", "surrogatepass"))
        return ",".join(part for k in keys for part in (k, value.obj[k]))
    return value.string
