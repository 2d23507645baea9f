"""Inputs built to crash, exhaust or hang the real processes (issue 15, items 6-8): each ends in one
line naming the input, with the right exit status, and the step still records what it did.
"""

from __future__ import annotations

import json
import os
import resource
import signal
import tempfile
import time
from pathlib import Path

import pytest

from entrypoint.testing.ca import TestCA
from entrypoint.testing.workload_api import WorkloadAPIServer
from tests.support import verify_cli
from tests.support.pki import SPIFFE_ID, TASKRUN_REF, TD
from tests.support.tekton import TektonRoot


def sh(script: str) -> list[str]:
    return ["-entrypoint", "/bin/sh", "--", "-c", script]


def one_line_error(p: object, code: int, *words: str) -> None:
    stderr = getattr(p, "stderr", "")
    assert getattr(p, "returncode", None) == code, stderr
    assert stderr.count("\n") == 1 and "Traceback" not in stderr, stderr
    for word in words:
        assert word in stderr, stderr


# -- entrypoint verify ----------------------------------------------------------------------------------


@pytest.fixture
def bundle(tmp_path: Path, ca: TestCA) -> Path:
    path = tmp_path / "bundle.pem"
    path.write_bytes(ca.bundle_pem())
    return path


def verify(bundle: Path, message: str, *extra: str) -> list[str]:
    return ["--trust-bundle", str(bundle), "--trust-domain", TD, "--taskrun", TASKRUN_REF, *extra, message]


@pytest.mark.parametrize("at", ["0001-01-01T00:00:00+01:00", "9999-12-31T23:59:59-01:00"])
def test_at_outside_the_representable_years_is_a_usage_error(bundle: Path, tmp_path: Path, at: str) -> None:
    message = tmp_path / "m"
    message.write_text("[]")
    p = verify_cli.run(*verify(bundle, str(message), "--at", at))
    one_line_error(p, 2, "--at", "outside the years")


def test_dev_zero_as_the_message_is_refused_without_reading_it_all(bundle: Path) -> None:
    p = verify_cli.run(*verify(bundle, "/dev/zero"))
    one_line_error(p, 2, "/dev/zero", "larger than")


def test_dev_zero_on_stdin_is_refused_too(bundle: Path) -> None:
    import subprocess
    import sys

    with open("/dev/zero", "rb") as zero:
        p = subprocess.run(
            [sys.executable, "-m", "entrypoint._internal.verify_cli", *verify(bundle, "-")],
            stdin=zero,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
    one_line_error(p, 2, "stdin", "larger than")


def test_a_fifo_nobody_writes_does_not_hang(bundle: Path, tmp_path: Path) -> None:
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    p = verify_cli.run(*verify(bundle, str(fifo)))
    # Read as empty: an unsigned (empty) message, not a hang.
    assert p.returncode == 1, p.stderr
    assert "Traceback" not in p.stderr


def test_a_huge_companion_is_refused(bundle: Path, tmp_path: Path) -> None:
    message = tmp_path / "m"
    message.write_text("[]")
    big = tmp_path / "big"
    with open(big, "wb") as f:
        f.truncate(50 << 20)  # sparse: 50 MB that cost no disk
    p = verify_cli.run(*verify(bundle, str(message), "--companion", str(big)))
    one_line_error(p, 2, "--companion", str(big), "larger than")


# -- the step -------------------------------------------------------------------------------------------


def test_a_huge_sparse_result_file_fails_the_results_not_the_process(root: TektonRoot) -> None:
    # Under an address-space limit the whole file would be a MemoryError; the read stops at 1 MiB.
    result = root / "results" / "big"
    args = [*root.step_args(0), "-results", "big", *sh(f"truncate -s 300M {result}")]

    def limit_memory() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (2 << 30, 2 << 30))

    import subprocess

    from tests.support.tekton import ROOT_ENV, entrypoint_command

    p = subprocess.run(
        [*entrypoint_command(), *args],
        env={**os.environ, ROOT_ENV: str(root.path)},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        preexec_fn=limit_memory,
    )
    one_line_error(p, 1, str(result), "larger than")
    assert (root.run_dir(0) / "out").exists()
    assert (root.run_dir(0) / "status" / "exitCode").read_text() == "0"


def test_a_token_file_pointing_at_dev_zero_fails_the_signing_clearly(root: TektonRoot) -> None:
    args = [*root.step_args(0), "-signing_backend", "oidc-sa-token", "-signing_timeout", "2s",
            "-results", "a", *sh(f"printf 1 > {root / 'results' / 'a'}")]  # fmt: skip
    env = {"SIGNED_ENTRYPOINT_KUBE_TOKEN_FILE": "/dev/zero", "SIGNED_ENTRYPOINT_KUBE_API": "https://127.0.0.1:1",
           "POD_NAME": "p", "POD_UID": "u", "POD_NAMESPACE": "n", "POD_SERVICE_ACCOUNT": "s"}  # fmt: skip
    p = root.run(args, env=env)
    one_line_error(p, 1, "/dev/zero", "larger than")
    assert (root.run_dir(0) / "status" / "exitCode").read_text() == "0"
    assert root.values()["a"] == ("1", 1)  # kept, unsigned


def test_a_huge_signing_timeout_with_a_slow_agent_still_signs(root: TektonRoot, ca: TestCA) -> None:
    sock = os.path.join(tempfile.mkdtemp(prefix="wl", dir="/tmp"), "agent.sock")
    with WorkloadAPIServer(sock, ca, SPIFFE_ID, deny_first=1) as agent:
        args = [*root.step_args(0), "-enable_spire", "-spire_socket_path", agent.address,
                "-signing_timeout", "9223372036854775807ns", "-signing_retry_interval", "100ms",
                "-results", "a", *sh(f"printf 1 > {root / 'results' / 'a'}")]  # fmt: skip
        p = root.run(args)
    assert p.returncode == 0, p.stderr
    assert "RESULT_MANIFEST" in root.values()


def test_sigterm_while_waiting_for_the_identity_still_writes_the_message(root: TektonRoot) -> None:
    # No agent at all: the step waits for its identity after the command; the pod is then deleted.
    sock = os.path.join(tempfile.mkdtemp(prefix="wl", dir="/tmp"), "absent.sock")
    args = [*root.step_args(0), "-enable_spire", "-spire_socket_path", f"unix://{sock}",
            "-signing_timeout", "60s", "-results", "a",
            *sh(f"printf 1 > {root / 'results' / 'a'}; touch {root / 'ran'}")]  # fmt: skip
    proc = root.popen(args)
    try:
        deadline = time.monotonic() + 30
        while not (root / "ran").exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(1.0)  # the command has ended; the step is waiting for the identity
        proc.send_signal(signal.SIGTERM)
        _, stderr = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 1, stderr
    assert "SIGTERM" in stderr and "Traceback" not in stderr, stderr
    assert (root.run_dir(0) / "status" / "exitCode").read_text() == "0"
    values = root.values()
    assert values["a"] == ("1", 1)  # written, unsigned
    assert "RESULT_MANIFEST" not in values


def test_an_exponential_cel_expression_is_bounded_by_the_step_timeout(root: TektonRoot) -> None:
    # Six nested maps over six elements: 6^6 evaluations, ~10 s in cel-python.
    items = "[0,1,2,3,4,5]"
    cel = items + "".join(f".map({v},{items}" for v in "abcde") + ".map(f, 1)" + ")" * 5 + ".size() == 6"
    when = json.dumps([{"cel": cel}])
    start = time.monotonic()
    p = root.run([*root.step_args(0), "-timeout", "1s", "--when_expressions", when, *sh("echo ran")])
    elapsed = time.monotonic() - start
    assert p.returncode == 1, p.stderr
    assert "ran" not in p.stdout
    assert elapsed < 8, elapsed  # the deadline, not the evaluation, ended it
    assert (root.run_dir(0) / "out.err").exists()
    assert root.values()["Reason"] == ("TimeoutExceeded", 3)
