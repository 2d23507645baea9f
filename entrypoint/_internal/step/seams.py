"""The collaborators the lifecycle delegates to, as protocols (Tekton's Waiter/Runner/PostWriter).

Kept apart from the implementations so that the step's hot path never imports ``typing`` at run
time: the modules that use these names import this one only for type checking.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

from entrypoint._internal.step.context import Context
from entrypoint.termination import RunResult


class FlagValue(Protocol):
    """What a Go-style flag stores.  ``set`` raises FlagValueError with the reason on bad input."""

    is_bool: bool

    def set(self, value: str) -> None: ...

    def string(self) -> str: ...


class Waiter(Protocol):
    """Waits for the previous step's post file (Tekton's ``Waiter``)."""

    def wait(self, ctx: Context, file: str, expect_content: bool, breakpoint_on_failure: bool) -> None: ...


class Runner(Protocol):
    """Runs the step's command; ``when_idle`` callbacks run once the command has started and the
    calling thread has nothing left to do but wait for it, ``while_running`` ones every
    ``WATCH_INTERVAL`` seconds until it ends (on that thread: a watch needs no thread of its own)."""

    when_idle: list[Callable[[], object]]
    while_running: list[Callable[[], object]]

    def run(self, ctx: Context, args: list[str]) -> None: ...


class PostWriter(Protocol):
    """Writes a post or exitCode file (Tekton's ``PostWriter``)."""

    def write(self, file: str, content: str) -> None: ...


class ResultsSigner(Protocol):
    """Signs results.  A format either appends signing entries per results phase (``sign``;
    Tekton's) or, when ``seals`` is true, re-signs the whole message at every write
    (``seal_options``; compact): it returns candidate entry lists, most preferred first.
    ``after_write`` sees the final message once written (a format may leave word for later steps).
    ``ended`` tells it, before the final write, the exit status the process will have (None:
    unknown, e.g. a debugger decides it), which a sealing format binds."""

    seals: bool

    def sign(self, ctx: Context, entries: list[RunResult]) -> list[RunResult]: ...

    def seal_options(self, entries: list[RunResult]) -> list[list[RunResult]]: ...

    def after_write(self, written: list[RunResult]) -> None: ...

    def interrupt(self, reason: str) -> None: ...

    def ended(self, exit_code: int | None) -> None: ...
