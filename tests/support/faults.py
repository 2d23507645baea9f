"""Shared by the fault matrix (tests/integration/test_fault_matrix*.py): the entrypoint started in a
session of its own, so that every process it leaves behind can be found; the invariants every fault
must keep; a hung agent; and a full filesystem.
"""

from __future__ import annotations

import contextlib
import errno
import os
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path

import pytest

from tests.support.tekton import ROOT_ENV, TektonRoot, entrypoint_command

# The line a SPIRE-signed step always logs first (Tekton's), not an error.
SPIRE_NOTICE = "SPIRE is enabled in this build, enableSpire is supported"
# Every entry a signature adds, in either format and with either backend.
SIGNING_ENTRIES = frozenset({"SVID", "RESULT_MANIFEST", "RESULT_MANIFEST.sig", "SIGNATURE", "SA_TOKEN",
                             "SA_TOKEN_KEY", "SA_TOKEN.sig", "a.sig"})  # fmt: skip
# How long a process the entrypoint started may outlive it: an exit on a pipe's EOF takes
# milliseconds; a helper left fetching would live on for the rest of its budget.
SURVIVOR_GRACE = 5.0
HELPER_MARK = "entrypoint._internal.signing.forked"


def sh(script: str) -> list[str]:
    return ["-entrypoint", "/bin/sh", "--", "-c", script]


def start(
    root: TektonRoot, args: Sequence[str], env: Mapping[str, str] | None = None
) -> subprocess.Popen[str]:
    """The entrypoint as :meth:`TektonRoot.popen` starts it (``ENTRYPOINT_BIN`` honoured), but as the
    leader of a new session: everything it starts (its identity helper, the command, the command's
    children) is in that session, whatever process group it is put in, and stays findable after the
    entrypoint has gone."""
    full_env = {**os.environ, ROOT_ENV: str(root.path)}
    full_env.pop("TEKTON_PLATFORM_COMMANDS", None)
    full_env.update(env or {})
    return subprocess.Popen(
        [*entrypoint_command(), *args],
        env=full_env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )


def finish(
    proc: subprocess.Popen[str], allowed: Callable[[str], bool] = lambda _: False, timeout: float = 90
) -> tuple[subprocess.CompletedProcess[str], dict[int, str]]:
    """Wait for the entrypoint started by :func:`start`; returns what it did and the processes of its
    session still alive ``SURVIVOR_GRACE`` seconds later (see :func:`survivors`).  Those are killed
    before its output is read: they hold its stdout and stderr open."""
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        kill_session(proc.pid)
        proc.wait()
        raise AssertionError(f"the entrypoint did not end within {timeout}s") from None
    left = survivors(proc.pid, allowed)
    kill_session(proc.pid)
    out, err = proc.communicate(timeout=30)
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err), left


def _stat(pid: int) -> tuple[str, int] | None:
    """(state, session id) of ``pid``, or None when it is gone."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_bytes()
    except OSError:
        return None
    fields = raw[raw.rindex(b")") + 2 :].split()  # the command name may hold spaces and parentheses
    return fields[0].decode(), int(fields[3])


def cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def in_session(sid: int) -> dict[int, str]:
    """Live (not zombie) processes of session ``sid``, with their command lines."""
    found: dict[int, str] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        st = _stat(int(entry))
        if st is not None and st[1] == sid and st[0] != "Z":
            found[int(entry)] = cmdline(int(entry))
    return found


def survivors(sid: int, allowed: Callable[[str], bool] = lambda _: False) -> dict[int, str]:
    """What is still alive in session ``sid`` ``SURVIVOR_GRACE`` seconds after its leader ended,
    except the processes whose command line ``allowed`` accepts."""
    deadline = time.monotonic() + SURVIVOR_GRACE
    while True:
        left = {pid: cmd for pid, cmd in in_session(sid).items() if not allowed(cmd)}
        if not left or time.monotonic() >= deadline:
            return left
        time.sleep(0.05)


def kill_session(sid: int) -> None:
    """Cleanup: whatever the test's entrypoint left behind (a test that saw it has already failed)."""
    for pid in in_session(sid):
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, signal.SIGKILL)


def error_lines(stderr: str) -> list[str]:
    """The entrypoint's log lines, without Tekton's own notice that SPIRE is on."""
    return [line for line in stderr.splitlines() if SPIRE_NOTICE not in line]


def one_clear_line(stderr: str, *words: str) -> None:
    """Exactly one error line, naming the cause (every word of ``words``), and no traceback."""
    assert "Traceback" not in stderr, stderr
    lines = error_lines(stderr)
    assert len(lines) == 1, stderr
    for word in words:
        assert word in lines[0], stderr


def wait_for(what: Callable[[], bool], timeout: float = 60, description: str = "") -> None:
    deadline = time.monotonic() + timeout
    while not what():
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {description or what}")
        time.sleep(0.02)


@contextlib.contextmanager
def hung_agent(path: str) -> Iterator[str]:
    """A unix socket that takes connections and never answers: an agent slower than any budget.
    Yields its ``unix://`` address."""
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    held: list[socket.socket] = []
    try:
        server.bind(path)
        server.listen(64)
        server.settimeout(0.05)
        stop = [False]

        def accept() -> None:
            while not stop[0]:
                with contextlib.suppress(TimeoutError, OSError):
                    conn, _ = server.accept()
                    held.append(conn)  # kept open, never read or written

        import threading

        thread = threading.Thread(target=accept, name="hung-agent", daemon=True)
        thread.start()
        try:
            yield "unix://" + path
        finally:
            stop[0] = True
            thread.join(5)
    finally:
        for conn in held:
            conn.close()
        server.close()
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)


# -- a full filesystem ----------------------------------------------------------------------------------


@contextlib.contextmanager
def small_tmpfs(directory: Path, size: str = "64k", inodes: int = 64) -> Iterator[Path]:
    """A tmpfs of ``size`` bytes and ``inodes`` inodes mounted on ``directory`` (created), unmounted after.
    Skips the test when mounting is not permitted."""
    directory.mkdir(parents=True, exist_ok=True)
    p = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size},nr_inodes={inodes},mode=0777", "tmpfs", str(directory)],
        capture_output=True,
        text=True,
        check=False,
    )
    if p.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs to fill (needs root and CAP_SYS_ADMIN): {p.stderr.strip()}")
    try:
        yield directory
    finally:
        if subprocess.run(["umount", str(directory)], capture_output=True, check=False).returncode != 0:
            subprocess.run(["umount", "-l", str(directory)], capture_output=True, check=False)


def fill_blocks(directory: Path) -> None:
    """Take every free data block of ``directory``'s filesystem (one file, written to ENOSPC)."""
    fd = os.open(directory / ".filler", os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        chunk = b"\0" * 4096
        while True:
            os.write(fd, chunk)
    except OSError as exc:
        if exc.errno != errno.ENOSPC:
            raise
    finally:
        os.close(fd)
    assert os.statvfs(directory).f_bavail == 0


def fill_inodes(directory: Path) -> None:
    """Take every free inode of ``directory``'s filesystem (empty files, created to ENOSPC)."""
    for i in range(1 << 16):
        try:
            (directory / f".inode{i}").touch()
        except OSError as exc:
            if exc.errno != errno.ENOSPC:
                raise
            return
    raise AssertionError(f"{directory} never ran out of inodes")


def fill(directory: Path) -> None:
    """No block and no inode left: no file can be created or grown."""
    fill_blocks(directory)
    fill_inodes(directory)
