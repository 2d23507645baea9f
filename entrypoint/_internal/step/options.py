"""The entrypoint's command line: Tekton's flags (spec §2.3), parsed with Go flag rules.

Options are plain data; nothing here knows how a step runs.
"""

from __future__ import annotations

import os

from entrypoint import errors
from entrypoint._internal.go.flag import BoolValue, ChoiceValue, DurationValue, FlagSet, StringValue
from entrypoint.errors import SigningConfigError

DEFAULT_SPIRE_SOCKET = "unix:///spiffe-workload-api/spire-agent.sock"
SIGNATURE_FORMATS = ("tekton", "compact")
# Tekton's controller passes none of our flags; a cluster-wide pod template can set these instead
# (Tekton's config-defaults ``default-pod-template`` env applies to every TaskRun's steps).
ENV_SIGNING_BACKEND = "SIGNED_ENTRYPOINT_SIGNING_BACKEND"
ENV_SIGNATURE_FORMAT = "SIGNED_ENTRYPOINT_SIGNATURE_FORMAT"


def signing_backends() -> tuple[str, ...]:
    """The backends' flag values, from their registry: loaded only when a step names one."""
    from entrypoint._internal.backends import NAMES

    return NAMES


# What signing_choice raises, by its base class (the one ConfigError of entrypoint.errors).
ConfigError = errors.ConfigError


class Options:
    """The parsed flags, as plain data (a plain class: ``dataclasses`` costs a step ~5 ms)."""

    entrypoint: str = ""
    wait_file: str = ""
    wait_file_content: bool = False
    post_file: str = ""
    termination_path: str = "/tekton/termination"
    results: str = ""
    step_results: str = ""
    when_expressions: str = ""
    timeout_ns: int = 0
    stdout_path: str = ""
    stderr_path: str = ""
    breakpoint_on_failure: bool = False
    debug_before_step: bool = False
    on_error: str = ""
    step_metadata_dir: str = ""
    result_from: str = "termination-message"
    compress_termination_message: bool = False
    enable_spire: bool = False
    spire_socket_path: str = DEFAULT_SPIRE_SOCKET
    signing_backend: str = ""
    signature_format: str = ""  # empty: from the environment, else "tekton" (see signing_choice)
    signing_timeout_ns: int = 20 * 10**9
    signing_retry_interval_ns: int = 2 * 10**9

    def __init__(self, timeout_ns: int = 0, leftovers: list[str] | None = None) -> None:
        self.timeout_ns = timeout_ns
        self.leftovers = leftovers or []


class _Bound:
    """Keeps the flag values registered on a FlagSet until they are copied into Options."""

    def __init__(self, fs: FlagSet, termination_default: str) -> None:
        self.strings: dict[str, StringValue] = {}
        self.bools: dict[str, BoolValue] = {}
        s, b = self.strings, self.bools
        s["entrypoint"] = fs.string("entrypoint", "", "The original entrypoint command to run")
        s["wait_file"] = fs.string("wait_file", "", "If specified, file to wait for")
        b["wait_file_content"] = fs.bool(
            "wait_file_content", False, "If specified, expect wait_file to have content"
        )
        s["post_file"] = fs.string("post_file", "", "If specified, file to write upon completion")
        s["termination_path"] = fs.string(
            "termination_path", termination_default, "If specified, file to write upon termination"
        )
        s["results"] = fs.string(
            "results", "", "If specified, list of file names that might contain task results"
        )
        s["step_results"] = fs.string(
            "step_results",
            "",
            "step results if specified, list of file names that might contain step results",
        )
        s["when_expressions"] = fs.string(
            "when_expressions", "", "when_expressions if specified, json string of when expressions"
        )
        self.timeout: DurationValue = fs.duration("timeout", 0, "If specified, sets timeout for step")
        s["stdout_path"] = fs.string("stdout_path", "", "If specified, file to copy stdout to")
        s["stderr_path"] = fs.string("stderr_path", "", "If specified, file to copy stderr to")
        b["breakpoint_on_failure"] = fs.bool(
            "breakpoint_on_failure", False, "If specified, expect steps to not skip on failure"
        )
        b["debug_before_step"] = fs.bool(
            "debug_before_step",
            False,
            "If specified, wait for a debugger to attach before executing the step",
        )
        s["on_error"] = fs.string(
            "on_error",
            "",
            'Set to "continue" to ignore an error and continue when a container terminates with a '
            'non-zero exit code. Set to "stopAndFail" to declare a failure with a step error and stop '
            "executing the rest of the steps.",
        )
        s["step_metadata_dir"] = fs.string(
            "step_metadata_dir",
            "",
            "If specified, create directory to store the step metadata e.g. /tekton/steps/<step-name>/",
        )
        s["result_from"] = fs.string(
            "result_from",
            "termination-message",
            "Indicates how results are extracted: termination-message or sidecar-logs",
        )
        b["compress_termination_message"] = fs.bool(
            "compress_termination_message", False, "If specified, compress the termination message"
        )
        b["enable_spire"] = fs.bool(
            "enable_spire", False, "If specified by configmap, this enables spire signing and verification"
        )
        s["spire_socket_path"] = fs.string(
            "spire_socket_path",
            DEFAULT_SPIRE_SOCKET,
            "Experimental: The SPIRE agent socket for SPIFFE workload API.",
        )

        # Our own flags (Tekton's binary has none of these).  Both spellings of the backend flag
        # share one value, so the last one given wins, as for any repeated Go flag.
        self.signing_backend = ChoiceValue(signing_backends)
        usage = (
            "Signing identity backend: spire (same as -enable_spire), oidc-sa-token or sigstore-keyless; "
            "empty means "
            f"${ENV_SIGNING_BACKEND}, else no signing"
        )
        fs.var(self.signing_backend, "signing_backend", usage)
        fs.var(self.signing_backend, "signing-backend", usage)
        self.signature_format = ChoiceValue(SIGNATURE_FORMATS)
        fs.var(
            self.signature_format,
            "signature_format",
            "Signed-results wire format: tekton (Tekton's) or compact (docs/compact-format.md); empty "
            f"means ${ENV_SIGNATURE_FORMAT}, else tekton",
        )
        self.signing_timeout: DurationValue = fs.duration(
            "signing_timeout", 20 * 10**9, "Total time allowed to obtain a signing identity"
        )
        self.signing_retry: DurationValue = fs.duration(
            "signing_retry_interval", 2 * 10**9, "Interval between attempts to obtain a signing identity"
        )

    def to_options(self, leftovers: list[str]) -> Options:
        opts = Options(timeout_ns=self.timeout.value, leftovers=leftovers)
        opts.signing_backend = self.signing_backend.value
        opts.signature_format = self.signature_format.value
        opts.signing_timeout_ns = self.signing_timeout.value
        opts.signing_retry_interval_ns = self.signing_retry.value
        for name, sv in self.strings.items():
            setattr(opts, name, sv.value)
        for name, bv in self.bools.items():
            setattr(opts, name, bv.value)
        return opts


def signing_choice(opts: Options, environ: dict[str, str] | os._Environ[str]) -> tuple[str, str]:
    """The signing backend and wire format.  Flags first: ours, then Tekton's ``-enable_spire``
    (the controller's, which a Task's own ``env`` must not be able to override); the environment
    only when no flag chose.  The format defaults to Tekton's."""
    backend = opts.signing_backend
    if not backend and opts.enable_spire and opts.spire_socket_path:
        backend = "spire"
    if not backend:
        backend = environ.get(ENV_SIGNING_BACKEND, "")
        if backend and backend not in signing_backends():
            raise SigningConfigError(
                f"{ENV_SIGNING_BACKEND}={backend!r}: must be one of {', '.join(signing_backends())}"
            )
    wire = opts.signature_format or environ.get(ENV_SIGNATURE_FORMAT, "") or "tekton"
    if wire not in SIGNATURE_FORMATS:
        raise SigningConfigError(
            f"{ENV_SIGNATURE_FORMAT}={wire!r}: must be one of {', '.join(SIGNATURE_FORMATS)}"
        )
    return backend, wire


def register(fs: FlagSet, termination_default: str = "/tekton/termination") -> _Bound:
    return _Bound(fs, termination_default)


def split_args(args: list[str]) -> tuple[list[str], list[str]]:
    """Split at the first ``--`` at index >= 1 (spec §2.1); at index 0 there is no split."""
    for i, arg in enumerate(args):
        if arg == "--":
            if i == 0:
                return list(args), []
            return args[:i], args[i + 1 :]
    return list(args), []
