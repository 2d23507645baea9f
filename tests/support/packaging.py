"""The packaged executable under test: where it is built, copying it as Tekton's init does, and
tools/ scripts loaded as modules.
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

import pytest

from tests.support.paths import REPO
from tests.support.tekton import ROOT_ENV, TektonRoot

DIST = REPO / "dist" / "bin"


def load_tool(name: str) -> ModuleType:
    """A script of tools/ as a module (tools/ is no package): for testing its checks directly."""
    spec = importlib.util.spec_from_file_location(name, REPO / "tools" / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


def base_env(**extra: str) -> dict[str, str]:
    """A small, fully known environment: whatever the step gets must be exactly this."""
    return {"PATH": "/usr/local/bin:/usr/bin:/bin", "LANG": "C.UTF-8", "HOME": "/nonexistent", **extra}


@dataclass
class Installed:
    """The executable as a step sees it: copied to ``<root>/bin/entrypoint`` by ``init``."""

    exe: Path
    root: TektonRoot

    def run(
        self, args: Sequence[str], env: Mapping[str, str] | None = None, timeout: float = 60
    ) -> subprocess.CompletedProcess[str]:
        full = {**(base_env() if env is None else env), ROOT_ENV: str(self.root.path)}
        return subprocess.run(
            [str(self.exe), *args], env=full, capture_output=True, text=True, timeout=timeout, check=False,
            cwd=self.root.path,  # relative paths a step writes (exitCode without -step_metadata_dir)
        )  # fmt: skip


def init_copy(exe: Path, dst: Path, root: Path, *steps: str) -> subprocess.CompletedProcess[str]:
    """What Tekton's init container runs: ``entrypoint init SRC DST STEP...``."""
    return subprocess.run(
        [str(exe), "init", str(exe), str(dst), *steps],
        env=base_env(**{ROOT_ENV: str(root)}),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def tree(path: Path) -> dict[str, tuple[int, int]]:
    """Relative path -> (mode, size) of everything under ``path``."""
    out = {}
    for p in sorted(path.rglob("*")):
        st = p.lstat()
        out[str(p.relative_to(path))] = (st.st_mode & 0o7777, 0 if p.is_dir() else st.st_size)
    return out


def require_root(what: str) -> None:
    if os.geteuid() != 0:
        pytest.fail(f"{what} needs root (mount namespaces, chroot, another uid); run the tests as root")
