"""How kube-apiserver refuses a request body it cannot decode, in its words: Go's ``encoding/json``
errors inside the apiserver's decoding messages (``transformDecodeError``, ``summarizeData``).

A body is decoded in two steps, each with its own wording: first its apiVersion and kind are read
(a JSON syntax error, or a body that is no object, is "the object provided is unrecognized"), then
it is decoded into the Go type (a field of the wrong JSON type is "cannot be handled as a ...").
The wording here is what kube-apiserver v1.37.2 answers (tests/e2e/test_double_vs_real.py).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from entrypoint.testing.kube.objects import APIError

# The Go struct apiVersion and kind are first read into (runtime.SimpleMetaFactory), as %v prints it.
_TYPE_META = (
    'struct { APIVersion string "json:\\"apiVersion,omitempty\\""; Kind string "json:\\"kind,omitempty\\"" }'
)
# Some of the kinds registered in kube-apiserver's scheme, by apiVersion: a body naming one of them at
# another kind's endpoint fails conversion; any other kind is "not registered".
_REGISTERED = {
    "v1": frozenset(
        {"ConfigMap", "Event", "Namespace", "Node", "Pod", "Secret", "Service", "ServiceAccount"}
    ),
    "apps/v1": frozenset({"DaemonSet", "Deployment", "ReplicaSet", "StatefulSet"}),
    "coordination.k8s.io/v1": frozenset({"Lease"}),
    "authentication.k8s.io/v1": frozenset({"SelfSubjectReview", "TokenRequest", "TokenReview"}),
}
_SUMMARY_BYTES = 30


def decode_object(body: bytes, api_version: str, kind: str) -> dict[str, Any]:
    """The body as a JSON object of ``api_version`` and ``kind``; absent type fields are filled from
    the URL (both the apiserver's defaults).  Raises the apiserver's 400 otherwise."""
    text = body.decode("utf-8", "replace")
    try:
        obj = json.loads(text)
    except json.JSONDecodeError as err:
        raise _unrecognized(kind, _syntax_error(err), body) from None
    if not isinstance(obj, dict):
        raise _unrecognized(
            kind, f"json: cannot unmarshal {_json_type(obj)} into Go value of type {_TYPE_META}", body
        )
    for field in ("apiVersion", "kind"):
        if obj.get(field) is not None and not isinstance(obj[field], str):
            found = _json_type(obj[field])
            error = f"json: cannot unmarshal {found} into Go struct field .{field} of type string"
            raise _unrecognized(kind, error, body)
    got_version = str(obj.get("apiVersion") or api_version)
    got_kind = str(obj.get("kind") or kind)
    if (got_version, got_kind) != (api_version, kind):
        version = got_version.rpartition("/")[2]
        if got_kind in _REGISTERED.get(got_version, ()):
            internal = f"{_group_package(api_version)}.{kind}"
            why = f"converting ({version}.{got_kind}) to ({internal}): unknown conversion"
        else:
            why = (
                f'no kind "{got_kind}" is registered for version "{got_version}"'
                ' in scheme "pkg/runtime/scheme.go:111"'
            )
        raise cannot_handle(got_kind, version, kind, why)
    return obj


def cannot_handle(got_kind: str, version: str, kind: str, why: str) -> APIError:
    return APIError(400, f'{got_kind} in version "{version}" cannot be handled as a {kind}: {why}')


@dataclass(frozen=True)
class GoStruct:
    """A Go struct's JSON fields: each a Go type (``string``, ``types.UID``, ``int64``, ``[]string``)
    or a struct; fields not named are dropped on decoding, as the apiserver drops unknown fields."""

    package: str
    name: str
    fields: Mapping[str, str | GoStruct]

    @property
    def type_name(self) -> str:
        return f"{self.package}.{self.name}"


_OBJECT_META = GoStruct("v1", "ObjectMeta", {})
TOKEN_REQUEST = GoStruct(
    "v1",
    "TokenRequest",
    {
        "metadata": _OBJECT_META,
        "spec": GoStruct(
            "v1",
            "TokenRequestSpec",
            {
                "audiences": "[]string",
                "expirationSeconds": "int64",
                "boundObjectRef": GoStruct(
                    "v1",
                    "BoundObjectReference",
                    {"kind": "string", "apiVersion": "string", "name": "string", "uid": "types.UID"},
                ),
            },
        ),
    },
)
TOKEN_REVIEW = GoStruct(
    "v1",
    "TokenReview",
    {
        "metadata": _OBJECT_META,
        "spec": GoStruct("v1", "TokenReviewSpec", {"token": "string", "audiences": "[]string"}),
    },
)


def check_types(obj: Mapping[str, Any], struct: GoStruct) -> None:
    """Go's json.Unmarshal of a decoded object into ``struct``: the first field, depth first in the
    body's order, whose JSON type its Go type cannot take is refused as the apiserver words it."""
    error = _type_error(obj, struct, "")
    if error is not None:
        raise cannot_handle(struct.name, "v1", struct.name, f"json: {error}")


def _type_error(obj: Mapping[str, Any], struct: GoStruct, path: str) -> str | None:
    for name, value in obj.items():
        go_type = struct.fields.get(name)
        if go_type is None or value is None:
            continue  # an unknown field is dropped; null leaves a Go field at its zero value
        where = f"{path}.{name}" if path else name
        if isinstance(go_type, GoStruct):
            if not isinstance(value, dict):
                return _cannot_unmarshal(value, struct, where, go_type.type_name)
            error = _type_error(value, go_type, where)
        else:
            error = _value_error(value, go_type, struct, where)
        if error is not None:
            return error
    return None


def _value_error(value: object, go_type: str, struct: GoStruct, where: str) -> str | None:
    if go_type.startswith("[]"):
        if not isinstance(value, list):
            return _cannot_unmarshal(value, struct, where, go_type)
        for element in value:
            if element is not None and (error := _value_error(element, go_type[2:], struct, where)):
                return error
        return None
    if go_type == "int64":
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return _cannot_unmarshal(value, struct, where, go_type)
        if isinstance(value, float) or not -(1 << 63) <= value < 1 << 63:
            # Go names the number that is no int64.
            return _cannot_unmarshal(value, struct, where, go_type, f"number {value}")
        return None
    return None if isinstance(value, str) else _cannot_unmarshal(value, struct, where, go_type)


def _cannot_unmarshal(value: object, struct: GoStruct, where: str, go_type: str, what: str = "") -> str:
    what = what or _json_type(value)
    return f"cannot unmarshal {what} into Go struct field {struct.name}.{where} of type {go_type}"


def _json_type(value: object) -> str:
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, (int, float)):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    return "object"


def _group_package(api_version: str) -> str:
    # The internal type's package: "authentication" for authentication.k8s.io, "core" for v1.
    group = api_version.rpartition("/")[0]
    return group.split(".")[0] if group else "core"


def _unrecognized(kind: str, error: str, body: bytes) -> APIError:
    return APIError(
        400,
        f"the object provided is unrecognized (must be of type {kind}): couldn't get version/kind;"
        f" json parse error: {error} ({_summary(body)})",
    )


def _summary(body: bytes) -> str:
    """summarizeData: a body that looks like JSON as text, anything else in hex, both cut short."""
    if not body:
        return "<empty>"
    cut = body[:_SUMMARY_BYTES]
    shown = cut.decode("utf-8", "replace") if body[:1] == b"{" else cut.hex()
    return shown + (" ..." if len(body) > _SUMMARY_BYTES else "")


def _syntax_error(err: json.JSONDecodeError) -> str:
    """Go's scanner error for the place Python's decoder stopped at."""
    doc, pos = err.doc, err.pos
    if pos >= len(doc) or err.msg.startswith("Unterminated string"):
        return "unexpected end of JSON input"
    char = _quote_char(doc[pos])
    if err.msg.startswith("Expecting property name"):
        return f"invalid character {char} looking for beginning of object key string"
    if err.msg.startswith("Expecting ':'"):
        return f"invalid character {char} after object key"
    if err.msg.startswith("Expecting ','"):
        after = "object key:value pair" if _innermost(doc, pos) == "{" else "array element"
        return f"invalid character {char} after {after}"
    if err.msg.startswith("Extra data"):
        return f"invalid character {char} after top-level value"
    if err.msg.startswith("Invalid control character"):
        return f"invalid character {char} in string literal"
    if err.msg.startswith("Invalid \\escape"):
        return f"invalid character {_quote_char(doc[pos + 1 : pos + 2] or ' ')} in string escape code"
    # Go's scanner commits to a literal at its first letter and fails at the first wrong one; the end
    # of the input reads as a space there.
    padded = doc + " "
    literal = next((word for word in ("true", "false", "null") if word[0] == doc[pos]), None)
    if literal is not None:
        for i, expected in enumerate(literal):
            if padded[pos + i] != expected:
                return (
                    f"invalid character {_quote_char(padded[pos + i])} in literal {literal}"
                    f" (expecting {_quote_char(expected)})"
                )
    if doc[pos] == "-":
        return f"invalid character {_quote_char(padded[pos + 1])} in numeric literal"
    return f"invalid character {char} looking for beginning of value"


def _quote_char(char: str) -> str:
    # encoding/json's quoteChar.
    if char == "'":
        return "'\\''"
    if char == '"':
        return "'\"'"
    return "'" + json.dumps(char)[1:-1] + "'"


def _innermost(doc: str, pos: int) -> str:
    """The bracket of the innermost object or array open at ``pos``."""
    stack: list[str] = []
    in_string = escaped = False
    for char in doc[:pos]:
        if in_string:
            if escaped:
                escaped = False
            elif char == "\\":
                escaped = True
            elif char == '"':
                in_string = False
        elif char == '"':
            in_string = True
        elif char in "{[":
            stack.append(char)
        elif char in "}]" and stack:
            stack.pop()
    return stack[-1] if stack else ""
