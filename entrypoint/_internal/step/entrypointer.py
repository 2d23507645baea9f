"""The step lifecycle (spec §4.1, R0-R11): wait, run, write post files, collect results.

The Entrypointer owns the order of the stages and delegates each to a collaborator (waiter, runner,
post writer, results signer) that tests can replace, as Tekton's ``Entrypointer`` does.  It returns
normally or raises the lifecycle error; mapping that to a process exit status is the CLI's job.
"""

from __future__ import annotations

import os

from entrypoint._internal.go.errors import GoPathError, mkdir_all
from entrypoint._internal.go.path import join
from entrypoint._internal.step.context import Context
from entrypoint._internal.step.layout import Layout
from entrypoint._internal.step.results import format_started_at, phase_enabled, read_artifact, read_results
from entrypoint.errors import (
    ChildExitError,
    ContextCanceled,
    DeadlineExceeded,
    DebugBeforeStepError,
    EntrypointError,
    PostFileError,
    ResultsError,
    SigningError,
    SkipError,
)
from entrypoint.termination import ResultType, RunResult, TerminationFile

TYPE_CHECKING = False  # not typing.TYPE_CHECKING: importing typing costs a step ~1.7 ms
if TYPE_CHECKING:
    from collections.abc import Callable, MutableMapping

    from entrypoint._internal.step.seams import PostWriter, ResultsSigner, Runner, Waiter
    from entrypoint._internal.step.when import WhenExpression

    Log = Callable[[str], None]

RESULT_FROM_TERMINATION_MESSAGE = "termination-message"
STEP_REFERENCE = "$(steps."


class Fatal(EntrypointError):
    """An error that ends the entrypoint at once, without the finaliser's write (Tekton's log.Fatal)."""

    pass


def step_index(step_metadata_dir: str) -> str:
    """The step's index from Tekton's ``/tekton/run/<index>/status``; "" outside that layout."""
    parts = step_metadata_dir.rstrip("/").split("/")
    if len(parts) >= 3 and parts[-1] == "status" and parts[-3] == "run" and parts[-2].isdigit():
        return parts[-2]
    return ""


class StepConfig:
    """What the lifecycle needs to know about one step (plain data; see cli.py for the flags).

    A plain class rather than a dataclass: ``dataclasses`` imports ``inspect``, ~5 ms per step.
    """

    def __init__(
        self,
        command: list[str] | None = None,
        wait_files: list[str] | None = None,
        wait_file_content: bool = False,
        post_file: str = "",
        termination_path: str = "/tekton/termination",
        results: list[str] | None = None,
        step_results: list[str] | None = None,
        when_expressions: list[WhenExpression] | None = None,
        timeout_ns: int = 0,
        breakpoint_on_failure: bool = False,
        debug_before_step: bool = False,
        on_error: str = "",
        step_metadata_dir: str = "",
        result_from: str = RESULT_FROM_TERMINATION_MESSAGE,
        compress: bool = False,
        layout: Layout | None = None,
    ) -> None:
        self.command = command or []
        self.wait_files = wait_files or []
        self.wait_file_content = wait_file_content
        self.post_file = post_file
        self.termination_path = termination_path
        self.results = results or []
        self.step_results = step_results or []
        self.when_expressions = when_expressions or []
        self.timeout_ns = timeout_ns
        self.breakpoint_on_failure = breakpoint_on_failure
        self.debug_before_step = debug_before_step
        self.on_error = on_error
        self.step_metadata_dir = step_metadata_dir
        self.result_from = result_from
        self.compress = compress
        self.layout = layout or Layout()


def _internal(key: str, value: str) -> RunResult:
    return RunResult(key, value, int(ResultType.INTERNAL))


class Entrypointer:
    """One step's lifecycle, Tekton's ``Entrypointer.Go``: wait, run, collect, sign, write."""

    def __init__(
        self,
        config: StepConfig,
        waiter: Waiter,
        runner: Runner,
        post_writer: PostWriter,
        log: Log,
        signer: ResultsSigner | None = None,
        env: MutableMapping[str, str] | None = None,
        exit_code_of: Callable[[EntrypointError | None], int | None] | None = None,
    ) -> None:
        self.cfg = config
        self.waiter = waiter
        self.runner = runner
        self.post_writer = post_writer
        self.log = log
        self.signer = signer
        self.env: MutableMapping[str, str] = os.environ if env is None else env
        # The CLI's mapping from the lifecycle's outcome to the exit status (None: not known here).
        self.exit_code_of = exit_code_of
        self.run_ctx: Context = Context.background()
        self._seals = bool(getattr(signer, "seals", False))
        self.termination = TerminationFile(
            config.termination_path, config.compress, log, own_only=self._seals
        )
        self._sidecar_entries: list[RunResult] = []

    # -- R0: the finaliser ------------------------------------------------------------------------

    def go(self) -> None:
        out: list[RunResult] = []
        try:
            self._go(out)
        except Fatal:
            raise
        except BaseException as exc:
            self._ended(
                exc if isinstance(exc, EntrypointError) else None, known=isinstance(exc, EntrypointError)
            )
            self._finalise(out)
            raise
        self._ended(None, known=True)
        self._finalise(out)

    def _ended(self, err: EntrypointError | None, *, known: bool) -> None:
        if self.signer is not None:
            code = self.exit_code_of(err) if known and self.exit_code_of is not None else None
            self.signer.ended(code)

    def _finalise(self, out: list[RunResult]) -> None:
        try:
            written = self._write_termination(out)
        except EntrypointError as exc:
            raise Fatal(f"Error while writing message: {exc}") from exc
        if self.signer is not None:
            try:
                self.signer.after_write(written)
            except EntrypointError as exc:
                self.log(f"warning: {exc}")

    def _write_termination(self, entries: list[RunResult]) -> list[RunResult]:
        if not self._seals:
            return self.termination.append(entries)
        try:
            return self.termination.append(entries, self._seal)
        except SigningError:
            # What the step did must not be lost with the signature: write it unsigned (a
            # verifier rejects it), then fail.
            self.termination.append(entries)
            raise

    # -- sealing (formats that sign the whole message, e.g. compact) ----------------------------------

    def _seal(self, entries: list[RunResult]) -> list[list[RunResult]]:
        assert self.signer is not None
        # Results that travel by the sidecar's log are bound too, but not written here.
        off_message = {id(e) for e in self._sidecar_entries}
        options = self.signer.seal_options(entries + self._sidecar_entries)
        return [[e for e in option if id(e) not in off_message] for option in options]

    # -- the lifecycle ------------------------------------------------------------------------------

    def _go(self, out: list[RunResult]) -> None:
        cfg = self.cfg
        for sub in ("results", "artifacts"):
            try:
                mkdir_all(join(cfg.step_metadata_dir, sub))
            except GoPathError as exc:
                raise ResultsError(str(exc)) from exc

        for wait_file in cfg.wait_files:
            try:
                self.waiter.wait(
                    Context.background(), wait_file, cfg.wait_file_content, cfg.breakpoint_on_failure
                )
            except EntrypointError as exc:
                if not cfg.breakpoint_on_failure:
                    self._write_post(failed=True)
                out.append(_internal("StartedAt", format_started_at()))
                if isinstance(exc, SkipError):
                    out.append(_internal("Reason", "Skipped"))
                raise

        err: EntrypointError | None = None
        if cfg.debug_before_step:
            err = self._wait_before_step()
        out.append(_internal("StartedAt", format_started_at()))
        if cfg.timeout_ns < 0:
            err = EntrypointError("negative timeout specified")

        if err is None:
            command = self._substitute()
            timeout = cfg.timeout_ns / 1e9 if cfg.timeout_ns > 0 else None
            self.run_ctx = Context(timeout)
            self._watch_cancel_file()
            err = self._run_if_allowed(command, out)
            if err is _SKIPPED:
                return

        self._classify(err, out)
        self._interrupt_signing_on_sigterm()

        if phase_enabled(cfg.results):
            self._results_phase(cfg.results, cfg.layout.results_dir, ResultType.TASK_RUN_RESULT)
        if phase_enabled(cfg.step_results):
            self._results_phase(
                cfg.step_results, join(cfg.step_metadata_dir, "results"), ResultType.STEP_RESULT
            )

        if cfg.result_from == RESULT_FROM_TERMINATION_MESSAGE:
            for path, rtype, what in (
                (
                    join(cfg.step_metadata_dir, "artifacts", "provenance.json"),
                    ResultType.STEP_ARTIFACTS,
                    "step",
                ),
                (cfg.layout.task_artifacts_file, ResultType.TASK_RUN_ARTIFACTS, "task"),
            ):
                try:
                    artifact = read_artifact(path, rtype)
                except ResultsError as exc:
                    raise Fatal(f"Error while handling {what} artifacts: {exc}") from exc
                if artifact is not None:
                    out.append(artifact)

        if err is not None:
            raise err

    def _within_run_context(self, evaluate: Callable[[], bool]) -> bool:
        """``evaluate()``, bounded by the step's timeout and cancellation: a CEL expression can cost
        exponential time (nested comprehensions), and the step's ``-timeout`` and its cancel
        file must still end it."""
        import threading

        ctx = self.run_ctx

        box: list[bool] = []
        error: list[BaseException] = []

        def run() -> None:
            try:
                box.append(evaluate())
            except BaseException as exc:
                error.append(exc)

        # A daemon: an evaluation past the deadline cannot be stopped, and must not keep the
        # process alive once the step has ended.
        worker = threading.Thread(target=run, name="when-expressions", daemon=True)
        worker.start()
        while worker.is_alive() and not ctx.done():
            worker.join(0.05)
        if worker.is_alive():
            err = ctx.err()
            assert err is not None
            raise err
        if error:
            raise error[0]
        return box[0]

    def _interrupt_signing_on_sigterm(self) -> None:
        """After the command, SIGTERM (the pod is being deleted, or the TaskRun cancelled) would
        kill the process while it waits for its identity, and the termination message would be
        lost.  Instead the wait ends, the results are written unsigned and the step fails."""
        signer = self.signer
        if signer is None:
            return
        import contextlib
        import signal
        import threading

        if threading.current_thread() is not threading.main_thread():
            return

        def on_sigterm(signum: int, frame: object) -> None:
            signer.interrupt("SIGTERM")

        with contextlib.suppress(OSError, ValueError):
            signal.signal(signal.SIGTERM, on_sigterm)

    def _run_if_allowed(self, command: list[str], out: list[RunResult]) -> EntrypointError | None:
        allowed = True
        if self.cfg.when_expressions:
            from entrypoint._internal.step.when import allow_exec

            try:
                allowed = self._within_run_context(lambda: allow_exec(self.cfg.when_expressions))
            except EntrypointError as exc:
                return exc
        if not allowed:
            self.log("Step was skipped due to when expressions were evaluated to false.")
            out.append(_internal("Reason", "Skipped"))
            self._write_post(failed=False)
            self._write_exit_code("0")
            return _SKIPPED
        try:
            self.runner.run(self.run_ctx, command)
        except EntrypointError as exc:
            return exc
        return None

    def _classify(self, err: EntrypointError | None, out: list[RunResult]) -> None:
        cfg = self.cfg
        if isinstance(err, DebugBeforeStepError):
            self._write_post(failed=True)
        elif isinstance(err, ContextCanceled):
            self._write_post(failed=True)
            self._write_exit_code("killed")
            out.append(_internal("Reason", "Cancelled"))
        elif isinstance(err, DeadlineExceeded):
            self._write_post(failed=True)
            out.append(_internal("Reason", "TimeoutExceeded"))
        elif err is not None and cfg.breakpoint_on_failure:
            self.log("Skipping writing to PostFile")
        elif cfg.on_error == "continue" and isinstance(err, ChildExitError):
            self._write_post(failed=False)
            self._write_exit_code(str(err.exit_code))
            out.append(_internal("ExitCode", str(err.exit_code)))
        elif err is None:
            self._write_post(failed=False)
            self._write_exit_code("0")
        else:
            self._write_post(failed=True)

    def _results_phase(self, names: list[str], directory: str, rtype: ResultType) -> None:
        entries = read_results(names, directory, rtype)
        if self.cfg.result_from == RESULT_FROM_TERMINATION_MESSAGE:
            to_write = entries
        else:
            to_write = []
            self._sidecar_entries.extend(entries)
        if self.signer is not None:
            _refuse_reserved(entries, directory)
            # With sidecar-logs the results travel through the sidecar, but their signing entries
            # still go into the termination message: Tekton computes them and throws them away.
            if not self._seals:
                try:
                    to_write = to_write + self.signer.sign(self.run_ctx, entries)
                except SigningError:
                    # As with the compact format: the results are written unsigned (a verifier
                    # rejects them; Tekton's entrypoint would drop them), then the step fails.
                    if to_write:
                        self._write_termination(to_write)
                    raise
        if to_write:
            self._write_termination(to_write)

    # -- helpers ------------------------------------------------------------------------------------

    def _needs_substitution(self) -> bool:
        """Whether any ``$(steps...)`` reference can be present: most steps have none, and the
        substitution code (regular expressions, JSON, tempfile) is then never imported."""
        cfg = self.cfg
        if any(STEP_REFERENCE in v for v in self.env.values()) or any(
            STEP_REFERENCE in a for a in cfg.command
        ):
            return True
        for w in cfg.when_expressions:
            if (
                STEP_REFERENCE in w.input
                or STEP_REFERENCE in w.cel
                or any(STEP_REFERENCE in v for v in w.values)
            ):
                return True
        if len(cfg.command) == 1 and os.path.dirname(cfg.command[0]) == cfg.layout.scripts_dir:
            try:
                with open(cfg.command[0], "rb") as f:
                    return STEP_REFERENCE.encode() in f.read()
            except OSError:
                return False
        return False

    def _substitute(self) -> list[str]:
        if not self._needs_substitution():
            return self.cfg.command
        from entrypoint._internal.step import substitution

        cfg = self.cfg
        steps_dir = cfg.layout.steps_dir
        outcome = substitution.substitute_step_results(
            dict(self.env), cfg.when_expressions, cfg.command, steps_dir
        )
        self._apply_env(outcome.env)
        cfg.when_expressions = outcome.when
        command = outcome.command
        if outcome.error is not None:
            if isinstance(outcome.error, substitution.StepResultIndexError):
                raise outcome.error
            self.log(f"Error while substituting step results: {outcome.error}")
        art = substitution.substitute_artifacts(command, dict(self.env), steps_dir, cfg.layout.scripts_dir)
        self._apply_env(art.env)
        if art.error is not None:
            self.log(f"Error while substituting step artifacts: {art.error}")
        return art.command

    def _apply_env(self, env: dict[str, str]) -> None:
        for key, value in env.items():
            if self.env.get(key) != value:
                self.env[key] = value

    def _wait_before_step(self) -> EntrypointError | None:
        post = self.cfg.post_file
        self.log(
            "debug before step breakpoint has taken effect, waiting for user's decision: "
            "1) continue, use cmd: /tekton/debug/scripts/debug-beforestep-continue "
            "2) fail-continue, use cmd: /tekton/debug/scripts/debug-beforestep-fail-continue"
        )
        target = post + ".beforestepexit"
        try:
            self.waiter.wait(Context.background(), target, False, False)
        except EntrypointError:
            err = DebugBeforeStepError()
            self.log(f"error occurred while waiting for {target} : {err}")
            return err
        return None

    def _watch_cancel_file(self) -> None:
        """Cancel the run once the cancel file is there and not empty (Tekton's check).  Checked
        now, so that a step cancelled before its command starts never starts it, then by the
        runner's own wait loop while the command runs.  Not on a thread: a second thread takes
        the GIL from the one starting the command, and each time that one blocks (an fsync on a
        disk-backed root) it waits up to a switch interval to get it back (measured: ~3 ms per
        step on tmpfs, ~9 ms on disk)."""
        cancel_file = self.cfg.layout.cancel_file
        reported: list[bool] = []

        def check() -> None:
            if reported or self.run_ctx.err() is not None:
                return
            try:
                cancelled = os.stat(cancel_file).st_size > 0
            except FileNotFoundError:
                return
            except OSError as exc:
                from entrypoint._internal.go.errors import path_error
                from entrypoint._internal.go.flag import go_quote

                reported.append(True)  # once: the step goes on, as Tekton's does
                self.log(
                    f"Error while waiting for cancellation: waiting for {go_quote(cancel_file)}: "
                    f"{path_error('stat', cancel_file, exc)}"
                )
                return
            if cancelled:
                self.run_ctx.cancel()

        check()
        self.runner.while_running.append(check)

    def _write_post(self, failed: bool) -> None:
        if self.cfg.post_file:
            self._post(self.cfg.post_file + (".err" if failed else ""), "")

    def _write_exit_code(self, content: str) -> None:
        self._post(join(self.cfg.step_metadata_dir, "exitCode"), content)

    def _post(self, file: str, content: str) -> None:
        # Go's post writer calls log.Fatalf: no termination message, no breakpoint, exit 1.
        try:
            self.post_writer.write(file, content)
        except PostFileError as exc:
            raise Fatal(str(exc)) from exc


def _refuse_reserved(entries: list[RunResult], directory: str) -> None:
    from entrypoint._internal.signing import is_reserved
    from entrypoint._internal.signing.errors import ReservedResultError

    for e in entries:
        if is_reserved(e.key):
            raise ReservedResultError(
                f"result {e.key!r} ({join(directory, e.key)}) uses a name reserved for the signing "
                "entries while signing is on; rename the result"
            )


class _Skipped(EntrypointError):
    pass


_SKIPPED = _Skipped("skipped by when expressions")
