"""README's first command, ``make demo``, for each backend: a two-step TaskRun signed, verified, and
a tampered copy rejected (sigstore-keyless also exports a bundle that sigstore-python verifies)."""

from __future__ import annotations

import subprocess
import sys

import pytest

from tests.support.paths import REPO


@pytest.mark.parametrize("backend", ["spire", "oidc-sa-token", "sigstore-keyless"])
def test_the_demo_signs_verifies_and_rejects_a_tampered_copy(backend: str) -> None:
    p = subprocess.run(
        [sys.executable, str(REPO / "tools" / "demo.py"), "--backend", backend],
        capture_output=True, text=True, timeout=300, check=False, cwd=REPO,
    )  # fmt: skip
    assert p.returncode == 0, p.stdout[-3000:] + p.stderr[-3000:]
    assert "step exit codes: [0, 0]" in p.stdout
    assert "tampered copy rejected: True" in p.stdout
    assert p.stdout.count("\nVERIFIED ") >= 2
    if backend == "sigstore-keyless":
        assert "genuine bundle verified: True" in p.stdout
        assert "tampered artifact rejected: True" in p.stdout
