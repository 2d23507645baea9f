"""§9.2 post_writer_test and runner_test, against the real implementations."""

from __future__ import annotations

import os
import signal
import threading
import time
from pathlib import Path

import pytest

from entrypoint._internal.step.context import Context
from entrypoint._internal.step.postwriter import FilePostWriter
from entrypoint._internal.step.runner import ProcessRunner
from entrypoint.errors import ChildExitError, ContextCanceled, DeadlineExceeded, PostFileError, StartError

# -- post writer ---------------------------------------------------------------------------------------


def test_writes_content(tmp_path: Path) -> None:
    FilePostWriter().write(str(tmp_path / "sample.txt"), "hello")
    assert (tmp_path / "sample.txt").read_text() == "hello"


def test_empty_path_does_nothing(tmp_path: Path) -> None:
    FilePostWriter().write("", "ignored")
    assert list(tmp_path.iterdir()) == []


def test_empty_file_in_new_subdirectory(tmp_path: Path) -> None:
    target = tmp_path / "a" / "b" / "out"
    FilePostWriter().write(str(target), "")
    assert target.read_bytes() == b""


def test_existing_file_is_truncated(tmp_path: Path) -> None:
    target = tmp_path / "exitCode"
    target.write_text("12345")
    FilePostWriter().write(str(target), "0")
    assert target.read_text() == "0"


def test_failures_name_the_file_go_style(tmp_path: Path) -> None:
    (tmp_path / "d").mkdir()
    with pytest.raises(PostFileError, match=f'^Creating "{tmp_path}/d": open {tmp_path}/d: is a directory$'):
        FilePostWriter().write(str(tmp_path / "d"), "")
    (tmp_path / "f").write_text("")
    parent_error = (
        f'^Error creating parent directory of "{tmp_path}/f/x": mkdir {tmp_path}/f: not a directory$'
    )
    with pytest.raises(PostFileError, match=parent_error):
        FilePostWriter().write(str(tmp_path / "f" / "x"), "")


# -- runner ---------------------------------------------------------------------------------------------


def test_deadline_around_a_longer_command(tmp_path: Path) -> None:
    with pytest.raises(DeadlineExceeded):
        ProcessRunner().run(Context(timeout=0.001), ["sleep", "0.5"])


def test_cancel_before_start(tmp_path: Path) -> None:
    ctx = Context()
    ctx.cancel()
    marker = tmp_path / "ran"
    with pytest.raises(ContextCanceled):
        ProcessRunner().run(ctx, ["touch", str(marker)])
    assert not marker.exists()


def test_cancel_during_the_command(tmp_path: Path) -> None:
    ctx = Context()
    threading.Timer(0.2, ctx.cancel).start()
    start = time.monotonic()
    with pytest.raises(ContextCanceled):
        ProcessRunner().run(ctx, ["sleep", "3"])
    assert time.monotonic() - start < 2.5  # killed, not waited for


def test_cancel_after_the_command_finished_is_success() -> None:
    ctx = Context()
    ProcessRunner().run(ctx, ["true"])
    ctx.cancel()


def test_exit_status_and_signal_texts() -> None:
    with pytest.raises(ChildExitError, match=r"^exit status 3$") as exc:
        ProcessRunner().run(Context(), ["sh", "-c", "exit 3"])
    assert exc.value.exit_code == 3
    with pytest.raises(ChildExitError, match=r"^signal: interrupt$") as exc:
        ProcessRunner().run(Context(), ["sh", "-c", "kill -INT $$"])
    assert exc.value.exit_code == -1


def test_signal_to_the_entrypoint_reaches_the_child_group() -> None:
    def send() -> None:
        time.sleep(0.3)
        os.kill(os.getpid(), signal.SIGUSR1)

    threading.Thread(target=send).start()
    with pytest.raises(ChildExitError, match=r"^signal: user defined signal 1$"):
        ProcessRunner().run(Context(), ["sleep", "5"])


def test_start_failures(tmp_path: Path) -> None:
    with pytest.raises(StartError, match=r'^exec: "no-such-cmd-xyz": executable file not found in \$PATH$'):
        ProcessRunner().run(Context(), ["no-such-cmd-xyz"])
    with pytest.raises(StartError, match=f"^fork/exec {tmp_path}/nope: no such file or directory$"):
        ProcessRunner().run(Context(), [f"{tmp_path}/nope"])


def test_tee_to_files(tmp_path: Path, capfd: pytest.CaptureFixture[str]) -> None:
    out, err = tmp_path / "stdout", tmp_path / "subpath" / "stderr"
    ProcessRunner(str(out), str(err)).run(Context(), ["sh", "-c", "echo hello world; echo hello world >&2"])
    captured = capfd.readouterr()
    assert captured.out == "hello world\n" and captured.err == "hello world\n"
    assert out.read_text() == "hello world\n" and err.read_text() == "hello world\n"


def test_empty_command_is_a_no_op() -> None:
    ProcessRunner().run(Context(), [])
