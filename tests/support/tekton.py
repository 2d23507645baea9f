"""A relocatable Tekton root (/tekton under a temporary directory) and the entrypoint process under test."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from entrypoint.termination import RunResult, parse_message

ROOT_ENV = "SIGNED_ENTRYPOINT_ROOT"


def entrypoint_command() -> list[str]:
    """The executable under test: ``ENTRYPOINT_BIN`` (e.g. the packaged binary) or the console script."""
    override = os.environ.get("ENTRYPOINT_BIN")
    if override:
        return [override]
    script = Path(sys.executable).parent / "entrypoint"
    if script.exists():
        return [str(script)]
    return [sys.executable, "-m", "entrypoint"]


@dataclass
class TektonRoot:
    path: Path

    def __truediv__(self, other: str) -> Path:
        return self.path / other

    @property
    def termination(self) -> Path:
        return self.path / "termination"

    def run_dir(self, i: int) -> Path:
        return self.path / "run" / str(i)

    def entries(self, termination: Path | None = None) -> list[RunResult]:
        return parse_message((termination or self.termination).read_text())

    def values(self, termination: Path | None = None) -> dict[str, tuple[str, int]]:
        return {e.key: (e.value, e.type) for e in self.entries(termination)}

    def step_args(self, i: int) -> list[str]:
        """The arguments Tekton's controller gives step ``i`` (spec §2.7), under this root."""
        run = self.run_dir(i)
        args = []
        if i > 0:
            args += ["-wait_file", str(self.run_dir(i - 1) / "out")]
        return [
            *args,
            "-post_file",
            str(run / "out"),
            "-termination_path",
            str(self.termination),
            "-step_metadata_dir",
            str(run / "status"),
        ]

    def run(
        self,
        args: Sequence[str],
        env: Mapping[str, str] | None = None,
        timeout: float = 60,
        cwd: Path | None = None,
        prefix: Sequence[str] = (),
    ) -> subprocess.CompletedProcess[str]:
        full_env = {**os.environ, ROOT_ENV: str(self.path)}
        full_env.pop("TEKTON_PLATFORM_COMMANDS", None)
        if env:
            full_env.update(env)
        return subprocess.run(
            [*prefix, *entrypoint_command(), *args],
            env=full_env,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
            cwd=cwd,
        )

    def popen(self, args: Sequence[str], env: Mapping[str, str] | None = None) -> subprocess.Popen[str]:
        full_env = {**os.environ, ROOT_ENV: str(self.path)}
        if env:
            full_env.update(env)
        return subprocess.Popen(
            [*entrypoint_command(), *args],
            env=full_env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
