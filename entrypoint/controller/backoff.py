"""Exponential backoff with jitter, for the watch and for retried TaskRuns."""

from __future__ import annotations

import random


class Backoff:
    """Delays that double from ``first`` up to ``cap``, each with up to 20% jitter."""

    def __init__(self, first: float = 0.5, cap: float = 30.0) -> None:
        self.first, self.cap = first, cap
        self._next = first

    def next(self) -> float:
        delay = self._next
        self._next = min(self._next * 2, self.cap)
        return delay * (1 + random.random() * 0.2)  # noqa: S311  (jitter, not a secret)

    def reset(self) -> None:
        self._next = self.first

    @staticmethod
    def delay(failures: int, first: float = 0.5, cap: float = 60.0) -> float:
        """The wait before attempt ``failures + 1`` of one item (no state: the caller counts)."""
        return min(first * 2.0 ** min(failures, 30), cap) * (1 + random.random() * 0.2)  # noqa: S311
