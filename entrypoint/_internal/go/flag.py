"""Go ``flag`` package semantics, which Tekton's controller relies on when it builds step arguments.

argparse cannot be used: Go stops at the first non-flag token, lets a non-boolean flag take the next
token even when it starts with ``-``, treats ``-b false`` as ``-b`` followed by the positional
``false``, and exits 2 on errors.  This module reproduces those rules (and the error texts) exactly.
"""

from __future__ import annotations

import sys

from entrypoint.errors import FlagValueError, HelpRequested, UsageError

TYPE_CHECKING = False  # not typing.TYPE_CHECKING: importing typing costs a step ~1.7 ms
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import NoReturn, TextIO

    from entrypoint._internal.step.seams import FlagValue

# Go's flag package replaces strconv errors by these two sentinels (Go >= 1.19).
PARSE_ERROR = "parse error"
RANGE_ERROR = "value out of range"


class StringValue:
    """A Go ``flag.String``: takes any value."""

    is_bool = False

    def __init__(self, default: str = "") -> None:
        self.value = default

    def set(self, value: str) -> None:
        self.value = value

    def string(self) -> str:
        return self.value


_TRUE = {"1", "t", "T", "TRUE", "true", "True"}
_FALSE = {"0", "f", "F", "FALSE", "false", "False"}


def parse_go_bool(text: str) -> bool:
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    raise FlagValueError(PARSE_ERROR)


class ChoiceValue:
    """A string flag restricted to a set of values (the empty string always allowed)."""

    is_bool = False

    def __init__(self, choices: tuple[str, ...] | Callable[[], tuple[str, ...]], default: str = "") -> None:
        # A callable is asked only when the flag is set: the choices may live in a module that
        # a step without the flag should not import.
        self._choices = choices
        self.value = default

    @property
    def choices(self) -> tuple[str, ...]:
        return self._choices if isinstance(self._choices, tuple) else self._choices()

    def set(self, value: str) -> None:
        if value and value not in self.choices:
            raise FlagValueError(f"must be one of {', '.join(self.choices)}")
        self.value = value

    def string(self) -> str:
        return self.value


class BoolValue:
    """A Go ``flag.Bool``: ``-x``, ``-x=true`` or ``-x=false`` (and Go's other spellings)."""

    is_bool = True

    def __init__(self, default: bool = False) -> None:
        self.value = default

    def set(self, value: str) -> None:
        self.value = parse_go_bool(value)

    def string(self) -> str:
        return "true" if self.value else "false"


class DurationValue:
    """A Go ``time.Duration`` held in integer nanoseconds."""

    is_bool = False

    def __init__(self, default_ns: int = 0) -> None:
        self.value = default_ns

    def set(self, value: str) -> None:
        try:
            self.value = parse_go_duration(value)
        except ValueError as exc:
            raise FlagValueError(PARSE_ERROR) from exc

    def string(self) -> str:
        return format_go_duration(self.value)


class _Flag:
    __slots__ = ("default", "name", "usage", "value")

    def __init__(self, name: str, usage: str, value: FlagValue, default: str) -> None:
        self.name = name
        self.usage = usage
        self.value = value
        self.default = default


class FlagSet:
    """A set of Go-style flags; :meth:`parse` returns the positional leftovers."""

    def __init__(self, program: str, output: TextIO | None = None) -> None:
        self.program = program
        self._flags: dict[str, _Flag] = {}
        self._output = output
        self.actual: set[str] = set()

    @property
    def output(self) -> TextIO:
        return self._output if self._output is not None else sys.stderr

    def var(self, value: FlagValue, name: str, usage: str) -> FlagValue:
        if name in self._flags:
            raise ValueError(f"flag redefined: {name}")
        self._flags[name] = _Flag(name, usage, value, value.string())
        return value

    def string(self, name: str, default: str, usage: str) -> StringValue:
        v = StringValue(default)
        self.var(v, name, usage)
        return v

    def bool(self, name: str, default: bool, usage: str) -> BoolValue:
        v = BoolValue(default)
        self.var(v, name, usage)
        return v

    def duration(self, name: str, default_ns: int, usage: str) -> DurationValue:
        v = DurationValue(default_ns)
        self.var(v, name, usage)
        return v

    def lookup(self, name: str) -> FlagValue | None:
        f = self._flags.get(name)
        return f.value if f is not None else None

    # -- parsing ---------------------------------------------------------------------------------

    def parse(self, args: list[str]) -> list[str]:
        """Parse ``args``; return the leftovers.  Raises UsageError / HelpRequested after
        printing the error and the usage text, as Go's ``ExitOnError`` set does before exiting."""
        rest = list(args)
        while rest:
            s = rest[0]
            if len(s) < 2 or s[0] != "-":
                break
            minuses = 1
            if s[1] == "-":
                minuses = 2
                if len(s) == 2:  # "--" terminates the flags and is consumed
                    rest.pop(0)
                    break
            name = s[minuses:]
            if not name or name[0] in "-=":
                self._fail(f"bad flag syntax: {s}")
            rest.pop(0)
            value, has_value = "", False
            eq = name.find("=", 1)
            if eq >= 1:
                name, value, has_value = name[:eq], name[eq + 1 :], True
            flag = self._flags.get(name)
            if flag is None:
                if name in ("help", "h"):
                    self.print_usage()
                    raise HelpRequested("flag: help requested")
                self._fail(f"flag provided but not defined: -{name}")
            if flag.value.is_bool:
                if has_value:
                    self._set(flag, value, f"invalid boolean value {go_quote(value)} for -{name}")
                else:
                    self._set(flag, "true", f"invalid boolean flag {name}")
            else:
                if not has_value and rest:
                    value, has_value = rest.pop(0), True
                if not has_value:
                    self._fail(f"flag needs an argument: -{name}")
                self._set(flag, value, f"invalid value {go_quote(value)} for flag -{name}")
            self.actual.add(name)
        return rest

    def _set(self, flag: _Flag, value: str, context: str) -> None:
        """Set ``flag``; a rejected value fails with ``<context>: <reason>``."""
        try:
            flag.value.set(value)
        except FlagValueError as exc:
            self._fail(f"{context}: {exc}")

    def _fail(self, message: str) -> NoReturn:
        print(message, file=self.output)
        self.print_usage()
        raise UsageError(message)

    def print_usage(self) -> None:
        out = self.output
        print(f"Usage of {self.program}:", file=out)
        for name in sorted(self._flags):
            f = self._flags[name]
            kind = "" if f.value.is_bool else " value"
            if isinstance(f.value, StringValue):
                kind = " string"
            elif isinstance(f.value, DurationValue):
                kind = " duration"
            line = f"  -{name}{kind}"
            usage = f.usage.replace("\n", "\n    \t")
            line += ("\t" if len(line) <= 4 else "\n    \t") + usage
            if f.default not in ("", "false", "0", "0s"):
                line += f" (default {go_quote(f.default) if isinstance(f.value, StringValue) else f.default})"
            print(line, file=out)


def go_quote(s: str) -> str:
    """Go's ``%q`` (``strconv.Quote``) for the strings that appear in flag and error texts.

    Printable runes stay raw; ``\\a \\b \\f \\n \\r \\t \\v`` use short escapes; other ASCII
    controls and DEL become ``\\xNN``; non-printable runes become ``\\uNNNN``/``\\UNNNNNNNN``.  A byte
    that was not valid UTF-8 (carried by Python as a surrogate escape, as in ``sys.argv``) is
    ``\\xNN``, as Go quotes an invalid byte.
    """
    out = ['"']
    for ch in s:
        code = ord(ch)
        if ch in ('"', "\\"):
            out.append("\\" + ch)
        elif ch in _SHORT_ESCAPES:
            out.append(_SHORT_ESCAPES[ch])
        elif code < 0x20 or code == 0x7F:
            out.append(f"\\x{code:02x}")
        elif 0xDC80 <= code <= 0xDCFF:  # surrogateescape'd raw byte
            out.append(f"\\x{code - 0xDC00:02x}")
        elif 0xD800 <= code <= 0xDFFF:  # not a rune Go can hold: Go sees U+FFFD, which is printable
            out.append("\ufffd")
        elif code < 0x80 or ch.isprintable():
            out.append(ch)
        elif code < 0x10000:
            out.append(f"\\u{code:04x}")
        else:
            out.append(f"\\U{code:08x}")
    out.append('"')
    return "".join(out)


_SHORT_ESCAPES = {"\a": "\\a", "\b": "\\b", "\f": "\\f", "\n": "\\n", "\r": "\\r", "\t": "\\t", "\v": "\\v"}


# -- Go durations ----------------------------------------------------------------------------------

_UNITS = {
    "ns": 1,
    "us": 1_000,
    "µs": 1_000,  # U+00B5 micro sign
    "μs": 1_000,  # U+03BC greek mu
    "ms": 1_000_000,
    "s": 1_000_000_000,
    "m": 60 * 1_000_000_000,
    "h": 3600 * 1_000_000_000,
}
_MAX_NS = (1 << 63) - 1
_LIMIT = 1 << 63  # Go accumulates the magnitude in a uint64 and allows up to 2**63


def parse_go_duration(text: str) -> int:
    """Parse a Go duration string (``1h0m0s``, ``-1.5h``, ``300ms``, ``0``) into nanoseconds.

    Follows ``time.ParseDuration`` step by step: every number needs a unit except a lone ``0``;
    fractions are allowed and are scaled in float64 exactly as Go does (so sub-nanosecond rounding
    matches); the magnitude may reach 2**63 only for a negative result.  Raises ValueError with
    Go's message otherwise.
    """
    orig = text
    invalid = f"time: invalid duration {go_quote(orig)}"
    s = text
    neg = False
    if s and s[0] in "+-":
        neg = s[0] == "-"
        s = s[1:]
    if s == "0":
        return 0
    if not s:
        raise ValueError(invalid)
    total = 0
    while s:
        if not (s[0] == "." or _is_digit(s[0])):
            raise ValueError(invalid)
        # Consume [0-9]*; Go's leadingInt fails as soon as the value would pass 2**63.
        i = 0
        whole = 0
        while i < len(s) and _is_digit(s[i]):
            if whole > _LIMIT // 10:
                raise ValueError(invalid)
            whole = whole * 10 + ord(s[i]) - 48
            if whole > _LIMIT:
                raise ValueError(invalid)
            i += 1
        pre = i > 0
        s = s[i:]
        # Consume (\.[0-9]*)?; Go's leadingFraction silently drops digits that would overflow.
        frac, scale, post = 0, 1.0, False
        if s.startswith("."):
            s = s[1:]
            j = 0
            overflow = False
            while j < len(s) and _is_digit(s[j]):
                if not overflow:
                    if frac > _MAX_NS // 10:
                        overflow = True
                    else:
                        y = frac * 10 + ord(s[j]) - 48
                        if y > _LIMIT:
                            overflow = True
                        else:
                            frac = y
                            scale *= 10
                j += 1
            s = s[j:]
            post = j > 0
        if not pre and not post:
            raise ValueError(invalid)
        k = 0
        while k < len(s) and s[k] != "." and not _is_digit(s[k]):
            k += 1
        if k == 0:
            raise ValueError(f"time: missing unit in duration {go_quote(orig)}")
        unit_name, s = s[:k], s[k:]
        unit = _UNITS.get(unit_name)
        if unit is None:
            raise ValueError(f"time: unknown unit {go_quote(unit_name)} in duration {go_quote(orig)}")
        if whole > _LIMIT // unit:
            raise ValueError(invalid)
        value = whole * unit
        if frac > 0:
            # Go: v += uint64(float64(f) * (float64(unit) / scale)) -- float64, truncated.
            value += int(float(frac) * (float(unit) / scale))
            if value > _LIMIT:
                raise ValueError(invalid)
        total += value
        if total > _LIMIT:
            raise ValueError(invalid)
    if neg:
        return -total
    if total > _MAX_NS:
        raise ValueError(invalid)
    return total


def _is_digit(ch: str) -> bool:
    return "0" <= ch <= "9"


def format_go_duration(ns: int) -> str:
    """Go's ``Duration.String()`` (enough for usage text and the controller's timeout flags)."""
    if ns == 0:
        return "0s"
    sign = "-" if ns < 0 else ""
    u = abs(ns)
    if u < 1_000_000_000:
        for unit, size in (("ms", 1_000_000), ("µs", 1_000), ("ns", 1)):
            if u >= size:
                return sign + _trim(u, size) + unit
    hours, rem = divmod(u, 3600 * 1_000_000_000)
    minutes, rem = divmod(rem, 60 * 1_000_000_000)
    out = sign
    if hours:
        out += f"{hours}h"
    if hours or minutes:
        out += f"{minutes}m"
    return out + _trim(rem, 1_000_000_000) + "s"


def _trim(value: int, unit: int) -> str:
    whole, frac = divmod(value, unit)
    if not frac:
        return str(whole)
    digits = len(str(unit)) - 1
    return f"{whole}.{frac:0{digits}d}".rstrip("0")
