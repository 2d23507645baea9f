"""The file waiter (spec §4.2, §9.2 waiter_test), with inotify and with the polling fallback."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from entrypoint._internal.step import waiter as waiter_mod
from entrypoint._internal.step.context import Context
from entrypoint._internal.step.waiter import FileWaiter
from entrypoint.errors import ContextCanceled, DeadlineExceeded, SkipError, WaitError


def later(action: Callable[[], object], delay: float = 0.1) -> threading.Thread:
    def run() -> None:
        time.sleep(delay)
        action()

    t = threading.Thread(target=run)
    t.start()
    return t


@pytest.fixture(params=[True, False], ids=["inotify", "polling"])
def waiter(request: pytest.FixtureRequest) -> FileWaiter:
    return FileWaiter(use_inotify=bool(request.param))


def test_empty_name_returns_at_once(waiter: FileWaiter) -> None:
    waiter.wait(Context.background(), "", False, False)


def test_existing_file_returns(waiter: FileWaiter, tmp_path: Path) -> None:
    (tmp_path / "f").write_text("")
    waiter.wait(Context.background(), str(tmp_path / "f"), False, False)


def test_missing_file_keeps_waiting_until_created(waiter: FileWaiter, tmp_path: Path) -> None:
    f = tmp_path / "f"
    ctx = Context(timeout=0.3)
    with pytest.raises(DeadlineExceeded):
        waiter.wait(ctx, str(f), False, False)
    t = later(lambda: f.write_text(""))
    waiter.wait(Context.background(), str(f), False, False)
    t.join()


def test_content_required(waiter: FileWaiter, tmp_path: Path) -> None:
    f = tmp_path / "f"
    f.write_text("")
    with pytest.raises(DeadlineExceeded):
        waiter.wait(Context(timeout=0.3), str(f), True, False)
    t = later(lambda: f.write_text("READY"))
    waiter.wait(Context.background(), str(f), True, False)
    t.join()


def test_err_file_means_skip(waiter: FileWaiter, tmp_path: Path) -> None:
    (tmp_path / "f.err").write_text("")
    with pytest.raises(SkipError, match="error file present, bail and skip the step"):
        waiter.wait(Context.background(), str(tmp_path / "f"), False, False)


def test_err_file_with_breakpoint_is_success(waiter: FileWaiter, tmp_path: Path) -> None:
    (tmp_path / "f.err").write_text("")
    waiter.wait(Context.background(), str(tmp_path / "f"), False, True)


def test_cancelled_context(waiter: FileWaiter, tmp_path: Path) -> None:
    ctx = Context()
    t = later(ctx.cancel)
    with pytest.raises(ContextCanceled):
        waiter.wait(ctx, str(tmp_path / "f"), False, False)
    t.join()


def test_stat_error_other_than_not_found(waiter: FileWaiter, tmp_path: Path) -> None:
    (tmp_path / "file").write_text("")
    bad = tmp_path / "file" / "child"
    with pytest.raises(WaitError, match=f'waiting for "{bad}"'):
        waiter.wait(Context.background(), str(bad), False, False)


@pytest.mark.timeout(20)
def test_inotify_wakes_on_the_event_not_on_a_timer(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    # With the safety re-check pushed out to an hour, only an inotify event can end these waits;
    # a broken watch would hang until the test's timeout.
    monkeypatch.setattr(waiter_mod, "SAFETY_INTERVAL", 3600.0)
    w = FileWaiter(use_inotify=True)
    f = tmp_path / "f"
    t = later(lambda: f.write_text(""))
    w.wait(Context.background(), str(f), False, False)
    t.join()
    # The directory itself appears later: the watch moves down from the nearest existing ancestor.
    nested = tmp_path / "a" / "b" / "out"

    def create() -> None:
        nested.parent.mkdir(parents=True)
        time.sleep(0.05)
        nested.write_text("")

    t = later(create)
    w.wait(Context.background(), str(nested), False, False)
    t.join()
    # A previous step's failure is an event too.
    t = later(lambda: (tmp_path / "g.err").write_text(""))
    with pytest.raises(SkipError):
        w.wait(Context.background(), str(tmp_path / "g"), False, False)
    t.join()


@pytest.mark.timeout(20)
def test_a_directory_made_between_finding_and_watching_its_parent_is_watched(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    # The race a fresh-clone CI run hit: the waiter found a/ as the nearest directory, a/b/ appeared
    # before the watch on a/ was in place, so no event announced it and the wait slept through the
    # file.  Here the race is made certain: watching a/ first creates a/b/.
    from entrypoint._internal.step import inotify

    monkeypatch.setattr(waiter_mod, "SAFETY_INTERVAL", 3600.0)
    (tmp_path / "a").mkdir()
    real_add_watch = inotify.Inotify.add_watch

    def racing_add_watch(self: inotify.Inotify, directory: str) -> bool:
        if directory == str(tmp_path / "a"):
            (tmp_path / "a" / "b").mkdir(exist_ok=True)
        return real_add_watch(self, directory)

    monkeypatch.setattr(inotify.Inotify, "add_watch", racing_add_watch)
    out = tmp_path / "a" / "b" / "out"
    t = later(lambda: out.write_text(""))
    FileWaiter(use_inotify=True).wait(Context.background(), str(out), False, False)
    t.join()
