"""Running the step's command (spec §4.7).

The child is started with ``posix_spawn`` (not ``subprocess``, whose import alone costs a step
~9 ms) in its own process group; every signal the entrypoint receives (except SIGCHLD) is
forwarded to that group; stdout/stderr are optionally teed to files; the run context's end
(timeout or cancellation) kills the child.

Deliberate differences from Tekton, both about not hanging a step:
* on timeout/cancel the whole process group is killed, not only the direct child, so grandchildren
  cannot keep the step alive (Tekton §10 item 6);
* after the child exits, output still held open by a grandchild is copied for at most
  ``PIPE_GRACE`` seconds (Go waits without limit and can hang forever).
"""

from __future__ import annotations

import contextlib
import os
import select
import signal
import threading

from entrypoint._internal.go.errors import GoPathError, errno_text, mkdir_all, path_error
from entrypoint.errors import ChildExitError, ContextError, StartError

TYPE_CHECKING = False  # not typing.TYPE_CHECKING: importing typing costs a step ~1.7 ms
if TYPE_CHECKING:
    from collections.abc import Callable, Mapping
    from typing import BinaryIO

    from entrypoint._internal.step.context import Context

PIPE_GRACE = 2.0
# How often the ``while_running`` callbacks run (the cancel file's check: a stat).  Tekton's own
# waiter re-checks once a second; the kubelet updates the downward volume less often still.
WATCH_INTERVAL = 0.1

# Signals Go names in exec.ExitError texts ("signal: interrupt"); only used in messages.
_GO_SIGNAL_NAMES = {
    signal.SIGHUP: "hangup",
    signal.SIGINT: "interrupt",
    signal.SIGQUIT: "quit",
    signal.SIGILL: "illegal instruction",
    signal.SIGTRAP: "trace/breakpoint trap",
    signal.SIGABRT: "aborted",
    signal.SIGBUS: "bus error",
    signal.SIGFPE: "floating point exception",
    signal.SIGKILL: "killed",
    signal.SIGUSR1: "user defined signal 1",
    signal.SIGSEGV: "segmentation fault",
    signal.SIGUSR2: "user defined signal 2",
    signal.SIGPIPE: "broken pipe",
    signal.SIGALRM: "alarm clock",
    signal.SIGTERM: "terminated",
    signal.SIGCHLD: "child exited",
    signal.SIGCONT: "continued",
    signal.SIGSTOP: "stopped (signal)",
    signal.SIGTSTP: "stopped",
    signal.SIGTTIN: "stopped (tty input)",
    signal.SIGTTOU: "stopped (tty output)",
    signal.SIGURG: "urgent I/O condition",
    signal.SIGXCPU: "CPU time limit exceeded",
    signal.SIGXFSZ: "file size limit exceeded",
    signal.SIGVTALRM: "virtual timer expired",
    signal.SIGPROF: "profiling timer expired",
    signal.SIGWINCH: "window changed",
    signal.SIGIO: "I/O possible",
    signal.SIGPWR: "power failure",
    signal.SIGSYS: "bad system call",
}

# Never intercepted: they cannot be caught, are the child's own notifications, or are synchronous
# faults whose default action Python itself relies on.
_NOT_FORWARDED = {
    signal.SIGKILL,
    signal.SIGSTOP,
    signal.SIGCHLD,
    signal.SIGSEGV,
    signal.SIGBUS,
    signal.SIGFPE,
    signal.SIGILL,
    signal.SIGSYS,
    signal.SIGTRAP,
}


def go_signal_name(signum: int) -> str:
    try:
        return _GO_SIGNAL_NAMES[signal.Signals(signum)]
    except (KeyError, ValueError):
        return f"signal {signum}"


class ProcessRunner:
    """Runs the step's command as a child: stdio, signals forwarded, timeout and cancel file."""

    def __init__(
        self,
        stdout_path: str = "",
        stderr_path: str = "",
        env: Mapping[str, str] | None = None,
        hermetic: bool = False,
    ) -> None:
        self.stdout_path = stdout_path
        self.stderr_path = stderr_path
        self.env = env
        self.hermetic = hermetic
        # Called right after the child starts, when this thread goes idle: work started earlier
        # on another thread would compete with this one for the GIL while it starts the child.
        self.when_idle: list[Callable[[], object]] = []
        self.while_running: list[Callable[[], object]] = []

    def run(self, ctx: Context, args: list[str]) -> None:
        if not args:
            return
        sinks: list[BinaryIO] = []
        try:
            out_file = _open_output(self.stdout_path, sinks)
            err_file = _open_output(self.stderr_path, sinks)
            self._run(ctx, args, out_file, err_file)
        finally:
            for f in sinks:
                f.close()

    def _run(
        self, ctx: Context, args: list[str], out_file: BinaryIO | None, err_file: BinaryIO | None
    ) -> None:
        if ctx.err() is not None:
            raise _ctx_err(ctx)
        env = dict(self.env) if self.env is not None else dict(os.environ)
        pid_box: list[int] = []
        pending: list[int] = []
        previous: dict[signal.Signals, object] = {}

        def forward(signum: int, _frame: object) -> None:
            if not pid_box:
                pending.append(signum)  # arrived before the child existed
                return
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(pid_box[0], signum)

        # Subscribe before starting, as Go does, so no signal is lost between spawn and handler setup.
        if threading.current_thread() is threading.main_thread():
            for sig in signal.valid_signals():
                if sig in _NOT_FORWARDED:
                    continue
                try:
                    previous[sig] = signal.signal(sig, forward)
                except (OSError, ValueError):
                    continue
        copiers: list[threading.Thread] = []
        try:
            pipes = {1: _pipe_if(out_file), 2: _pipe_if(err_file)}
            try:
                pid = self._spawn(args, env, {fd: p[1] for fd, p in pipes.items() if p is not None})
            finally:
                for p in pipes.values():
                    if p is not None:
                        os.close(p[1])
            pid_box.append(pid)
            for hook in self.when_idle:
                hook()
            for fd, file in ((1, out_file), (2, err_file)):
                pipe = pipes[fd]
                if pipe is not None and file is not None:
                    copiers.append(_start_copy(pipe[0], fd, file))
            for signum in pending:
                forward(signum, None)

            def kill_group() -> None:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(pid, signal.SIGKILL)

            ctx.on_done(kill_group)
            status = _wait(pid, self.while_running)
            for t in copiers:
                t.join(PIPE_GRACE)
        finally:
            for signum, handler in previous.items():
                with contextlib.suppress(OSError, ValueError, TypeError):
                    signal.signal(signum, handler)  # type: ignore[arg-type]
        if status == 0:
            return
        if ctx.err() is not None:
            raise _ctx_err(ctx)
        if os.WIFSIGNALED(status):
            raise ChildExitError(-1, go_signal_name(os.WTERMSIG(status)))
        raise ChildExitError(os.waitstatus_to_exitcode(status))

    def _spawn(self, args: list[str], env: dict[str, str], redirects: dict[int, int]) -> int:
        """Start the child in its own process group; returns its pid."""
        path = _look_path(args[0], env)
        if self.hermetic:
            from entrypoint._internal.step.hermetic import spawn_hermetic

            return spawn_hermetic(path, args, env, redirects)
        actions = [(os.POSIX_SPAWN_DUP2, w, fd) for fd, w in redirects.items()]
        try:
            # setsigdef: Python ignores SIGPIPE and SIGXFSZ; the step must get the defaults back.
            return os.posix_spawn(
                path, args, env, file_actions=actions, setpgroup=0,
                setsigdef=(signal.SIGPIPE, signal.SIGXFSZ),
            )  # fmt: skip
        except OSError as exc:
            raise StartError(f"fork/exec {path}: {errno_text(exc.errno)}") from exc


def _wait(pid: int, watches: list[Callable[[], object]]) -> int:
    """Wait for the child while staying responsive to signals, running ``watches`` every
    ``WATCH_INTERVAL`` seconds.

    The kernel may deliver a signal meant for the entrypoint to any of its threads (the tee
    copiers, the signer's prefetch, ...).  Python runs handlers on the main thread only, so a main
    thread blocked in waitpid would not notice a signal another thread received, and it would never
    be forwarded.  So the main thread sleeps on the signal wakeup fd (written whichever thread the
    signal lands on) and on a pidfd for the child, and reaps only once the child has exited.
    """
    import time

    wake_r, wake_w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
    try:
        previous_wakeup = signal.set_wakeup_fd(wake_w)
    except ValueError:  # not the main thread: nobody forwards signals here anyway
        os.close(wake_r)
        os.close(wake_w)
        wake_r = wake_w = -1
    try:
        try:
            pidfd: int | None = os.pidfd_open(pid)
        except OSError:
            pidfd = None  # kernels before 5.3: poll for the exit
        if wake_r < 0 and pidfd is None and not watches:
            return os.waitpid(pid, 0)[1]
        fds = [fd for fd in (wake_r, pidfd) if fd is not None and fd >= 0]
        timeout = None if pidfd is not None else 0.05
        if watches:
            timeout = min(timeout or WATCH_INTERVAL, WATCH_INTERVAL)
        next_watch = time.monotonic() + WATCH_INTERVAL
        while True:
            ready, _, _ = select.select(fds, [], [], timeout)
            if wake_r >= 0 and wake_r in ready:
                with contextlib.suppress(BlockingIOError):
                    while os.read(wake_r, 512):
                        pass
            done, status = os.waitpid(pid, os.WNOHANG)
            if done == pid:
                return status
            if watches and time.monotonic() >= next_watch:
                for watch in watches:
                    watch()
                next_watch = time.monotonic() + WATCH_INTERVAL
    finally:
        if wake_r >= 0:
            signal.set_wakeup_fd(previous_wakeup)
            os.close(wake_r)
            os.close(wake_w)
        if pidfd is not None:
            os.close(pidfd)


def _ctx_err(ctx: Context) -> ContextError:
    err = ctx.err()
    assert err is not None
    return err


def _look_path(name: str, env: Mapping[str, str]) -> str:
    """Go's ``exec.LookPath``: names with a slash are used as they are, others searched in PATH."""
    if "/" in name:
        return name
    for directory in env.get("PATH", os.environ.get("PATH", "")).split(":"):
        candidate = os.path.join(directory or ".", name)
        if os.path.isfile(candidate) and os.access(candidate, os.X_OK):
            return candidate
    raise StartError(f'exec: "{name}": executable file not found in $PATH')


def _pipe_if(sink: BinaryIO | None) -> tuple[int, int] | None:
    return os.pipe() if sink is not None else None


def _open_output(path: str, sinks: list[BinaryIO]) -> BinaryIO | None:
    if not path:
        return None
    parent = os.path.dirname(path)
    if parent:
        try:
            mkdir_all(parent)
        except GoPathError as exc:
            raise StartError(f"error creating parent directory: {exc}") from exc
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC, 0o644)
    except OSError as exc:
        raise StartError(f"error opening {path}: {path_error('open', path, exc)}") from exc
    f: BinaryIO = os.fdopen(fd, "wb", buffering=0)
    sinks.append(f)
    return f


def _start_copy(fd: int, console_fd: int, file: BinaryIO) -> threading.Thread:
    def copy() -> None:
        try:
            while chunk := os.read(fd, 65536):
                _write_all(console_fd, chunk)
                file.write(chunk)
        except OSError:
            pass  # the console or file went away; the child's exit status still matters more
        finally:
            os.close(fd)

    t = threading.Thread(target=copy, name="tee", daemon=True)
    t.start()
    return t


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]
