"""Waiting for the previous step's post file (and for the cancel file).

Semantics are Tekton's (§4.2 of the spec): the file satisfies the wait once it exists (and, with
``expect_content``, is non-empty); a sibling ``<file>.err`` means the previous step failed; the wait
ends early when its context does.  Unlike Tekton, which re-checks once a second, this waiter sleeps
on inotify events for the nearest existing ancestor directory, so a hand-off takes milliseconds.
"""

from __future__ import annotations

import contextlib
import os
import select
import threading

from entrypoint._internal.go.errors import path_error
from entrypoint._internal.go.flag import go_quote
from entrypoint.errors import ContextError, SkipError, WaitError

TYPE_CHECKING = False  # not typing.TYPE_CHECKING: importing typing costs a step ~1.7 ms
if TYPE_CHECKING:
    from entrypoint._internal.step.context import Context
    from entrypoint._internal.step.inotify import Inotify

# Re-check this often even with inotify, in case events are not delivered (e.g. network filesystems).
SAFETY_INTERVAL = 0.25
# Without inotify, poll this often: cheap (two stats) and far below Tekton's one second.
POLL_INTERVAL = 0.01


def _satisfied(file: str, expect_content: bool) -> bool:
    try:
        st = os.stat(file)
    except FileNotFoundError:
        return False
    except OSError as exc:
        raise WaitError(f"waiting for {go_quote(file)}: {path_error('stat', file, exc)}") from exc
    return not expect_content or st.st_size > 0


def _nearest_existing_dir(file: str) -> str:
    d = os.path.dirname(os.path.abspath(file))
    while not os.path.isdir(d):
        parent = os.path.dirname(d)
        if parent == d:
            break
        d = parent
    return d


class FileWaiter:
    """Waits for a file by inotify where it can, else by polling, until it exists or the run ends."""

    def __init__(self, use_inotify: bool = True) -> None:
        self.use_inotify = use_inotify

    def wait(self, ctx: Context, file: str, expect_content: bool, breakpoint_on_failure: bool) -> None:
        if not file:
            return
        notifier: Inotify | None = None
        if self.use_inotify:
            # Imported here: ctypes costs ~1.5 ms, and a step without wait files never needs it.
            from entrypoint._internal.step.inotify import Inotify

            try:
                notifier = Inotify()
            except OSError:
                notifier = None
        wake = _WakePipe()
        wake_r = wake.read_fd
        ctx.on_done(wake.poke)
        watched = ""
        try:
            while True:
                # Watch before checking, so that an event between the check and the sleep is not lost.
                # Until the nearest directory is stable: one created between finding it and
                # watching it sends no event to the watch on its parent.
                while notifier is not None:
                    target = _nearest_existing_dir(file)
                    if target == watched or not notifier.add_watch(target):
                        break
                    watched = target
                if _satisfied(file, expect_content):
                    return
                if os.path.exists(file + ".err"):
                    if breakpoint_on_failure:
                        return
                    raise SkipError()
                err = ctx.err()
                if err is not None:
                    raise err
                fds = [wake_r] + ([notifier.fileno()] if notifier and watched else [])
                timeout = SAFETY_INTERVAL if notifier and watched else POLL_INTERVAL
                ready, _, _ = select.select(fds, [], [], timeout)
                if notifier is not None and notifier.fileno() in ready:
                    notifier.drain()
                if wake_r in ready:
                    done_err: ContextError | None = ctx.err()
                    if done_err is not None:
                        raise done_err
        finally:
            if notifier is not None:
                notifier.close()
            wake.close()


class _WakePipe:
    """A self-pipe that a context callback may poke from another thread, possibly after the
    wait is over: the lock keeps it from writing to a closed (and possibly reused) descriptor."""

    def __init__(self) -> None:
        self.read_fd, self._write_fd = os.pipe2(os.O_CLOEXEC | os.O_NONBLOCK)
        self._lock = threading.Lock()
        self._closed = False

    def poke(self) -> None:
        with self._lock:
            if not self._closed:
                with contextlib.suppress(BlockingIOError):  # a full pipe has been poked already
                    os.write(self._write_fd, b"x")

    def close(self) -> None:
        with self._lock:
            self._closed = True
            os.close(self.read_fd)
            os.close(self._write_fd)
