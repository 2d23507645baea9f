"""Termination messages: entries (§5.2), writing (§6.1-6.4), parsing (§6.5-6.6), Go JSON (§6.2)."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import stat
import zlib
from pathlib import Path

import pytest

from entrypoint import termination
from entrypoint._internal.go.json import decode_go_bytes, marshal, marshal_bytes
from entrypoint.errors import MessageLengthError, TerminationMessageError
from entrypoint.termination import (
    MAX_DECOMPRESSED_BYTES,
    MAX_MESSAGE_BYTES,
    ResultType,
    RunResult,
    compress,
    encode_entries,
    encode_message,
    parse_entries,
    parse_message,
    write_message,
)
from tests.support.messages import raw_deflate, tknz

TOO_LONG = "Termination message is above max allowed size 4096, caused by large task result."
STARTED_AT = RunResult("StartedAt", "2026-08-20T11:42:35.123Z", ResultType.INTERNAL)


def digests(n: int) -> list[RunResult]:
    return [
        RunResult(f"image-{i}-digest", "sha256:" + hashlib.sha256(str(i).encode()).hexdigest(), 1)
        for i in range(n)
    ]


class Log:
    def __init__(self) -> None:
        self.lines: list[str] = []

    def __call__(self, line: str) -> None:
        self.lines.append(line)


# -- §5.2 the entry and its JSON ---------------------------------------------------------------------


def test_entry_field_order_and_omitempty() -> None:
    assert encode_entries([RunResult("k", "v")]) == b'[{"key":"k","value":"v"}]'
    assert encode_entries([RunResult("", "")]) == b'[{"key":"","value":""}]'
    assert (
        encode_entries([RunResult("k", "v", 4, "res")])
        == b'[{"key":"k","value":"v","resourceName":"res","type":4}]'
    )
    assert encode_entries([RunResult("k", "v", 10)]) == b'[{"key":"k","value":"v","type":10}]'


def test_empty_list_encodes_as_brackets() -> None:
    assert encode_entries([]) == b"[]"
    assert encode_message([], compressed=True) == b"[]"


def test_result_type_codes() -> None:
    assert [int(t) for t in ResultType] == [0, 1, 3, 4, 5, 6, 10]


def test_is_zero() -> None:
    assert RunResult("", "").is_zero()
    assert not RunResult("", "v").is_zero()
    assert not RunResult("", "", 1).is_zero()
    assert not RunResult("", "", 0, "r").is_zero()


# -- §6.2 Go JSON encoding ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "encoded"),
    [
        ("<", "\\u003c"),
        (">", "\\u003e"),
        ("&", "\\u0026"),
        ("a<b>&c", "a\\u003cb\\u003e\\u0026c"),
        ("\u2028", "\\u2028"),
        ("\u2029", "\\u2029"),
        ('"', '\\"'),
        ("\\", "\\\\"),
        ("\b\f\n\r\t", "\\b\\f\\n\\r\\t"),
        ("\x00", "\\u0000"),
        ("\x01\x0b\x1b\x1f", "\\u0001\\u000b\\u001b\\u001f"),
        ("\x7f", "\x7f"),
        ("é✓😀", "é✓😀"),
        ("\u0085\u00a0\u200b", "\u0085\u00a0\u200b"),
        ("/", "/"),
        ("'", "'"),
    ],
)
def test_go_string_escapes(value: str, encoded: str) -> None:
    assert marshal(value) == f'"{encoded}"'
    assert marshal_bytes(value) == f'"{encoded}"'.encode()


def test_marshal_is_compact_and_keeps_insertion_order() -> None:
    assert marshal({"b": [1, "x"], "a": {}}) == '{"b":[1,"x"],"a":{}}'


def test_size_accounting_uses_escaped_bytes() -> None:
    assert len(encode_entries([RunResult("k", "<")])) == len(encode_entries([RunResult("k", "a")])) + 5
    assert len(encode_entries([RunResult("k", "é")])) == len(encode_entries([RunResult("k", "a")])) + 1


@pytest.mark.parametrize(
    ("raw", "decoded"),
    [
        (b"hello", "hello"),
        (b"\xc3\xa9", "é"),
        (b"\xff", "\ufffd"),
        (b"a\xffb", "a\ufffdb"),
        (b"\xff\xfe", "\ufffd\ufffd"),
        # a truncated 3-byte sequence: one U+FFFD per byte (Python's "replace" would give one)
        (b"\xe2\x82A", "\ufffd\ufffdA"),
        (b"\xe2\x82", "\ufffd\ufffd"),
        # overlong and surrogate encodings are invalid byte by byte
        (b"\xc0\x80", "\ufffd\ufffd"),
        (b"\xed\xa0\x80", "\ufffd\ufffd\ufffd"),
        # beyond U+10FFFF
        (b"\xf4\x90\x80\x80", "\ufffd" * 4),
        (b"\xf0\x9f\x98\x80\x80", "😀\ufffd"),
    ],
)
def test_invalid_utf8_is_replaced_per_byte(raw: bytes, decoded: str) -> None:
    assert decode_go_bytes(raw) == decoded


def test_invalid_utf8_becomes_raw_replacement_character() -> None:
    message = encode_entries([RunResult("k", decode_go_bytes(b"\xff"))])
    assert message == b'[{"key":"k","value":"\xef\xbf\xbd"}]'


# -- §6.1 / §6.2 writing -------------------------------------------------------------------------------


def test_existing_file(tmp_path: Path) -> None:
    path = str(tmp_path / "termination")
    write_message(path, [RunResult("key1", "hello")])
    write_message(path, [RunResult("key2", "world")])
    assert Path(path).read_bytes() == b'[{"key":"key1","value":"hello"},{"key":"key2","value":"world"}]'


def test_write_creates_file_and_returns_bytes(tmp_path: Path) -> None:
    path = tmp_path / "termination"
    written = write_message(str(path), [RunResult("digest", "sha256:abc\n", 1), STARTED_AT])
    expected = (
        b'[{"key":"digest","value":"sha256:abc\\n","type":1},'
        b'{"key":"StartedAt","value":"2026-08-20T11:42:35.123Z","type":3}]'
    )
    assert written == expected
    assert path.read_bytes() == expected


def test_write_with_no_entries_rewrites_as_brackets(tmp_path: Path) -> None:
    path = tmp_path / "termination"
    write_message(str(path), [])
    assert path.read_bytes() == b"[]"


def test_write_reserialises_existing_content(tmp_path: Path) -> None:
    path = tmp_path / "termination"
    path.write_text(
        ' [ {"key":"a","value":"1","resourceName":"r","type":"StepResult"},'
        ' {"Key":"b","VALUE":"<","type":"Bogus"}, {"key":"c","value":"","type":null} ] \n'
    )
    write_message(str(path), [RunResult("d", "4", 1)])
    assert path.read_bytes() == (
        b'[{"key":"a","value":"1","resourceName":"r","type":4},'
        b'{"key":"b","value":"\\u003c","type":10},'
        b'{"key":"c","value":""},'
        b'{"key":"d","value":"4","type":1}]'
    )


def test_pre_written_empty_and_superseded_entries_are_dropped(tmp_path: Path) -> None:
    # Issue 15 (1): a step that pre-writes an empty entry and a forged duplicate must not leave a
    # message that controllers of different versions read differently.
    path = tmp_path / "termination"
    path.write_text('[{}, null, {"key":"commit","value":"evil","type":1}, {"key":"keep","value":"k"}]')
    write_message(str(path), [RunResult("commit", "genuine", 1)])
    assert path.read_bytes() == b'[{"key":"keep","value":"k"},{"key":"commit","value":"genuine","type":1}]'


def test_write_truncates_a_longer_file(tmp_path: Path) -> None:
    path = tmp_path / "termination"
    path.write_text("x" * 5000)  # unparsable: dropped
    write_message(str(path), [RunResult("k", "v")])
    assert path.read_bytes() == b'[{"key":"k","value":"v"}]'


@pytest.mark.parametrize("content", ["", "   ", "\n\t\r\n"])
def test_whitespace_existing_content_counts_as_none(tmp_path: Path, content: str) -> None:
    path = tmp_path / "termination"
    path.write_text(content)
    log = Log()
    write_message(str(path), [RunResult("k", "v")], compressed=True, log=log)
    assert path.read_bytes() == b'[{"key":"k","value":"v"}]'
    assert log.lines == []


@pytest.mark.parametrize("content", ["not json", '{"key":"a"}', '[{"key":1}]', '[{"key":"a","type":true}]'])
def test_unparsable_existing_content_is_dropped_silently_in_plain_mode(tmp_path: Path, content: str) -> None:
    path = tmp_path / "termination"
    path.write_text(content)
    log = Log()
    write_message(str(path), [RunResult("k", "v")], log=log)
    assert path.read_bytes() == b'[{"key":"k","value":"v"}]'
    assert log.lines == []


def test_unparsable_existing_content_logs_warning_in_compressed_mode(tmp_path: Path) -> None:
    path = tmp_path / "termination"
    path.write_text("tknz:garbage!")
    log = Log()
    write_message(str(path), [RunResult("k", "v")], compressed=True, log=log)
    assert path.read_bytes() == b'[{"key":"k","value":"v"}]'
    assert log.lines == ["Failed to parse existing termination message, previous results will be lost"]


def test_existing_invalid_utf8_is_replaced_per_byte(tmp_path: Path) -> None:
    path = tmp_path / "termination"
    path.write_bytes(b'[{"key":"k","value":"a\xe2\x82b"}]')
    write_message(str(path), [])
    assert path.read_bytes() == b'[{"key":"k","value":"a\xef\xbf\xbd\xef\xbf\xbdb"}]'


def test_unreadable_existing_file_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(TerminationMessageError):
        write_message(str(tmp_path), [RunResult("k", "v")])


def test_file_mode_respects_umask(tmp_path: Path) -> None:
    path = tmp_path / "termination"
    old = os.umask(0o022)
    try:
        write_message(str(path), [RunResult("k", "v")])
    finally:
        os.umask(old)
    assert stat.S_IMODE(path.stat().st_mode) == 0o644


# -- §6.3 the 4096-byte limit --------------------------------------------------------------------------


def test_4096_a_fails_in_plain_mode_and_leaves_file_untouched(tmp_path: Path) -> None:
    path = tmp_path / "termination"
    write_message(str(path), [RunResult("first", "x")])
    before = path.read_bytes()
    with pytest.raises(MessageLengthError) as info:
        write_message(str(path), [RunResult("a", "a" * 4096, 1)])
    assert str(info.value) == TOO_LONG
    assert isinstance(info.value, TerminationMessageError)
    assert path.read_bytes() == before


def test_too_long_message_does_not_create_file(tmp_path: Path) -> None:
    path = tmp_path / "termination"
    with pytest.raises(MessageLengthError):
        write_message(str(path), [RunResult("a", "a" * 4096, 1)])
    assert not path.exists()


@pytest.mark.parametrize(("valid", "fits"), [(3991, True), (3992, False)])
def test_exactly_4096_bytes_with_invalid_utf8_passes(tmp_path: Path, valid: int, fits: bool) -> None:
    """3991 valid bytes + 2 invalid bytes in one result, then StartedAt: 4096 bytes (§6.2)."""
    path = tmp_path / "termination"
    value = decode_go_bytes(b"a" * valid + b"\xff\xfe")
    write_message(str(path), [RunResult("res", value, 1)])
    first = path.read_bytes()
    if fits:
        written = write_message(str(path), [STARTED_AT])
        assert len(written) == MAX_MESSAGE_BYTES
        assert path.read_bytes() == written
        assert written.count(b"\xef\xbf\xbd") == 2
    else:
        with pytest.raises(MessageLengthError):
            write_message(str(path), [STARTED_AT])
        assert path.read_bytes() == first


def test_limit_counts_escapes(tmp_path: Path) -> None:
    overhead = len(encode_entries([RunResult("k", "")]))
    fits = RunResult("k", "<" * ((MAX_MESSAGE_BYTES - overhead) // 6))
    write_message(str(tmp_path / "ok"), [fits])
    with pytest.raises(MessageLengthError):
        write_message(str(tmp_path / "no"), [RunResult("k", "<" * ((MAX_MESSAGE_BYTES - overhead) // 6 + 1))])


def test_check_size_boundary() -> None:
    termination.check_size(b"x" * 4096)
    with pytest.raises(MessageLengthError):
        termination.check_size(b"x" * 4097)


# -- §6.4 compression ----------------------------------------------------------------------------------


def test_compressed_layout_is_unpadded_base64_of_raw_deflate() -> None:
    payload = encode_entries(digests(20))
    packed = compress(payload)
    assert packed.startswith(b"tknz:")
    body = packed[5:]
    assert b"=" not in body
    assert set(body) <= set(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/")
    raw = base64.b64decode(body + b"=" * (-len(body) % 4))
    assert zlib.decompress(raw, -15) == payload
    with pytest.raises(zlib.error):
        zlib.decompress(raw)  # not a zlib stream: no header


def test_20_digest_results_round_trip_compressed(tmp_path: Path) -> None:
    path = tmp_path / "termination"
    entries = digests(20)
    write_message(str(path), entries, compressed=True)
    content = path.read_text()
    assert content.startswith("tknz:")
    assert parse_entries(content) == entries
    assert parse_message(content) == sorted(entries, key=lambda e: e.key)


@pytest.mark.parametrize("compressed", [False, True])
def test_small_two_result_message_round_trips(tmp_path: Path, compressed: bool) -> None:
    path = tmp_path / "termination"
    entries = [RunResult("foo", "bar", 1), RunResult("baz", "qux", 1)]
    write_message(str(path), entries, compressed=compressed)
    assert parse_entries(path.read_text()) == entries
    assert parse_message(path.read_text()) == sorted(entries, key=lambda e: e.key)


def test_tiny_payload_stays_plain_json() -> None:
    entries = [RunResult("k", "v")]
    assert len(compress(encode_entries(entries))) >= len(encode_entries(entries))
    assert encode_message(entries, compressed=True) == b'[{"key":"k","value":"v"}]'


def test_repetitive_values_compress_smaller_than_plain() -> None:
    entries = [RunResult("a", "x" * 900, 1), RunResult("b", "y" * 900, 1)]
    plain = encode_message(entries)
    packed = encode_message(entries, compressed=True)
    assert packed.startswith(b"tknz:")
    assert len(packed) < len(plain)
    assert parse_entries(packed.decode()) == entries


def test_compression_used_only_when_strictly_shorter(monkeypatch: pytest.MonkeyPatch) -> None:
    entries = [RunResult("a", "x" * 100)]
    plain = encode_entries(entries)
    monkeypatch.setattr(termination, "compress", lambda data: b"tknz:" + b"A" * (len(data) - 5))
    assert encode_message(entries, compressed=True) == plain
    monkeypatch.setattr(termination, "compress", lambda data: b"tknz:" + b"A" * (len(data) - 6))
    assert encode_message(entries, compressed=True) == b"tknz:" + b"A" * (len(plain) - 6)


def test_appending_to_compressed_file_keeps_both(tmp_path: Path) -> None:
    path = tmp_path / "termination"
    first = [RunResult("a", "x" * 900, 1)]
    second = [RunResult("b", "y" * 900, 4)]
    write_message(str(path), first, compressed=True)
    assert path.read_text().startswith("tknz:")
    write_message(str(path), second, compressed=True)
    content = path.read_text()
    assert content.startswith("tknz:")
    assert parse_entries(content) == first + second


def test_plain_write_appends_to_compressed_file(tmp_path: Path) -> None:
    path = tmp_path / "termination"
    write_message(str(path), [RunResult("a", "x" * 900, 1)], compressed=True)
    write_message(str(path), [RunResult("b", "c")])
    assert path.read_bytes().startswith(b'[{"key":"a","value":"xxx')


def test_50_digests_fit_only_compressed(tmp_path: Path) -> None:
    entries = digests(50)
    assert len(encode_entries(entries)) > MAX_MESSAGE_BYTES
    with pytest.raises(MessageLengthError):
        write_message(str(tmp_path / "plain"), entries)
    path = tmp_path / "compressed"
    written = write_message(str(path), entries, compressed=True)
    assert len(written) <= MAX_MESSAGE_BYTES
    assert parse_entries(path.read_text()) == entries


def test_compression_fits_strictly_more_results(tmp_path: Path) -> None:
    def capacity(compressed: bool) -> int:
        n = 0
        while True:
            try:
                encoded = encode_message(digests(n + 1), compressed)
                termination.check_size(encoded)
            except MessageLengthError:
                return n
            n += 1

    plain, packed = capacity(False), capacity(True)
    assert plain >= 30
    assert packed > plain


def test_reader_accepts_any_raw_deflate_and_ignores_crlf() -> None:
    payload = b'[{"key":"k","value":"v"}]'
    message = tknz(payload, level=1)
    body = message[5:]
    with_newlines = "tknz:" + body[:3] + "\r\n" + body[3:] + "\n"
    assert parse_message(message) == [RunResult("k", "v")]
    assert parse_message(with_newlines) == [RunResult("k", "v")]


@pytest.mark.parametrize(
    ("message", "detail"),
    [
        ("tknz:not-valid-base64!!!", "base64 decode: illegal base64 data at input byte 3"),
        ("tknz:aGVsbG8gd29ybGQ", "flate decompress: "),
        ("tknz:", "flate decompress: "),
        ("tknz:" + base64.b64encode(raw_deflate(b"[]")).decode() + "==", "base64 decode: "),
        ("tknz:" + base64.b64encode(zlib.compress(b"[]")).decode().rstrip("="), "flate decompress: "),
        ("tknz:QUJDR", "base64 decode: illegal base64 data at input byte 4"),
    ],
)
def test_decompress_errors(message: str, detail: str) -> None:
    with pytest.raises(TerminationMessageError) as info:
        parse_message(message)
    assert str(info.value).startswith("decompressing termination message: " + detail)


def test_truncated_deflate_stream_is_an_error() -> None:
    raw = raw_deflate(json.dumps([{"key": "k", "value": "v" * 200}]).encode())
    message = "tknz:" + base64.b64encode(raw[: len(raw) // 2]).decode().rstrip("=")
    with pytest.raises(
        TerminationMessageError, match=r"^decompressing termination message: flate decompress"
    ):
        parse_message(message)


def _json_of_size(size: int) -> bytes:
    base = b'[{"key":"k","value":""}]'
    data = b'[{"key":"k","value":"' + b"a" * (size - len(base)) + b'"}]'
    assert len(data) == size
    return data


def test_decompressed_size_cap() -> None:
    assert parse_message(tknz(_json_of_size(MAX_DECOMPRESSED_BYTES)))[0].value == "a" * (
        MAX_DECOMPRESSED_BYTES - 24
    )
    with pytest.raises(TerminationMessageError) as info:
        parse_message(tknz(_json_of_size(MAX_DECOMPRESSED_BYTES + 1)))
    assert str(info.value) == (
        "decompressing termination message: decompressed termination message exceeds 131072 byte limit"
    )


def test_writer_does_not_enforce_decompressed_cap(tmp_path: Path) -> None:
    """§10 item 20: a compressible payload over the cap is written; the reader then rejects it."""
    path = tmp_path / "termination"
    big = [RunResult(f"r{i}", "a" * 50_000, 1) for i in range(3)]
    write_message(str(path), big, compressed=True)
    content = path.read_text()
    assert content.startswith("tknz:")
    with pytest.raises(TerminationMessageError, match="exceeds 131072 byte limit"):
        parse_message(content)
    log = Log()
    write_message(str(path), [RunResult("k", "v")], compressed=True, log=log)
    assert parse_message(path.read_text()) == [RunResult("k", "v")]
    assert log.lines == ["Failed to parse existing termination message, previous results will be lost"]


# -- §6.5 parsing ------------------------------------------------------------------------------------


def test_parse_valid_message() -> None:
    msg = '[{"key": "digest","value":"hereisthedigest"},{"key":"foo","value":"bar"}]'
    assert parse_message(msg) == [RunResult("digest", "hereisthedigest"), RunResult("foo", "bar")]


def test_parse_invalid_field_keeps_value_with_empty_key() -> None:
    msg = '[{"invalid": "digest","value":"hereisthedigest"},{"key":"foo","value":"bar"}]'
    assert parse_message(msg) == [RunResult("", "hereisthedigest"), RunResult("foo", "bar")]


def test_parse_empty_message() -> None:
    assert parse_message("") == []


@pytest.mark.parametrize(
    "msg",
    [
        '[{"key":"foo","value":"first"},{"key":"foo","value":"middle"},{"key":"foo","value":"last"}]',
        '[\n\t{"key":"foo","value":"first"},\n\t{"key":"foo","value":"middle"},\n\t{"key":"foo","value":"last"}]',
        '[{},{"key":"foo","value":"first"},{"key":"foo","value":"middle"},{"key":"foo","value":"last"}]',
        '[{"key":"foo","value":"first"},{},{"key":"foo","value":"middle"},{"key":"foo","value":"last"},{}]',
        '[{},{},{"key":"foo","value":"first"},{"key":"foo","value":"last"},{}, null, {"type":null}]',
    ],
)
def test_parse_duplicates_last_wins(msg: str) -> None:
    assert parse_message(msg) == [RunResult("foo", "last")]


def test_parse_dedupes_by_key_regardless_of_type() -> None:
    msg = '[{"key":"r","value":"task","type":1},{"key":"r","value":"step","type":4}]'
    assert parse_message(msg) == [RunResult("r", "step", 4)]


def test_parse_sorted_by_key_bytewise() -> None:
    msg = '[{"key":"zzz","value":"last"},{"key":"ddd","value":"middle"},{"key":"aaa","value":"first"}]'
    assert [e.key for e in parse_message(msg)] == ["aaa", "ddd", "zzz"]
    msg = '[{"key":"é","value":""},{"key":"Z","value":""},{"key":"a","value":""},{"key":"","value":"x"}]'
    assert [e.key for e in parse_message(msg)] == ["", "Z", "a", "é"]


def test_parse_compressed_auto_detection() -> None:
    entries = [RunResult("b", "2", 1), RunResult("a", "1", 4)]
    assert parse_message(tknz(encode_entries(entries))) == [RunResult("a", "1", 4), RunResult("b", "2", 1)]


def test_parse_plain_with_integer_type() -> None:
    assert parse_message('[{"key":"k","value":"v","type":1}]') == [RunResult("k", "v", 1)]


def test_parse_keeps_resource_name() -> None:
    assert parse_message('[{"key":"k","value":"v","resourceName":"r"}]') == [RunResult("k", "v", 0, "r")]


def test_parse_field_names_are_case_insensitive_last_wins() -> None:
    assert parse_message('[{"KEY":"a","Value":"1","key":"b","ResourceNAME":"r","TYPE":4}]') == [
        RunResult("b", "1", 4, "r")
    ]


def test_parse_null_string_field_leaves_previous_value() -> None:
    assert parse_message('[{"key":"k","value":"v","value":null,"key":null}]') == [RunResult("k", "v")]


def test_parse_null_and_empty_array() -> None:
    assert parse_message("null") == []
    assert parse_message("[]") == []
    assert parse_message(" [ ] ") == []


def test_parse_lone_surrogate_escape_becomes_replacement_character() -> None:
    entries = parse_message('[{"key":"k","value":"a\\ud800b\\udc00"},{"key":"p","value":"\\ud83d\\ude00"}]')
    assert entries == [RunResult("k", "a\ufffdb\ufffd"), RunResult("p", "😀")]
    expected = '[{"key":"k","value":"a\ufffdb\ufffd"},{"key":"p","value":"😀"}]'
    assert encode_entries(entries) == expected.encode()


@pytest.mark.parametrize(
    "msg",
    [
        "invalid JSON",
        "INVALID NOT JSON",
        "{}",
        '{"key":"k"}',
        '"text"',
        "[1]",
        '[{"key":1}]',
        '[{"key":"k","value":["x"]}]',
        '[{"key":"k"}] trailing',
        '[{"key":"k",}]',
        "[NaN]",
        '[{"key":"k","type":NaN}]',
        "[" * 100_000,
    ],
)
def test_parse_json_errors(msg: str) -> None:
    with pytest.raises(TerminationMessageError) as info:
        parse_message(msg)
    assert str(info.value).startswith("parsing message json: ")


def test_parse_error_shows_message() -> None:
    with pytest.raises(TerminationMessageError) as info:
        parse_message("invalid JSON")
    assert str(info.value).endswith(", msg: invalid JSON")


def test_parse_error_truncates_long_message_to_256_bytes() -> None:
    msg = "x" * 300
    with pytest.raises(TerminationMessageError) as info:
        parse_message(msg)
    assert str(info.value).endswith(", msg: " + "x" * 256 + "...(truncated)")
    msg = "y" * 256
    with pytest.raises(TerminationMessageError) as info:
        parse_message(msg)
    assert str(info.value).endswith(", msg: " + msg)


# -- §6.6 / §5.2 type parsing ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "code"),
    [
        ('"TaskRunResult"', 1),
        ('"StepResult"', 4),
        ('"InternalTektonResult"', 3),
        ('"StepArtifactsResult"', 5),
        ('"TaskRunArtifactsResult"', 6),
        ('"RunResult"', 10),
        ('"taskrunresult"', 10),
        ('""', 10),
        ('"1"', 10),
        ("1", 1),
        ("4", 4),
        ("2", 2),
        ("-1", -1),
        ("-0", 0),
        ("null", 0),
    ],
)
def test_type_parsing(raw: str, code: int) -> None:
    (entry,) = parse_entries(f'[{{"key":"k","value":"v","type":{raw}}}]')
    assert entry.type == code


@pytest.mark.parametrize("raw", ["true", "false", "1.5", "1.0", "1e2", "[]", "{}", "9223372036854775808"])
def test_type_parsing_rejects_non_int_non_string(raw: str) -> None:
    with pytest.raises(TerminationMessageError) as info:
        parse_message(f'[{{"key":"k","value":"v","type":{raw}}}]')
    text = str(info.value)
    assert text.startswith("parsing message json: ")
    assert "unsupported value type, neither int nor string" in text


def test_absent_type_is_zero_and_omitted_again() -> None:
    (entry,) = parse_entries('[{"key":"k","value":"v"}]')
    assert entry.type == 0
    assert encode_entries([entry]) == b'[{"key":"k","value":"v"}]'


def test_parse_entries_keeps_order_duplicates_and_zero_entries() -> None:
    msg = '[{"key":"b","value":"1"},{},{"key":"a","value":"2"},{"key":"b","value":"3"}]'
    assert parse_entries(msg) == [
        RunResult("b", "1"),
        RunResult("", ""),
        RunResult("a", "2"),
        RunResult("b", "3"),
    ]
