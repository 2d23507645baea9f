"""Open watches of the Kubernetes API double: the changes queued for each, and the stream they become.

A write is queued on every watch of its resource (and namespace) while the store's lock is held, so a
watch sees changes in resourceVersion order, none twice and none missed.  The stream sends them as
they come, a BOOKMARK every so often when asked, and ends when the watch's ``timeoutSeconds`` pass,
the watch is closed (:meth:`Watcher.close`) or the server stops.
"""

from __future__ import annotations

import json
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from entrypoint.testing.kube.resources import Resource

# How long a stream sleeps at most before looking again at its deadline and at the server stopping.
POLL_SECONDS = 0.2


@dataclass
class Change:
    """A committed write (ADDED, MODIFIED or DELETED): its resourceVersion and the object it left."""

    rv: int
    type: str
    resource: Resource
    namespace: str
    obj: dict[str, Any]
    _line: bytes | None = field(default=None, repr=False)

    def line(self) -> bytes:
        """The watch event, encoded once however many watches send it."""
        if self._line is None:
            self._line = json.dumps({"type": self.type, "object": self.obj}, separators=(",", ":")).encode()
        return self._line


class Watcher:
    """One open watch: the resource and namespace it follows, and the events queued for it."""

    def __init__(self, resource: Resource, namespace: str | None) -> None:
        self.resource = resource
        self.namespace = namespace
        self.queue: deque[bytes] = deque()
        self.wake = threading.Event()
        self.closed = False

    def follows(self, change: Change) -> bool:
        return self.namespace is None or change.namespace == self.namespace

    def offer(self, line: bytes) -> None:
        self.queue.append(line)
        self.wake.set()

    def close(self) -> None:
        """End the stream once what is queued has been sent."""
        self.closed = True
        self.wake.set()


class WatchStream:
    """The lines of one watch's answer, as :class:`entrypoint.testing._https.StreamedAnswer` takes them."""

    def __init__(
        self,
        watcher: Watcher,
        *,
        timeout: float,
        bookmark: Callable[[], Mapping[str, Any] | None] | None,
        bookmark_interval: Callable[[], float],
        stopping: Callable[[], bool],
    ) -> None:
        self._watcher = watcher
        self._deadline = time.monotonic() + timeout
        self._bookmark = bookmark
        self._bookmark_interval = bookmark_interval
        self._next_bookmark = time.monotonic() + bookmark_interval()
        self._stopping = stopping

    def __iter__(self) -> WatchStream:
        return self

    def __next__(self) -> Mapping[str, Any] | bytes:
        watcher = self._watcher
        while True:
            # Cleared before looking at the queue, so that an offer made after the look wakes the wait.
            watcher.wake.clear()
            if watcher.queue:
                return watcher.queue.popleft()
            if watcher.closed or self._stopping():
                raise StopIteration
            now = time.monotonic()
            if now >= self._deadline:
                raise StopIteration
            wait = min(POLL_SECONDS, self._deadline - now)
            if self._bookmark is not None:
                if now >= self._next_bookmark:
                    self._next_bookmark = now + self._bookmark_interval()
                    obj = self._bookmark()
                    if obj is not None:
                        return {"type": "BOOKMARK", "object": obj}
                    continue
                wait = min(wait, self._next_bookmark - now)
            watcher.wake.wait(max(wait, 0.0))
