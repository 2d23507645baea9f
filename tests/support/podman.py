"""Running podman from the container tests, and the things every container test needs.

The images are built by ``images/build.sh`` (``make image``); see images/README.md.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from tests.support.paths import REPO

CONTAINERS_CONF = REPO / "images" / "containers.conf"

PREFIX = "localhost/signed-entrypoint"
ENTRYPOINT_IMAGE = f"{PREFIX}:latest"
STEP_IMAGES = {short: f"{PREFIX}-step-{short}:latest" for short in ("debian", "musl", "static", "empty")}

# Where Tekton mounts things, and where the entrypoint looks for them by default.
TEKTON_BIN = "/tekton/bin"
ENTRYPOINT = f"{TEKTON_BIN}/entrypoint"
SPIFFE_MOUNT = "/spiffe-workload-api"
SPIFFE_SOCKET_NAME = "spire-agent.sock"

# What the step's child must never inherit from the packaged entrypoint.
BUNDLE_ENV_LEAKS = ("LD_LIBRARY_PATH", "LD_PRELOAD", "PYTHONHOME", "PYTHONPATH", "_PYI_", "_MEIPASS")


def podman_env() -> dict[str, str]:
    """The environment for podman: this repository's containers.conf unless the caller chose one."""
    env = dict(os.environ)
    env.setdefault("CONTAINERS_CONF", str(CONTAINERS_CONF))
    return env


def podman(
    *args: str, timeout: float = 120, check: bool = True, input_text: str | None = None
) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(
        ["podman", *args],
        env=podman_env(),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
        input=input_text,
    )
    if check and proc.returncode != 0:
        raise AssertionError(
            f"podman {' '.join(args)} exited {proc.returncode}\n"
            f"--- stdout\n{proc.stdout}\n--- stderr\n{proc.stderr}"
        )
    return proc


def verify_command() -> list[str]:
    """``entrypoint verify`` from the development install (the verifier is not what is under test)."""
    script = Path(sys.executable).parent / "entrypoint"
    if script.exists():
        return [str(script), "verify"]
    return [sys.executable, "-m", "entrypoint", "verify"]


def verify(
    message: Path, taskrun: str, trust_domain: str, bundle: Path, *extra: str
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            *verify_command(),
            "--taskrun",
            taskrun,
            "--trust-domain",
            trust_domain,
            "--trust-bundle",
            str(bundle),
            *extra,
            str(message),
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def tampered_copy(message: Path, result: str, value: str, out: Path) -> Path:
    """``message`` with result ``result`` changed to ``value``: what a forger with API access could do."""
    entries: list[dict[str, Any]] = json.loads(message.read_text())
    changed = False
    for entry in entries:
        if entry.get("key") == result and entry.get("type", 0) == 1:
            entry["value"] = value
            changed = True
    assert changed, f"no result {result!r} to tamper with in {message}"
    out.write_text(json.dumps(entries))
    return out


def results_of(message: Path) -> dict[str, str]:
    """The task results (type 1) of a termination message, without the signing entries."""
    entries: list[dict[str, Any]] = json.loads(message.read_text())
    signing = {"SVID", "RESULT_MANIFEST", "RESULT_MANIFEST.sig"}
    return {
        e["key"]: e["value"]
        for e in entries
        if e.get("type") == 1 and e["key"] not in signing and not e["key"].endswith(".sig")
    }


def keys_of(message: Path) -> set[str]:
    entries: list[dict[str, Any]] = json.loads(message.read_text())
    return {str(e["key"]) for e in entries}


def child_environment(output: str) -> Mapping[str, str]:
    """The ``VAR=value`` lines a step printed (its command's environment)."""
    env = {}
    for line in output.splitlines():
        name, sep, value = line.partition("=")
        if sep and name and name.replace("_", "").isalnum():
            env[name] = value
    return env


def leaked(env: Mapping[str, str]) -> list[str]:
    return sorted(name for name in env if any(name.startswith(p) for p in BUNDLE_ENV_LEAKS))


def quote_args(args: Sequence[str]) -> str:
    return " ".join(json.dumps(a) for a in args)
