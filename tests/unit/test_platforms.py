"""Resolving the command from TEKTON_PLATFORM_COMMANDS (spec §2.6)."""

from __future__ import annotations

import json

import pytest

from entrypoint._internal.step.platforms import current_platform, resolve_command
from entrypoint.errors import ConfigError

TWO = {"linux/amd64": ["my", "command"], "linux/s390x": ["other", "one"]}


def env(commands: object) -> str:
    return json.dumps(commands)


# -- platform_test.go acceptance cases ---------------------------------------------------------------


def test_exact_key_found() -> None:
    assert resolve_command(env(TWO), "linux/amd64") == ["my", "command"]


def test_missing_platform_is_an_error() -> None:
    with pytest.raises(ConfigError) as info:
        resolve_command(env(TWO), "linux/ppc64le")
    assert str(info.value) == 'could not find command for platform "linux/ppc64le"'


def test_variant_falls_back_to_platform_without_variant() -> None:
    assert resolve_command(env(TWO), "linux/amd64/v8") == ["my", "command"]


def test_exact_variant_key_wins_over_fallback() -> None:
    commands = {"linux/amd64": ["other", "one"], "linux/amd64/v8": ["my", "command"]}
    assert resolve_command(env(commands), "linux/amd64/v8") == ["my", "command"]


def test_arm64_v8_falls_back_to_arm64() -> None:
    assert resolve_command(env({"linux/arm64": ["my", "command"]}), "linux/arm64/v8") == ["my", "command"]


# -- quirks and errors ---------------------------------------------------------------------------------


def test_fallback_strips_architecture_when_there_is_no_variant() -> None:
    assert resolve_command(env({"linux": ["os", "only"]}), "linux/amd64") == ["os", "only"]


def test_only_one_segment_is_stripped() -> None:
    with pytest.raises(ConfigError, match=r'^could not find command for platform "linux/arm64/v8"$'):
        resolve_command(env({"linux": ["x"]}), "linux/arm64/v8")


def test_error_names_the_original_platform() -> None:
    with pytest.raises(ConfigError) as info:
        resolve_command(env({}), "linux/arm/unknown")
    assert str(info.value) == 'could not find command for platform "linux/arm/unknown"'


def test_platform_without_slash_is_an_error_not_a_crash() -> None:
    with pytest.raises(ConfigError):
        resolve_command(env(TWO), "linux")


@pytest.mark.parametrize("raw", [None, "", "   ", "\n\t"])
def test_unset_or_empty_is_fatal_unexpected_end(raw: str | None) -> None:
    with pytest.raises(ConfigError, match="unexpected end of JSON input"):
        resolve_command(raw, "linux/amd64")


@pytest.mark.parametrize(
    "raw",
    ["{", "not json", '{"linux/amd64": "cmd"}', '["cmd"]', '{"linux/amd64": [1]}', '{"a": ["x"]} x', "NaN"],
)
def test_invalid_json_is_fatal(raw: str) -> None:
    with pytest.raises(ConfigError):
        resolve_command(raw, "linux/amd64")


def test_json_null_values_decode_like_go() -> None:
    # null map: nothing found; null argv: empty command; null element: empty string
    with pytest.raises(ConfigError, match="could not find command"):
        resolve_command("null", "linux/amd64")
    assert resolve_command('{"linux/amd64": null}', "linux/amd64") == []
    assert resolve_command('{"linux/amd64": ["a", null]}', "linux/amd64") == ["a", ""]


def test_duplicate_keys_last_wins_and_keys_are_exact() -> None:
    raw = '{"linux/amd64": ["first"], "linux/amd64": ["second"], "Linux/AMD64": ["upper"]}'
    assert resolve_command(raw, "linux/amd64") == ["second"]


def test_result_is_a_copy() -> None:
    raw = env(TWO)
    got = resolve_command(raw, "linux/amd64")
    got.append("extra")
    assert resolve_command(raw, "linux/amd64") == ["my", "command"]


# -- current platform -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("machine", "want"),
    [
        ("x86_64", "linux/amd64"),
        ("amd64", "linux/amd64"),
        ("AMD64", "linux/amd64"),
        ("aarch64", "linux/arm64/v8"),
        ("arm64", "linux/arm64/v8"),
        ("armv7l", "linux/arm/unknown"),
        ("armv6l", "linux/arm/unknown"),
        ("i386", "linux/386"),
        ("i686", "linux/386"),
        ("ppc64le", "linux/ppc64le"),
        ("s390x", "linux/s390x"),
        ("riscv64", "linux/riscv64"),
    ],
)
def test_current_platform(machine: str, want: str) -> None:
    assert current_platform(machine=machine, system="Linux") == want


def test_current_platform_defaults_to_this_host() -> None:
    plat = current_platform()
    assert plat.count("/") in (1, 2)
    assert plat == plat.lower()


def test_arm64_host_resolves_against_single_platform_image() -> None:
    raw = env({"linux/arm64": ["/ko-app/x"]})
    assert resolve_command(raw, current_platform(machine="aarch64", system="Linux")) == ["/ko-app/x"]
