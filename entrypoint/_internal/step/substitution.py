"""Runtime substitutions done just before the command runs (spec §4.4).

Two kinds of reference are resolved from files that earlier steps wrote under ``steps_dir``
(normally ``/tekton/steps``):

* step results, ``$(steps.<step>.results.<name>...)`` (§4.4.1), in env values, then the when
  expressions, then the command vector;
* step artifacts, ``$(steps.<step>.inputs|outputs.<name>)`` (§4.4.2), in the command vector (or
  inside the step's script file) and then in env values.

Nothing here mutates its inputs or the process environment: each function returns the new values
together with the error, if any.  Go only logs these errors and runs the step with whatever was
substituted before the failure, so the outcome carries exactly that partial state.

One failure is not an ordinary error: an out-of-range ``[N]`` index makes Go's entrypoint panic
(exit status 2, before anything else happens).  That is raised as :class:`StepResultIndexError`
instead of being returned, so that the caller can exit with status 2.
"""

from __future__ import annotations

import os
import re
import tempfile
from dataclasses import dataclass, field
from typing import Any, Literal

from entrypoint._internal.formats.paramvalue import (
    parse_param_value,
)
from entrypoint._internal.go.decode import JsonObject, fix_surrogates, go_fold_name, go_json_loads, json_kind
from entrypoint._internal.go.json import marshal
from entrypoint._internal.go.path import clean, join
from entrypoint._internal.step.when import WhenExpression
from entrypoint.errors import DecodeError, SubstitutionError

__all__ = [
    "ARRAY_RESULT_FORMAT_ERROR",
    "STEP_ARTIFACT_PATTERN",
    "STEP_RESULT_PATTERN",
    "ArtifactSubstitutionOutcome",
    "ArtifactTemplate",
    "StepResultIndexError",
    "StepResultRef",
    "SubstitutionOutcome",
    "get_artifact_values",
    "parse_artifact_template",
    "parse_step_result_ref",
    "substitute_artifacts",
    "substitute_step_results",
]

# Non-greedy on both sides: a match ends at the first ")" after ".results.", so that two
# references in one string are found separately.
STEP_RESULT_PATTERN = re.compile(r"\$\(steps\..*?\.results\..*?\)")
# Tekton's "[N]" / "[*]" group; a digit run optionally followed by "*" (so "[1*]" also matches).
_ARRAY_INDEXING = re.compile(r"\[([0-9])*\*?\]")
STEP_ARTIFACT_PATTERN = re.compile(r"\$\(steps\.([^.]+)\.(?:inputs|outputs)\.([^.)]+)\)")

ARRAY_RESULT_FORMAT_ERROR = (
    'value must be in "$(steps.<step-name>.results.<result-name>[*])" format, when using array results'
)
_STEP_FORMS = (
    '"steps.<stepName>.results.<resultName>"',
    '"steps.<stepName>.results.<objectResultName>.<individualAttribute>"',
)
_ALL_FORMS = (
    '"tasks.<taskName>.results.<resultName>"',
    '"tasks.<taskName>.results.<objectResultName>.<individualAttribute>"',
    *_STEP_FORMS,
)
# strconv.Atoi saturates at the largest int64 on overflow; any such index is out of range anyway.
_GO_MAX_INT = 2**63 - 1


class StepResultIndexError(SubstitutionError):
    """``$(steps.<s>.results.<r>[N])`` with N beyond the array: Go panics, exit status 2."""

    def __init__(self, reference: str, index: int, length: int) -> None:
        self.reference = reference
        self.index = index
        self.length = length
        super().__init__(
            f"step result reference {reference} asks for element {index} of an array of length "
            f"{length} (Go's entrypoint panics here: runtime error: index out of range [{index}] "
            f"with length {length}; exit status 2)"
        )


@dataclass(frozen=True)
class StepResultRef:
    """One ``$(steps.<step>.results.<name>...)`` reference found in the command."""

    step: str
    result: str
    kind: Literal["string", "array", "object"]
    index: int | None = None  # for kind "array": None means "[*]"
    key: str = ""  # for kind "object"


@dataclass
class SubstitutionOutcome:
    """The command after step-result substitution, and what was substituted."""

    env: dict[str, str]
    when: list[WhenExpression]
    command: list[str]
    error: SubstitutionError | None = None


@dataclass(frozen=True)
class ArtifactTemplate:
    """One ``$(steps.<step>.inputs|outputs.<name>)`` artifact reference."""

    container_name: str
    type: str  # "inputs" or "outputs"
    artifact_name: str


@dataclass
class ArtifactSubstitutionOutcome:
    """The command after step-artifact substitution, and what was substituted."""

    command: list[str]
    env: dict[str, str]
    error: SubstitutionError | None = None
    # The temporary script written when the script text changed (it is then the sole command).
    temp_script: str | None = field(default=None)


def _forms(forms: tuple[str, ...]) -> str:
    return "must be one of the form " + "; ".join(f"{i}). {f}" for i, f in enumerate(forms, 1))


def parse_step_result_ref(reference: str) -> StepResultRef:
    """Parse one matched ``$(steps...results...)`` reference as Tekton does (§4.4.1)."""
    body = reference.removeprefix("$(").removesuffix(")")
    parts = body.split(".")
    if len(parts) < 4 or parts[0] != "steps" or parts[2] != "results":
        raise SubstitutionError(_forms(_STEP_FORMS))
    if len(parts) == 5:
        return StepResultRef(parts[1], parts[3], "object", key=parts[4])
    if len(parts) != 4:
        raise SubstitutionError(_forms(_ALL_FORMS))
    group = _ARRAY_INDEXING.search(parts[3])
    name = _ARRAY_INDEXING.sub("", parts[3])
    index_text = group.group(0)[1:-1] if group else ""
    if index_text == "":
        return StepResultRef(parts[1], name, "string")
    if index_text == "*":
        return StepResultRef(parts[1], name, "array")
    if not index_text.isdigit():
        index = 0  # Atoi fails on "1*" and Tekton ignores the error
    elif len(index_text) > 19:
        index = _GO_MAX_INT  # also keeps int() clear of Python's huge-literal guard
    else:
        index = min(int(index_text), _GO_MAX_INT)
    return StepResultRef(parts[1], name, "array", index=index)


def _os_error_text(op: str, path: str, exc: OSError) -> str:
    reason = os.strerror(exc.errno) if exc.errno is not None else str(exc)
    # Go's syscall messages are lower-case ("no such file or directory").
    return f"{op} {path}: {reason[:1].lower()}{reason[1:]}"


def _read_text(path: str) -> str:
    try:
        with open(path, "rb") as fh:
            data = fh.read()
    except IsADirectoryError as exc:
        # Go opens a directory fine and fails on the read.
        raise SubstitutionError(_os_error_text("read", path, exc)) from exc
    except OSError as exc:
        raise SubstitutionError(_os_error_text("open", path, exc)) from exc
    # surrogateescape keeps undecodable bytes, which Go passes through untouched.
    return data.decode("utf-8", "surrogateescape")


def _find_replacement(steps_dir: str, reference: str) -> tuple[str, list[str]]:
    """The string replacement and, for ``[*]``, the array elements (possibly none)."""
    ref = parse_step_result_ref(reference)
    path = join(steps_dir, "step-" + ref.step, "results", ref.result)
    value = parse_param_value(_read_text(path))
    if ref.kind == "object":
        return (value.obj.get(ref.key, "") if ref.key else ""), []
    if ref.kind == "array":
        if ref.index is None:
            return "", list(value.array)
        if ref.index >= len(value.array):
            raise StepResultIndexError(reference, ref.index, len(value.array))
        return value.array[ref.index], []
    return value.string, []


def _replace_in_string(steps_dir: str, text: str) -> str:
    """Substitute where an array cannot be spliced: ``[*]`` becomes the empty string."""
    out = text
    for reference in STEP_RESULT_PATTERN.findall(text):
        replacement, _ = _find_replacement(steps_dir, reference)
        out = out.replace(reference, replacement)
    return out


def _replace_spliceable(steps_dir: str, text: str, wrap_errors: bool) -> list[str]:
    """Substitute in a list element, where a whole-element ``[*]`` expands to several elements."""
    pieces = [text]
    for reference in STEP_RESULT_PATTERN.findall(text):
        try:
            replacement, array = _find_replacement(steps_dir, reference)
        except StepResultIndexError:
            raise
        except SubstitutionError as exc:
            if not wrap_errors:
                raise
            # Go's text ends before the cause; the cause is kept because it is what needs fixing.
            raise SubstitutionError(
                f"failed to find replacement for {reference} to replace {text}: {exc}"
            ) from exc
        # An empty array falls through to plain string replacement, as in Go.
        if array:
            if text != reference:
                raise SubstitutionError(ARRAY_RESULT_FORMAT_ERROR)
            pieces = array
        else:
            pieces[0] = pieces[0].replace(reference, replacement)
    return pieces


def _copy_when(exprs: list[WhenExpression]) -> list[WhenExpression]:
    return [WhenExpression(e.input, e.operator, list(e.values), e.cel) for e in exprs]


def substitute_step_results(
    env: dict[str, str], when: list[WhenExpression], command: list[str], steps_dir: str
) -> SubstitutionOutcome:
    """Resolve step-result references in env values, when expressions and the command (§4.4.1).

    Stages run in that order and the first failing stage stops the rest.  Within the env stage
    variables before the failing one keep their new value; within the when stage each expression
    is done values, then input, then cel, and what was done stays; the command stage is
    all-or-nothing.  ``[*]`` is spliced only when it is a whole command or when-``values``
    element; elsewhere it becomes ``""``.  A string reference to an array or object result also
    gives ``""``.

    Raises :class:`StepResultIndexError` for an out-of-range ``[N]`` (Go panics: exit status 2).
    """
    new_env = dict(env)
    new_when = _copy_when(when)
    new_command = list(command)
    try:
        for name, value in env.items():
            new_env[name] = _replace_in_string(steps_dir, value)
        for expr in new_when:
            values: list[str] = []
            for item in expr.values:
                values.extend(_replace_spliceable(steps_dir, item, wrap_errors=False))
            expr.values = values
            expr.input = _replace_in_string(steps_dir, expr.input)
            expr.cel = _replace_in_string(steps_dir, expr.cel)
        replaced: list[str] = []
        for element in command:
            replaced.extend(_replace_spliceable(steps_dir, element, wrap_errors=True))
        new_command = replaced
    except StepResultIndexError:
        raise
    except SubstitutionError as exc:
        return SubstitutionOutcome(new_env, new_when, new_command, exc)
    return SubstitutionOutcome(new_env, new_when, new_command)


# --- artifacts -------------------------------------------------------------------------------


def parse_artifact_template(template: str) -> ArtifactTemplate:
    """Validate one ``$(steps.<name>.inputs|outputs.<artifact>)`` template (§4.4.2)."""
    if template == "":
        raise SubstitutionError("template is empty")
    match = STEP_ARTIFACT_PATTERN.search(template)
    if match is None or match.group(0) != template:
        raise SubstitutionError(f"invalid template {template}")
    parts = template.removeprefix("$(").removesuffix(")").split(".")
    return ArtifactTemplate("step-" + parts[1], parts[2], parts[3] if len(parts) == 4 else "")


class JsonDecodeError(DecodeError):
    """A step result's JSON does not decode into the Go type asked for (Go's ``json`` text)."""


def _type_error(found: Any, where: str, go_type: str) -> JsonDecodeError:
    return JsonDecodeError(f"json: cannot unmarshal {json_kind(found)} into Go {where} of type {go_type}")


def _fields(obj: JsonObject, names: tuple[str, ...]) -> dict[str, Any]:
    """Go struct decoding: case-insensitive names, unknown keys ignored, last duplicate wins."""
    wanted = {go_fold_name(n): n for n in names}
    out: dict[str, Any] = {}
    for key, value in obj:
        name = wanted.get(go_fold_name(key))
        if name is not None:
            out[name] = value
    return out


def _go_string(value: Any, where: str) -> str:
    if value is None:
        return ""
    if not isinstance(value, str):
        raise _type_error(value, where, "string")
    return fix_surrogates(value)


def _is_array(value: Any) -> bool:
    return isinstance(value, list) and not isinstance(value, JsonObject)


def _decode_artifact_value(value: Any) -> dict[str, Any]:
    """One ``ArtifactValue``, already shaped for Go's encoder (field order, omitempty)."""
    if value is None:
        return {}
    if not isinstance(value, JsonObject):
        raise _type_error(value, "struct field Artifact.values", "v1.ArtifactValue")
    fields = _fields(value, ("digest", "uri"))
    digest: dict[str, str] = {}
    raw_digest = fields.get("digest")
    if raw_digest is not None:
        if not isinstance(raw_digest, JsonObject):
            raise _type_error(
                raw_digest, "struct field ArtifactValue.values.digest", "map[v1.Algorithm]string"
            )
        for alg, hex_value in raw_digest:
            digest[fix_surrogates(alg)] = _go_string(hex_value, "struct field ArtifactValue.values.digest")
    uri = _go_string(fields.get("uri"), "struct field ArtifactValue.values.uri")
    out: dict[str, Any] = {}
    if digest:
        # Go writes map keys sorted by their bytes.
        out["digest"] = {k: digest[k] for k in sorted(digest, key=lambda k: k.encode("utf-8"))}
    if uri:
        out["uri"] = uri
    return out


def _decode_artifacts(text: str, wanted_type: str) -> list[tuple[str, list[dict[str, Any]] | None]]:
    """The ``(name, values)`` artifacts of one type; ``values`` is None where Go's slice is nil."""
    try:
        decoded = go_json_loads(text)
    except ValueError as exc:
        raise JsonDecodeError(str(exc)) from exc
    if decoded is None:
        return []
    if not isinstance(decoded, JsonObject):
        raise _type_error(decoded, "value", "v1.Artifacts")
    top = _fields(decoded, ("inputs", "outputs"))
    result: list[tuple[str, list[dict[str, Any]] | None]] = []
    # Go decodes (and type-checks) both lists even though only one is used.
    for kind in ("inputs", "outputs"):
        items = top.get(kind)
        if items is None:
            continue
        if not _is_array(items):
            raise _type_error(items, f"struct field Artifacts.{kind}", "[]v1.Artifact")
        for item in items:
            if item is None:
                name, values = "", None
            elif not isinstance(item, JsonObject):
                raise _type_error(item, f"struct field Artifacts.{kind}", "v1.Artifact")
            else:
                fields = _fields(item, ("name", "values", "buildOutput"))
                name = _go_string(fields.get("name"), f"struct field Artifact.{kind}.name")
                build_output = fields.get("buildOutput")
                if build_output is not None and not isinstance(build_output, bool):
                    raise _type_error(build_output, f"struct field Artifact.{kind}.buildOutput", "bool")
                raw_values = fields.get("values")
                if raw_values is None:
                    values = None
                elif not _is_array(raw_values):
                    raise _type_error(
                        raw_values, f"struct field Artifact.{kind}.values", "[]v1.ArtifactValue"
                    )
                else:
                    values = [_decode_artifact_value(v) for v in raw_values]
            if kind == wanted_type:
                result.append((name, values))
    return result


def get_artifact_values(steps_dir: str, template: str) -> str:
    """The compact Go JSON of the ``values`` of the artifact ``template`` names (§4.4.2)."""
    parsed = parse_artifact_template(template)
    path = join(steps_dir, parsed.container_name, "artifacts", "provenance.json")
    text = _read_text(path)
    try:
        artifacts = _decode_artifacts(text, parsed.type)
    except JsonDecodeError as exc:
        raise SubstitutionError(f"failed to parse {path}: {exc}") from exc
    for name, values in artifacts:
        if name == parsed.artifact_name:
            # A nil Go slice (missing or null "values") encodes as null, not [].
            return marshal(values)
    raise SubstitutionError(f"values for template {template} not found")


def _replace_artifacts(steps_dir: str, text: str) -> str:
    out = text
    for match in STEP_ARTIFACT_PATTERN.finditer(text):
        template = match.group(0)
        out = out.replace(template, get_artifact_values(steps_dir, template))
    return out


def _go_dir(path: str) -> str:
    return clean(path[: path.rfind("/") + 1])


def _write_temp_script(text: str, tmp_dir: str | None) -> str:
    directory = tmp_dir if tmp_dir is not None else tempfile.gettempdir()
    try:
        fd, path = tempfile.mkstemp(prefix="script-", dir=directory)
        try:
            # Go's CreateTemp makes 0600 files; the script must be executable like the original.
            os.chmod(path, 0o755)  # noqa: S103
            os.write(fd, text.encode("utf-8", "surrogateescape"))
        finally:
            os.close(fd)
    except OSError as exc:
        raise SubstitutionError(f"writing substituted script to {directory}: {exc}") from exc
    return path


def substitute_artifacts(
    command: list[str],
    env: dict[str, str],
    steps_dir: str,
    scripts_dir: str,
    tmp_dir: str | None = None,
) -> ArtifactSubstitutionOutcome:
    """Resolve step-artifact references in the command (or its script) and then in env (§4.4.2).

    A command of exactly one element that lives directly in ``scripts_dir`` is a Tekton script:
    references are resolved inside the script text, and if it changed a new executable
    ``script-*`` file in ``tmp_dir`` (default: the system temp dir) becomes the sole command.
    Otherwise each command element is substituted.  A failure in the command stage leaves the
    command unchanged and skips the env stage; a failure in the env stage keeps the variables
    done before it.
    """
    new_command = list(command)
    new_env = dict(env)
    temp_script: str | None = None
    try:
        if len(command) == 1 and _go_dir(command[0]) == clean(scripts_dir):
            original = _read_text(command[0])
            substituted = _replace_artifacts(steps_dir, original)
            if substituted != original:
                temp_script = _write_temp_script(substituted, tmp_dir)
                new_command = [temp_script]
        else:
            new_command = [_replace_artifacts(steps_dir, element) for element in command]
        for name, value in env.items():
            new_env[name] = _replace_artifacts(steps_dir, value)
    except SubstitutionError as exc:
        return ArtifactSubstitutionOutcome(new_command, new_env, exc, temp_script)
    return ArtifactSubstitutionOutcome(new_command, new_env, None, temp_script)
