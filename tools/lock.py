"""The project's one lock, ``requirements.lock``: every install (the development and test
environment, the build backend, the executable's bundle) takes its pinned, hash-checked versions.

    python3 tools/lock.py check    does the lock still describe pyproject.toml? (stdlib only:
                                   it runs before any environment exists)
    python3 tools/lock.py renew    resolve anew with pip-tools (``make lock``), then check it

Why pip-tools rather than uv: installing from the lock needs nothing but the pip that comes with
Python (``pip install --require-hashes``), so a fresh machine bootstraps with no tool downloaded
first; the lock is a requirements file that pip, tools/build_binary.py and a reviewer all read;
``--generate-hashes`` records the digest of every file of every pinned release, so the bundle's
manylinux wheels are checked against the same lock as the development install; and
``--build-deps-for`` puts the build backend in it too, so the project itself is built with locked
code (uv's lock leaves build isolation's backend unpinned).

pip-compile cannot tell whether a lock still matches its inputs, so ``renew`` stamps the lock
with a digest of the requirement lists of pyproject.toml, which ``check`` compares.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import tomllib
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
LOCK = REPO / "requirements.lock"
PYPROJECT = REPO / "pyproject.toml"
RENEW_COMMAND = "make lock"
# The resolver is a tool of the maintainer's, not of the project's environments: pinned here so
# that two renewals on the same day resolve alike.
PIP_TOOLS = "pip-tools==7.6.2"
TOOL_ENV = REPO / "build" / "lock-env"
DIGEST_LINE = re.compile(r"^# pyproject-digest: sha256:([0-9a-f]{64})$", re.MULTILINE)
PIN_LINE = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==(\S+)")
HASH = re.compile(r"--hash=sha256:([0-9a-f]{64})")


# What the executable's bundle installs for: Debian bookworm's CPython 3.11 and glibc 2.36, on
# x86-64 (tools/build_binary.py), whatever machine resolves or builds.  pip expands no range of
# manylinux tags by itself, so each one is named.
BUNDLE_PLATFORM = (
    *(f"--platform=manylinux_2_{minor}_x86_64" for minor in range(17, 37)),
    "--platform=manylinux2014_x86_64", "--python-version=3.11", "--implementation=cp",
    "--abi=cp311", "--abi=abi3", "--abi=none",
)  # fmt: skip


class LockError(Exception):
    """The lock is missing, malformed, or no longer matches pyproject.toml."""


@dataclass(frozen=True)
class Pin:
    """One locked release: its normalised name, its version and the digests of its files."""

    name: str
    version: str
    hashes: frozenset[str]


def canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def pyproject_digest(pyproject: Path = PYPROJECT) -> str:
    """A digest of what the lock is resolved from: the dependencies, every extra, and the build
    backend.  Formatting and comments of pyproject.toml do not change it."""
    data = tomllib.loads(pyproject.read_text())
    inputs = {
        "dependencies": sorted(data["project"].get("dependencies", [])),
        "optional-dependencies": {
            extra: sorted(reqs) for extra, reqs in data["project"].get("optional-dependencies", {}).items()
        },
        "build-system": sorted(data["build-system"]["requires"]),
    }
    return hashlib.sha256(json.dumps(inputs, sort_keys=True).encode()).hexdigest()


def read(lock: Path = LOCK) -> dict[str, Pin]:
    """The pins of a lock written by ``renew``, by normalised name."""
    try:
        text = lock.read_text()
    except FileNotFoundError:
        raise LockError(f"{lock.name} is missing: run `{RENEW_COMMAND}` and commit it") from None
    pins: dict[str, Pin] = {}
    # A requirement spans its continuation lines ("\" at the end of a line).
    for number, entry in _entries(text):
        match = PIN_LINE.match(entry)
        if match is None:
            raise LockError(f"{lock.name}:{number}: not a pinned requirement: {entry.split()[0]!r}")
        hashes = frozenset(HASH.findall(entry))
        if not hashes:
            raise LockError(f"{lock.name}:{number}: {match[1]}=={match[2]} has no --hash")
        pins[canonical(match[1])] = Pin(canonical(match[1]), match[2], hashes)
    if not pins:
        raise LockError(f"{lock.name} pins nothing: run `{RENEW_COMMAND}`")
    return pins


def _entries(text: str) -> list[tuple[int, str]]:
    entries: list[tuple[int, str]] = []
    current: list[str] = []
    start = 0
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.split("#", 1)[0].strip() if not raw.lstrip().startswith("--hash") else raw.strip()
        if not line:
            continue
        if not current:
            start = number
        current.append(line.removesuffix("\\").strip())
        if not line.endswith("\\"):
            entries.append((start, " ".join(current)))
            current = []
    if current:
        entries.append((start, " ".join(current)))
    return entries


def check(lock: Path = LOCK, pyproject: Path = PYPROJECT) -> dict[str, Pin]:
    """The lock's pins, once its stamp shows it was resolved from pyproject.toml as it is now."""
    try:
        text = lock.read_text()
    except FileNotFoundError:
        raise LockError(f"{lock.name} is missing: run `{RENEW_COMMAND}` and commit it") from None
    stamp = DIGEST_LINE.search(text)
    if stamp is None or stamp[1] != pyproject_digest(pyproject):
        raise LockError(
            f"{lock.name} does not match the requirements in {pyproject.name}: run `{RENEW_COMMAND}` "
            "and review the diff"
        )
    return read(lock)


def _tool_python() -> Path:
    python = TOOL_ENV / "bin" / "python"
    stamp = TOOL_ENV / "tool"
    if not (python.exists() and stamp.exists() and stamp.read_text() == PIP_TOOLS):
        subprocess.run([sys.executable, "-m", "venv", "--clear", str(TOOL_ENV)], check=True)
        subprocess.run([str(python), "-m", "pip", "install", "--quiet", PIP_TOOLS], check=True)
        stamp.write_text(PIP_TOOLS)
    return python


def renew(upgrade: bool = False) -> None:
    """Resolve what pyproject.toml asks for, with the digest of every file, into the lock; then
    check that the result reads back and installs for the bundle's platform.  The pins already in
    the lock are kept unless ``upgrade`` (then the newest releases allowed are taken): adding a
    dependency must not renew every other one as a side effect."""
    python = _tool_python()
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / LOCK.name
        if LOCK.exists() and not upgrade:
            shutil.copyfile(LOCK, out)  # pip-compile keeps the pins of an existing output file
        # The lock names no local wheel directory a machine happens to configure.
        env = {k: v for k, v in os.environ.items() if k != "PIP_FIND_LINKS"}
        subprocess.run(
            [str(python), "-m", "piptools", "compile", "--quiet", "--generate-hashes", "--allow-unsafe",
             "--strip-extras", "--no-emit-find-links", "--no-emit-index-url", "--extra", "dev",
             "--build-deps-for", "wheel", "--build-deps-for", "editable", "--no-header",
             "--output-file", str(out), str(PYPROJECT)],
            check=True, cwd=REPO, env=env,
        )  # fmt: skip
        header = (
            "# The project's one lock: the development and test environment, the build backend and the\n"
            "# executable's bundle install these versions, each checked against its digests.\n"
            f"# Renew it on purpose with `{RENEW_COMMAND}` (tools/lock.py) and review the diff.\n"
            f"# pyproject-digest: sha256:{pyproject_digest()}\n\n"
        )
        out.write_text(header + out.read_text())
        read(out)
        # Every pin must exist as a wheel the bundle can use (CPython 3.11, manylinux x86-64) or as
        # a pure-Python wheel: a resolution that only works from source would break `make binary`.
        subprocess.run(
            [str(python), "-m", "pip", "install", "--quiet", "--dry-run", "--ignore-installed", "--no-deps",
             "--only-binary=:all:", "--require-hashes", "--target", str(Path(tmp) / "target"),
             *BUNDLE_PLATFORM, "-r", str(out)],
            check=True, env=env,
        )  # fmt: skip
        out.replace(LOCK)
    print(f"lock: wrote {LOCK.name} ({len(read())} pins); review `git diff {LOCK.name}`")


def main(argv: list[str]) -> int:
    if argv[1:] == ["check"]:
        try:
            check()
        except LockError as exc:
            print(f"lock: {exc}", file=sys.stderr)
            return 1
        return 0
    if argv[1:] in (["renew"], ["renew", "--upgrade"]):
        renew(upgrade=argv[2:] == ["--upgrade"])
        return 0
    print("usage: python3 tools/lock.py check|renew [--upgrade]", file=sys.stderr)
    return 2


if __name__ == "__main__":
    raise SystemExit(main(sys.argv))
