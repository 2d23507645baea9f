"""The fuzz target of ``make fuzz`` (tools/fuzz.py) in a short bounded pass, as CI runs it: it runs
from the seed corpus of genuine messages and reports its figures."""

from __future__ import annotations

import subprocess
import sys

from tests.support.paths import REPO


def fuzz(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(REPO / "tools" / "fuzz.py"), *args],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
        cwd=REPO,
    )


def test_a_short_pass_finds_nothing_and_reports_its_figures() -> None:
    p = fuzz("--runs", "1500")
    assert p.returncode == 0, p.stderr[-2000:]
    assert p.stdout.strip() == "fuzz: 1500 inputs tried, 0 crashes, 0 false accepts"
