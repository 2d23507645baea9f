"""JSON merge patch (RFC 7386) and JSON patch (RFC 6902), as kube-apiserver applies them to an object.

Neither changes its input: a merge patch shares the parts of the document it leaves alone, a JSON patch
works on a copy.  Failure messages are those of the library the apiserver uses (evanphx/json-patch).
"""

from __future__ import annotations

import copy
from typing import Any


class JSONPatchFailure(Exception):
    """A JSON patch operation that does not apply to the document."""


def merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7386: objects merge key by key, ``null`` deletes a key, anything else (lists too) replaces."""
    if not isinstance(patch, dict):
        return patch
    result = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merge_patch(result.get(key), value)
    return result


def json_patch(document: Any, operations: list[Any]) -> Any:
    """RFC 6902: apply ``operations`` in order, all or nothing; raises JSONPatchFailure."""
    doc = copy.deepcopy(document)
    for operation in operations:
        if not isinstance(operation, dict):
            raise JSONPatchFailure("Unexpected kind: an operation that is not an object")
        doc = _apply(doc, operation)
    return doc


def _apply(doc: Any, operation: dict[str, Any]) -> Any:
    op, path = operation.get("op"), operation.get("path")
    if not isinstance(path, str):
        raise JSONPatchFailure(f"{op} operation missing path field")
    if op == "test":
        found, value = _get(doc, path)
        if found and _json_equal(value, operation.get("value")):
            return doc
        if not found and _parent(doc, path) is None:
            raise JSONPatchFailure(f"test operation does not apply: is missing path: {path}: missing value")
        raise JSONPatchFailure(f"testing value {path} failed: test failed")
    if op == "add":
        return _add(doc, path, copy.deepcopy(_value(operation, op)))
    if op == "remove":
        return _remove(doc, path, op)
    if op == "replace":
        value = _value(operation, op)
        if not _get(doc, path)[0]:
            raise JSONPatchFailure(
                f"replace operation does not apply: doc is missing key: {path}: missing value"
            )
        return _add(_remove(doc, path, op) if path else None, path, copy.deepcopy(value))
    if op in ("move", "copy"):
        source = operation.get("from")
        if not isinstance(source, str):
            raise JSONPatchFailure(f"{op} operation missing from field")
        found, value = _get(doc, source)
        if not found:
            raise JSONPatchFailure(
                f'{op} operation does not apply: doc is missing from path: "{source}": missing value'
            )
        if op == "move":
            if path.startswith(source + "/"):
                raise JSONPatchFailure(f"move operation does not apply: cannot move {source} into {path}")
            doc = _remove(doc, source, op)
        return _add(doc, path, copy.deepcopy(value))
    raise JSONPatchFailure(f"Unexpected kind: {op}")


def _value(operation: dict[str, Any], op: str) -> Any:
    if "value" not in operation:
        raise JSONPatchFailure(f"{op} operation missing value field")
    return operation["value"]


def _tokens(path: str) -> list[str]:
    if path == "":
        return []
    if not path.startswith("/"):
        raise JSONPatchFailure(f"JSON pointer must be empty or start with a '/': {path}")
    return [t.replace("~1", "/").replace("~0", "~") for t in path[1:].split("/")]


def _index(container: list[Any], ref: str, *, insert: bool) -> int:
    if insert and ref == "-":
        return len(container)
    if not ref.isdigit() or (len(ref) > 1 and ref[0] == "0"):
        raise JSONPatchFailure(f"Unable to access invalid index: {ref}: invalid index referenced")
    index = int(ref)
    if index > len(container) or (index == len(container) and not insert):
        raise JSONPatchFailure(f"Unable to access invalid index: {index}: invalid index referenced")
    return index


def _parent(doc: Any, path: str) -> tuple[Any, str] | None:
    """The container holding what ``path`` points at, and the last token; None if it does not exist."""
    tokens = _tokens(path)
    if not tokens:
        return None
    node = doc
    for token in tokens[:-1]:
        if isinstance(node, dict) and token in node:
            node = node[token]
        elif isinstance(node, list) and token.isdigit() and int(token) < len(node):
            node = node[int(token)]
        else:
            return None
    return (node, tokens[-1]) if isinstance(node, dict | list) else None


def _get(doc: Any, path: str) -> tuple[bool, Any]:
    if path == "":
        return True, doc
    parent = _parent(doc, path)
    if parent is None:
        return False, None
    node, token = parent
    if isinstance(node, dict):
        return (token in node), node.get(token)
    if token.isdigit() and int(token) < len(node):
        return True, node[int(token)]
    return False, None


def _add(doc: Any, path: str, value: Any) -> Any:
    if path == "":
        return value
    parent = _parent(doc, path)
    if parent is None:
        raise JSONPatchFailure(f'add operation does not apply: doc is missing path: "{path}": missing value')
    node, token = parent
    if isinstance(node, dict):
        node[token] = value
    else:
        node.insert(_index(node, token, insert=True), value)
    return doc


def _remove(doc: Any, path: str, op: str) -> Any:
    found, _ = _get(doc, path)
    parent = _parent(doc, path)
    if not found or parent is None:
        raise JSONPatchFailure(f'{op} operation does not apply: doc is missing path: "{path}": missing value')
    node, token = parent
    if isinstance(node, dict):
        del node[token]
    else:
        del node[_index(node, token, insert=False)]
    return doc


def _json_equal(a: Any, b: Any) -> bool:
    # Python's == says True == 1 and 1 == 1.0; JSON tells booleans from numbers.
    if isinstance(a, bool) or isinstance(b, bool):
        return type(a) is type(b) and a == b
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_json_equal(a[k], b[k]) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(_json_equal(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, int | float) and isinstance(b, int | float):
        return a == b
    return type(a) is type(b) and a == b
