"""The ParamValue typing rule (spec §5.3) and the canonical signed value (§7.5)."""

from __future__ import annotations

import dataclasses

import pytest

from entrypoint._internal.formats.paramvalue import ParamValue, canonical_value, parse_param_value


def test_empty_is_empty_string() -> None:
    assert parse_param_value("") == ParamValue("string", string="")


def test_array_of_strings() -> None:
    value = parse_param_value('["hello","world"]')
    assert value.kind == "array"
    assert value.array == ("hello", "world")


def test_null_array_elements_become_empty_strings() -> None:
    assert parse_param_value('["a",null]').array == ("a", "")


def test_empty_array_is_an_array() -> None:
    assert parse_param_value("[]") == ParamValue("array", array=())


@pytest.mark.parametrize("raw", ["[1,2]", '["a",["b"]]', '["a",{"b":"c"}]', '["a",true]', "[NaN]"])
def test_non_string_elements_fall_through_to_verbatim(raw: str) -> None:
    assert parse_param_value(raw) == ParamValue("string", string=raw)


def test_object_of_strings() -> None:
    value = parse_param_value('{"key2":"var2","key1":"var1"}')
    assert value.kind == "object"
    assert dict(value.obj) == {"key1": "var1", "key2": "var2"}


def test_object_null_value_becomes_empty_string() -> None:
    assert dict(parse_param_value('{"a":null}').obj) == {"a": ""}


def test_object_duplicate_key_last_wins() -> None:
    assert dict(parse_param_value('{"a":"1","b":"x","a":"2"}').obj) == {"a": "2", "b": "x"}


@pytest.mark.parametrize("raw", ['{"a":1}', '{"a":["b"]}', '{"a":{"b":"c"}}'])
def test_non_string_object_values_fall_through_to_verbatim(raw: str) -> None:
    assert parse_param_value(raw) == ParamValue("string", string=raw)


def test_object_mapping_is_read_only() -> None:
    value = parse_param_value('{"a":"b"}')
    with pytest.raises(TypeError):
        value.obj["a"] = "c"  # type: ignore[index]
    with pytest.raises(dataclasses.FrozenInstanceError):
        value.kind = "string"  # type: ignore[misc]


def test_values_are_hashable_and_comparable() -> None:
    a = parse_param_value('{"a":"b"}')
    b = parse_param_value('{"a":"b"}')
    assert a == b
    assert hash(a) == hash(b)


def test_json_string_literal_decodes() -> None:
    assert parse_param_value('"abc"') == ParamValue("string", string="abc")


def test_json_string_literal_with_surrounding_whitespace_decodes() -> None:
    assert parse_param_value('  "a\\nb"  \n').string == "a\nb"


def test_json_null_is_empty_string() -> None:
    assert parse_param_value("null") == ParamValue("string", string="")


@pytest.mark.parametrize("raw", [' ["a"]', '\n{"a":"b"}'])
def test_leading_whitespace_prevents_array_and_object(raw: str) -> None:
    assert parse_param_value(raw) == ParamValue("string", string=raw)


def test_trailing_whitespace_after_array_is_allowed() -> None:
    assert parse_param_value('["a"] \n').array == ("a",)


@pytest.mark.parametrize("raw", ['"abc" x', '["a"] x', "abc\n", "123", "true", "NaN", '"unterminated'])
def test_anything_else_is_verbatim(raw: str) -> None:
    assert parse_param_value(raw) == ParamValue("string", string=raw)


def test_bad_bytes_inside_json_string_become_replacement_chars() -> None:
    raw = b'"a\xffb"'.decode("utf-8", "surrogateescape")
    assert parse_param_value(raw).string == "a\ufffdb"


def test_bad_bytes_survive_in_verbatim_fallback() -> None:
    raw = b"a\xffb".decode("utf-8", "surrogateescape")
    assert parse_param_value(raw).string == raw


def test_unpaired_surrogate_escape_becomes_replacement_char() -> None:
    assert parse_param_value('"\\ud800x"').string == "\ufffdx"


# The §7.5 table, row for row.
@pytest.mark.parametrize(
    ("raw", "signed"),
    [
        ("abc", "abc"),
        ("abc\n", "abc\n"),
        ('"abc"', "abc"),
        ('  "a\\nb"  ', "a\nb"),
        ("null", ""),
        ("", ""),
        ('["hello","world"]', "hello,world"),
        ('["a",null]', "a,"),
        ("[]", ""),
        ("[1,2]", "[1,2]"),
        (' ["a"]', ' ["a"]'),
        ('{"key2":"var2","key1":"var1"}', "key1,var1,key2,var2"),
        ('{"a":1}', '{"a":1}'),
        ("-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n",) * 2,
    ],
)
def test_canonical_value_table(raw: str, signed: str) -> None:
    assert canonical_value(raw) == signed


def test_canonical_object_keys_sorted_bytewise() -> None:
    # Upper case sorts before lower case and non-ASCII after ASCII, as with Go's byte order.
    assert canonical_value('{"b":"1","a":"2","B":"3","\u00e9":"4"}') == "B,3,a,2,b,1,\u00e9,4"


def test_canonical_array_joins_without_escaping() -> None:
    # The documented ambiguity (§10 item 29): both sign the same bytes.
    assert canonical_value('["a,b"]') == canonical_value('["a","b"]') == "a,b"
