"""A small analogue of Go's ``context.Context``: cancellation plus an optional deadline.

The lifecycle's outcome table distinguishes "canceled" from "deadline exceeded", and several
threads (runner, cancel-file watcher, waiters) must react to either at once, so callbacks are
run as soon as the context ends instead of being polled for.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from entrypoint.errors import ContextCanceled, ContextError, DeadlineExceeded


class Context:
    """Go's ``context.Context`` for one run: cancellation, a deadline, and why it ended."""

    def __init__(self, timeout: float | None = None, parent: Context | None = None) -> None:
        self._lock = threading.Lock()
        self._done = threading.Event()
        self._err: ContextError | None = None
        self._callbacks: list[Callable[[], None]] = []
        self._timer: threading.Timer | None = None
        self.deadline: float | None = None
        if timeout is not None:
            # Go accepts durations up to ~292 years; a timer cannot wait that long.
            timeout = min(timeout, threading.TIMEOUT_MAX)
            self.deadline = time.monotonic() + timeout
            self._timer = threading.Timer(max(timeout, 0.0), self._expire)
            self._timer.daemon = True
            self._timer.start()
        if parent is not None:
            parent.on_done(lambda: self._finish(parent.err() or ContextCanceled()))

    @classmethod
    def background(cls) -> Context:
        """A context that never ends (Go's ``context.Background()``)."""
        return cls()

    def cancel(self) -> None:
        self._finish(ContextCanceled())

    def _expire(self) -> None:
        self._finish(DeadlineExceeded())

    def _finish(self, err: ContextError) -> None:
        with self._lock:
            if self._err is not None:
                return
            self._err = err
            callbacks, self._callbacks = self._callbacks, []
        if self._timer is not None:
            self._timer.cancel()
        self._done.set()
        for cb in callbacks:
            cb()

    def on_done(self, callback: Callable[[], None]) -> None:
        """Run ``callback`` when the context ends (at once if it already has)."""
        with self._lock:
            if self._err is None:
                self._callbacks.append(callback)
                return
        callback()

    def err(self) -> ContextError | None:
        return self._err

    def done(self) -> bool:
        return self._done.is_set()

    def wait(self, timeout: float | None = None) -> bool:
        return self._done.wait(timeout)
