"""Resolving the command from ``TEKTON_PLATFORM_COMMANDS`` when ``-entrypoint`` is empty (§2.6)."""

from __future__ import annotations

import json
import platform
from typing import Any

from entrypoint._internal.go.flag import go_quote
from entrypoint.errors import ConfigError

_ARCH = {
    "x86_64": "amd64",
    "amd64": "amd64",
    "aarch64": "arm64",
    "arm64": "arm64",
    "i386": "386",
    "i686": "386",
}
_JSON_SPACE = " \t\r\n"


def current_platform(machine: str | None = None, system: str | None = None) -> str:
    """``<os>/<arch>[/<variant>]`` with Go's names (variants only for ARM, as Tekton reports them)."""
    os_name = (system or platform.system()).lower()
    m = (machine or platform.machine()).lower()
    if m.startswith("armv"):
        return f"{os_name}/arm/unknown"
    arch = _ARCH.get(m, m)
    if arch == "arm64":
        return f"{os_name}/arm64/v8"
    return f"{os_name}/{arch}"


def _reject_constant(name: str) -> Any:
    raise ValueError(f"invalid character '{name[0]}' looking for beginning of value")


def _decode_commands(raw: str) -> dict[str, list[str]]:
    """Decode like Go's ``json.Unmarshal`` into ``map[string][]string``.

    ``null`` decodes to an empty map, a ``null`` argv to an empty list and a ``null`` element to
    ``""``; anything else of the wrong shape is an error.
    """
    if not raw.strip(_JSON_SPACE):
        raise ConfigError("Error unmarshalling TEKTON_PLATFORM_COMMANDS: unexpected end of JSON input")
    try:
        data = json.loads(raw, parse_constant=_reject_constant)
    except (ValueError, RecursionError) as exc:
        raise ConfigError(f"Error unmarshalling TEKTON_PLATFORM_COMMANDS: {exc}") from exc
    if data is None:
        return {}
    shape_error = ConfigError(
        "Error unmarshalling TEKTON_PLATFORM_COMMANDS: expected a JSON object of string lists"
    )
    if not isinstance(data, dict):
        raise shape_error
    commands: dict[str, list[str]] = {}
    for plat, argv in data.items():
        if argv is None:
            commands[plat] = []
            continue
        if not isinstance(argv, list) or not all(x is None or isinstance(x, str) for x in argv):
            raise shape_error
        commands[plat] = ["" if x is None else x for x in argv]
    return commands


def resolve_command(raw: str | None, plat: str) -> list[str]:
    commands = _decode_commands(raw or "")
    if plat in commands:
        return list(commands[plat])
    # Go strips the last "/segment" (the variant, or the architecture when there is no variant).
    if "/" in plat:
        fallback = plat.rsplit("/", 1)[0]
        if fallback in commands:
            return list(commands[fallback])
    raise ConfigError(f"could not find command for platform {go_quote(plat)}")
