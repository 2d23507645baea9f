"""``entrypoint verify`` as a process on compact-format messages: --step, --companion, exit statuses."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pytest

from entrypoint.termination import RunResult
from entrypoint.testing.ca import Svid, TestCA
from tests.support.compact_signer import RESULTS, replace, sign
from tests.support.messages import message
from tests.support.pki import TASKRUN_REF, TD, spiffe_id
from tests.support.verify_cli import VERDICT_JSON_KEYS, run


def write(tmp_path: Path, name: str, entries: list[RunResult], compressed: bool = False) -> Path:
    path = tmp_path / name
    path.write_text(message(entries, compressed=compressed))
    return path


def base(bundle: Path) -> list[str]:
    return ["--taskrun", TASKRUN_REF, "--trust-domain", TD, "--trust-bundle", str(bundle)]


@pytest.fixture
def step1(tmp_path: Path, svid: Svid) -> Path:
    return write(tmp_path, "step1", sign(RESULTS, svid, step="1"))


@pytest.fixture
def first(tmp_path: Path, svid: Svid) -> Path:
    return write(tmp_path, "step0", sign([RunResult("commit", "abc123", 1)], svid, step="0"))


@pytest.fixture
def referring(tmp_path: Path, svid: Svid) -> Path:
    return write(tmp_path, "step1-ref", sign(RESULTS, svid, step="1", ref=True), compressed=True)


@pytest.mark.parametrize("step", [[], ["--step", "1"]])
def test_verified_compact_message_exits_0(bundle: Path, step1: Path, step: list[str]) -> None:
    p = run(*base(bundle), *step, str(step1))
    assert p.returncode == 0, p.stdout + p.stderr
    lines = p.stdout.splitlines()
    assert lines[0].startswith(f"VERIFIED compact {spiffe_id()} at ")
    assert lines[0].endswith(f"Z: {len(RESULTS)} results")
    assert not any("SIGNATURE" in line for line in lines)
    assert '  IMAGE_URL = "registry.example/app"' in lines
    assert '  s (type 4) = "step-value"' in lines
    assert p.stderr == ""


def test_message_from_another_step_exits_1(bundle: Path, step1: Path) -> None:
    p = run(*base(bundle), "--step", "2", str(step1))
    assert p.returncode == 1
    assert p.stdout.splitlines()[0] == (
        "NOT VERIFIED StepMismatch: SIGNATURE: signed as step 1, but step 2 was expected"
    )


def test_tampered_message_exits_1(tmp_path: Path, bundle: Path, svid: Svid) -> None:
    tampered = replace(sign(RESULTS, svid), "list", value='["a","b"]')
    p = run(*base(bundle), str(write(tmp_path, "t", tampered)))
    assert p.returncode == 1
    assert p.stdout.startswith("NOT VERIFIED SignatureInvalid: SIGNATURE: invalid signature")


@pytest.mark.parametrize("step", ["x", "01", "-1", ""])
def test_invalid_step_is_a_usage_error(bundle: Path, step1: Path, step: str) -> None:
    p = run(*base(bundle), "--step", step, str(step1))
    assert p.returncode == 2
    assert "--step" in p.stderr
    assert p.stdout == ""


def test_reference_without_companion_exits_1(bundle: Path, referring: Path) -> None:
    p = run(*base(bundle), "--step", "1", str(referring))
    assert p.returncode == 1
    assert p.stdout.startswith("NOT VERIFIED MaterialUnresolved: SIGNATURE: x509-ref ")


def test_reference_resolved_by_companions_exits_0(
    tmp_path: Path, bundle: Path, referring: Path, first: Path, step1: Path
) -> None:
    unrelated = write(tmp_path, "unrelated", [RunResult("a", "b", 1)])
    p = run(
        *base(bundle),
        "--step",
        "1",
        str(referring),
        "--companion",
        str(unrelated),
        "--companion",
        str(first),
    )
    assert p.returncode == 0, p.stdout + p.stderr
    assert p.stdout.startswith(f"VERIFIED compact {spiffe_id()} ")


def test_companion_before_the_message_works_too(bundle: Path, referring: Path, first: Path) -> None:
    p = run(*base(bundle), "--companion", str(first), str(referring))
    assert p.returncode == 0, p.stdout + p.stderr


def test_message_on_stdin_with_a_companion_file(bundle: Path, referring: Path, first: Path) -> None:
    p = run(*base(bundle), "-", "--companion", str(first), stdin=referring.read_text())
    assert p.returncode == 0, p.stdout + p.stderr


def test_companion_with_another_chain_exits_1(
    tmp_path: Path, bundle: Path, ca: TestCA, referring: Path
) -> None:
    other = write(tmp_path, "other", sign([RunResult("c", "d", 1)], ca.issue_svid(spiffe_id()), step="0"))
    p = run(*base(bundle), str(referring), "--companion", str(other))
    assert p.returncode == 1
    assert p.stdout.startswith("NOT VERIFIED MaterialUnresolved: ")


def test_unreadable_companion_is_a_usage_error(tmp_path: Path, bundle: Path, referring: Path) -> None:
    p = run(*base(bundle), str(referring), "--companion", str(tmp_path / "absent"))
    assert p.returncode == 2
    assert f"--companion {tmp_path / 'absent'}: cannot read" in p.stderr


def test_stdin_can_be_read_only_once(bundle: Path) -> None:
    p = run(*base(bundle), "-", "--companion", "-", stdin="[]")
    assert p.returncode == 2
    assert "stdin" in p.stderr


def test_json_output(bundle: Path, referring: Path, first: Path) -> None:
    p = run(*base(bundle), "--json", "--step", "1", str(referring), "--companion", str(first))
    assert p.returncode == 0, p.stderr
    doc = json.loads(p.stdout)
    assert set(doc) == VERDICT_JSON_KEYS
    assert doc["verified"] is True and doc["reason"] == "Verified" and doc["format"] == "compact"
    assert doc["identity"] == spiffe_id()
    assert doc["condition"]["status"] == "True"
    assert {r["key"] for r in doc["results"]} == {e.key for e in RESULTS}


def test_json_output_of_a_failure(bundle: Path, step1: Path) -> None:
    p = run(*base(bundle), "--json", "--step", "0", str(step1))
    assert p.returncode == 1
    doc = json.loads(p.stdout)
    assert doc["verified"] is False and doc["reason"] == "StepMismatch" and doc["format"] == "compact"
    assert doc["condition"]["message"].startswith("StepMismatch: SIGNATURE: ")


def test_expired_identity_needs_at(tmp_path: Path, bundle: Path, ca: TestCA) -> None:
    start = dt.datetime.now(dt.UTC).replace(microsecond=0) - dt.timedelta(hours=3)
    old = ca.issue_svid(spiffe_id(), not_before=start, ttl=dt.timedelta(hours=1))
    path = write(tmp_path, "old", sign(RESULTS, old, signed_at=int(start.timestamp()) + 60))
    p = run(*base(bundle), str(path))
    assert p.returncode == 1
    assert p.stdout.startswith("NOT VERIFIED ChainUntrusted: ")
    at = (start + dt.timedelta(minutes=5)).isoformat()
    p = run(*base(bundle), "--at", at, str(path))
    assert p.returncode == 0, p.stdout + p.stderr
