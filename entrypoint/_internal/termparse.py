"""Decoding termination-message JSON as Go's ``encoding/json`` decodes ``[]RunResult``.

Separate from :mod:`entrypoint.termination` because the step itself rarely needs it: the JSON
decoder and regular expressions cost a step several milliseconds to import.
"""

from __future__ import annotations

import json
import re
from typing import Any

from entrypoint.errors import TerminationMessageError
from entrypoint.termination import _TYPE_ALIASES, ResultType, RunResult


def decode_entries(text: str) -> list[RunResult]:
    try:
        data = json.loads(text, parse_constant=_reject_constant, object_pairs_hook=_Pairs)
        return _entries_from_json(data)
    except RecursionError as exc:  # Go refuses nesting deeper than 10000 with a syntax error
        raise TerminationMessageError(
            f"parsing message json: exceeded max depth, msg: {_truncate(text)}"
        ) from exc
    except (ValueError, TypeError) as exc:
        raise TerminationMessageError(f"parsing message json: {exc}, msg: {_truncate(text)}") from exc


def _truncate(text: str) -> str:
    raw = text.encode("utf-8", "surrogatepass")
    if len(raw) <= 256:
        return text
    return raw[:256].decode("utf-8", "replace") + "...(truncated)"


def _reject_constant(name: str) -> Any:
    raise ValueError(f"invalid character '{name[0]}' looking for beginning of value")


class _Pairs(list[tuple[str, Any]]):
    """A JSON object as its ordered pairs: Go applies duplicate and case-variant keys in order."""


# Go matches struct fields case-insensitively, with Unicode simple folding (K, ſ).
def _fold(name: str) -> str:
    return name.lower().replace("\u017f", "s").replace("\u212a", "k")


_FIELDS = {"key": "key", "value": "value", "resourcename": "resource_name", "type": "type"}


def _entries_from_json(data: Any) -> list[RunResult]:
    if data is None:
        return []
    # _Pairs (a JSON object) is itself a list: test for it first.
    if isinstance(data, _Pairs) or not isinstance(data, list):
        raise ValueError(
            f"json: cannot unmarshal {_json_kind(data)} into Go value of type []result.RunResult"
        )
    return [_entry_from_json(item) for item in data]


def _entry_from_json(item: Any) -> RunResult:
    if item is None:
        return RunResult("", "")
    if not isinstance(item, _Pairs):
        raise ValueError(f"json: cannot unmarshal {_json_kind(item)} into Go value of type result.RunResult")
    fields: dict[str, Any] = {"key": "", "value": "", "resource_name": "", "type": 0}
    for raw_name, value in item:
        target = _FIELDS.get(_fold(raw_name))
        if target is None:
            continue
        if target == "type":
            fields["type"] = _parse_type(value)
        elif value is None:
            continue
        elif not isinstance(value, str):
            raise ValueError(
                f"json: cannot unmarshal {_json_kind(value)} into Go struct field "
                f"RunResult.{raw_name} of type string"
            )
        else:
            fields[target] = _go_string(value)
    return RunResult(fields["key"], fields["value"], fields["type"], fields["resource_name"])


_SURROGATES = re.compile("[\ud800-\udfff]")


def _go_string(value: str) -> str:
    """Go's decoder turns each ``\\uD8xx`` escape that is not half of a valid pair into U+FFFD;
    Python keeps it as a lone surrogate, which could not even be encoded back to UTF-8."""
    return _SURROGATES.sub("\ufffd", value)


def _parse_type(value: Any) -> int:
    if value is None:
        return 0
    if isinstance(value, int) and not isinstance(value, bool) and -(2**63) <= value < 2**63:
        return value
    if isinstance(value, str):
        return int(_TYPE_ALIASES.get(value, ResultType.UNKNOWN))
    raise ValueError(f"unsupported value type, neither int nor string: {json.dumps(value)}")


def _json_kind(value: Any) -> str:
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, (int, float)):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, _Pairs):
        return "object"
    if isinstance(value, list):
        return "array"
    return "object"
