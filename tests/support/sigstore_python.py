"""sigstore-python as an independent oracle for the bundles ``entrypoint sigstore-bundle`` writes.

sigstore-python is never a dependency of the project: it lives in its own virtual environment,
``build/sigstore-python`` (git-ignored), installed from its own hash-pinned lock,
``tools/sigstore-python-requirements.txt``, with nothing but the pip that comes with Python
(``pip install --require-hashes --no-deps``), as the Makefile installs the main lock.  The
environment is made once and reused while the lock is unchanged (a stamp holds the lock's SHA-256);
a changed lock makes it anew.  The verification runs in that interpreter as a script,
tests/support/sigstore_python_verify.py, isolated (``python -I``) from the project's path.

Renew the lock on purpose, then review the diff:

    python3 -m tests.support.sigstore_python renew [--upgrade]

which resolves ``sigstore==<SIGSTORE>`` for this Python with pip-tools (the resolver tools/lock.py
uses, pinned alike), with the digest of every file, in a tool environment of its own
(``build/sigstore-python-lock-env``; never the main lock's).
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.support.paths import REPO

SIGSTORE = "4.5.1"
LOCK = REPO / "tools" / "sigstore-python-requirements.txt"
ENV = REPO / "build" / "sigstore-python"
STAMP_NAME = ".lock-sha256"
SCRIPT = Path(__file__).resolve().parent / "sigstore_python_verify.py"
# As tools/lock.py pins it: two renewals on the same day resolve alike.
PIP_TOOLS = "pip-tools==7.6.2"
TOOL_ENV = REPO / "build" / "sigstore-python-lock-env"
INSTALL_TIMEOUT = 600.0
VERIFY_TIMEOUT = 60.0
LOCK_HEADER = (
    "# sigstore-python {version}, the tests' independent verifier of Sigstore bundles: installed only\n"
    "# into build/sigstore-python (tests/support/sigstore_python.py), never into the project's\n"
    "# environments or its executable.  Renew on purpose and review the diff:\n"
    "#     python3 -m tests.support.sigstore_python renew [--upgrade]\n"
    "#\n"
)


class SigstorePythonUnavailable(Exception):
    """The environment could not be made; the text is the command and pip's last lines."""


@dataclass(frozen=True)
class Environment:
    """sigstore-python's interpreter, and how long getting it took (made anew, or reused)."""

    python: Path
    created: bool
    seconds: float


def lock_digest(lock: Path = LOCK) -> str:
    return hashlib.sha256(lock.read_bytes()).hexdigest()


@contextlib.contextmanager
def _exclusive(path: Path) -> Iterator[None]:
    """One maker of the environment at a time (two test processes may want it at once)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def _run(args: list[str], what: str, timeout: float = INSTALL_TIMEOUT) -> None:
    try:
        p = subprocess.run(args, capture_output=True, text=True, timeout=timeout, check=False)
    except subprocess.TimeoutExpired:
        raise SigstorePythonUnavailable(f"{what}: no end after {timeout:.0f} s: {' '.join(args)}") from None
    if p.returncode != 0:
        tail = "\n".join((p.stderr or p.stdout).strip().splitlines()[-15:])
        raise SigstorePythonUnavailable(f"{what} failed (exit {p.returncode}): {' '.join(args)}\n{tail}")


def environment(env: Path = ENV, lock: Path = LOCK) -> Environment:
    """sigstore-python's environment, made from ``lock`` unless it already was from this lock."""
    started = time.monotonic()
    python = env / "bin" / "python"
    stamp = env / STAMP_NAME
    digest = lock_digest(lock)
    with _exclusive(env.parent / f".{env.name}.lock"):
        if python.exists() and stamp.exists() and stamp.read_text().strip() == digest:
            return Environment(python, False, time.monotonic() - started)
        shutil.rmtree(env, ignore_errors=True)
        _run([sys.executable, "-m", "venv", str(env)], "python -m venv")
        _run(
            [str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
             "--require-hashes", "--no-deps", "-r", str(lock)],
            f"installing {lock.name}",
        )  # fmt: skip
        _run([str(python), "-m", "pip", "check"], "pip check")
        stamp.write_text(digest + "\n")
    return Environment(python, True, time.monotonic() - started)


def verify(
    python: Path,
    *,
    bundle: Path,
    artifact: Path,
    trusted_root: Path,
    identity: str,
    issuer: str,
) -> dict[str, Any]:
    """sigstore-python's verdict (``verified``, ``error``, ``sigstore``), checked against its exit status."""
    p = subprocess.run(
        [str(python), "-I", str(SCRIPT), "--bundle", str(bundle), "--artifact", str(artifact),
         "--trusted-root", str(trusted_root), "--identity", identity, "--issuer", issuer],
        capture_output=True, text=True, timeout=VERIFY_TIMEOUT, check=False,
        env={k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "SIGSTORE"))},
    )  # fmt: skip
    assert p.returncode in (0, 1), f"exit {p.returncode}\n{p.stdout}{p.stderr}"
    verdict: dict[str, Any] = json.loads(p.stdout)
    assert verdict["verified"] is (p.returncode == 0), verdict
    return verdict


def renew(upgrade: bool = False, lock: Path = LOCK) -> None:
    """Resolve sigstore==SIGSTORE anew into ``lock`` (pins already there are kept unless ``upgrade``)."""
    tool = TOOL_ENV / "bin" / "python"
    tool_stamp = TOOL_ENV / "tool"
    if not (tool.exists() and tool_stamp.exists() and tool_stamp.read_text() == PIP_TOOLS):
        _run([sys.executable, "-m", "venv", "--clear", str(TOOL_ENV)], "python -m venv")
        _run([str(tool), "-m", "pip", "install", "--quiet", PIP_TOOLS], f"installing {PIP_TOOLS}")
        tool_stamp.write_text(PIP_TOOLS)
    with tempfile.TemporaryDirectory() as tmp:
        source = Path(tmp) / "sigstore-python.in"
        source.write_text(f"sigstore=={SIGSTORE}\n")
        out = Path(tmp) / lock.name
        if lock.exists() and not upgrade:
            shutil.copyfile(lock, out)
        # The lock names no local wheel directory a machine happens to configure.
        env = {k: v for k, v in os.environ.items() if k != "PIP_FIND_LINKS"}
        subprocess.run(
            [str(tool), "-m", "piptools", "compile", "--quiet", "--generate-hashes", "--allow-unsafe",
             "--strip-extras", "--no-emit-find-links", "--no-emit-index-url", "--no-header",
             "--output-file", str(out), source.name],
            check=True, env=env, cwd=tmp,
        )  # fmt: skip
        body = out.read_text().replace(f"# via -r {source.name}", "# via the tests' oracle")
        lock.write_text(LOCK_HEADER.format(version=SIGSTORE) + body)
    print(f"wrote {lock.relative_to(REPO)}; review `git diff {lock.relative_to(REPO)}`")


def main(argv: list[str]) -> int:
    if argv in (["renew"], ["renew", "--upgrade"]):
        renew(upgrade=argv[1:] == ["--upgrade"])
        return 0
    if argv == ["env"]:
        made = environment()
        print(f"{made.python} ({'made' if made.created else 'reused'} in {made.seconds:.1f} s)")
        return 0
    print("usage: python3 -m tests.support.sigstore_python renew [--upgrade] | env", file=sys.stderr)
    return 2


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
