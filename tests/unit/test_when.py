"""When expressions (spec §4.5): decoding the flag value and deciding whether the step runs."""

from __future__ import annotations

import subprocess
import sys

import pytest

from entrypoint._internal.step.when import WhenExpression, allow_exec, decode_when_expressions
from entrypoint.errors import WhenExpressionError
from tests.support.paths import REPO

W = WhenExpression


# --- TestAllowExec (Go's acceptance list) ------------------------------------------------------


@pytest.mark.parametrize(
    ("exprs", "expected"),
    [
        pytest.param([W("foo", "in", ["foo", "bar"])], True, id="in-true"),
        pytest.param([W("foobar", "notin", ["foobar"])], False, id="notin-false"),
        pytest.param([W("foo", "in", ["foo"]), W("foo", "in", ["bar"])], False, id="one-of-two-false"),
        pytest.param([W(cel="'foo'=='foo'")], True, id="cel-true"),
        pytest.param([W(cel="'foo'!='foo'")], False, id="cel-false"),
        pytest.param([W("foo", "in", ["bar"], cel="'foo'=='foo'")], False, id="cel-true-in-false"),
        pytest.param([W(cel="'foo'=='foo'"), W(cel="'foo'!='foo'")], False, id="cel-true-cel-false"),
    ],
)
def test_allow_exec(exprs: list[WhenExpression], expected: bool) -> None:
    assert allow_exec(exprs) is expected


def test_cel_not_boolean_is_an_error() -> None:
    with pytest.raises(
        WhenExpressionError, match=r"^the CEL expression 'foo' is not evaluated to a boolean$"
    ):
        allow_exec([W(cel="'foo'")])


def test_cel_undeclared_reference_is_an_error() -> None:
    with pytest.raises(WhenExpressionError, match="undeclared reference to 'foo'") as info:
        allow_exec([W(cel="foo==foo")])
    # The cel-python activation dump must not swamp the log line.
    assert "activation" not in str(info.value)


def test_cel_syntax_error_is_an_error() -> None:
    with pytest.raises(WhenExpressionError, match="failed to evaluate CEL expression"):
        allow_exec([W(cel="true &&")])


# --- further semantics -------------------------------------------------------------------------


def test_no_expressions_allow() -> None:
    assert allow_exec([]) is True


@pytest.mark.parametrize("operator", ["", "notin", "In", "bogus"])
def test_any_operator_but_in_means_not_in(operator: str) -> None:
    assert allow_exec([W("a", operator, ["b"])]) is True
    assert allow_exec([W("a", operator, ["a"])]) is False


def test_cel_only_expression_passes_operator_check() -> None:
    # "" is not in [], so the empty operator part passes and only the CEL result counts.
    assert allow_exec([W(cel="true")]) is True


def test_first_false_cel_skips_before_later_broken_cel() -> None:
    assert allow_exec([W(cel="false"), W(cel="undeclared")]) is False


def test_broken_cel_before_false_cel_is_an_error() -> None:
    with pytest.raises(WhenExpressionError):
        allow_exec([W(cel="undeclared"), W(cel="false")])


def test_cel_is_not_imported_without_cel_expressions() -> None:
    code = (
        "import sys\n"
        "from entrypoint._internal.step import when, substitution\n"
        "from entrypoint._internal.formats import paramvalue\n"
        "assert when.allow_exec([when.WhenExpression('a', 'in', ['a'])])\n"
        "print('celpy' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=REPO)
    assert out.stdout.strip() == "False"


# --- decoding ----------------------------------------------------------------------------------


def test_decode_full_expression() -> None:
    text = '[{"input":"foo","operator":"in","values":["foo","bar"],"cel":"true"}]'
    assert decode_when_expressions(text) == [W("foo", "in", ["foo", "bar"], "true")]


def test_decode_field_names_are_case_insensitive() -> None:
    text = '[{"INPUT":"a","Operator":"notin","vAlUeS":["b"],"CEL":"x"}]'
    assert decode_when_expressions(text) == [W("a", "notin", ["b"], "x")]


def test_decode_uses_go_unicode_folding() -> None:
    # Go folds U+017F (long s) to "S" and U+212A (Kelvin sign) to "K" when matching field names.
    assert decode_when_expressions('[{"value\u017f":["v"]}]') == [W(values=["v"])]


def test_decode_ignores_unknown_fields() -> None:
    assert decode_when_expressions('[{"input":"a","extra":{"x":[1]}}]') == [W(input="a")]


def test_decode_nulls_are_zero_values() -> None:
    text = '[{"input":null,"operator":null,"values":null,"cel":null}, null, {"values":["a",null]}]'
    assert decode_when_expressions(text) == [W(), W(), W(values=["a", ""])]


@pytest.mark.parametrize("text", ["", "null", "[]", " [ ] "])
def test_decode_empty(text: str) -> None:
    assert decode_when_expressions(text) == []


def test_decode_duplicate_field_last_wins() -> None:
    assert decode_when_expressions('[{"input":"a","Input":"b"}]') == [W(input="b")]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('{"input":"a"}', "cannot unmarshal object into Go value of type v1.WhenExpressions"),
        ('"x"', "cannot unmarshal string into Go value"),
        ("[1]", "cannot unmarshal number into Go value of type v1.WhenExpression"),
        ('[{"input":1}]', "cannot unmarshal number into Go struct field WhenExpression.input of type string"),
        ('[{"operator":true}]', "cannot unmarshal bool into Go struct field WhenExpression.operator"),
        ('[{"values":"a"}]', "cannot unmarshal string into Go struct field WhenExpression.values of type"),
        ('[{"values":[1]}]', "cannot unmarshal number into Go struct field WhenExpression.values"),
        ('[{"cel":["a"]}]', "cannot unmarshal array into Go struct field WhenExpression.cel"),
    ],
)
def test_decode_wrong_types(text: str, message: str) -> None:
    with pytest.raises(WhenExpressionError, match=message):
        decode_when_expressions(text)


@pytest.mark.parametrize("text", ["nope", "[", '[{"input":"a"}] x', "[NaN]", "[Infinity]", "[{'a':1}]"])
def test_decode_invalid_json(text: str) -> None:
    with pytest.raises(WhenExpressionError, match="invalid when expressions"):
        decode_when_expressions(text)


def test_decode_then_evaluate() -> None:
    exprs = decode_when_expressions('[{"input":"foo","operator":"in","values":["bar"]}]')
    assert allow_exec(exprs) is False
