"""Step ``when`` expressions (spec §4.5): decoding ``-when_expressions`` and deciding to run.

Decoding follows Go's ``encoding/json`` into ``[]WhenExpression``: field names match
case-insensitively, unknown fields are ignored, ``null`` leaves the zero value, and a value of the
wrong JSON type is an error (Go's entrypoint then exits 1).

CEL is evaluated with ``cel-python`` in an empty environment.  That library costs tens of
milliseconds to import, so it is imported only when some expression actually carries CEL; the
rest of the step path stays standard-library only.  cel-python checks types and references only
while evaluating, whereas cel-go rejects some expressions at compile time (for example an
undeclared name on a branch that short-circuiting never reaches); such expressions may evaluate
here where Go would fail.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from entrypoint._internal.go.decode import JsonObject, fix_surrogates, go_fold_name, go_json_loads, json_kind
from entrypoint.errors import WhenExpressionError

__all__ = ["WhenExpression", "allow_exec", "decode_when_expressions"]

# The operator that means "input must be among values"; every other operator means "not among".
OPERATOR_IN = "in"


@dataclass
class WhenExpression:
    """One when expression: input, operator (``in``/``notin``) and values, or a CEL expression."""

    input: str = ""
    operator: str = ""
    values: list[str] = field(default_factory=list)
    cel: str = ""


_FIELDS = {go_fold_name(name): name for name in ("input", "operator", "values", "cel")}


def _type_error(found: Any, where: str, go_type: str) -> WhenExpressionError:
    return WhenExpressionError(
        f"invalid when expressions: json: cannot unmarshal {json_kind(found)} into Go {where} "
        f"of type {go_type}"
    )


def _decode_string(value: Any, name: str) -> str:
    if value is None:
        return ""
    if not isinstance(value, str):
        raise _type_error(value, f"struct field WhenExpression.{name}", "string")
    return fix_surrogates(value)


def _decode_one(value: Any) -> WhenExpression:
    expr = WhenExpression()
    if value is None:
        return expr
    if not isinstance(value, JsonObject):
        raise _type_error(value, "value", "v1.WhenExpression")
    for key, item in value:
        name = _FIELDS.get(go_fold_name(key))
        if name is None:
            continue
        if name == "values":
            if item is None:
                expr.values = []
                continue
            if not isinstance(item, list) or isinstance(item, JsonObject):
                raise _type_error(item, "struct field WhenExpression.values", "[]string")
            expr.values = [_decode_string(v, "values") for v in item]
        else:
            setattr(expr, name, _decode_string(item, name))
    return expr


def decode_when_expressions(text: str) -> list[WhenExpression]:
    """Decode the ``-when_expressions`` flag value.  An empty flag means no expressions."""
    if text == "":
        return []
    try:
        decoded = go_json_loads(text)
    except ValueError as exc:
        raise WhenExpressionError(f"invalid when expressions: {exc}") from exc
    if decoded is None:
        return []
    if not isinstance(decoded, list) or isinstance(decoded, JsonObject):
        raise _type_error(decoded, "value", "v1.WhenExpressions")
    # Go reports type errors but keeps decoding; the caller treats any error as fatal, so the
    # first one is as good as Go's (Go also reports the first).
    return [_decode_one(v) for v in decoded]


def _cel_message(exc: BaseException) -> str:
    first = exc.args[0] if exc.args else exc
    text = str(first)
    # cel-python appends a dump of the whole activation, which buries the actual reason.
    cut = text.find(" (in activation")
    return text[:cut] if cut >= 0 else text


def _evaluate_cel(expressions: list[str]) -> dict[str, bool]:
    import celpy
    from celpy import celtypes, evaluation

    env = celpy.Environment()
    results: dict[str, bool] = {}
    for expr in expressions:
        try:
            program = env.program(env.compile(expr))
            out = program.evaluate({})
        except Exception as exc:
            # Parse errors, undeclared names, missing overloads...: Go reports them all as errors.
            raise WhenExpressionError(
                f"failed to evaluate CEL expression {expr}: {_cel_message(exc)}"
            ) from exc
        if isinstance(out, evaluation.CELEvalError):
            raise WhenExpressionError(f"failed to evaluate CEL expression {expr}: {_cel_message(out)}")
        if not isinstance(out, celtypes.BoolType | bool):
            raise WhenExpressionError(f"the CEL expression {expr} is not evaluated to a boolean")
        results[expr] = bool(out)
        if not results[expr]:
            # Go stops at the first false CEL result: later CEL, even a broken one, is not run.
            break
    return results


def allow_exec(exprs: list[WhenExpression]) -> bool:
    """Whether the step may run (§4.5).  CEL failures raise :class:`WhenExpressionError`."""
    cel_exprs = [e.cel for e in exprs if e.cel != ""]
    evaluated = _evaluate_cel(cel_exprs) if cel_exprs else {}
    if any(value is False for value in evaluated.values()):
        return False
    for expr in exprs:
        matched = expr.input in expr.values
        passes = matched if expr.operator == OPERATOR_IN else not matched
        if not passes:
            return False
        if expr.cel != "" and not evaluated.get(expr.cel, False):
            return False
    return True
