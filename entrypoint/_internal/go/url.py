"""The part of Go's ``net/url`` that ``-basic-git`` relies on: ``Parse``, ``URL.String`` and
``UserPassword``.

``.git-credentials`` holds ``URL.String()`` of the annotated URL with the user-info replaced, so
its bytes depend on Go's exact escaping rules (``urllib`` escapes differently), and a URL that
Go rejects must make the flag fail.  Behaviour is that of Go 1.26 with its default
``urlstrictcolons=1`` (Tekton's module requires Go 1.26).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

from entrypoint._internal.go.flag import go_quote
from entrypoint._internal.step.creds._common import (
    from_bytes,
    go_quote_bytes,
    to_bytes,
)
from entrypoint.errors import DecodeError

_UPPERHEX = b"0123456789ABCDEF"


class URLError(DecodeError):
    """A URL that Go's ``url.Parse`` rejects; the text is Go's ``*url.Error`` text."""


class _Mode(Enum):
    PATH = 1
    HOST = 2
    ZONE = 3
    USER_PASSWORD = 4
    FRAGMENT = 5


_HOST_SUBDELIMS = frozenset(b"!$&'()*+,;=:[]<>\"")
_RESERVED = frozenset(b"$&+,/:;=?@")
_UNRESERVED_MARK = frozenset(b"-_.~")


def _is_alnum(c: int) -> bool:
    return 0x61 <= c <= 0x7A or 0x41 <= c <= 0x5A or 0x30 <= c <= 0x39


def _should_escape(c: int, mode: _Mode) -> bool:
    if _is_alnum(c):
        return False
    if mode in (_Mode.HOST, _Mode.ZONE) and c in _HOST_SUBDELIMS:
        return False
    if c in _UNRESERVED_MARK:
        return False
    if c in _RESERVED:
        if mode is _Mode.PATH:
            return c == 0x3F  # '?'
        if mode is _Mode.USER_PASSWORD:
            return c in b"@/?:"
        if mode is _Mode.FRAGMENT:
            return False
    # The fragment may keep the sub-delims that RFC 2396 did not reserve.
    return not (mode is _Mode.FRAGMENT and c in b"!()*")


def _is_hex(c: int) -> bool:
    return 0x30 <= c <= 0x39 or 0x61 <= c <= 0x66 or 0x41 <= c <= 0x46


def _escape_error(b: bytes) -> URLError:
    return URLError("invalid URL escape " + go_quote_bytes(b))


def _unescape(s: str, mode: _Mode) -> str:
    raw = to_bytes(s)
    n = len(raw)
    i = 0
    out = bytearray()
    while i < n:
        c = raw[i]
        if c == 0x25:  # '%'
            if i + 2 >= n or not _is_hex(raw[i + 1]) or not _is_hex(raw[i + 2]):
                raise _escape_error(raw[i : i + 3])
            triple = raw[i : i + 3]
            value = int(triple[1:], 16)
            # Hosts may percent-encode only non-ASCII bytes, except the "%25" that introduces an
            # IPv6 zone (RFC 6874).
            if mode is _Mode.HOST and value < 0x80 and triple != b"%25":
                raise _escape_error(triple)
            if (
                mode is _Mode.ZONE
                and triple != b"%25"
                and value != 0x20
                and _should_escape(value, _Mode.HOST)
            ):
                raise _escape_error(triple)
            out.append(value)
            i += 3
            continue
        if mode in (_Mode.HOST, _Mode.ZONE) and c < 0x80 and _should_escape(c, mode):
            raise URLError("invalid character " + go_quote_bytes(bytes([c])) + " in host name")
        out.append(c)
        i += 1
    return from_bytes(bytes(out))


def _escape(s: str, mode: _Mode) -> str:
    out = bytearray()
    for c in to_bytes(s):
        if _should_escape(c, mode):
            out += bytes((0x25, _UPPERHEX[c >> 4], _UPPERHEX[c & 15]))
        else:
            out.append(c)
    return out.decode("ascii")


def _valid_encoded(s: str, mode: _Mode) -> bool:
    for c in to_bytes(s):
        if c in b"!$&'()*+,;=:@[]%":
            continue
        if _should_escape(c, mode):
            return False
    return True


def _valid_optional_port(port: str) -> bool:
    if port == "":
        return True
    if port[0] != ":":
        return False
    return all("0" <= ch <= "9" for ch in port[1:])


_USERINFO_PUNCT = frozenset("-._:~!$&'()*+,;=%@")


def _valid_userinfo(s: str) -> bool:
    return all((ch.isascii() and ch.isalnum()) or ch in _USERINFO_PUNCT for ch in s)


@dataclass
class Userinfo:
    """The user and password of a URL, as Go's ``url.Userinfo``."""

    username: str
    password: str | None = None

    def string(self) -> str:
        text = _escape(self.username, _Mode.USER_PASSWORD)
        if self.password is not None:
            text += ":" + _escape(self.password, _Mode.USER_PASSWORD)
        return text


@dataclass
class URL:
    """A parsed URL with Go's ``url.URL`` fields and its ``String()`` rendering."""

    scheme: str = ""
    opaque: str = ""
    user: Userinfo | None = None
    host: str = ""
    path: str = ""
    raw_path: str = ""
    omit_host: bool = False
    force_query: bool = False
    raw_query: str = ""
    fragment: str = ""
    raw_fragment: str = ""

    def escaped_path(self) -> str:
        if self.raw_path and _valid_encoded(self.raw_path, _Mode.PATH):
            try:
                if _unescape(self.raw_path, _Mode.PATH) == self.path:
                    return self.raw_path
            except URLError:
                pass
        if self.path == "*":
            return "*"
        return _escape(self.path, _Mode.PATH)

    def escaped_fragment(self) -> str:
        if self.raw_fragment and _valid_encoded(self.raw_fragment, _Mode.FRAGMENT):
            try:
                if _unescape(self.raw_fragment, _Mode.FRAGMENT) == self.fragment:
                    return self.raw_fragment
            except URLError:
                pass
        return _escape(self.fragment, _Mode.FRAGMENT)

    def string(self) -> str:
        """Go's ``URL.String``."""
        buf: list[str] = []
        if self.scheme:
            buf.append(self.scheme + ":")
        if self.opaque:
            buf.append(self.opaque)
        else:
            has_authority = self.scheme or self.host or self.user is not None
            if has_authority and not (self.omit_host and not self.host and self.user is None):
                if self.host or self.path or self.user is not None:
                    buf.append("//")
                if self.user is not None:
                    buf.append(self.user.string() + "@")
                if self.host:
                    buf.append(_escape(self.host, _Mode.HOST))
            path = self.escaped_path()
            if path and path[0] != "/" and self.host:
                buf.append("/")
            if not buf:
                # A relative path whose first segment holds a colon would read as a scheme.
                segment = path.split("/", 1)[0]
                if ":" in segment:
                    buf.append("./")
            buf.append(path)
        if self.force_query or self.raw_query:
            buf.append("?" + self.raw_query)
        if self.fragment:
            buf.append("#" + self.escaped_fragment())
        return "".join(buf)


def parse(raw_url: str) -> URL:
    """Go's ``url.Parse``; raises :class:`URLError` with Go's ``parse "<url>": <reason>`` text."""
    u, _, frag = raw_url.partition("#")
    try:
        url = _parse(u)
    except URLError as exc:
        raise URLError(f"parse {go_quote(u)}: {exc}") from exc
    if frag == "":
        return url
    try:
        url.fragment = _unescape(frag, _Mode.FRAGMENT)
    except URLError as exc:
        raise URLError(f"parse {go_quote(raw_url)}: {exc}") from exc
    url.raw_fragment = "" if _escape(url.fragment, _Mode.FRAGMENT) == frag else frag
    return url


def _get_scheme(raw: str) -> tuple[str, str]:
    for i, ch in enumerate(raw):
        if ("a" <= ch <= "z") or ("A" <= ch <= "Z"):
            continue
        if ("0" <= ch <= "9") or ch in "+-.":
            if i == 0:
                return "", raw
            continue
        if ch == ":":
            if i == 0:
                raise URLError("missing protocol scheme")
            return raw[:i], raw[i + 1 :]
        return "", raw
    return "", raw


def _parse(raw: str) -> URL:
    if any(ord(ch) < 0x20 or ord(ch) == 0x7F for ch in raw):
        raise URLError("net/url: invalid control character in URL")
    url = URL()
    if raw == "*":
        url.path = "*"
        return url
    scheme, rest = _get_scheme(raw)
    url.scheme = scheme.lower()
    if rest.endswith("?") and rest.count("?") == 1:
        url.force_query = True
        rest = rest[:-1]
    else:
        rest, _, url.raw_query = rest.partition("?")
    if not rest.startswith("/"):
        if url.scheme:
            url.opaque = rest
            return url
        if ":" in rest.split("/", 1)[0]:
            raise URLError("first path segment in URL cannot contain colon")
    if (url.scheme or not rest.startswith("///")) and rest.startswith("//"):
        authority, rest = rest[2:], ""
        slash = authority.find("/")
        if slash >= 0:
            authority, rest = authority[:slash], authority[slash:]
        url.user, url.host = _parse_authority(authority)
    elif url.scheme and rest.startswith("/"):
        url.omit_host = True
    url.path = _unescape(rest, _Mode.PATH)
    url.raw_path = "" if _escape(url.path, _Mode.PATH) == rest else rest
    return url


def _parse_authority(authority: str) -> tuple[Userinfo | None, str]:
    at = authority.rfind("@")
    host = _parse_host(authority[at + 1 :] if at >= 0 else authority)
    if at < 0:
        return None, host
    userinfo = authority[:at]
    if not _valid_userinfo(userinfo):
        raise URLError("net/url: invalid userinfo")
    if ":" not in userinfo:
        return Userinfo(_unescape(userinfo, _Mode.USER_PASSWORD)), host
    username, _, password = userinfo.partition(":")
    return (
        Userinfo(_unescape(username, _Mode.USER_PASSWORD), _unescape(password, _Mode.USER_PASSWORD)),
        host,
    )


def _parse_host(host: str) -> str:
    open_bracket = host.rfind("[")
    if open_bracket > 0:
        raise URLError("invalid IP-literal")
    if open_bracket == 0:
        close_bracket = host.rfind("]")
        if close_bracket < 0:
            raise URLError("missing ']' in host")
        colon_port = host[close_bracket + 1 :]
        if not _valid_optional_port(colon_port):
            raise URLError(f"invalid port {go_quote(colon_port)} after host")
        hostname = host[1:close_bracket]
        zone = hostname.find("%25")
        if zone >= 0:
            literal = _unescape(hostname[:zone], _Mode.HOST) + _unescape(hostname[zone:], _Mode.ZONE)
        else:
            literal = _unescape(hostname, _Mode.HOST)
        # RFC 3986: only an IPv6 address may be bracketed.
        if _parse_addr_is_ipv4(literal):
            raise URLError("invalid IP-literal")
        return "[" + literal + "]" + colon_port
    # Go 1.26 (urlstrictcolons=1): the first colon starts the port, which must be all digits.
    colon = host.find(":")
    if colon >= 0:
        colon_port = host[colon:]
        if not _valid_optional_port(colon_port):
            raise URLError(f"invalid port {go_quote(colon_port)} after host")
    return _unescape(host, _Mode.HOST)


def _parse_addr_is_ipv4(text: str) -> bool:
    """Accept what Go's ``netip.ParseAddr`` accepts; return whether it is IPv4.

    The rejection reason is shortened to ``unable to parse IP``: only acceptance matters to the
    caller, the reason ends up in a usage error.
    """
    # Imported here: bracketed hosts are rare and the step start-up path should not pay for it.
    import ipaddress

    def fail(reason: str) -> URLError:
        return URLError(f"invalid host: ParseAddr({go_quote(text)}): {reason}")

    for ch in text:
        if ch == ".":
            try:
                ipaddress.IPv4Address(text)
            except ValueError as exc:
                raise fail("unable to parse IP") from exc
            return True
        if ch == ":":
            addr, pct, zone = text.partition("%")
            if pct and not zone:
                raise fail("zone must be a non-empty string")
            try:
                ipaddress.IPv6Address(addr)
            except ValueError as exc:
                raise fail("unable to parse IP") from exc
            return False
        if ch == "%":
            raise fail("missing IPv6 address")
    raise fail("unable to parse IP")
