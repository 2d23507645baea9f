"""tools/build_binary.py's checks of its inputs (no network, no build): apt suites, the wheel lock."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from types import ModuleType

import pytest

from tests.support.packaging import load_tool


@pytest.fixture(scope="module")
def bb() -> ModuleType:
    return load_tool("build_binary")


PACKAGE_FILES = """\
Package files:
 100 /var/lib/dpkg/status
     release a=now
 500 http://deb.debian.org/debian-security bookworm-security/main amd64 Packages
     release v=12,o=Debian,a=oldstable-security,n=bookworm-security,l=Debian-Security,c=main,b=amd64
     origin deb.debian.org
 500 http://deb.debian.org/debian bookworm/main amd64 Packages
     release v=12.15,o=Debian,a=oldstable,n=bookworm,l=Debian,c=main,b=amd64
     origin deb.debian.org
 500 http://deb.debian.org/debian trixie/main amd64 Packages
     release v=13.1,o=Debian,a=stable,n=trixie,l=Debian,c=main,b=amd64
     origin deb.debian.org
Pinned packages:
"""
POLICY = """\
libc6:
  Installed: 2.36-9+deb12u14
  Candidate: 2.36-9+deb12u14
  Version table:
 *** 2.36-9+deb12u14 500
        500 http://deb.debian.org/debian bookworm/main amd64 Packages
        100 /var/lib/dpkg/status
     2.36-9+deb12u7 500
        500 http://deb.debian.org/debian-security bookworm-security/main amd64 Packages
python3.11-minimal:
  Installed: 3.11.2-6+deb12u6
  Candidate: 3.11.2-6+deb12u9
  Version table:
     3.11.2-6+deb12u9 500
        500 http://deb.debian.org/debian-security bookworm-security/main amd64 Packages
     3.11.2-6+deb12u8 500
        500 http://deb.debian.org/debian bookworm/main amd64 Packages
 *** 3.11.2-6+deb12u6 100
        100 /var/lib/dpkg/status
libssl3:
  Installed: (none)
  Candidate: 3.5.1-1
  Version table:
     3.5.1-1 500
        500 http://deb.debian.org/debian trixie/main amd64 Packages
     3.0.17-1~deb12u2 500
        500 http://deb.debian.org/debian bookworm/main amd64 Packages
"""


def fake_apt(monkeypatch: pytest.MonkeyPatch, bb: ModuleType) -> None:
    def run(cmd: Sequence[str], cwd: Path | None = None, quiet: bool = False) -> str:
        assert list(cmd[:2]) == ["apt-cache", "policy"]
        return POLICY if cmd[2:] else PACKAGE_FILES

    monkeypatch.setattr(bb, "run", run)


def test_apt_candidates_come_from_bookworm(bb: ModuleType, monkeypatch: pytest.MonkeyPatch) -> None:
    fake_apt(monkeypatch, bb)
    assert bb.apt_candidates(["libc6", "python3.11-minimal"]) == {
        "libc6": ("2.36-9+deb12u14", "bookworm"),
        "python3.11-minimal": ("3.11.2-6+deb12u9", "bookworm-security"),
    }


def test_a_candidate_from_another_release_stops_the_build(
    bb: ModuleType, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake_apt(monkeypatch, bb)
    with pytest.raises(SystemExit, match=r"no Debian bookworm version of libssl3 "):
        bb.apt_candidates(["libc6", "libssl3"])


def test_the_bundle_takes_its_wheels_from_the_one_lock(bb: ModuleType) -> None:
    lock = bb.read_lock()
    assert {p.name for p in lock["build"]} >= {"setuptools", "wheel"}
    runtime = {p.name for p in lock["runtime"]}
    assert runtime >= {"cryptography", "grpcio", "spiffe", "cel-python", "pyjwt", "httpx"}
    # Only what a step needs: the test and lint tools are locked too, but never bundled.
    assert not runtime & {"pytest", "mypy", "ruff", "setuptools", bb.PROJECT}


def test_a_wheel_that_differs_from_the_lock_stops_the_build(
    bb: ModuleType, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    wheel = tmp_path / "demo-1.0-py3-none-any.whl"
    wheel.write_bytes(b"the locked bytes")
    pin = bb.wheel_pin(wheel)
    monkeypatch.setattr(bb, "WHEELS", tmp_path)
    bb.verify_wheels([pin])
    wheel.write_bytes(b"other bytes")
    with pytest.raises(
        SystemExit, match=r"demo-1.0-py3-none-any.whl has sha256 \w+, which requirements.lock does not record"
    ):
        bb.verify_wheels([pin])
    wheel.unlink()
    with pytest.raises(SystemExit, match=r"no wheel of demo==1.0"):
        bb.verify_wheels([pin])


def test_a_dependency_missing_from_the_lock_stops_the_build(bb: ModuleType) -> None:
    pins = bb.lockfile.read()
    del pins["idna"]  # httpx needs it
    with pytest.raises(SystemExit, match=r"idna is needed but not in requirements.lock: run `make lock`"):
        bb.closure(["httpx"], pins)


def test_an_environment_that_differs_from_the_lock_stops_the_build(bb: ModuleType) -> None:
    pins = bb.lockfile.read()
    stale = bb.Pin("httpx", "0.0.1", pins["httpx"].hashes)
    with pytest.raises(SystemExit, match=r"pins versions that differ from this environment's: httpx 0.0.1"):
        bb.check_development_versions([stale])
    bb.check_development_versions(list(pins.values()))  # the venv is the lock's
