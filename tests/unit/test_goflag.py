"""Go ``flag`` emulation (spec §2.2, §2.3), the ``--`` split (§2.1) and Go durations (Appendix A)."""

from __future__ import annotations

import io
import re

import pytest

from entrypoint._internal.go.flag import (
    BoolValue,
    FlagSet,
    format_go_duration,
    go_quote,
    parse_go_bool,
    parse_go_duration,
)
from entrypoint._internal.step import options
from entrypoint.errors import FlagValueError, HelpRequested, UsageError

NS = 1
US = 1_000
MS = 1_000_000
S = 1_000_000_000
M = 60 * S
H = 60 * M


class Parsed:
    def __init__(self, opts: options.Options, output: str) -> None:
        self.opts = opts
        self.output = output


def parse(args: list[str]) -> Parsed:
    out = io.StringIO()
    fs = FlagSet("entrypoint", output=out)
    bound = options.register(fs)
    leftovers = fs.parse(args)
    return Parsed(bound.to_options(leftovers), out.getvalue())


def parse_error(args: list[str]) -> tuple[UsageError, str]:
    out = io.StringIO()
    fs = FlagSet("entrypoint", output=out)
    options.register(fs)
    with pytest.raises(UsageError) as info:
        fs.parse(args)
    return info.value, out.getvalue()


# -- §2.1 splitting at "--" --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "flag_part", "command_args"),
    [
        ([], [], []),
        (["--foo", "bar", "a", "b", "c"], ["--foo", "bar", "a", "b", "c"], []),
        (["--foo", "bar", "--"], ["--foo", "bar"], []),
        (["--foo", "bar", "--", "a", "b", "c"], ["--foo", "bar"], ["a", "b", "c"]),
        (["--foo", "bar", "baz", "--", "a", "b", "c"], ["--foo", "bar", "baz"], ["a", "b", "c"]),
        # a later "--" is kept literally in the command args
        (["-x", "--", "a", "--", "b"], ["-x"], ["a", "--", "b"]),
        # "--" at index 0: no split at all
        (["--", "cp", "a", "b"], ["--", "cp", "a", "b"], []),
        (["--", "echo", "--", "hi"], ["--", "echo", "--", "hi"], []),
    ],
)
def test_split_args(args: list[str], flag_part: list[str], command_args: list[str]) -> None:
    assert options.split_args(args) == (flag_part, command_args)


def test_split_args_does_not_alias_input() -> None:
    args = ["-a", "b"]
    flag_part, _ = options.split_args(args)
    flag_part.append("x")
    assert args == ["-a", "b"]


def test_dash_dash_at_index_zero_reaches_subcommand_dispatcher() -> None:
    flag_part, command_args = options.split_args(["--", "cp", "a", "b"])
    assert command_args == []
    assert parse(flag_part).opts.leftovers == ["cp", "a", "b"]


# -- §2.2 syntax ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "args",
    [
        ["-post_file", "/p"],
        ["-post_file=/p"],
        ["--post_file", "/p"],
        ["--post_file=/p"],
    ],
)
def test_value_forms(args: list[str]) -> None:
    p = parse(args)
    assert p.opts.post_file == "/p"
    assert p.opts.leftovers == []


def test_value_may_contain_equals_and_be_empty() -> None:
    assert parse(["-results=a=b"]).opts.results == "a=b"
    assert parse(["-termination_path="]).opts.termination_path == ""
    assert parse(["-termination_path", ""]).opts.termination_path == ""


def test_non_bool_value_starting_with_dash_is_taken_as_value() -> None:
    p = parse(["-results", "-x", "-post_file", "--", "rest"])
    assert p.opts.results == "-x"
    assert p.opts.post_file == "--"
    assert p.opts.leftovers == ["rest"]


def test_bool_flag_without_value_is_true() -> None:
    p = parse(["-wait_file_content", "--compress_termination_message"])
    assert p.opts.wait_file_content is True
    assert p.opts.compress_termination_message is True


@pytest.mark.parametrize("text", ["1", "t", "T", "TRUE", "true", "True"])
def test_bool_true_literals(text: str) -> None:
    assert parse([f"-wait_file_content={text}"]).opts.wait_file_content is True
    assert parse_go_bool(text) is True


@pytest.mark.parametrize("text", ["0", "f", "F", "FALSE", "false", "False"])
def test_bool_false_literals(text: str) -> None:
    assert parse(["-wait_file_content", f"-wait_file_content={text}"]).opts.wait_file_content is False
    assert parse_go_bool(text) is False


@pytest.mark.parametrize("text", ["yes", "", "tRUE", "2", " true"])
def test_bool_bad_literal(text: str) -> None:
    err, output = parse_error([f"-wait_file_content={text}"])
    expected = f"invalid boolean value {go_quote(text)} for -wait_file_content: parse error"
    assert str(err) == expected
    assert output.startswith(expected + "\n")
    with pytest.raises(FlagValueError, match=r"^parse error$"):
        BoolValue().set(text)


def test_bool_space_false_sets_true_and_stops_parsing() -> None:
    p = parse(["-wait_file_content", "false", "-post_file", "x"])
    assert p.opts.wait_file_content is True
    assert p.opts.post_file == ""
    assert p.opts.leftovers == ["false", "-post_file", "x"]


def test_parsing_stops_at_first_non_flag() -> None:
    p = parse(["-results", "a", "cp", "-post_file", "p", "x"])
    assert p.opts.results == "a"
    assert p.opts.post_file == ""
    assert p.opts.leftovers == ["cp", "-post_file", "p", "x"]


def test_parsing_stops_at_single_dash() -> None:
    p = parse(["-results", "a", "-", "-post_file", "p"])
    assert p.opts.post_file == ""
    assert p.opts.leftovers == ["-", "-post_file", "p"]


def test_double_dash_is_consumed_and_stops_parsing() -> None:
    p = parse(["-results", "a", "--", "-post_file", "p"])
    assert p.opts.results == "a"
    assert p.opts.post_file == ""
    assert p.opts.leftovers == ["-post_file", "p"]
    assert parse(["--", "--"]).opts.leftovers == ["--"]


def test_last_value_wins() -> None:
    p = parse(["-results", "a", "-results=b", "--timeout", "1s", "-timeout=2m"])
    assert p.opts.results == "b"
    assert p.opts.timeout_ns == 2 * M


def test_defaults() -> None:
    o = parse([]).opts
    assert o.termination_path == "/tekton/termination"
    assert o.result_from == "termination-message"
    assert o.spire_socket_path == "unix:///spiffe-workload-api/spire-agent.sock"
    assert o.timeout_ns == 0
    assert o.entrypoint == o.wait_file == o.post_file == o.results == o.on_error == ""
    assert not (o.wait_file_content or o.breakpoint_on_failure or o.debug_before_step)
    assert not (o.compress_termination_message or o.enable_spire)


def test_all_core_flags_are_registered() -> None:
    p = parse(
        [
            "-entrypoint", "cmd",
            "-wait_file", "a,b",
            "-wait_file_content",
            "-post_file", "/run/0/out",
            "-termination_path", "/term",
            "-results", "r1,r2",
            "-step_results", "s1",
            "--when_expressions", "[]",
            "-timeout", "1h0m0s",
            "-stdout_path", "/o",
            "-stderr_path", "/e",
            "-breakpoint_on_failure",
            "-debug_before_step",
            "-on_error", "continue",
            "-step_metadata_dir", "/run/0/status",
            "-result_from", "sidecar-logs",
            "-compress_termination_message=true",
            "-enable_spire",
            "-spire_socket_path", "tcp://127.0.0.1:1",
        ]
    )  # fmt: skip
    o = p.opts
    assert (o.entrypoint, o.wait_file) == ("cmd", "a,b")
    assert (o.post_file, o.termination_path) == ("/run/0/out", "/term")
    assert (o.results, o.step_results, o.when_expressions) == ("r1,r2", "s1", "[]")
    assert o.timeout_ns == H
    assert (o.stdout_path, o.stderr_path, o.on_error) == ("/o", "/e", "continue")
    assert (o.step_metadata_dir, o.result_from, o.spire_socket_path) == (
        "/run/0/status",
        "sidecar-logs",
        "tcp://127.0.0.1:1",
    )
    assert o.wait_file_content and o.breakpoint_on_failure and o.debug_before_step
    assert o.compress_termination_message and o.enable_spire
    assert o.leftovers == []


def test_controller_example_command_line() -> None:
    args = [
        "-wait_file", "/tekton/downward/ready", "-wait_file_content",
        "-post_file", "/tekton/run/0/out",
        "-termination_path", "/tekton/termination",
        "-step_metadata_dir", "/tekton/run/0/status",
        "-step_results", "sub", "-results", "sum", "-entrypoint", "cmd",
        "--", "arg1", "arg2",
    ]  # fmt: skip
    flag_part, command_args = options.split_args(args)
    o = parse(flag_part).opts
    assert command_args == ["arg1", "arg2"]
    assert o.wait_file == "/tekton/downward/ready" and o.wait_file_content
    assert (o.step_results, o.results, o.entrypoint) == ("sub", "sum", "cmd")
    assert o.leftovers == []


# -- errors --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["-x"], "flag provided but not defined: -x"),
        (["--x=1"], "flag provided but not defined: -x"),
        (
            ["-dont_send_results_to_termination_path"],
            "flag provided but not defined: -dont_send_results_to_termination_path",
        ),
        (["-wait_file_contents"], "flag provided but not defined: -wait_file_contents"),
        (["-secret_mask_file", "f"], "flag provided but not defined: -secret_mask_file"),
        (["-timeout", "v"], 'invalid value "v" for flag -timeout: parse error'),
        (["-timeout=1"], 'invalid value "1" for flag -timeout: parse error'),
        (["-results", "a", "-post_file"], "flag needs an argument: -post_file"),
        (["---x"], "bad flag syntax: ---x"),
        (["-=x"], "bad flag syntax: -=x"),
        (["--=x"], "bad flag syntax: --=x"),
    ],
)
def test_errors(args: list[str], message: str) -> None:
    err, output = parse_error(args)
    assert str(err) == message
    assert not isinstance(err, HelpRequested)
    lines = output.splitlines()
    assert lines[0] == message
    assert lines[1].startswith("Usage of ")
    assert "  -post_file string" in lines


@pytest.mark.parametrize("flag", ["-h", "-help", "--help", "--h", "-help=1"])
def test_help_requested(flag: str) -> None:
    err, output = parse_error(["-results", "a", flag, "-x"])
    assert isinstance(err, HelpRequested)
    assert output.startswith("Usage of entrypoint:\n")
    assert "  -timeout duration" in output


def test_usage_lists_bool_flags_without_type_and_shows_non_zero_defaults() -> None:
    _, output = parse_error(["-h"])
    assert "  -wait_file_content\n" in output
    assert '(default "/tekton/termination")' in output
    assert '(default "termination-message")' in output


def test_redefining_a_flag_is_a_programming_error() -> None:
    fs = FlagSet("x")
    fs.string("a", "", "")
    with pytest.raises(ValueError, match="flag redefined: a"):
        fs.bool("a", False, "")


def test_lookup_and_actual() -> None:
    fs = FlagSet("x", output=io.StringIO())
    sv = fs.string("name", "d", "")
    assert fs.lookup("name") is sv
    assert fs.lookup("nope") is None
    fs.parse(["-name", "v"])
    assert fs.actual == {"name"}


# -- go_quote (%q in the error texts) ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "quoted"),
    [
        ("v", '"v"'),
        ("", '""'),
        ('a"b\\c', '"a\\"b\\\\c"'),
        ("\a\b\f\n\r\t\v", '"\\a\\b\\f\\n\\r\\t\\v"'),
        ("\x00\x1f\x7f", '"\\x00\\x1f\\x7f"'),
        ("é✓", '"é✓"'),
        ("\u00a0\u2028", '"\\u00a0\\u2028"'),
        ("\U000e0001", '"\\U000e0001"'),
        (b"a\xffb".decode("utf-8", "surrogateescape"), '"a\\xffb"'),
    ],
)
def test_go_quote(text: str, quoted: str) -> None:
    assert go_quote(text) == quoted


# -- durations (Appendix A) ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "ns"),
    [
        ("1h0m0s", H),
        ("1.5h", H + 30 * M),
        ("300ms", 300 * MS),
        ("-10s", -10 * S),
        ("0", 0),
        ("+0", 0),
        ("-0", 0),
        ("0s", 0),
        ("1µs", US),  # U+00B5
        ("1μs", US),  # U+03BC
        ("1us", US),
        ("1ns", NS),
        ("500ms", 500 * MS),
        ("72h3m0.5s", 72 * H + 3 * M + S // 2),
        ("+5m", 5 * M),
        (".5s", S // 2),
        ("1.s", S),
        ("1h1h", 2 * H),
        ("1s1h", H + S),
        ("0.1ns", 0),
        ("1.000000001s", S + 1),
        ("9223372036854775807ns", 2**63 - 1),
        ("-9223372036854775808ns", -(2**63)),
        ("2562047h47m16.854775807s", 2**63 - 1),
        # Go scales fractions in float64 and truncates: 0.5h written with 14 digits is 1 ns short.
        ("0.50000000000000h", 1_799_999_999_999),
        ("0.5h", 30 * M),
        # fraction digits beyond what fits in a uint64 are ignored, not an error
        ("1.00000000000000000000000001s", S),
    ],
)
def test_parse_duration(text: str, ns: int) -> None:
    assert parse_go_duration(text) == ns


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("1", 'time: missing unit in duration "1"'),
        ("", 'time: invalid duration ""'),
        (".s", 'time: invalid duration ".s"'),
        ("-.s", 'time: invalid duration "-.s"'),
        ("1x", 'time: unknown unit "x" in duration "1x"'),
        ("1S", 'time: unknown unit "S" in duration "1S"'),
        ("-", 'time: invalid duration "-"'),
        ("+", 'time: invalid duration "+"'),
        ("00", 'time: missing unit in duration "00"'),
        ("1.5", 'time: missing unit in duration "1.5"'),
        ("1s2", 'time: missing unit in duration "1s2"'),
        (" 1s", 'time: invalid duration " 1s"'),
        ("1s ", 'time: unknown unit "s " in duration "1s "'),
        ("s", 'time: invalid duration "s"'),
        ("--1s", 'time: invalid duration "--1s"'),
        ("9223372036854775808ns", 'time: invalid duration "9223372036854775808ns"'),
        ("-9223372036854775809ns", 'time: invalid duration "-9223372036854775809ns"'),
        ("2562048h", 'time: invalid duration "2562048h"'),
        ("99999999999999999999s", 'time: invalid duration "99999999999999999999s"'),
        ("2562047h47m16.854775808s", 'time: invalid duration "2562047h47m16.854775808s"'),
    ],
)
def test_parse_duration_errors(text: str, message: str) -> None:
    with pytest.raises(ValueError, match="^" + re.escape(message) + "$"):
        parse_go_duration(text)


@pytest.mark.parametrize("text", ["1", "", ".s", "1x", "-1.5x"])
def test_bad_duration_is_flag_parse_error(text: str) -> None:
    err, _ = parse_error(["-timeout", text])
    assert str(err) == f"invalid value {go_quote(text)} for flag -timeout: parse error"


def test_negative_timeout_parses() -> None:
    assert parse(["-timeout", "-10s"]).opts.timeout_ns == -10 * S


@pytest.mark.parametrize(
    ("ns", "text"),
    [
        (0, "0s"),
        (1, "1ns"),
        (US, "1µs"),
        (1500, "1.5µs"),
        (300 * MS, "300ms"),
        (S, "1s"),
        (S + S // 2, "1.5s"),
        (M, "1m0s"),
        (H, "1h0m0s"),
        (H + 30 * M, "1h30m0s"),
        (72 * H + 3 * M + S // 2, "72h3m0.5s"),
        (-10 * S, "-10s"),
        (-(2**63), "-2562047h47m16.854775808s"),
        (2**63 - 1, "2562047h47m16.854775807s"),
    ],
)
def test_format_duration(ns: int, text: str) -> None:
    assert format_go_duration(ns) == text
    assert parse_go_duration(text) == ns
