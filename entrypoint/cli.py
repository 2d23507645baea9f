"""The ``entrypoint`` command: a thin layer that parses Tekton's flags, runs a subcommand or the
step lifecycle, and maps the outcome to Tekton's exit statuses (spec §1, §4.10)."""

from __future__ import annotations

import contextlib
import os
import sys

from entrypoint._internal.go.flag import FlagSet
from entrypoint._internal.step import options
from entrypoint._internal.step.creds import CredentialFlags, copy_to_home
from entrypoint._internal.step.entrypointer import Entrypointer, Fatal, StepConfig
from entrypoint._internal.step.layout import Layout
from entrypoint._internal.step.log import log
from entrypoint._internal.step.postwriter import FilePostWriter
from entrypoint._internal.step.runner import ProcessRunner
from entrypoint._internal.step.waiter import FileWaiter
from entrypoint.errors import (
    ChildExitError,
    ContextCanceled,
    DeadlineExceeded,
    DebugBeforeStepError,
    EntrypointError,
    HelpRequested,
    MessageLengthError,
    SkipError,
    SubcommandError,
    UsageError,
)

# Only the standard library is imported above, and only what every step needs: a step pays for
# each import at start-up.  Everything else is imported where a feature needs it.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from entrypoint._internal.step.seams import Waiter
    from entrypoint._internal.step.when import WhenExpression

EXIT_CANCELLED = 9  # Tekton exits with SIGKILL's number when a step is cancelled


def run() -> None:
    """The console entry point: run, flush, and end the process at once.

    Everything the step produces is written, closed and fsync'ed before this returns; what is
    left is interpreter teardown, which with gRPC and cryptography loaded costs a signed step
    ~30 ms on its critical path.  Go's entrypoint ends with os.Exit the same way.
    """
    # Python turns SIGINT into KeyboardInterrupt; Go's default, which Tekton relies on outside the
    # command's run (where signals are forwarded), is to die of the signal.
    import signal

    signal.signal(signal.SIGINT, signal.SIG_DFL)
    code = main()
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(OSError, ValueError):  # a closed stream is owed nothing
            stream.flush()
    os._exit(code)


def main(argv: list[str] | None = None) -> int:
    """Run the entrypoint with ``argv`` (default: the process arguments); returns the exit status."""
    args = sys.argv[1:] if argv is None else argv
    try:
        return _main(args)
    except Fatal as exc:
        log(str(exc))
        return 1


def _main(args: list[str]) -> int:
    if args[:1] == ["verify"]:
        # Our verifier, for controllers and auditors.  Tekton's binary has no such subcommand and
        # its controller never passes a positional argument before "--", so nothing collides.
        from entrypoint._internal.verify_cli import main as verify_main

        return verify_main(args[1:])
    if args[:1] == ["controller"]:
        # The companion controller (docs/controller.md); a step never gets here.
        from entrypoint.controller.cli import main as controller_main

        return controller_main(args[1:])
    if args[:1] == ["save-jwks"]:
        from entrypoint._internal.verify_cli import save_jwks_main

        return save_jwks_main(args[1:])
    if args[:1] == ["sigstore-bundle"]:
        from entrypoint._internal.sigstore_bundle_cli import main as sigstore_bundle_main

        return sigstore_bundle_main(args[1:])
    layout = Layout.from_env()
    fs = FlagSet(os.path.basename(sys.argv[0]) or "entrypoint")
    creds = CredentialFlags(layout.creds_secrets_dir)
    creds.register(fs)
    bound = options.register(fs, layout.termination_file)
    flag_args, command_args = options.split_args(args)
    try:
        leftovers = fs.parse(flag_args)
    except HelpRequested:
        return 0
    except UsageError:
        return 2
    opts = bound.to_options(leftovers)

    sub = None
    if leftovers:
        from entrypoint._internal.step.subcommands import StepInitFatal, dispatch

        sub = dispatch(leftovers, layout)
    if sub is not None:
        name, run = sub
        try:
            log(run())
        except StepInitFatal as exc:
            log(str(exc))
            return 1
        except SubcommandError as exc:
            log(f"{name} error: {exc}")
            return 1
        return 0

    for message in creds.write(layout.creds_dir):
        log(message)

    if opts.entrypoint:
        command = [opts.entrypoint, *command_args]
    else:
        from entrypoint._internal.step.platforms import current_platform, resolve_command

        try:
            platform_commands = os.environ.get("TEKTON_PLATFORM_COMMANDS")
            command = resolve_command(platform_commands, current_platform()) + command_args
        except EntrypointError as exc:
            log(str(exc))
            return 1

    when: list[WhenExpression] = []
    if opts.when_expressions:
        from entrypoint._internal.step.when import decode_when_expressions

        try:
            when = decode_when_expressions(opts.when_expressions)
        except EntrypointError as exc:
            log(f"Error unmarshalling when expressions: {exc}")
            return 1

    signer = None
    try:
        backend, wire_format = options.signing_choice(opts, os.environ)
    except options.ConfigError as exc:
        from entrypoint._internal.signing import failing_signer

        backend, wire_format = "", "tekton"
        signer = failing_signer(str(exc))
    if backend:
        from entrypoint._internal.signing import background_signer

        if backend == "spire":
            log("SPIRE is enabled in this build, enableSpire is supported")
        from entrypoint._internal.step.entrypointer import step_index

        signer = background_signer(
            backend,
            wire_format,
            step=step_index(opts.step_metadata_dir),
            metadata_dir=opts.step_metadata_dir,
            spire_socket=opts.spire_socket_path,
            budget=opts.signing_timeout_ns / 1e9,
            interval=opts.signing_retry_interval_ns / 1e9,
        )

    for message in copy_to_home(layout.creds_dir, os.environ.get("HOME")):
        log(message)

    config = StepConfig(
        command=command,
        wait_files=opts.wait_file.split(","),
        wait_file_content=opts.wait_file_content,
        post_file=opts.post_file,
        termination_path=opts.termination_path,
        results=opts.results.split(","),
        step_results=opts.step_results.split(","),
        when_expressions=when,
        timeout_ns=opts.timeout_ns,
        breakpoint_on_failure=opts.breakpoint_on_failure,
        debug_before_step=opts.debug_before_step,
        on_error=opts.on_error,
        step_metadata_dir=opts.step_metadata_dir,
        result_from=opts.result_from,
        compress=opts.compress_termination_message,
        layout=layout,
    )
    waiter = FileWaiter()
    hermetic = os.environ.get("TEKTON_RESOURCE_NAME", "") == "" and os.environ.get("TEKTON_HERMETIC") == "1"
    runner = ProcessRunner(opts.stdout_path, opts.stderr_path, hermetic=hermetic)
    if signer is not None:
        # Prepare the identity while this thread is idle: during the wait for the previous step
        # if there is one (SPIRE's registration delay then hides behind it), else while the
        # command runs.  Either way only the signing itself follows the command.
        if any(config.wait_files):
            signer.start()
        else:
            runner.when_idle.append(signer.start)
    entrypointer = Entrypointer(
        config,
        waiter,
        runner,
        FilePostWriter(),
        log,
        signer=signer,
        exit_code_of=lambda err: planned_exit_status(err, opts),
    )
    try:
        entrypointer.go()
    except Fatal:
        raise
    except EntrypointError as exc:
        return exit_status(exc, opts, waiter)
    return 0


def planned_exit_status(err: EntrypointError | None, opts: options.Options) -> int | None:
    """The exit status :func:`exit_status` will give, decided before the final write so that the
    signature can bind it; None where a debugger decides it (a breakpoint on failure)."""
    from entrypoint._internal.step.substitution import StepResultIndexError

    if err is None:
        return 0
    if isinstance(err, StepResultIndexError):
        return 2
    if isinstance(err, (DebugBeforeStepError, SkipError, MessageLengthError, DeadlineExceeded)):
        return 1
    if isinstance(err, ContextCanceled):
        return EXIT_CANCELLED
    if opts.breakpoint_on_failure:
        return None
    if isinstance(err, ChildExitError):
        if opts.on_error != "continue":
            return err.exit_code if err.exit_code >= 0 else 255
        return 0
    return 1


def exit_status(err: EntrypointError, opts: options.Options, waiter: Waiter) -> int:
    """Tekton's mapping from the lifecycle's error to the process exit status (spec §4.10)."""
    from entrypoint._internal.step.substitution import StepResultIndexError

    if isinstance(err, StepResultIndexError):
        log(f"panic: {err}")  # Go crashes here with a runtime panic, whose exit status is 2
        return 2
    if isinstance(err, DebugBeforeStepError):
        log("Skipping execute step script because before step breakpoint fail-continue")
        return 1
    if isinstance(err, SkipError):
        log("Skipping step because a previous step failed")
        return 1
    if isinstance(err, MessageLengthError):
        log(str(err))
        return 1
    if isinstance(err, ContextCanceled):
        log("Step was cancelled")
        return EXIT_CANCELLED
    if isinstance(err, DeadlineExceeded):
        log(str(err))
        return 1
    if isinstance(err, ChildExitError):
        if opts.breakpoint_on_failure:
            return breakpoint_exit(opts.post_file, waiter)
        if opts.on_error != "continue":
            return err.exit_code if err.exit_code >= 0 else 255
        return 0
    if opts.breakpoint_on_failure:
        return breakpoint_exit(opts.post_file, waiter)
    log(f"Error executing command: {err}")
    return 1


def breakpoint_exit(post_file: str, waiter: Waiter) -> int:
    """Wait for the debugger's decision and exit with the code it wrote (0 if unreadable)."""
    from entrypoint._internal.step.context import Context

    log(
        "Breakpoint on failure has taken effect, waiting for user's decision: "
        "1) continue, use cmd: /tekton/debug/scripts/debug-continue "
        "2) fail-continue, use cmd: /tekton/debug/scripts/debug-fail-continue"
    )
    path = post_file + ".breakpointexit"
    try:
        waiter.wait(Context.background(), path, False, False)
    except EntrypointError as exc:
        log(f"error occurred while waiting for {path} : {exc}")
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            text = f.read()
    except FileNotFoundError:
        log(f"error occurred while reading breakpoint exit code : breakpoint postfile {path} not found")
        return 0
    except OSError as exc:
        log(f"error occurred while reading breakpoint exit code : {exc}")
        return 0
    text = text.removesuffix("\n")
    digits = text[1:] if text[:1] in ("+", "-") else text
    if not (digits.isascii() and digits.isdigit()):
        reason = f'strconv.Atoi: parsing "{text}": invalid syntax'
        log(f"error occurred while reading breakpoint exit code : {reason}")
        return 0
    return int(text) & 0xFF


if __name__ == "__main__":
    run()
