"""The one lock (tools/lock.py, requirements.lock): it must describe pyproject.toml, every pin is
hash-checked, and a newer release on the index never displaces a locked one."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path
from types import ModuleType

import pytest

from tests.support.packaging import load_tool
from tests.support.paths import REPO

WHEELS = REPO / "build" / "binary" / "wheels"


@pytest.fixture(scope="module")
def lock() -> ModuleType:
    return load_tool("lock")


def copy_project(tmp_path: Path) -> tuple[Path, Path]:
    pyproject, lockfile = tmp_path / "pyproject.toml", tmp_path / "requirements.lock"
    pyproject.write_text((REPO / "pyproject.toml").read_text())
    lockfile.write_text((REPO / "requirements.lock").read_text())
    return pyproject, lockfile


def test_the_committed_lock_matches_pyproject(lock: ModuleType) -> None:
    pins = lock.check()
    assert {"cryptography", "httpx", "grpcio", "spiffe", "pyjwt", "pytest", "setuptools"} <= set(pins)
    assert all(pin.hashes for pin in pins.values())


def test_the_development_environment_is_the_lock(lock: ModuleType) -> None:
    import importlib.metadata

    for pin in lock.read().values():
        assert importlib.metadata.version(pin.name) == pin.version, pin.name


def test_a_changed_requirement_fails_the_check_naming_make_lock(lock: ModuleType, tmp_path: Path) -> None:
    pyproject, lockfile = copy_project(tmp_path)
    lock.check(lockfile, pyproject)
    pyproject.write_text(pyproject.read_text().replace('"httpx>=0.27"', '"httpx>=0.27", "rich"'))
    with pytest.raises(
        lock.LockError, match=r"does not match the requirements in pyproject.toml: run `make lock`"
    ):
        lock.check(lockfile, pyproject)


def test_layout_and_comments_do_not_change_the_digest(lock: ModuleType, tmp_path: Path) -> None:
    pyproject, lockfile = copy_project(tmp_path)
    text = pyproject.read_text().replace('    "httpx>=0.27",\n', '    # a comment\n    "httpx>=0.27" ,\n')
    assert text != pyproject.read_text()
    pyproject.write_text(text)
    lock.check(lockfile, pyproject)


def test_the_check_runs_with_the_bare_interpreter_and_says_one_line(tmp_path: Path) -> None:
    # `make test` runs it before any environment exists: no third-party import, one line, exit 1.
    (tmp_path / "tools").mkdir()
    (tmp_path / "tools" / "lock.py").write_text((REPO / "tools" / "lock.py").read_text())
    pyproject, _ = copy_project(tmp_path)
    pyproject.write_text(pyproject.read_text().replace('"PyJWT>=2.10.1"', '"PyJWT>=2.11"'))
    p = subprocess.run([sys.executable, "-I", "-S", str(tmp_path / "tools" / "lock.py"), "check"],
                       capture_output=True, text=True, check=False)  # fmt: skip
    assert p.returncode == 1
    assert p.stderr.count("\n") == 1 and "run `make lock`" in p.stderr, p.stderr


@pytest.mark.parametrize(
    ("text", "error"),
    [
        ("anyio==4.16.0\n", r"requirements.lock:1: anyio==4.16.0 has no --hash"),
        (
            "anyio>=4 \\\n    --hash=sha256:" + "0" * 64 + "\n",
            r"requirements.lock:1: not a pinned requirement",
        ),
        ("# nothing\n", r"pins nothing"),
    ],
)
def test_a_malformed_lock_is_refused(lock: ModuleType, tmp_path: Path, text: str, error: str) -> None:
    path = tmp_path / "requirements.lock"
    path.write_text(text)
    with pytest.raises(lock.LockError, match=error):
        lock.read(path)


def fake_wheel(directory: Path, name: str, version: str) -> Path:
    """A valid, empty pure-Python wheel: what an index would serve as a newer release."""
    dist = f"{name.replace('-', '_')}-{version}"
    path = directory / f"{dist}-py3-none-any.whl"
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr(
            f"{dist}.dist-info/METADATA", f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n"
        )
        zf.writestr(
            f"{dist}.dist-info/WHEEL", "Wheel-Version: 1.0\nRoot-Is-Purelib: true\nTag: py3-none-any\n"
        )
        zf.writestr(f"{dist}.dist-info/RECORD", "")
    return path


def test_the_lock_wins_over_newer_releases_on_the_index(lock: ModuleType, tmp_path: Path) -> None:
    # An index that serves the locked wheels (the bundle's cache, filled by `make binary`) and a
    # newer release of every one of them: pip in hash-checking mode still takes the locked ones.
    pins = lock.read()
    cached = {p.name.split("-")[0].lower().replace("_", "-"): p for p in WHEELS.glob("*.whl")}
    locked = [pins[name] for name in sorted(cached) if name in pins]
    assert len(locked) >= 20, "run `make binary` first: its wheel cache is this test's index"
    index = tmp_path / "index"
    index.mkdir()
    for pin in locked:
        (index / cached[pin.name].name).symlink_to(cached[pin.name])
        fake_wheel(index, pin.name, "999.0")
    reqs = tmp_path / "reqs.txt"
    reqs.write_text("".join(
        f"{p.name}=={p.version} " + " ".join(f"--hash=sha256:{h}" for h in sorted(p.hashes)) + "\n"
        for p in locked
    ))  # fmt: skip
    out = tmp_path / "out"
    pip = [sys.executable, "-m", "pip", "download", "--quiet", "--no-index", "--find-links", str(index),
           "--no-deps", "--only-binary=:all:"]  # fmt: skip
    subprocess.run(
        [*pip, *lock.BUNDLE_PLATFORM, "-d", str(out), "--require-hashes", "-r", str(reqs)], check=True
    )
    got = sorted(w.name for w in out.glob("*.whl"))
    assert got == sorted(cached[p.name].name for p in locked)
    # The index really offers the newer releases: unpinned, pip takes them.
    newer = tmp_path / "newer"
    subprocess.run([*pip, "-d", str(newer), locked[0].name], check=True)
    assert [w.name.split("-")[1] for w in newer.glob("*.whl")] == ["999.0"]
