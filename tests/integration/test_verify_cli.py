"""``entrypoint verify`` as a process: exit statuses, output, stdin, and a real Workload API."""

from __future__ import annotations

import datetime as dt
import json
import tempfile
from pathlib import Path

import pytest

from entrypoint.termination import RunResult
from entrypoint.testing.ca import Svid, TestCA
from entrypoint.testing.workload_api import WorkloadAPIServer
from tests.support.messages import message
from tests.support.pki import NS, TASKRUN_REF, TD, spiffe_id
from tests.support.tekton_signer import FOO_BAR, replace, sign_svid
from tests.support.verify_cli import (
    VERDICT_JSON_KEYS,
    run,
)


@pytest.fixture(scope="module")
def signed(svid: Svid) -> list[RunResult]:
    return sign_svid([*FOO_BAR, RunResult("StartedAt", "t", 3)], svid)


def write(tmp_path: Path, entries: list[RunResult], compressed: bool = False) -> Path:
    path = tmp_path / "termination"
    path.write_text(message(entries, compressed=compressed))
    return path


def taskrun(td: str = TD) -> list[str]:
    return ["--taskrun", TASKRUN_REF, "--trust-domain", td]


def base(bundle: Path) -> list[str]:
    return [*taskrun(), "--trust-bundle", str(bundle)]


@pytest.mark.parametrize("compressed", [False, True])
def test_verified_message_exits_0(
    tmp_path: Path, bundle: Path, signed: list[RunResult], compressed: bool
) -> None:
    p = run(*base(bundle), str(write(tmp_path, signed, compressed)))
    assert p.returncode == 0, p.stdout + p.stderr
    lines = p.stdout.splitlines()
    assert lines[0].startswith(f"VERIFIED tekton {spiffe_id()} at ")
    assert lines[0].endswith("Z: 2 results")
    # Tekton's format signs task results only: the internal entry is shown apart, as unsigned.
    assert lines[1:] == [
        '  bar = "bar-value"',
        '  foo = "foo-value"',
        "NOT COVERED BY THE SIGNATURE (shown for information; do not trust):",
        '  StartedAt (type 3) = "t"',
    ]
    assert p.stderr == ""


def test_tampered_message_exits_1(tmp_path: Path, bundle: Path, signed: list[RunResult]) -> None:
    p = run(*base(bundle), str(write(tmp_path, replace(signed, "foo", "evil"))))
    assert p.returncode == 1
    first = p.stdout.splitlines()[0]
    assert first.startswith("NOT VERIFIED SignatureInvalid: foo.sig: invalid signature")
    assert '  foo = "evil"' in p.stdout.splitlines()


def test_json_output(tmp_path: Path, bundle: Path, signed: list[RunResult]) -> None:
    p = run(*base(bundle), "--json", str(write(tmp_path, signed)))
    assert p.returncode == 0, p.stderr
    doc = json.loads(p.stdout)
    assert set(doc) == VERDICT_JSON_KEYS
    assert doc["verified"] is True and doc["reason"] == "Verified" and doc["format"] == "tekton"
    assert doc["backend"] == "spire"
    assert doc["identity"] == spiffe_id()
    assert doc["condition"]["type"] == "SignedResultsVerified"
    assert doc["condition"]["status"] == "True"
    assert doc["condition"]["reason"] == "TaskRunResultsVerified"
    assert doc["results"] == [
        {"key": "bar", "value": "bar-value", "type": 1},
        {"key": "foo", "value": "foo-value", "type": 1},
    ]
    assert doc["unsigned"] == [{"key": "StartedAt", "value": "t", "type": 3}]


def test_json_output_of_a_failure(tmp_path: Path, bundle: Path, signed: list[RunResult]) -> None:
    tampered = [e for e in signed if e.key != "SVID"]
    p = run(*base(bundle), "--json", str(write(tmp_path, tampered)))
    assert p.returncode == 1
    doc = json.loads(p.stdout)
    assert doc["verified"] is False and doc["reason"] == "SVIDMissing"
    assert doc["condition"]["status"] == "False"
    assert doc["condition"]["reason"] == "TaskRunResultsVerificationFailed"


def test_message_from_stdin(bundle: Path, signed: list[RunResult]) -> None:
    p = run(*base(bundle), "-", stdin=message(signed, compressed=True))
    assert p.returncode == 0, p.stdout + p.stderr
    assert p.stdout.startswith("VERIFIED ")


def test_wrong_taskrun_exits_1(tmp_path: Path, bundle: Path, signed: list[RunResult]) -> None:
    args = base(bundle)
    args[1] = f"{NS}/other"
    p = run(*args, str(write(tmp_path, signed)))
    assert p.returncode == 1
    assert p.stdout.startswith("NOT VERIFIED IdentityMismatch: ")


def test_at_verifies_an_expired_svid(tmp_path: Path, bundle: Path, ca: TestCA) -> None:
    start = dt.datetime.now(dt.UTC).replace(microsecond=0) - dt.timedelta(days=2)
    svid = ca.issue_svid(spiffe_id(), not_before=start, ttl=dt.timedelta(hours=1))
    path = write(tmp_path, sign_svid(FOO_BAR, svid))
    now = run(*base(bundle), str(path))
    assert now.returncode == 1
    assert now.stdout.startswith("NOT VERIFIED ChainUntrusted: ")
    inside = start + dt.timedelta(minutes=30)
    at = inside.astimezone(dt.timezone(dt.timedelta(hours=2))).isoformat()
    assert at.endswith("+02:00")
    then = run(*base(bundle), "--at", at, str(path))
    assert then.returncode == 0, then.stdout
    stamp = inside.strftime("%Y-%m-%dT%H:%M:%SZ")
    assert then.stdout.startswith(f"VERIFIED tekton {spiffe_id()} at {stamp}: 2 results")
    before = run(*base(bundle), "--at", (start - dt.timedelta(seconds=1)).isoformat(), str(path))
    assert before.returncode == 1
    assert before.stdout.startswith("NOT VERIFIED ChainUntrusted: ")


def test_no_chain_warns_and_still_checks_signatures(tmp_path: Path, signed: list[RunResult]) -> None:
    common = [*taskrun(), "--no-chain"]
    ok = run(*common, str(write(tmp_path, signed)))
    assert ok.returncode == 0, ok.stdout
    assert ok.stderr.startswith("WARNING: --no-chain")
    assert len(ok.stderr.splitlines()) == 1
    bad = run(*common, str(write(tmp_path, replace(signed, "bar", "evil"))))
    assert bad.returncode == 1
    assert bad.stdout.startswith("NOT VERIFIED SignatureInvalid: bar.sig")
    assert "WARNING" in bad.stderr


def test_untrusted_ca_exits_1(tmp_path: Path, signed: list[RunResult]) -> None:
    other = tmp_path / "other.pem"
    other.write_bytes(TestCA(TD).bundle_pem())
    p = run(*taskrun(), "--trust-bundle", str(other), str(write(tmp_path, signed)))
    assert p.returncode == 1
    assert p.stdout.startswith("NOT VERIFIED ChainUntrusted: ")


def test_missing_trust_bundle_is_unavailable_trust(tmp_path: Path, signed: list[RunResult]) -> None:
    missing = tmp_path / "nope.pem"
    p = run(*taskrun(), "--trust-bundle", str(missing), str(write(tmp_path, signed)))
    assert p.returncode == 1
    assert p.stdout.startswith(f"NOT VERIFIED TrustUnavailable: trust bundle {missing}: cannot read")


def test_spire_socket(tmp_path: Path, agent: WorkloadAPIServer, signed: list[RunResult]) -> None:
    args = [*taskrun(), "--spire-socket", agent.address]
    p = run(*args, str(write(tmp_path, signed)))
    assert p.returncode == 0, p.stdout + p.stderr
    assert p.stdout.startswith(f"VERIFIED tekton {spiffe_id()}")


def test_spire_socket_after_rotation_exits_1(tmp_path: Path, signed: list[RunResult]) -> None:
    rotating = TestCA(TD)
    entries = sign_svid(FOO_BAR, rotating.issue_svid(spiffe_id()))
    rotating.rotate()
    with (
        tempfile.TemporaryDirectory(prefix="wl-", dir="/tmp") as d,
        WorkloadAPIServer(f"{d}/agent.sock", rotating, spiffe_id()) as server,
    ):
        p = run(*taskrun(), "--spire-socket", server.address, str(write(tmp_path, entries)))
    assert p.returncode == 1
    assert p.stdout.startswith("NOT VERIFIED ChainUntrusted: ")


def test_spire_socket_without_the_trust_domain_exits_1(
    tmp_path: Path, agent: WorkloadAPIServer, signed: list[RunResult]
) -> None:
    p = run(*taskrun("other.org"), "--spire-socket", agent.address, str(write(tmp_path, signed)))
    assert p.returncode == 1
    assert p.stdout.startswith(
        f"NOT VERIFIED TrustUnavailable: workload API {agent.address}: no X.509 bundle"
    )


def test_spire_socket_absent_exits_1(tmp_path: Path, signed: list[RunResult]) -> None:
    address = f"unix://{tmp_path}/absent.sock"
    p = run(*taskrun(), "--spire-socket", address, str(write(tmp_path, signed)))
    assert p.returncode == 1
    assert p.stdout.startswith(f"NOT VERIFIED TrustUnavailable: workload API {address}")


@pytest.mark.parametrize(
    ("args", "error"),
    [
        (["--taskrun", "no-slash", "--trust-domain", TD, "--trust-bundle", "B", "M"], "--taskrun 'no-slash'"),
        (["--taskrun", "a/b/c", "--trust-domain", TD, "--trust-bundle", "B", "M"], "expected NAMESPACE/NAME"),
        (["--taskrun", "/b", "--trust-domain", TD, "--trust-bundle", "B", "M"], "expected NAMESPACE/NAME"),
        (
            ["--taskrun", TASKRUN_REF, "--trust-domain", "Bad/TD", "--trust-bundle", "B", "M"],
            "--trust-domain",
        ),
        (
            ["--taskrun", TASKRUN_REF, "--trust-domain", TD, "--trust-bundle", "B", "--at", "yesterday", "M"],
            "--at",
        ),
        (
            [
                "--taskrun",
                TASKRUN_REF,
                "--trust-domain",
                TD,
                "--trust-bundle",
                "B",
                "--at",
                "2024-05-01T12:00:00",
                "M",
            ],
            "needs an offset",
        ),
        (
            ["--taskrun", TASKRUN_REF, "--trust-domain", TD, "M"],
            "--trust-domain needs one of --trust-bundle or --spire-socket",
        ),
        (["--taskrun", TASKRUN_REF, "M"], "no trust given"),
        (["--taskrun", TASKRUN_REF, "--trust-bundle", "B", "M"], "need --trust-domain"),
        (
            ["--taskrun", TASKRUN_REF, "--jwks", "J", "--kube-api", "https://x", "M"],
            "not allowed with argument",
        ),
        (
            [
                "--taskrun",
                TASKRUN_REF,
                "--trust-domain",
                TD,
                "--trust-bundle",
                "B",
                "--spire-socket",
                "unix:///x",
                "M",
            ],
            "not allowed with argument",
        ),
        (["--trust-domain", TD, "--trust-bundle", "B", "M"], "--taskrun"),
        (["--taskrun", TASKRUN_REF, "--trust-domain", TD, "--trust-bundle", "B"], "MESSAGE"),
        (
            ["--taskrun", TASKRUN_REF, "--trust-domain", TD, "--trust-bundle", "B", "--bogus", "M"],
            "unrecognized",
        ),
    ],
)
def test_usage_errors_exit_2(args: list[str], error: str) -> None:
    p = run(*args)
    assert p.returncode == 2, p.stdout + p.stderr
    assert error in p.stderr
    assert p.stdout == ""


def test_unreadable_message_file_exits_2_naming_it(tmp_path: Path, bundle: Path) -> None:
    missing = tmp_path / "no-such-termination"
    p = run(*base(bundle), str(missing))
    assert p.returncode == 2
    assert p.stderr.splitlines() == [
        f"entrypoint verify: error: MESSAGE {missing}: cannot read: No such file or directory"
    ]
    assert p.stdout == ""


def test_invalid_message_exits_1(tmp_path: Path, bundle: Path) -> None:
    path = tmp_path / "termination"
    path.write_text("tknz:!!!")
    p = run(*base(bundle), str(path))
    assert p.returncode == 1
    assert p.stdout.startswith(
        "NOT VERIFIED MessageInvalid: termination message: decompressing termination message"
    )


def test_control_characters_from_the_message_are_escaped(tmp_path: Path, bundle: Path) -> None:
    # A crafted entry must not be able to rewrite the terminal (e.g. draw a fake VERIFIED line).
    entries = [RunResult("SVID", "not a certificate", 1), RunResult("evil\r\x1b[2Kkey", "v", 1)]
    p = run(*base(bundle), str(write(tmp_path, entries)))
    assert p.returncode == 1
    assert "\x1b" not in p.stdout and "\r" not in p.stdout
    assert "\\x1b" in p.stdout
