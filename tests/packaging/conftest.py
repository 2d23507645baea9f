"""The built executable (``make binary``): where it is, and a copy installed by its own ``init``."""

from __future__ import annotations

from pathlib import Path

import pytest

from entrypoint._internal.step.selfexec import RUNTIME_DIR
from tests.support.packaging import (
    DIST,
    Installed,
    init_copy,
)
from tests.support.tekton import TektonRoot


@pytest.fixture(scope="session")
def built() -> Path:
    """dist/bin/entrypoint; these tests are about that file, so its absence is a failure."""
    exe = DIST / "entrypoint"
    if not (exe.is_file() and (DIST / RUNTIME_DIR / "python._pth").is_file()):
        pytest.fail(f"{DIST} is missing or incomplete: run `make binary` first")
    return exe


@pytest.fixture
def installed(built: Path, root: TektonRoot) -> Installed:
    (root / "bin").mkdir()
    exe = root / "bin" / "entrypoint"
    p = init_copy(built, exe, root.path, "step-a", "step-b")
    assert p.returncode == 0, p.stderr
    assert "Entrypoint initialization" in p.stderr
    return Installed(exe, root)
