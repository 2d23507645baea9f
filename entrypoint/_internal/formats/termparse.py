"""Decoding termination-message JSON as Go's ``encoding/json`` decodes ``[]RunResult``.

Separate from :mod:`entrypoint.termination` because the step itself rarely needs it: the JSON
decoder and regular expressions cost a step several milliseconds to import.
"""

from __future__ import annotations

import json
from typing import Any

from entrypoint._internal.formats.entries import TYPE_ALIASES, ResultType, RunResult
from entrypoint._internal.go.decode import JsonObject, fix_surrogates, go_fold_name, go_json_loads, json_kind
from entrypoint.errors import TerminationMessageError

_CANONICAL_FIELDS = frozenset(("key", "value", "resourceName", "type"))


def decode_entries(text: str) -> list[RunResult]:
    try:
        fast = _decode_common(text)
        return fast if fast is not None else _entries_from_json(go_json_loads(text))
    except (ValueError, TypeError) as exc:
        raise TerminationMessageError(f"parsing message json: {exc}, msg: {_truncate(text)}") from exc


def _decode_common(text: str) -> list[RunResult] | None:
    """The common case, without the per-object hook Go's rules need: every object uses exactly
    Tekton's field names, with string values and an integer type.  There a plain dict decodes to
    what Go decodes (a repeated exact name keeps its last value in both).  Anything else (case
    variants, other types, null, non-objects) returns None for the faithful decoder."""
    try:
        data = json.loads(text, parse_constant=_reject_constant)
    except RecursionError:
        return None  # the faithful decoder reports it as Go does
    if not isinstance(data, list):
        return None
    out = []
    for item in data:
        if not isinstance(item, dict) or not item.keys() <= _CANONICAL_FIELDS:
            return None
        key, value = item.get("key", ""), item.get("value", "")
        rtype, name = item.get("type", 0), item.get("resourceName", "")
        if not (isinstance(key, str) and isinstance(value, str) and isinstance(name, str)):
            return None
        if type(rtype) is not int or not -(2**63) <= rtype < 2**63:
            return None
        if not (key.isascii() and value.isascii() and name.isascii()):
            key, value, name = fix_surrogates(key), fix_surrogates(value), fix_surrogates(name)
        out.append(RunResult(key, value, rtype, name))
    return out


def _reject_constant(name: str) -> Any:
    raise ValueError(f"invalid character {name[0]!r} looking for beginning of value")


def _truncate(text: str) -> str:
    raw = text.encode("utf-8", "surrogatepass")
    if len(raw) <= 256:
        return text
    return raw[:256].decode("utf-8", "replace") + "...(truncated)"


# Go matches struct fields case-insensitively, with Unicode simple folding (K, ſ).
_FIELDS = {"KEY": "key", "VALUE": "value", "RESOURCENAME": "resource_name", "TYPE": "type"}
_EXACT = {"key": "key", "value": "value", "resourceName": "resource_name", "type": "type"}


def _entries_from_json(data: Any) -> list[RunResult]:
    if data is None:
        return []
    # JsonObject (a JSON object) is itself a list: test for it first.
    if isinstance(data, JsonObject) or not isinstance(data, list):
        raise ValueError(f"json: cannot unmarshal {json_kind(data)} into Go value of type []result.RunResult")
    return [_entry_from_json(item) for item in data]


def _entry_from_json(item: Any) -> RunResult:
    if item is None:
        return RunResult("", "")
    if not isinstance(item, JsonObject):
        raise ValueError(f"json: cannot unmarshal {json_kind(item)} into Go value of type result.RunResult")
    fields: dict[str, Any] = {"key": "", "value": "", "resource_name": "", "type": 0}
    for raw_name, value in item:
        target = _EXACT.get(raw_name) or _FIELDS.get(go_fold_name(raw_name))
        if target is None:
            continue
        if target == "type":
            fields["type"] = _parse_type(value)
        elif value is None:
            continue
        elif not isinstance(value, str):
            raise ValueError(
                f"json: cannot unmarshal {json_kind(value)} into Go struct field "
                f"RunResult.{raw_name} of type string"
            )
        else:
            fields[target] = fix_surrogates(value)
    return RunResult(fields["key"], fields["value"], fields["type"], fields["resource_name"])


def _parse_type(value: Any) -> int:
    if value is None:
        return 0
    if isinstance(value, int) and not isinstance(value, bool) and -(2**63) <= value < 2**63:
        return value
    if isinstance(value, str):
        return int(TYPE_ALIASES.get(value, ResultType.UNKNOWN))
    raise ValueError(f"unsupported value type, neither int nor string: {json.dumps(value)}")
