"""``-basic-docker``, ``-docker-config`` and ``-docker-cfg``: registry credentials merged into
``.docker/config.json`` (spec §2.4.3 to §2.4.5).

Decoding follows Go's ``encoding/json`` into Tekton's ``entry`` struct (case-insensitive keys,
only four fields kept, ``null`` ignored) and encoding follows ``json.Marshal`` byte for byte
(field order, ``omitempty``, sorted map keys, HTML-safe escapes), because tools compare the
written file with the Go entrypoint's.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Mapping
from dataclasses import dataclass

from entrypoint._internal.go import path as gopath
from entrypoint._internal.go.flag import go_quote
from entrypoint._internal.step.creds._common import (
    CredentialError,
    from_bytes,
    mkdir_all,
    read_file,
    secret_file,
    split_secret_url,
    to_bytes,
    write_file,
)
from entrypoint.errors import DecodeError, FlagValueError

BASIC_FLAG = "basic-docker"
CONFIG_FLAG = "docker-config"
CFG_FLAG = "docker-cfg"
BASIC_USAGE = "List of secret=url pairs."
CONFIG_USAGE = "Docker config.json secret file."
CFG_USAGE = "Docker .dockercfg secret file."

DOCKER_CONFIG_JSON_KEY = ".dockerconfigjson"
DOCKER_CFG_KEY = ".dockercfg"
PLACEHOLDER_EMAIL = "not@val.id"


@dataclass(frozen=True)
class DockerEntry:
    """The fields of one registry that survive into ``config.json`` (others, e.g. identity
    tokens, are dropped as Go's struct drops them)."""

    username: str = ""
    password: str = ""
    auth: str = ""
    email: str = ""


_FIELDS = ("username", "password", "auth", "email")


class BasicDocker:
    """The ``-basic-docker`` flag value: registry URL -> entry built from a basic-auth secret."""

    is_bool = False

    def __init__(self, secrets_dir: str) -> None:
        self._secrets_dir = secrets_dir
        self._entries: dict[str, tuple[str, DockerEntry]] = {}

    @property
    def entries(self) -> dict[str, DockerEntry]:
        return {url: entry for url, (_, entry) in self._entries.items()}

    def set(self, value: str) -> None:
        secret, url = split_secret_url(value)
        if url in self._entries:
            raise FlagValueError(f"multiple entries for url: {url}")
        try:
            username = from_bytes(read_file(secret_file(self._secrets_dir, secret, "username")))
            password = from_bytes(read_file(secret_file(self._secrets_dir, secret, "password")))
        except CredentialError as exc:
            raise FlagValueError(str(exc)) from exc
        auth = base64.b64encode(to_bytes(f"{username}:{password}")).decode("ascii")
        self._entries[url] = (secret, DockerEntry(username, password, auth, PLACEHOLDER_EMAIL))

    def string(self) -> str:
        return ",".join(f"{secret}={url}" for url, (secret, _) in self._entries.items())


class SecretList:
    """``-docker-config`` / ``-docker-cfg``: secret names, read only when writing."""

    is_bool = False

    def __init__(self) -> None:
        self.values: list[str] = []

    def set(self, value: str) -> None:
        self.values.append(value)

    def string(self) -> str:
        return ",".join(self.values)


def write(
    basic: BasicDocker,
    docker_config: SecretList,
    docker_cfg: SecretList,
    secrets_dir: str,
    directory: str,
) -> None:
    """Merge ``.dockercfg`` secrets, then ``.dockerconfigjson`` secrets, then ``-basic-docker``
    entries (later ones win per URL) and write ``.docker/config.json`` if anything is left."""
    auths: dict[str, DockerEntry] = {}
    for secret in docker_cfg.values:
        auths.update(_auths_from_dockercfg(read_file(secret_file(secrets_dir, secret, DOCKER_CFG_KEY))))
    for secret in docker_config.values:
        data = read_file(secret_file(secrets_dir, secret, DOCKER_CONFIG_JSON_KEY))
        auths.update(_auths_from_dockerconfigjson(data))
    auths.update(basic.entries)
    if not auths:
        return
    docker_dir = gopath.join(directory, ".docker")
    mkdir_all(docker_dir, 0o777)
    write_file(gopath.join(docker_dir, "config.json"), encode_config(auths), 0o600)


# -- decoding (Go encoding/json into Tekton's structs) ----------------------------------------------


class _Object:
    """A JSON object, keeping duplicate keys in document order as Go's decoder sees them."""

    __slots__ = ("pairs",)

    def __init__(self, pairs: list[tuple[str, object]]) -> None:
        self.pairs = pairs


class _Number:
    """A JSON number; its value never matters here, only that it is not a string."""


_NUMBER = _Number()


class _NonJSONConstant(DecodeError):
    """NaN or Infinity, which Python's json accepts and Go's rejects."""


def _reject_constant(name: str) -> object:
    raise _NonJSONConstant(name)


def _kind(value: object) -> str:
    if isinstance(value, _Object):
        return "object"
    if isinstance(value, list):
        return "array"
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, str):
        return "string"
    return "number"


def _clean(s: str) -> str:
    # Go's decoder turns invalid UTF-8 and unpaired surrogate escapes into U+FFFD.
    if not any(0xD800 <= ord(ch) <= 0xDFFF for ch in s):
        return s
    return "".join("\ufffd" if 0xD800 <= ord(ch) <= 0xDFFF else ch for ch in s)


def _load(data: bytes) -> object:
    text = from_bytes(data)
    try:
        return json.loads(
            text,
            object_pairs_hook=_Object,
            parse_int=lambda _: _NUMBER,
            parse_float=lambda _: _NUMBER,
            parse_constant=_reject_constant,
        )
    except json.JSONDecodeError as exc:
        raise CredentialError(_syntax_error_text(exc, text)) from exc
    except _NonJSONConstant as exc:
        # Python accepts NaN and Infinity; Go stops at their first letter.
        name = str(exc)
        if name.startswith("-"):
            raise CredentialError("invalid character 'I' in numeric literal") from exc
        raise CredentialError(
            f"invalid character {_quote_char(name[0])} looking for beginning of value"
        ) from exc
    except RecursionError as exc:
        raise CredentialError("exceeded max depth") from exc


def _quote_char(ch: str) -> str:
    """Go's ``quoteChar`` on the first byte of ``ch`` (Go reports a byte, read as Latin-1)."""
    byte = to_bytes(ch)[0] if ch else 0
    if byte == 0x27:
        return "'\\''"
    if byte == 0x22:
        return "'\"'"
    return "'" + go_quote(chr(byte))[1:-1] + "'"


def _syntax_error_text(exc: json.JSONDecodeError, text: str) -> str:
    """An approximation of Go's ``SyntaxError`` text (log text only, not parsed by anyone)."""
    msg, pos = exc.msg, exc.pos
    if msg.startswith("Unterminated string") or pos >= len(text):
        return "unexpected end of JSON input"
    if msg.startswith("Unexpected UTF-8 BOM"):
        return "invalid character 'ï' looking for beginning of value"
    if msg.startswith("Invalid \\escape") or msg.startswith("Invalid \\u"):
        return f"invalid character {_quote_char(text[pos + 1 : pos + 2])} in string escape code"
    context = {
        "Expecting value": "looking for beginning of value",
        "Expecting property name enclosed in double quotes": "looking for beginning of object key string",
        "Expecting ':' delimiter": "after object key",
        "Extra data": "after top-level value",
        "Invalid control character at": "in string literal",
    }.get(msg)
    if context is None and msg == "Expecting ',' delimiter":
        context = (
            "after array element" if _innermost_container(text, pos) == "[" else "after object key:value pair"
        )
    return f"invalid character {_quote_char(text[pos])} {context or 'looking for beginning of value'}"


def _innermost_container(text: str, pos: int) -> str:
    stack: list[str] = []
    in_string = escaped = False
    for ch in text[:pos]:
        if in_string:
            if escaped:
                escaped = False
            elif ch == "\\":
                escaped = True
            elif ch == '"':
                in_string = False
        elif ch == '"':
            in_string = True
        elif ch in "[{":
            stack.append(ch)
        elif ch in "]}" and stack:
            stack.pop()
    return stack[-1] if stack else ""


def _type_error(kind: str, target: str) -> CredentialError:
    return CredentialError(f"json: cannot unmarshal {kind} into {target}")


def _fold_equal(key: str, name: str) -> bool:
    """``bytes.EqualFold`` against an ASCII field name: Go also folds the Kelvin sign to 'k'
    and the long s to 's'."""
    if len(key) != len(name):
        return False
    for k, n in zip(key, name, strict=True):
        if k == n or (k.isascii() and k.lower() == n):
            continue
        if (n == "k" and k == "\u212a") or (n == "s" and k == "\u017f"):
            continue
        return False
    return True


def _field_for(key: str, names: tuple[str, ...]) -> str | None:
    if key in names:
        return key
    for name in names:
        if _fold_equal(key, name):
            return name
    return None


def _decode_entry(value: object) -> DockerEntry:
    if value is None:
        return DockerEntry()
    if not isinstance(value, _Object):
        raise _type_error(_kind(value), "Go value of type dockercreds.entry")
    fields = dict.fromkeys(_FIELDS, "")
    for key, item in value.pairs:
        name = _field_for(key, _FIELDS)
        if name is None or item is None:
            continue
        if not isinstance(item, str):
            raise _type_error(_kind(item), f"Go struct field entry.{name} of type string")
        fields[name] = _clean(item)
    return DockerEntry(**fields)


def _decode_auths(value: _Object, into: dict[str, DockerEntry]) -> None:
    for key, item in value.pairs:
        into[_clean(key)] = _decode_entry(item)


def _auths_from_dockercfg(data: bytes) -> dict[str, DockerEntry]:
    """A ``.dockercfg`` secret: a map from registry URL to entry."""
    doc = _load(data)
    auths: dict[str, DockerEntry] = {}
    if doc is None:
        return auths
    if not isinstance(doc, _Object):
        raise _type_error(_kind(doc), "Go value of type map[string]dockercreds.entry")
    _decode_auths(doc, auths)
    return auths


def _auths_from_dockerconfigjson(data: bytes) -> dict[str, DockerEntry]:
    """A ``.dockerconfigjson`` secret: ``{"auths": {url: entry}}``; other keys are ignored."""
    doc = _load(data)
    auths: dict[str, DockerEntry] = {}
    if doc is None:
        return auths
    if not isinstance(doc, _Object):
        raise _type_error(_kind(doc), "Go value of type dockercreds.configFile")
    for key, item in doc.pairs:
        if _field_for(key, ("auths",)) is None:
            continue
        if item is None:
            auths.clear()  # Go sets the map to nil
        elif isinstance(item, _Object):
            _decode_auths(item, auths)  # a repeated key decodes into the same map
        else:
            raise _type_error(
                _kind(item), "Go struct field configFile.auths of type map[string]dockercreds.entry"
            )
    return auths


# -- encoding (Go json.Marshal) ----------------------------------------------------------------------

_JSON_ESCAPES = {
    '"': '\\"',
    "\\": "\\\\",
    "\n": "\\n",
    "\r": "\\r",
    "\t": "\\t",
    "\b": "\\b",
    "\f": "\\f",
    # Go escapes these so the output is safe inside HTML <script>.
    "<": "\\u003c",
    ">": "\\u003e",
    "&": "\\u0026",
    "\u2028": "\\u2028",
    "\u2029": "\\u2029",
}


def go_json_string(s: str) -> str:
    """A JSON string literal exactly as Go's ``json.Marshal`` writes it."""
    out = ['"']
    for ch in s:
        code = ord(ch)
        special = _JSON_ESCAPES.get(ch)
        if special is not None:
            out.append(special)
        elif code < 0x20:
            out.append(f"\\u{code:04x}")
        elif 0xD800 <= code <= 0xDFFF:
            # Bytes that were not valid UTF-8: Go writes the escape, not the character.
            out.append("\\ufffd")
        else:
            out.append(ch)
    out.append('"')
    return "".join(out)


def encode_config(auths: Mapping[str, DockerEntry]) -> bytes:
    """``json.Marshal(configFile{auths})``: compact, keys sorted bytewise, struct fields in
    declaration order with ``omitempty`` on all but ``auth``."""
    items = []
    for url in sorted(auths, key=to_bytes):
        entry = auths[url]
        fields = []
        if entry.username:
            fields.append('"username":' + go_json_string(entry.username))
        if entry.password:
            fields.append('"password":' + go_json_string(entry.password))
        fields.append('"auth":' + go_json_string(entry.auth))
        if entry.email:
            fields.append('"email":' + go_json_string(entry.email))
        items.append(go_json_string(url) + ":{" + ",".join(fields) + "}")
    return ('{"auths":{' + ",".join(items) + "}}").encode("utf-8")
