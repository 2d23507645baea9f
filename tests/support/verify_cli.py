"""Running `entrypoint verify` as a process, and the keys its JSON verdict carries."""

from __future__ import annotations

import subprocess
import sys

from tests.support.paths import REPO


def run(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "entrypoint._internal.verify_cli", *args],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        cwd=REPO,
    )


# Verdict.to_json's fields: the CLI's --json contract, whatever the format.
VERDICT_JSON_KEYS = {
    "verified",
    "reason",
    "message",
    "format",
    "identity",
    "checkedAt",
    "condition",
    "results",
    "unsigned",
    "step",
    "signedAt",
    "version",
    "exitCode",
    "startedAt",
    "backend",
}
