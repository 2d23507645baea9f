"""The lifecycle with injected collaborators, mirroring Tekton's entrypointer_test (spec §9.1)."""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from pathlib import Path

import pytest

from entrypoint._internal.step.context import Context
from entrypoint._internal.step.entrypointer import Entrypointer, StepConfig
from entrypoint._internal.step.layout import Layout
from entrypoint._internal.step.when import WhenExpression
from entrypoint.errors import (
    ChildExitError,
    ContextCanceled,
    DeadlineExceeded,
    DebugBeforeStepError,
    EntrypointError,
    SkipError,
    StartError,
)
from entrypoint.termination import RunResult, parse_message


class FakeWaiter:
    def __init__(self, error: EntrypointError | None = None) -> None:
        self.waited: list[str] = []
        self.error = error

    def wait(self, ctx: Context, file: str, expect_content: bool, breakpoint_on_failure: bool) -> None:
        self.waited.append(file)
        if self.error is not None and file:
            raise self.error


class FakeRunner:
    def __init__(self, error: EntrypointError | None = None, write: dict[Path, str] | None = None) -> None:
        self.error = error
        self.args: list[str] | None = None
        self.deadline: float | None = None
        self.write = write or {}
        self.when_idle: list[Callable[[], object]] = []
        self.while_running: list[Callable[[], object]] = []

    def run(self, ctx: Context, args: list[str]) -> None:
        for hook in self.when_idle:
            hook()
        self.args = args
        self.deadline = ctx.deadline
        for path, content in self.write.items():
            path.write_text(content)
        if self.error is not None:
            raise self.error


class FakePostWriter:
    def __init__(self) -> None:
        self.wrote: str | None = None
        self.exit_code_file: str | None = None
        self.exit_code: str | None = None

    def write(self, file: str, content: str) -> None:
        if content:
            self.exit_code_file, self.exit_code = file, content
        else:
            self.wrote = file


def make(
    tmp_path: Path,
    waiter: FakeWaiter | None = None,
    runner: FakeRunner | None = None,
    **cfg: object,
) -> tuple[Entrypointer, FakeWaiter, FakeRunner, FakePostWriter]:
    waiter = waiter or FakeWaiter()
    runner = runner or FakeRunner()
    post = FakePostWriter()
    config = StepConfig(
        termination_path=str(tmp_path / "termination"),
        step_metadata_dir=str(tmp_path / "smd"),
        layout=Layout(str(tmp_path / "tekton")),
    )
    for key, value in cfg.items():
        setattr(config, key, value)
    ep = Entrypointer(config, waiter, runner, post, log=lambda _m: None, env={})
    return ep, waiter, runner, post


def entries(tmp_path: Path) -> dict[str, str]:
    return {e.key: e.value for e in parse_message((tmp_path / "termination").read_text())}


# -- TestEntrypointerFailures ------------------------------------------------------------------------


def test_f1_runner_fails_post_err(tmp_path: Path) -> None:
    ep, _, _, post = make(
        tmp_path,
        runner=FakeRunner(StartError("runner failed")),
        command=["echo", "some", "args"],
        post_file="foo",
    )
    with pytest.raises(EntrypointError, match="runner failed"):
        ep.go()
    assert post.wrote == "foo.err"


def test_f2_waiter_fails_without_post_file(tmp_path: Path) -> None:
    ep, _, _, post = make(tmp_path, waiter=FakeWaiter(EntrypointError("waiter failed")), wait_files=["x"])
    with pytest.raises(EntrypointError, match="waiter failed"):
        ep.go()
    assert post.wrote is None


def test_f3_waiter_fails_with_post_file(tmp_path: Path) -> None:
    ep, _, _, post = make(
        tmp_path, waiter=FakeWaiter(EntrypointError("waiter failed")), wait_files=["x"], post_file="bar"
    )
    with pytest.raises(EntrypointError, match="waiter failed"):
        ep.go()
    assert post.wrote == "bar.err"


def test_f4_negative_timeout(tmp_path: Path) -> None:
    ep, _, runner, _ = make(tmp_path, timeout_ns=-10 * 10**9, command=["echo"])
    with pytest.raises(EntrypointError, match="negative timeout specified"):
        ep.go()
    assert runner.args is None


def test_f5_zero_timeout_means_no_deadline(tmp_path: Path) -> None:
    ep, _, runner, _ = make(tmp_path, runner=FakeRunner(StartError("runner failed")), command=["echo"])
    with pytest.raises(EntrypointError, match="runner failed"):
        ep.go()
    assert runner.deadline is None


def test_f6_positive_timeout_sets_a_deadline(tmp_path: Path) -> None:
    ep, _, runner, _ = make(
        tmp_path, runner=FakeRunner(StartError("runner failed")), command=["echo"], timeout_ns=1_000_000
    )
    with pytest.raises(EntrypointError, match="runner failed"):
        ep.go()
    assert runner.deadline is not None


# -- TestEntrypointer (happy paths) ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("command", "wait_files", "post_file", "bp_failure", "debug_before"),
    [
        ([], [], "", False, False),
        (["echo"], [], "", False, False),
        (["echo", "some", "args"], [], "", False, False),
        (["some", "args"], [], "", False, False),
        (["echo"], ["waitforme"], "", False, False),
        (["echo"], [], "writeme", False, False),
        (["echo", "some", "args"], ["waitforme", "andme", "andmetoo"], "writeme", False, False),
        (["echo"], [], "", True, False),
        (["echo"], ["waitforme"], "writeme", False, True),
        (["echo"], ["waitforme"], "writeme", True, True),
    ],
)
def test_happy_paths(
    tmp_path: Path,
    command: list[str],
    wait_files: list[str],
    post_file: str,
    bp_failure: bool,
    debug_before: bool,
) -> None:
    ep, waiter, runner, post = make(
        tmp_path,
        command=command,
        wait_files=wait_files,
        post_file=post_file,
        breakpoint_on_failure=bp_failure,
        debug_before_step=debug_before,
    )
    ep.go()
    assert (tmp_path / "smd" / "artifacts").is_dir()
    expected_waits = list(wait_files) + ([post_file + ".beforestepexit"] if debug_before else [])
    assert waiter.waited == expected_waits
    assert runner.args == command
    if post_file:
        assert post.wrote == post_file
    assert "StartedAt" in entries(tmp_path)


# -- TestTerminationReason -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("runner_error", "waiter_error", "when", "exit_code", "post", "expected"),
    [
        (None, None, [], "0", "postfile", {"StartedAt"}),
        (ChildExitError(-1), None, [], "-1", "postfile", {"StartedAt", "ExitCode"}),
        (StartError("exec error"), None, [], None, "postfile.err", {"StartedAt"}),
        (DeadlineExceeded(), None, [], None, "postfile.err", {"StartedAt", "Reason"}),
        (None, SkipError(), [], None, "postfile.err", {"StartedAt", "Reason"}),
        (
            None,
            None,
            [WhenExpression(input="foo", operator="in", values=["bar"])],
            "0",
            "postfile",
            {"StartedAt", "Reason"},
        ),
    ],
)
def test_termination_reasons(
    tmp_path: Path,
    runner_error: EntrypointError | None,
    waiter_error: EntrypointError | None,
    when: list[WhenExpression],
    exit_code: str | None,
    post: str,
    expected: set[str],
) -> None:
    ep, _, _, writer = make(
        tmp_path,
        waiter=FakeWaiter(waiter_error),
        runner=FakeRunner(runner_error),
        command=["echo"],
        post_file="postfile",
        on_error="continue",
        wait_files=["prev"] if waiter_error else [],
        when_expressions=when,
    )
    raised = runner_error or waiter_error
    if raised is not None:
        with pytest.raises(type(raised)):
            ep.go()
    else:
        ep.go()
    assert writer.exit_code == exit_code
    assert writer.wrote == post
    got = entries(tmp_path)
    assert set(got) == expected
    if "ExitCode" in got:
        assert got["ExitCode"] == "-1"
    if isinstance(runner_error, DeadlineExceeded):
        assert got["Reason"] == "TimeoutExceeded"
    if waiter_error is not None or when:
        assert got["Reason"] == "Skipped"


def test_cancelled_run_writes_killed(tmp_path: Path) -> None:
    ep, _, _, writer = make(tmp_path, runner=FakeRunner(ContextCanceled()), command=["x"], post_file="p")
    with pytest.raises(ContextCanceled):
        ep.go()
    assert writer.wrote == "p.err"
    assert writer.exit_code == "killed"
    assert entries(tmp_path)["Reason"] == "Cancelled"


def test_debug_before_step_error_writes_only_post_err(tmp_path: Path) -> None:
    ep, _, runner, writer = make(
        tmp_path,
        waiter=FakeWaiter(EntrypointError("x")),
        command=["x"],
        post_file="p",
        debug_before_step=True,
    )
    with pytest.raises(DebugBeforeStepError):
        ep.go()
    assert runner.args is None
    assert writer.wrote == "p.err" and writer.exit_code is None


def test_negative_timeout_overrides_debug_before_step_error(tmp_path: Path) -> None:
    ep, _, _, _ = make(
        tmp_path,
        waiter=FakeWaiter(EntrypointError("x")),
        command=["x"],
        post_file="p",
        debug_before_step=True,
        timeout_ns=-1,
    )
    with pytest.raises(EntrypointError, match="negative timeout specified"):
        ep.go()


# -- TestReadResultsFromDisk / TestEntrypointerResults ------------------------------------------------------


def test_results_keep_raw_file_content(tmp_path: Path) -> None:
    res = tmp_path / "tekton" / "results"
    res.mkdir(parents=True)
    runner = FakeRunner(write={res / "foo": '"hello world"', res / "bar": '["hello","world"]'})
    ep, _, _, _ = make(tmp_path, runner=runner, command=["x"], results=["foo", "bar", "baz"])
    ep.go()
    got = parse_message((tmp_path / "termination").read_text())
    assert [(e.key, e.value, e.type) for e in got if e.type == 1] == [
        ("bar", '["hello","world"]', 1),
        ("foo", '"hello world"', 1),
    ]


def test_step_results_have_type_4(tmp_path: Path) -> None:
    smd = tmp_path / "smd" / "results"
    smd.mkdir(parents=True)
    runner = FakeRunner(write={smd / "foo": "abc"})
    ep, _, _, _ = make(tmp_path, runner=runner, command=["x"], step_results=["foo"])
    ep.go()
    assert RunResult("foo", "abc", 4) in parse_message((tmp_path / "termination").read_text())


class RecordingSigner:
    seals = False

    def __init__(self) -> None:
        self.calls: list[list[RunResult]] = []

    def sign(self, ctx: Context, entries: list[RunResult]) -> list[RunResult]:
        self.calls.append(entries)
        return [RunResult("SIGNED", ",".join(e.key for e in entries), 1)]

    def seal_options(self, entries: list[RunResult]) -> list[list[RunResult]]:
        raise AssertionError("a per-phase signer is never asked to seal")

    def after_write(self, written: list[RunResult]) -> None:
        self.written = written

    def interrupt(self, reason: str) -> None:
        self.interrupted = reason

    def ended(self, exit_code: int | None) -> None:
        self.ended_with = exit_code


def test_signer_is_called_per_phase_even_without_result_files(tmp_path: Path) -> None:
    ep, _, _, _ = make(tmp_path, command=["x"], results=["foo"], step_results=["bar"])
    signer = RecordingSigner()
    ep.signer = signer
    ep.go()
    assert signer.calls == [[], []]
    assert entries(tmp_path)["SIGNED"] == ""


def test_signer_not_called_when_no_results_declared(tmp_path: Path) -> None:
    ep, _, _, _ = make(tmp_path, command=["x"], results=[""])
    signer = RecordingSigner()
    ep.signer = signer
    ep.go()
    assert signer.calls == []


# -- the exit status a sealing signer binds ------------------------------------------------------------


@pytest.mark.parametrize(
    ("error", "expected"),
    [(None, 0), (ChildExitError(3), 3), (ContextCanceled(), None)],
)
def test_the_signer_learns_the_exit_status_before_the_final_write(
    tmp_path: Path, error: EntrypointError | None, expected: int | None
) -> None:
    ep, _, _, _ = make(tmp_path, runner=FakeRunner(error=error), command=["x"], results=["foo"])
    signer = RecordingSigner()
    ep.signer = signer
    # A mapping that knows only success and a child's exit: anything else is "not known here".
    ep.exit_code_of = lambda err: (
        0 if err is None else err.exit_code if isinstance(err, ChildExitError) else None
    )
    with pytest.raises(EntrypointError) if error is not None else contextlib.nullcontext():
        ep.go()
    assert signer.ended_with == expected


def test_without_a_mapping_the_exit_status_is_unknown(tmp_path: Path) -> None:
    ep, _, _, _ = make(tmp_path, command=["x"], results=["foo"])
    signer = RecordingSigner()
    ep.signer = signer
    ep.go()
    assert signer.ended_with is None


@pytest.mark.parametrize("on_error", ["", "continue"])
@pytest.mark.parametrize(
    "error",
    [
        None,
        ChildExitError(3),
        ChildExitError(-1),
        ContextCanceled(),
        DeadlineExceeded(),
        DebugBeforeStepError(),
        SkipError(),
        StartError("no such file"),
    ],
    ids=repr,
)
def test_the_planned_exit_status_is_the_one_the_process_gets(
    error: EntrypointError | None, on_error: str
) -> None:
    from entrypoint import cli
    from entrypoint._internal.step.options import Options

    opts = Options()
    opts.on_error = on_error
    planned = cli.planned_exit_status(error, opts)
    actual = 0 if error is None else cli.exit_status(error, opts, FakeWaiter())
    assert planned == actual


def test_no_exit_status_is_planned_when_a_debugger_decides_it() -> None:
    from entrypoint import cli
    from entrypoint._internal.step.options import Options

    opts = Options()
    opts.breakpoint_on_failure = True
    assert cli.planned_exit_status(ChildExitError(3), opts) is None
    assert cli.planned_exit_status(None, opts) == 0
