"""Failure paths through the real process: fatal errors, bad inputs, signals at odd times.

Each must end with a clear one-line error (no traceback), the exit status Tekton uses, and
whatever the step did still recorded where Tekton records it.
"""

from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path

from tests.support.tekton import TektonRoot


def sh(script: str) -> list[str]:
    return ["-entrypoint", "/bin/sh", "--", "-c", script]


def no_traceback(stderr: str) -> None:
    assert "Traceback" not in stderr, stderr


def test_post_file_that_cannot_be_written_is_fatal(root: TektonRoot) -> None:
    blocker = root.path / "blocker"
    blocker.write_text("a file where a directory should be")
    p = root.run(["-post_file", str(blocker / "out"), "-termination_path", str(root.termination),
                  "-step_metadata_dir", str(root.run_dir(0) / "status"), "-breakpoint_on_failure",
                  "-timeout", "100ms", *sh("sleep 3")])  # fmt: skip
    # Go's post writer calls log.Fatalf: exit 1 at once, even with breakpoint_on_failure, and no
    # termination message is written.
    assert p.returncode == 1
    no_traceback(p.stderr)
    # The timeout marks the step failed, so the post file is <post>.err.
    assert (
        f'Error creating parent directory of "{blocker}/out.err": mkdir {blocker}: not a directory'
        in p.stderr
    )
    assert not root.termination.exists()


def test_unwritable_termination_path_is_one_clear_line(root: TektonRoot) -> None:
    missing = root.path / "nodir" / "termination"
    p = root.run(["-termination_path", str(missing), "-step_metadata_dir", str(root.run_dir(0) / "status"),
                  *sh("true")])  # fmt: skip
    assert p.returncode == 1
    no_traceback(p.stderr)
    assert f"Error while writing message: open {missing}: no such file or directory" in p.stderr


def test_unwritable_termination_path_in_results_phase(root: TektonRoot) -> None:
    (root / "results" / "r").write_text("x")
    missing = root.path / "nodir" / "termination"
    p = root.run(["-termination_path", str(missing), "-step_metadata_dir", str(root.run_dir(0) / "status"),
                  "-results", "r", *sh("true")])  # fmt: skip
    assert p.returncode == 1
    no_traceback(p.stderr)


def test_metadata_dir_that_cannot_be_created(root: TektonRoot) -> None:
    blocker = root.path / "blocker"
    blocker.write_text("")
    p = root.run(["-termination_path", str(root.termination), "-step_metadata_dir", str(blocker / "status"),
                  "-post_file", str(root.run_dir(0) / "out"), *sh("echo ran")])  # fmt: skip
    assert p.returncode == 1
    no_traceback(p.stderr)
    assert "ran" not in p.stdout
    assert f"mkdir {blocker}: not a directory" in p.stderr
    assert root.termination.read_text() == "[]"  # R1 fails before any entry is collected
    assert not (root.run_dir(0) / "out").exists() and not (root.run_dir(0) / "out.err").exists()


def test_sigint_while_waiting_kills_like_go(root: TektonRoot) -> None:
    proc = root.popen(["-wait_file", str(root.path / "never"), *root.step_args(0), *sh("echo ran")])
    time.sleep(0.5)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == -signal.SIGINT
    no_traceback(err)
    assert out == ""
    assert not root.termination.exists()


def test_invalid_utf8_from_argv_becomes_replacement_characters(root: TektonRoot) -> None:
    name = os.fsdecode(b"a\xff")
    (root / "results").joinpath(name).write_text("v")
    p = root.run([*root.step_args(0), "-results", name, *sh("true")])
    assert p.returncode == 0, p.stderr
    raw = root.termination.read_bytes()
    raw.decode("utf-8")  # valid UTF-8, as Go writes it
    assert json.loads(raw)[0]["key"] == "a\ufffd"


def test_huge_timeout_is_accepted(root: TektonRoot) -> None:
    p = root.run([*root.step_args(0), "-timeout", "9223372036854775807ns", *sh("true")])
    assert p.returncode == 0
    no_traceback(p.stderr)


def test_unreadable_artifacts_are_fatal(root: TektonRoot) -> None:
    (root.run_dir(0) / "status" / "artifacts" / "provenance.json").mkdir(parents=True)
    p = root.run([*root.step_args(0), *sh("true")])
    assert p.returncode == 1
    no_traceback(p.stderr)
    prov = root.run_dir(0) / "status" / "artifacts" / "provenance.json"
    assert f"Error while handling step artifacts: read {prov}: is a directory" in p.stderr
    assert not root.termination.exists()  # log.Fatal: the finaliser never runs


def test_empty_artifacts_file_is_one_empty_entry(root: TektonRoot) -> None:
    (root / "artifacts" / "provenance.json").write_text("")
    p = root.run([*root.step_args(0), *sh("true")])
    assert p.returncode == 0
    assert root.values()[str(root / "artifacts" / "provenance.json")] == ("", 6)


def test_unreadable_result_names_the_file(root: TektonRoot) -> None:
    (root / "results" / "dir").mkdir()
    p = root.run([*root.step_args(0), "-results", "dir", *sh("true")])
    assert p.returncode == 1
    no_traceback(p.stderr)
    assert f"read {root / 'results' / 'dir'}: is a directory" in p.stderr
    assert (root.run_dir(0) / "out").exists()  # the post file was written before results


def test_breakpoint_exit_file_missing_or_unparsable_exits_0(root: TektonRoot) -> None:
    post = root.run_dir(0) / "out"
    for content, suffix in ((None, ".breakpointexit.err"), ("not a number\n", ".breakpointexit")):
        proc = root.popen([*root.step_args(0), "-breakpoint_on_failure", *sh("exit 5")])
        time.sleep(0.3)
        Path(str(post) + suffix).write_text(content or "1")
        _, err = proc.communicate(timeout=30)
        assert proc.returncode == 0, err
        assert "error occurred while reading breakpoint exit code" in err
        Path(str(post) + suffix).unlink()


def test_wait_error_other_than_skip_fails_without_reason(root: TektonRoot) -> None:
    blocker = root.path / "blocker"
    blocker.write_text("")
    p = root.run(["-wait_file", str(blocker / "out"), *root.step_args(0), *sh("echo ran")])
    assert p.returncode == 1
    no_traceback(p.stderr)
    assert f'waiting for "{blocker}/out": stat {blocker}/out: not a directory' in p.stderr
    assert (root.run_dir(0) / "out.err").exists()
    assert set(root.values()) == {"StartedAt"}


def test_cancel_after_the_command_finished_is_success(root: TektonRoot) -> None:
    proc = root.popen([*root.step_args(0), *sh("echo done")])
    proc.communicate(timeout=30)
    (root / "downward" / "cancel").write_text("CANCEL")  # too late to matter
    assert proc.returncode == 0
    assert (root.run_dir(0) / "status" / "exitCode").read_text() == "0"


def test_result_that_is_a_fifo_fails_instead_of_hanging(root: TektonRoot) -> None:
    os.mkfifo(root / "results" / "r")
    p = root.run([*root.step_args(0), "-results", "r", *sh("true")], timeout=30)
    assert p.returncode == 1
    no_traceback(p.stderr)
    assert "not a regular file" in p.stderr
    assert (root.run_dir(0) / "out").exists()


def test_result_that_is_a_symlink_to_a_regular_file_is_read(root: TektonRoot, tmp_path: Path) -> None:
    (tmp_path / "real").write_text("linked")
    (root / "results" / "r").symlink_to(tmp_path / "real")
    p = root.run([*root.step_args(0), "-results", "r", *sh("true")])
    assert p.returncode == 0, p.stderr
    assert root.values()["r"] == ("linked", 1)
