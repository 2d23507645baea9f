"""What every test double shares as a server, whatever its transport (gRPC on a unix socket, HTTPS).

``with double:`` starts and stops it; run as a process (``python -m entrypoint.testing.<module>``) it
says ``ready <address>`` and serves until SIGTERM or SIGINT, which the demo, the container tests and
the tests of the doubles rely on alike.
"""

from __future__ import annotations

import signal
import threading
from types import FrameType, TracebackType
from typing import Self

_SIGNAL_POLL_SECONDS = 0.5


class Serving:
    """A server with ``start`` and ``stop`` that is its own context manager."""

    def start(self) -> None:
        raise NotImplementedError

    def stop(self) -> None:
        raise NotImplementedError

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


def stop_on_signals() -> threading.Event:
    """An event that SIGTERM and SIGINT set; installed before the server starts, so that neither
    kills a half-started one."""
    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    return stop


def serve_until(stop: threading.Event, address: str) -> None:
    """Say ``ready <address>`` on stdout, then wait until ``stop`` is set (the caller stops its server)."""
    print(f"ready {address}", flush=True)
    # A timed wait keeps the main thread returning to the interpreter, where signal handlers run.
    while not stop.wait(_SIGNAL_POLL_SECONDS):
        pass
