"""Runtime substitutions: step results (spec §4.4.1) and step artifacts (§4.4.2)."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import pytest

from entrypoint._internal.step.substitution import (
    ARRAY_RESULT_FORMAT_ERROR,
    ArtifactTemplate,
    StepResultIndexError,
    StepResultRef,
    get_artifact_values,
    parse_artifact_template,
    parse_step_result_ref,
    substitute_artifacts,
    substitute_step_results,
)
from entrypoint._internal.step.when import WhenExpression
from entrypoint.errors import SubstitutionError

W = WhenExpression
REF = "$(steps.foo.results.res"  # completed by each test


def write_result(steps_dir: Path, value: str, step: str = "foo", name: str = "res") -> None:
    results = steps_dir / f"step-{step}" / "results"
    results.mkdir(parents=True, exist_ok=True)
    (results / name).write_text(value)


@pytest.fixture
def steps(tmp_path: Path) -> Path:
    d = tmp_path / "steps"
    d.mkdir()
    return d


def env_only(steps: Path, value: str) -> tuple[str, SubstitutionError | None]:
    out = substitute_step_results({"FOO": value}, [], [], str(steps))
    return out.env["FOO"], out.error


# --- §4.4.1 acceptance: env ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("result", "env_value", "want"),
    [
        ("Hello", REF + ")", "Hello"),
        ('["Hello","World"]', REF + "[1])", "World"),
        ('{"hello":"World"}', REF + ".hello)", "World"),
        ('{"first":"hello","second":"world"}', REF + ".first)-" + REF + ".second)", "hello-world"),
        ('["Hello","World"]', REF + "[0])-" + REF + "[1])", "Hello-World"),
    ],
)
def test_env_substitution(steps: Path, result: str, env_value: str, want: str) -> None:
    write_result(steps, result)
    assert env_only(steps, env_value) == (want, None)


def test_env_bad_format_is_error_and_value_unchanged(steps: Path) -> None:
    write_result(steps, '{"hello":"World"}')
    value, error = env_only(steps, "echo " + REF + ".hello.bar)")
    assert value == "echo " + REF + ".hello.bar)"
    assert isinstance(error, SubstitutionError)
    assert "must be one of the form" in str(error)


# --- §4.4.1 acceptance: command -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("result", "command", "want"),
    [
        ("Hello", [REF + ")"], ["Hello"]),
        ('["Hello","World"]', [REF + "[1])"], ["World"]),
        ('["Hello","World"]', ["start", REF + "[*])", "stop"], ["start", "Hello", "World", "stop"]),
        ('{"hello":"World"}', [REF + ".hello)"], ["World"]),
        ('["Hello","World"]', [REF + "[0])-" + REF + "[1])"], ["Hello-World"]),
    ],
)
def test_command_substitution(steps: Path, result: str, command: list[str], want: list[str]) -> None:
    write_result(steps, result)
    out = substitute_step_results({}, [], command, str(steps))
    assert out.error is None
    assert out.command == want


def test_command_star_must_be_whole_element(steps: Path) -> None:
    write_result(steps, '["Hello","World"]')
    command = ["echo", REF + "[*])bbb"]
    out = substitute_step_results({}, [], command, str(steps))
    assert out.command == command
    assert out.error is not None
    assert str(out.error) == ARRAY_RESULT_FORMAT_ERROR


def test_command_bad_format_is_error_and_command_unchanged(steps: Path) -> None:
    write_result(steps, '{"hello":"World"}')
    command = ["ok " + REF + ".hello)", "echo " + REF + ".hello.bar)"]
    out = substitute_step_results({}, [], command, str(steps))
    # All or nothing: the first, valid element is not substituted either.
    assert out.command == command
    assert out.error is not None
    assert "failed to find replacement for" in str(out.error)


# --- §4.4.1 acceptance: when expressions --------------------------------------------------------


def test_when_values_star_is_spliced(steps: Path) -> None:
    write_result(steps, '["Hello","World"]')
    out = substitute_step_results({}, [W("x", "in", ["a", REF + "[*])", "b"])], [], str(steps))
    assert out.error is None
    assert out.when[0].values == ["a", "Hello", "World", "b"]


def test_when_values_star_must_be_whole_element(steps: Path) -> None:
    write_result(steps, '["Hello","World"]')
    out = substitute_step_results({}, [W(values=[REF + "[*])1"])], ["cmd"], str(steps))
    assert out.error is not None
    assert str(out.error) == ARRAY_RESULT_FORMAT_ERROR
    assert out.when[0].values == [REF + "[*])1"]


def test_when_input_and_cel_substituted(steps: Path) -> None:
    write_result(steps, '["Hello","World"]')
    when = [W(REF + "[0])", "in", [REF + "[1])"], "'" + REF + "[1])' == 'World'")]
    out = substitute_step_results({}, when, [], str(steps))
    assert out.error is None
    assert out.when == [W("Hello", "in", ["World"], "'World' == 'World'")]


@pytest.mark.parametrize("field_name", ["input", "cel", "values"])
def test_when_bad_format_is_error_and_value_unchanged(steps: Path, field_name: str) -> None:
    write_result(steps, '{"hello":"World"}')
    bad = REF + ".hello.bar)"
    expr = {"input": W(input=bad), "cel": W(cel=bad), "values": W(values=[bad])}[field_name]
    out = substitute_step_results({}, [expr], ["cmd " + REF + ".hello)"], str(steps))
    assert out.error is not None
    assert out.when == [expr]
    assert out.command == ["cmd " + REF + ".hello)"]  # the command stage never ran


# --- quirks (§10 items 8 and 9) -----------------------------------------------------------------


def test_star_in_env_input_and_cel_becomes_empty(steps: Path) -> None:
    write_result(steps, '["Hello","World"]')
    star = REF + "[*])"
    out = substitute_step_results({"E": "a" + star + "b"}, [W(star, "in", [], "x" + star)], [], str(steps))
    assert out.error is None
    assert out.env == {"E": "ab"}
    assert (out.when[0].input, out.when[0].cel) == ("", "x")


@pytest.mark.parametrize("result", ['["a","b"]', '{"k":"v"}'])
def test_string_reference_to_array_or_object_is_empty(steps: Path, result: str) -> None:
    write_result(steps, result)
    assert env_only(steps, "<" + REF + ")>") == ("<>", None)


def test_missing_object_key_is_empty(steps: Path) -> None:
    write_result(steps, '{"k":"v"}')
    assert env_only(steps, REF + ".nope)") == ("", None)


def test_star_of_empty_array_is_plain_empty_string(steps: Path) -> None:
    write_result(steps, "[]")
    out = substitute_step_results({}, [], ["a", REF + "[*])", "x" + REF + "[*])"], str(steps))
    assert out.error is None
    assert out.command == ["a", "", "x"]


def test_json_string_result_is_decoded(steps: Path) -> None:
    write_result(steps, '"quoted"\n')
    assert env_only(steps, REF + ")") == ("quoted", None)


@pytest.mark.parametrize("result", ['["Hello","World"]', "plain string"])
def test_index_out_of_range_raises_index_error(steps: Path, result: str) -> None:
    write_result(steps, result)
    with pytest.raises(StepResultIndexError) as info:
        substitute_step_results({}, [], [REF + "[5])"], str(steps))
    err = info.value
    assert isinstance(err, SubstitutionError)
    assert (err.reference, err.index) == (REF + "[5])", 5)
    assert err.length == (2 if result.startswith("[") else 0)
    assert "exit status 2" in str(err)
    assert f"with length {err.length}" in str(err)


def test_index_out_of_range_raises_from_env_stage_too(steps: Path) -> None:
    write_result(steps, '["a"]')
    with pytest.raises(StepResultIndexError):
        substitute_step_results({"E": REF + "[1])"}, [], [], str(steps))


def test_missing_result_file_is_error_naming_path(steps: Path) -> None:
    value, error = env_only(steps, REF + ")")
    assert value == REF + ")"
    assert error is not None
    assert str(steps / "step-foo" / "results" / "res") in str(error)
    assert "no such file or directory" in str(error)


# --- stage order and partial results ------------------------------------------------------------


def test_env_error_stops_later_stages(steps: Path) -> None:
    write_result(steps, "v")
    env = {"A": REF + ")", "B": REF + ".x.y)", "C": REF + ")"}
    when = [W(input=REF + ")")]
    out = substitute_step_results(env, when, [REF + ")"], str(steps))
    assert out.error is not None
    # Variables before the failing one keep their substitution; the rest are untouched.
    assert out.env == {"A": "v", "B": REF + ".x.y)", "C": REF + ")"}
    assert out.when == when
    assert out.command == [REF + ")"]


def test_when_error_keeps_env_and_earlier_when_but_not_command(steps: Path) -> None:
    write_result(steps, "v")
    when = [W(input=REF + ")"), W(REF + ")", "in", [REF + ")"], REF + ".x.y)")]
    out = substitute_step_results({"A": REF + ")"}, when, [REF + ")"], str(steps))
    assert out.error is not None
    assert out.env == {"A": "v"}
    # Within one expression: values, then input, then cel; the failure is in cel.
    assert out.when == [W(input="v"), W("v", "in", ["v"], REF + ".x.y)")]
    assert out.command == [REF + ")"]


def test_inputs_are_not_mutated(steps: Path) -> None:
    write_result(steps, '["Hello","World"]')
    env = {"A": REF + "[0])"}
    when = [W(REF + "[0])", "in", [REF + "[*])"], "")]
    command = [REF + "[*])"]
    out = substitute_step_results(env, when, command, str(steps))
    assert out.error is None
    assert env == {"A": REF + "[0])"}
    assert when == [W(REF + "[0])", "in", [REF + "[*])"], "")]
    assert command == [REF + "[*])"]


def test_text_without_references_is_untouched(steps: Path) -> None:
    out = substitute_step_results(
        {"A": "$(steps.x)", "B": "plain"}, [W("a")], ["echo", "$(params.x)"], str(steps)
    )
    assert out.error is None
    assert out.env == {"A": "$(steps.x)", "B": "plain"}
    assert out.command == ["echo", "$(params.x)"]


# --- reference parsing --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("reference", "want"),
    [
        ("$(steps.s.results.r)", StepResultRef("s", "r", "string")),
        ("$(steps.s.results.r[2])", StepResultRef("s", "r", "array", index=2)),
        ("$(steps.s.results.r[*])", StepResultRef("s", "r", "array")),
        ("$(steps.s.results.r.key)", StepResultRef("s", "r", "object", key="key")),
        ("$(steps.s.results.r[1]x)", StepResultRef("s", "rx", "array", index=1)),
        ("$(steps.s.results.r[])", StepResultRef("s", "r", "string")),
        ("$(steps.s.results.r[1*])", StepResultRef("s", "r", "array", index=0)),
        ("$(steps.s.results.r[99999999999999999999999])", StepResultRef("s", "r", "array", index=2**63 - 1)),
    ],
)
def test_parse_step_result_ref(reference: str, want: StepResultRef) -> None:
    assert parse_step_result_ref(reference) == want


@pytest.mark.parametrize(
    "reference",
    ["$(steps.foo.results.res.hello.bar)", "$(steps.a.b.results.c)", "$(steps.x.results)"],
)
def test_parse_step_result_ref_errors(reference: str) -> None:
    with pytest.raises(SubstitutionError, match="must be one of the form"):
        parse_step_result_ref(reference)


def test_reference_match_ends_at_first_parenthesis(steps: Path) -> None:
    write_result(steps, "X")
    assert env_only(steps, "(" + REF + "))") == ("(X)", None)


# --- §4.4.2 artifacts ---------------------------------------------------------------------------

IMAGE_VALUES = [
    {
        "digest": {"sha256": "df85b9e3983fe2ce20ef76ad675ecf435cc99fc9350adc54fa230bae8c32ce48"},
        "uri": "pkg:oci/img",
    }
]
SOURCE_VALUES = [
    {"uri": "pkg:github/package-url/purl-spec@244fd47e07d1004f0aed9c", "digest": {"sha1": "abc"}}
]


def write_provenance(steps: Path, content: object, step: str = "name") -> Path:
    d = steps / f"step-{step}" / "artifacts"
    d.mkdir(parents=True, exist_ok=True)
    path = d / "provenance.json"
    path.write_text(content if isinstance(content, str) else json.dumps(content))
    return path


@pytest.fixture
def artifacts(steps: Path) -> Path:
    write_provenance(
        steps,
        {
            "inputs": [{"name": "source", "values": SOURCE_VALUES}],
            "outputs": [{"name": "image", "values": IMAGE_VALUES, "buildOutput": True}],
        },
    )
    return steps


def test_outputs_lookup(artifacts: Path) -> None:
    got = get_artifact_values(str(artifacts), "$(steps.name.outputs.image)")
    assert got == (
        '[{"digest":{"sha256":"df85b9e3983fe2ce20ef76ad675ecf435cc99fc9350adc54fa230bae8c32ce48"},'
        '"uri":"pkg:oci/img"}]'
    )


def test_inputs_lookup_orders_digest_before_uri(artifacts: Path) -> None:
    assert get_artifact_values(str(artifacts), "$(steps.name.inputs.source)") == SOURCE_JSON


def test_five_segment_template_is_error(artifacts: Path) -> None:
    with pytest.raises(SubstitutionError, match=r"^invalid template \$\(steps\.name\.outputs\.image\.x\)$"):
        get_artifact_values(str(artifacts), "$(steps.name.outputs.image.x)")


def test_missing_file_is_error(steps: Path) -> None:
    with pytest.raises(SubstitutionError, match=r"provenance\.json: no such file or directory"):
        get_artifact_values(str(steps), "$(steps.name.outputs.image)")


def test_directory_instead_of_file_is_read_error(steps: Path) -> None:
    (steps / "step-name" / "artifacts" / "provenance.json").mkdir(parents=True)
    with pytest.raises(SubstitutionError, match=r"^read .*provenance\.json: is a directory$"):
        get_artifact_values(str(steps), "$(steps.name.outputs.image)")


def test_unparsable_file_is_error(steps: Path) -> None:
    write_provenance(steps, "{not json")
    with pytest.raises(SubstitutionError, match="failed to parse"):
        get_artifact_values(str(steps), "$(steps.name.outputs.image)")


@pytest.mark.parametrize(
    "content",
    [
        '{"outputs":{}}',
        '{"outputs":[{"name":1}]}',
        '{"outputs":[{"values":{}}]}',
        '{"outputs":[{"values":[{"digest":[]}]}]}',
        '{"outputs":[{"values":[{"uri":2}]}]}',
        '{"inputs":[{"buildOutput":"yes"}]}',
        "[]",
    ],
)
def test_wrong_json_types_are_errors(steps: Path, content: str) -> None:
    write_provenance(steps, content)
    with pytest.raises(SubstitutionError, match="cannot unmarshal"):
        get_artifact_values(str(steps), "$(steps.name.outputs.image)")


def test_unknown_artifact_is_error(artifacts: Path) -> None:
    with pytest.raises(
        SubstitutionError, match=r"^values for template \$\(steps\.name\.outputs\.nope\) not found$"
    ):
        get_artifact_values(str(artifacts), "$(steps.name.outputs.nope)")


def test_lookup_does_not_cross_types(artifacts: Path) -> None:
    with pytest.raises(SubstitutionError, match="not found"):
        get_artifact_values(str(artifacts), "$(steps.name.inputs.image)")


def test_go_encoding_of_values(steps: Path) -> None:
    write_provenance(
        steps,
        '{"Outputs":[{"NAME":"a","values":[{"uri":"x<y>&z\u2028\u00e9","digest":{"sha512":"2","md5":"1"}},'
        '{"digest":{},"uri":""},null,{"digest":{"a":null}}]},{"name":"nil"},{"name":"nul","values":null},'
        '{"name":"empty","values":[]}],"unknown":1}',
    )
    d = str(steps)
    assert get_artifact_values(d, "$(steps.name.outputs.a)") == (
        '[{"digest":{"md5":"1","sha512":"2"},"uri":"x\\u003cy\\u003e\\u0026z\\u2028\u00e9"},{},{},'
        '{"digest":{"a":""}}]'
    )
    # A nil Go slice is null; an empty one is [].
    assert get_artifact_values(d, "$(steps.name.outputs.nil)") == "null"
    assert get_artifact_values(d, "$(steps.name.outputs.nul)") == "null"
    assert get_artifact_values(d, "$(steps.name.outputs.empty)") == "[]"


def test_first_artifact_with_the_name_wins(steps: Path) -> None:
    write_provenance(
        steps, {"outputs": [{"name": "a", "values": [{"uri": "1"}]}, {"name": "a", "values": []}]}
    )
    assert get_artifact_values(str(steps), "$(steps.name.outputs.a)") == '[{"uri":"1"}]'


@pytest.mark.parametrize(
    ("template", "want"),
    [
        ("$(steps.name.outputs.aaa)", ArtifactTemplate("step-name", "outputs", "aaa")),
        ("$(steps.name.inputs.aaa)", ArtifactTemplate("step-name", "inputs", "aaa")),
    ],
)
def test_parse_artifact_template_valid(template: str, want: ArtifactTemplate) -> None:
    assert parse_artifact_template(template) == want


@pytest.mark.parametrize(
    "template",
    [
        "steps.name.outputs.aaa",  # missing $()
        "$(steps.name.outputs.aaa.bbb)",  # 5 segments
        "$(steps.name)",  # 2 segments
        "aaa$(steps.name.outputs.aaa)",  # prefix before $(
        "$(steps.name.other.aaa)",  # bad 3rd segment
        "$(steps.name.outputs.aaa)$(steps.name.outputs.bbb)",  # two templates
        "$(steps.name.outputs.aaa))",  # extra )
    ],
)
def test_parse_artifact_template_invalid(template: str) -> None:
    with pytest.raises(SubstitutionError, match=r"^invalid template "):
        parse_artifact_template(template)


def test_parse_artifact_template_empty() -> None:
    with pytest.raises(SubstitutionError, match=r"^template is empty$"):
        parse_artifact_template("")


IMAGE_JSON = json.dumps(IMAGE_VALUES, separators=(",", ":"))
SOURCE_JSON = '[{"digest":{"sha1":"abc"},"uri":"pkg:github/package-url/purl-spec@244fd47e07d1004f0aed9c"}]'


def test_inline_command_substitution(artifacts: Path, tmp_path: Path) -> None:
    command = ["sh", "-c", "echo $(steps.name.outputs.image) | jq ."]
    out = substitute_artifacts(command, {}, str(artifacts), str(tmp_path / "scripts"))
    assert out.error is None
    assert out.command == ["sh", "-c", f"echo {IMAGE_JSON} | jq ."]
    assert command[2] == "echo $(steps.name.outputs.image) | jq ."


def test_env_substitution_of_artifacts(artifacts: Path, tmp_path: Path) -> None:
    env = {"A": "abc-$(steps.name.outputs.image)", "B": "plain"}
    out = substitute_artifacts(["cmd"], env, str(artifacts), str(tmp_path / "scripts"))
    assert out.error is None
    assert out.env == {"A": f"abc-{IMAGE_JSON}", "B": "plain"}
    assert env["A"] == "abc-$(steps.name.outputs.image)"


def make_script(tmp_path: Path, text: str) -> Path:
    scripts = tmp_path / "scripts"
    scripts.mkdir(exist_ok=True)
    script = scripts / "script-0-abcde"
    script.write_text(text)
    return script


def test_script_without_reference_keeps_original_file(artifacts: Path, tmp_path: Path) -> None:
    script = make_script(tmp_path, "#!/bin/sh\necho hi\n")
    out_dir = tmp_path / "tmp"
    out_dir.mkdir()
    out = substitute_artifacts([str(script)], {}, str(artifacts), str(tmp_path / "scripts"), str(out_dir))
    assert out.error is None
    assert out.command == [str(script)]
    assert out.temp_script is None
    assert list(out_dir.iterdir()) == []


def test_script_with_reference_is_rewritten_to_temp_file(artifacts: Path, tmp_path: Path) -> None:
    script = make_script(tmp_path, "#!/bin/sh\necho '$(steps.name.outputs.image)'\n")
    out_dir = tmp_path / "tmp"
    out_dir.mkdir()
    out = substitute_artifacts(
        [str(script)], {}, str(artifacts), str(tmp_path / "scripts") + "/", str(out_dir)
    )
    assert out.error is None
    assert out.temp_script is not None
    assert out.command == [out.temp_script]
    temp = Path(out.temp_script)
    assert temp.parent == out_dir
    assert temp.name.startswith("script-")
    assert stat.S_IMODE(temp.stat().st_mode) == 0o755
    assert temp.read_text() == f"#!/bin/sh\necho '{IMAGE_JSON}'\n"
    # The original script is left alone.
    assert "$(steps.name.outputs.image)" in script.read_text()


def test_script_with_args_is_not_read(artifacts: Path, tmp_path: Path) -> None:
    # §10 item 13: with more than one element only the elements themselves are substituted.
    script = make_script(tmp_path, "echo $(steps.name.outputs.image)\n")
    command = [str(script), "$(steps.name.outputs.image)"]
    out = substitute_artifacts(command, {}, str(artifacts), str(tmp_path / "scripts"), str(tmp_path))
    assert out.error is None
    assert out.command == [str(script), IMAGE_JSON]
    assert out.temp_script is None


def test_script_in_other_directory_is_treated_as_command(artifacts: Path, tmp_path: Path) -> None:
    other = tmp_path / "elsewhere"
    other.mkdir()
    script = other / "run"
    script.write_text("echo $(steps.name.outputs.image)\n")
    out = substitute_artifacts([str(script)], {}, str(artifacts), str(tmp_path / "scripts"), str(tmp_path))
    assert out.command == [str(script)]
    assert out.temp_script is None


def test_unreadable_script_is_error_and_skips_env(artifacts: Path, tmp_path: Path) -> None:
    (tmp_path / "scripts").mkdir()
    missing = str(tmp_path / "scripts" / "gone")
    env = {"A": "$(steps.name.outputs.image)"}
    out = substitute_artifacts([missing], env, str(artifacts), str(tmp_path / "scripts"))
    assert out.error is not None
    assert out.command == [missing]
    assert out.env == env


def test_command_error_leaves_command_and_env_unchanged(artifacts: Path, tmp_path: Path) -> None:
    command = ["$(steps.name.outputs.image)", "$(steps.name.outputs.nope)"]
    env = {"A": "$(steps.name.outputs.image)"}
    out = substitute_artifacts(command, env, str(artifacts), str(tmp_path / "scripts"))
    assert isinstance(out.error, SubstitutionError)
    assert "not found" in str(out.error)
    assert out.command == command
    assert out.env == env


def test_env_error_keeps_earlier_variables(artifacts: Path, tmp_path: Path) -> None:
    env = {
        "A": "$(steps.name.outputs.image)",
        "B": "$(steps.name.outputs.nope)",
        "C": "$(steps.name.outputs.image)",
    }
    out = substitute_artifacts(
        ["$(steps.name.inputs.source)"], env, str(artifacts), str(tmp_path / "scripts")
    )
    assert out.error is not None
    assert out.command == [SOURCE_JSON]
    assert out.env == {"A": IMAGE_JSON, "B": env["B"], "C": env["C"]}


def test_several_references_in_one_element(artifacts: Path, tmp_path: Path) -> None:
    out = substitute_artifacts(
        ["$(steps.name.outputs.image)+$(steps.name.outputs.image)"], {}, str(artifacts), str(tmp_path / "s")
    )
    assert out.command == [f"{IMAGE_JSON}+{IMAGE_JSON}"]
