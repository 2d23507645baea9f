"""The controller's work queue: one worker per key, the newest object wins, retries wait."""

from __future__ import annotations

import threading

from entrypoint.controller.backoff import Backoff
from entrypoint.controller.queue import WorkQueue


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_keys_come_out_in_order_with_their_newest_object() -> None:
    q = WorkQueue()
    q.add(("ns", "a"), {"v": 1})
    q.add(("ns", "b"), {"v": 1})
    q.add(("ns", "a"), {"v": 2})  # deduplicated, newest kept
    assert q.depth() == 2
    assert q.get(timeout=0) == (("ns", "a"), {"v": 2})
    assert q.get(timeout=0) == (("ns", "b"), {"v": 1})
    assert q.get(timeout=0) is None


def test_a_key_changed_while_processed_comes_back_once_done_not_before() -> None:
    q = WorkQueue()
    q.add(("ns", "a"), {"v": 1})
    assert q.get(timeout=0) == (("ns", "a"), {"v": 1})
    q.add(("ns", "a"), {"v": 2})
    assert q.get(timeout=0) is None, "a second worker must not take a key being processed"
    q.done(("ns", "a"))
    assert q.get(timeout=0) == (("ns", "a"), {"v": 2})
    q.done(("ns", "a"))
    assert q.get(timeout=0) is None and q.depth() == 0


def test_add_after_waits_for_its_delay_and_a_newer_object_wins() -> None:
    clock = Clock()
    q = WorkQueue(clock=clock)
    q.add_after(("ns", "a"), {"v": 1}, 5.0)
    assert q.get(timeout=0) is None
    clock.now += 4.9
    assert q.get(timeout=0) is None
    q.add(("ns", "a"), {"v": 2})  # seen meanwhile: processed now, with the newest object
    assert q.get(timeout=0) == (("ns", "a"), {"v": 2})
    q.done(("ns", "a"))
    clock.now += 0.2  # the delayed entry comes due: processed again, still the newest object
    assert q.get(timeout=0) == (("ns", "a"), {"v": 2})
    q.done(("ns", "a"))
    assert q.depth() == 0


def test_close_wakes_a_waiting_worker() -> None:
    q = WorkQueue()
    got: list[object] = []
    worker = threading.Thread(target=lambda: got.append(q.get()))
    worker.start()
    q.close()
    worker.join(5)
    assert not worker.is_alive() and got == [None]


def test_many_keys_are_each_processed_once() -> None:
    q = WorkQueue()
    for i in range(1000):
        q.add(("ns", f"tr-{i}"), {"i": i})
        q.add(("ns", f"tr-{i}"), {"i": i})
    seen = []
    while (item := q.get(timeout=0)) is not None:
        seen.append(item[0])
        q.done(item[0])
    assert len(seen) == 1000 == len(set(seen))


def test_backoff_doubles_to_its_cap_with_bounded_jitter() -> None:
    delays = [Backoff.delay(n, first=0.5, cap=8.0) for n in range(8)]
    for n, d in enumerate(delays):
        base = min(0.5 * 2**n, 8.0)
        assert base <= d <= base * 1.2
    b = Backoff(first=1.0, cap=4.0)
    for base in (1.0, 2.0, 4.0, 4.0):
        assert base <= b.next() <= base * 1.2
    b.reset()
    assert b.next() <= 1.2
