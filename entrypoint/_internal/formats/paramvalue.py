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

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Literal

from entrypoint._internal.go.decode import JsonObject, fix_surrogates, go_json_loads

__all__ = [
    "ParamValue",
    "canonical_value",
    "parse_param_value",
]

_EMPTY_OBJ: Mapping[str, str] = MappingProxyType({})


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
    # Only a JSON string literal or null (after JSON whitespace) can still decode to a string;
    # anything else is kept verbatim, so spare the decoder (the verifier's hot path).
    head = raw.lstrip(" \t\n\r")[:1]
    if head not in ('"', "n"):
        return ParamValue("string", string=raw)
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
