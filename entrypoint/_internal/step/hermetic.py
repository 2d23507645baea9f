"""Hermetic execution: the child runs in new user, mount, PID and network namespaces (spec §4.7.6).

Go does this with clone flags and uid/gid maps written by the parent.  Python's subprocess has no
such knob, and a process that unshares a PID namespace does not enter it itself, only its children
do.  So the forked child unshares, waits until the parent has written its maps, and forks once
more: the grandchild execs the command as PID 1 of the new namespace, while the intermediate
process only relays the grandchild's exit status.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import threading

from entrypoint.errors import HermeticError

CLONE_NEWNS = 0x00020000
CLONE_NEWUSER = 0x10000000
CLONE_NEWPID = 0x20000000
CLONE_NEWNET = 0x40000000
_FULL_RANGE = "0 0 4294967295\n"


def spawn_hermetic(path: str, args: list[str], env: dict[str, str], redirects: dict[int, int]) -> int:
    """Start ``args`` isolated; returns the pid, which the caller waits for with ``os.waitpid``."""
    import subprocess

    launcher = HermeticLauncher()
    launcher.start()
    try:
        child = subprocess.Popen(
            args,
            executable=path,
            env=env,
            stdout=redirects.get(1),
            stderr=redirects.get(2),
            process_group=0,
            preexec_fn=launcher.preexec,  # noqa: PLW1509 - the namespaces need code between fork and exec
            close_fds=True,
        )
    except OSError as exc:
        raise HermeticError(f"fork/exec {path}: {(exc.strerror or str(exc)).lower()}") from exc
    # The runner reaps the child itself; a returncode keeps Popen from reaping it first.
    child.returncode = 0
    launcher.check()
    return child.pid


class HermeticLauncher:
    """Starts the step's command in new user, mount, PID and network namespaces (``TEKTON_HERMETIC=1``)."""

    def __init__(self) -> None:
        self._libc = ctypes.CDLL(None, use_errno=True)
        self._to_parent_r, self._to_parent_w = os.pipe2(os.O_CLOEXEC)
        self._to_child_r, self._to_child_w = os.pipe2(os.O_CLOEXEC)
        self._error: str | None = None
        self._thread = threading.Thread(target=self._write_maps, name="hermetic-maps", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def _write_maps(self) -> None:
        # Popen blocks until the grandchild execs, so the parent's half must run on its own thread.
        try:
            data = os.read(self._to_parent_r, 64)
            if not data.startswith(b"ok "):
                self._error = "could not create namespaces: " + data.decode(errors="replace").strip()
                return
            pid = int(data.split()[1])
            try:
                for name, content in (
                    ("uid_map", _FULL_RANGE),
                    ("setgroups", "allow"),
                    ("gid_map", _FULL_RANGE),
                ):
                    with open(f"/proc/{pid}/{name}", "w") as f:
                        f.write(content)
            except OSError as exc:
                self._error = f"writing user namespace maps: {exc.strerror}"
        finally:
            with contextlib.suppress(OSError):
                os.write(self._to_child_w, b"go" if self._error is None else b"no")
            for fd in (self._to_parent_r, self._to_child_w):
                with contextlib.suppress(OSError):
                    os.close(fd)

    def preexec(self) -> None:
        """Runs in the forked child before exec."""
        flags = CLONE_NEWUSER | CLONE_NEWNS | CLONE_NEWPID | CLONE_NEWNET
        if self._libc.unshare(flags) != 0:
            err = ctypes.get_errno()
            os.write(self._to_parent_w, f"unshare: {os.strerror(err)}".encode())
            os._exit(126)
        os.write(self._to_parent_w, f"ok {os.getpid()}".encode())
        if os.read(self._to_child_r, 2) != b"go":
            os._exit(126)
        pid = os.fork()
        if pid == 0:
            return  # the grandchild: PID 1 of the new namespace, goes on to exec the command
        # The intermediate: like Go's child (a PID-namespace init), it does not react to forwarded
        # signals; only SIGKILL on timeout/cancel ends it, and the kernel then ends its namespace.
        for sig in signal.valid_signals() - {signal.SIGCHLD}:  # an ignored SIGCHLD auto-reaps: no status
            with contextlib.suppress(OSError, ValueError):
                signal.signal(sig, signal.SIG_IGN)
        os.closerange(3, 65536)  # releases subprocess's exec-status pipe so Popen can return
        _, status = os.waitpid(pid, 0)
        if os.WIFSIGNALED(status):
            died_of = os.WTERMSIG(status)
            signal.signal(died_of, signal.SIG_DFL)
            os.kill(os.getpid(), died_of)
        os._exit(os.waitstatus_to_exitcode(status) if os.WIFEXITED(status) else 1)

    def check(self) -> None:
        self._thread.join(5.0)
        for fd in (self._to_parent_w, self._to_child_r):
            with contextlib.suppress(OSError):
                os.close(fd)
        if self._error is not None:
            raise HermeticError(f"hermetic execution (TEKTON_HERMETIC=1) failed: {self._error}")
