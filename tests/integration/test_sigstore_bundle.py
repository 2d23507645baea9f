"""``entrypoint sigstore-bundle`` as a process (docs/sigstore.md, "A bundle for audit and other tools"),
checked by an independent verifier: sigstore-python, in its own environment from its own lock
(tests/support/sigstore_python.py), verifies the bundle and the artifact against the stack's trusted
root with the identity policy, and rejects a tampered artifact, another SAN and another issuer.  The
command's failures (no log record, Rekor down, a wrong URL) exit 1 with one line and write nothing."""

from __future__ import annotations

import json
import socket
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from entrypoint.termination import RunResult, encode_message, parse_message
from tests.support import sigstore_python
from tests.support.k8s_sat import entrypoint, new_root
from tests.support.sigstore import FORMATS, SAN, Stack, sign_step, stack

RESULTS = {"commit": "abc123", "image": "sha256:" + "7" * 64}


@pytest.fixture(scope="module")
def oracle() -> Path:
    """sigstore-python's interpreter (made once from the lock, then reused)."""
    try:
        return sigstore_python.environment().python
    except sigstore_python.SigstorePythonUnavailable as exc:
        pytest.fail(f"sigstore-python could not be installed: {exc}")


@pytest.fixture(scope="module")
def sigstore(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    with stack(tmp_path_factory.mktemp("sigstore-bundle")) as s:
        s.rekor.index_offset = 1200  # the bundle's logIndex is the global one, its proof's the shard's
        yield s


@dataclass(frozen=True)
class Signed:
    fmt: str
    message: Path


@pytest.fixture(scope="module")
def signed(sigstore: Stack, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Signed]:
    found = {}
    for fmt in FORMATS:
        root = new_root(tmp_path_factory.mktemp(f"root-{fmt}"))
        p = sign_step(root, sigstore, RESULTS, fmt)
        assert p.returncode == 0, p.stderr
        found[fmt] = Signed(fmt, root.termination)
    return found


def bundle_command(
    s: Stack, message: str, out: Path, *extra: str, rekor_url: str | None = None, stdin: str | None = None
) -> subprocess.CompletedProcess[str]:
    return entrypoint(
        "sigstore-bundle", message,
        "--rekor-url", rekor_url or s.rekor.url,
        "--bundle-out", str(out / "b.sigstore.json"),
        "--artifact-out", str(out / "artifact"),
        "--ca-file", str(s.directory / "sigstore-ca.pem"),
        *extra,
        stdin=stdin,
    )  # fmt: skip


def oracle_verdict(
    python: Path, s: Stack, out: Path, *, artifact: Path | None = None, identity: str = SAN, issuer: str = ""
) -> dict[str, object]:
    return sigstore_python.verify(
        python,
        bundle=out / "b.sigstore.json",
        artifact=artifact or out / "artifact",
        trusted_root=s.trusted_root,
        identity=identity,
        issuer=issuer or s.issuer,
    )


@pytest.mark.parametrize("fmt", FORMATS)
def test_sigstore_python_verifies_the_bundle_and_rejects_what_differs(
    oracle: Path, sigstore: Stack, signed: dict[str, Signed], fmt: str, tmp_path: Path
) -> None:
    p = bundle_command(
        sigstore, str(signed[fmt].message), tmp_path, "--trusted-root", str(sigstore.trusted_root)
    )
    assert p.returncode == 0, p.stderr
    assert p.stderr == ""
    assert f"{fmt} format" in p.stdout
    bundle = json.loads((tmp_path / "b.sigstore.json").read_text())
    assert bundle["mediaType"] == "application/vnd.dev.sigstore.bundle.v0.3+json"
    assert int(bundle["verificationMaterial"]["tlogEntries"][0]["logIndex"]) >= 1200

    verdict = oracle_verdict(oracle, sigstore, tmp_path)
    assert verdict == {"sigstore": sigstore_python.SIGSTORE, "verified": True, "error": ""}

    tampered = tmp_path / "tampered"
    tampered.write_bytes((tmp_path / "artifact").read_bytes() + b" ")
    verdict = oracle_verdict(oracle, sigstore, tmp_path, artifact=tampered)
    assert verdict["verified"] is False
    assert "digest mismatch" in str(verdict["error"])

    other_san = SAN.rsplit("/", 1)[0] + "/someone-else"
    verdict = oracle_verdict(oracle, sigstore, tmp_path, identity=other_san)
    assert verdict["verified"] is False
    assert "SANs do not match" in str(verdict["error"])

    verdict = oracle_verdict(oracle, sigstore, tmp_path, issuer="https://issuer.example")
    assert verdict["verified"] is False
    assert "OIDCIssuer does not match" in str(verdict["error"])


def test_a_compressed_message_from_stdin(
    oracle: Path, sigstore: Stack, signed: dict[str, Signed], tmp_path: Path
) -> None:
    entries = parse_message(signed["tekton"].message.read_text())
    compressed = encode_message(entries, compressed=True).decode()
    assert compressed.startswith("tknz:")
    p = bundle_command(sigstore, "-", tmp_path, stdin=compressed)
    assert p.returncode == 0, p.stderr
    assert oracle_verdict(oracle, sigstore, tmp_path)["verified"] is True


def _failed(p: subprocess.CompletedProcess[str], out: Path) -> str:
    assert p.returncode == 1, p.stdout + p.stderr
    assert p.stdout == ""
    lines = p.stderr.splitlines()
    assert len(lines) == 1, p.stderr
    assert lines[0].startswith("entrypoint sigstore-bundle: error: ")
    assert not (out / "b.sigstore.json").exists()
    assert not (out / "artifact").exists()
    return lines[0]


def test_a_message_without_a_log_record(sigstore: Stack, signed: dict[str, Signed], tmp_path: Path) -> None:
    for fmt in FORMATS:
        entries = [e for e in parse_message(signed[fmt].message.read_text()) if e.key != "SIGSTORE_LOG"]
        message = tmp_path / f"{fmt}-no-log.json"
        message.write_bytes(encode_message(entries))
        line = _failed(bundle_command(sigstore, str(message), tmp_path), tmp_path)
        assert "SIGSTORE_LOG: the message has no transparency log record" in line


def test_a_message_of_another_backend(sigstore: Stack, tmp_path: Path) -> None:
    message = tmp_path / "plain.json"
    message.write_bytes(encode_message([RunResult("commit", "abc", 1)]))
    assert "no transparency log record" in _failed(bundle_command(sigstore, str(message), tmp_path), tmp_path)
    message.write_text("not a message")
    assert "parsing message json" in _failed(bundle_command(sigstore, str(message), tmp_path), tmp_path)
    line = _failed(bundle_command(sigstore, str(tmp_path / "missing"), tmp_path), tmp_path)
    assert "cannot read: No such file or directory" in line


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
    return port


def test_rekor_down_or_failing(sigstore: Stack, signed: dict[str, Signed], tmp_path: Path) -> None:
    message = str(signed["compact"].message)
    url = f"https://127.0.0.1:{_closed_port()}"
    line = _failed(bundle_command(sigstore, message, tmp_path, rekor_url=url), tmp_path)
    assert url in line
    assert "ConnectError" in line
    sigstore.rekor.fail_status = 503
    try:
        line = _failed(bundle_command(sigstore, message, tmp_path), tmp_path)
    finally:
        sigstore.rekor.fail_status = None
    assert "HTTP 503: service unavailable" in line


def test_a_wrong_url(sigstore: Stack, signed: dict[str, Signed], tmp_path: Path) -> None:
    message = str(signed["tekton"].message)
    line = _failed(bundle_command(sigstore, message, tmp_path, rekor_url=sigstore.fulcio.url), tmp_path)
    assert sigstore.fulcio.url in line
    assert "HTTP 404" in line
    assert "or not a Rekor v1 log" in line
    insecure = sigstore.rekor.url.replace("https://", "http://")
    line = _failed(bundle_command(sigstore, message, tmp_path, rekor_url=insecure), tmp_path)
    assert "must be an https URL" in line


def test_the_log_is_checked_before_anything_is_written(
    sigstore: Stack, signed: dict[str, Signed], tmp_path: Path
) -> None:
    sigstore.rekor.wrong_root = True
    try:
        line = _failed(bundle_command(sigstore, str(signed["tekton"].message), tmp_path), tmp_path)
    finally:
        sigstore.rekor.wrong_root = False
    assert "the inclusion proof leads to root" in line


def test_usage(sigstore: Stack, tmp_path: Path) -> None:
    p = entrypoint("sigstore-bundle", "m.json", "--bundle-out", "b", "--artifact-out", "a")
    assert p.returncode == 2
    assert "--rekor-url" in p.stderr
    p = bundle_command(sigstore, "m.json", tmp_path, "--timeout", "0")
    assert p.returncode == 2
    assert "--timeout" in p.stderr
