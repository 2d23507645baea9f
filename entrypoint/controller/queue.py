"""A work queue keyed by TaskRun: the latest object of each key, each key processed by one worker
at a time, retries after a delay (client-go's workqueue semantics, in small)."""

from __future__ import annotations

import collections
import heapq
import threading
import time
from collections.abc import Callable
from typing import Any

Key = tuple[str, str]  # (namespace, name)


class WorkQueue:
    """Keys waiting for a worker, with the newest object seen for each."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._cond = threading.Condition()
        self._order: collections.deque[Key] = collections.deque()
        self._queued: set[Key] = set()
        self._latest: dict[Key, dict[str, Any]] = {}
        self._processing: set[Key] = set()
        self._dirty: set[Key] = set()  # changed while being processed: queued again when done
        self._later: list[tuple[float, int, Key]] = []
        self._waiting: collections.Counter[Key] = collections.Counter()  # keys in _later
        self._seq = 0
        self._closed = False

    def add(self, key: Key, obj: dict[str, Any]) -> None:
        with self._cond:
            self._latest[key] = obj
            self._enqueue(key)

    def add_after(self, key: Key, obj: dict[str, Any], delay: float) -> None:
        """Queue ``key`` again after ``delay`` seconds (a newer object seen meanwhile wins)."""
        with self._cond:
            self._latest.setdefault(key, obj)
            self._seq += 1
            heapq.heappush(self._later, (self._clock() + delay, self._seq, key))
            self._waiting[key] += 1
            self._cond.notify()

    def _enqueue(self, key: Key) -> None:
        if key in self._processing:
            self._dirty.add(key)
        elif key not in self._queued:
            self._queued.add(key)
            self._order.append(key)
            self._cond.notify()

    def get(self, timeout: float | None = None) -> tuple[Key, dict[str, Any]] | None:
        """The next key and its newest object, or None when closed or after ``timeout``."""
        deadline = None if timeout is None else self._clock() + timeout
        with self._cond:
            while True:
                if self._closed:
                    return None
                self._promote()
                if self._order:
                    key = self._order.popleft()
                    self._queued.discard(key)
                    self._processing.add(key)
                    return key, self._latest[key]
                now = self._clock()
                waits = []
                if deadline is not None:
                    if now >= deadline:
                        return None
                    waits.append(deadline - now)
                if self._later:
                    waits.append(max(self._later[0][0] - now, 0.001))
                self._cond.wait(min(waits) if waits else None)

    def done(self, key: Key) -> None:
        with self._cond:
            self._processing.discard(key)
            if key in self._dirty:
                self._dirty.discard(key)
                self._enqueue(key)
            elif key not in self._queued and not self._waiting[key]:
                self._latest.pop(key, None)
                del self._waiting[key]

    def _promote(self) -> None:
        now = self._clock()
        while self._later and self._later[0][0] <= now:
            _, _, key = heapq.heappop(self._later)
            self._waiting[key] -= 1
            if not self._waiting[key]:
                del self._waiting[key]
            self._enqueue(key)

    def depth(self) -> int:
        with self._cond:
            return len(self._order) + len(self._later)

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify_all()
