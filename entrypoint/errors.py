"""The one exception hierarchy of signed-entrypoint.

Every error this package raises on purpose derives from :class:`EntrypointError`.  Messages are
written for the person who has to fix the problem: they name the file, flag or field involved.
Where Tekton's Go entrypoint has a fixed error text that operators or tests rely on, the message
reproduces it exactly (the docstring of the class says so).  The tree (where a class is defined
elsewhere, its module follows it; ``tests/unit/test_errors.py`` checks that this drawing is true)::

    EntrypointError
    ├── UsageError
    │   ├── HelpRequested
    │   └── FlagValueError
    ├── ConfigError
    │   └── SigningConfigError
    ├── SubcommandError
    ├── StepInitFatal                 _internal/step/subcommands.py
    ├── Fatal                         _internal/step/entrypointer.py
    ├── WhenExpressionError
    ├── SubstitutionError
    │   └── StepResultIndexError      _internal/step/substitution.py
    ├── ResultsError
    ├── TerminationMessageError
    │   └── MessageLengthError
    ├── PostFileError
    ├── WaitError
    ├── SkipError
    ├── DebugBeforeStepError
    ├── ContextError
    │   ├── ContextCanceled
    │   └── DeadlineExceeded
    ├── ChildExitError
    ├── StartError
    ├── HermeticError
    ├── CredentialError               _internal/step/creds/_common.py
    ├── GoPathError                   _internal/go/errors.py
    ├── DecodeError (also a ValueError)
    │   ├── Base64Error               _internal/go/json.py
    │   ├── URLError                  _internal/go/url.py
    │   ├── JsonDecodeError           _internal/step/substitution.py
    │   ├── CompactFormatError        _internal/formats/compact.py
    │   ├── SvidDecodeError           _internal/backends/spire/svid.py
    │   ├── CertificateProblem        _internal/backends/sigstore/certs.py
    │   └── ArtifactError             _internal/backends/sigstore/artifact.py
    ├── SigningError
    │   ├── ReservedResultError
    │   ├── RetryableSigningError     _internal/backends/k8s_sat/fetch.py
    │   └── SigstoreServerError       _internal/backends/sigstore/http.py
    ├── VerificationError
    │   ├── TaskRunObjectError
    │   ├── VerificationFailed        _internal/verification/reasons.py
    │   └── SigstoreBundleError       _internal/backends/sigstore/bundle.py
    ├── TrustError
    │   ├── TrustBundleError          _internal/backends/spire/trust.py
    │   ├── KubeTrustError            _internal/backends/k8s_sat/kube.py
    │   └── SigstoreTrustError        _internal/backends/sigstore/trust.py
    └── KubeError                     _internal/kube/client.py
        ├── KubeConfigError
        ├── KubeTransportError
        ├── KubeStatusError
        ├── TaskRunConflict           controller/reconciler.py
        ├── TransientError            controller/reconciler.py
        └── WatchExpired              controller/watcher.py

Outside it, on purpose: ``PackError`` (_internal/packimport.py) is an ``ImportError``, because the
import system is what raises and handles it.
"""

from __future__ import annotations


class EntrypointError(Exception):
    """Base class of every error raised by this package; its text is the whole one-line message."""


class UsageError(EntrypointError):
    """The command line is wrong (Go's flag package exits with status 2 on these)."""


class HelpRequested(UsageError):
    """``-h`` / ``-help`` was given: usage was printed and the process exits 0."""


class FlagValueError(UsageError):
    """A flag value was rejected by its setter; the text is the setter's reason."""


class ConfigError(EntrypointError):
    """The environment or a configuration input (e.g. TEKTON_PLATFORM_COMMANDS) is invalid."""


class SigningConfigError(ConfigError):
    """An environment variable chooses a signing backend or format the entrypoint does not know."""


class SubcommandError(EntrypointError):
    """A subcommand (cp, init, step-init, decode-script) failed."""


class WhenExpressionError(EntrypointError):
    """When expressions could not be decoded or evaluated."""


class SubstitutionError(EntrypointError):
    """A ``$(steps...)`` reference could not be resolved."""


class ResultsError(EntrypointError):
    """Reading results or artifacts failed."""


class TerminationMessageError(EntrypointError):
    """Writing or parsing a termination message failed."""


class MessageLengthError(TerminationMessageError):
    """The termination message would exceed Kubernetes' 4096-byte limit (text is Tekton's constant)."""

    def __init__(self) -> None:
        super().__init__("Termination message is above max allowed size 4096, caused by large task result.")


class PostFileError(EntrypointError):
    """The post file or the exitCode file could not be written."""


class WaitError(EntrypointError):
    """Waiting for a file failed for a reason other than cancellation or a skip."""


class SkipError(EntrypointError):
    """A previous step failed (its ``.err`` post file exists): this step must be skipped."""

    def __init__(self) -> None:
        super().__init__("error file present, bail and skip the step")


class DebugBeforeStepError(EntrypointError):
    """The user chose fail-continue at a before-step breakpoint."""

    def __init__(self) -> None:
        super().__init__("before step breakpoint error file, user decided to skip the current step execution")


class ContextError(EntrypointError):
    """The run context ended (cancellation or deadline)."""


class ContextCanceled(ContextError):
    """The run context was canceled (Go's ``context.Canceled`` text)."""

    def __init__(self) -> None:
        super().__init__("context canceled")


class DeadlineExceeded(ContextError):
    """The run context's deadline passed (Go's ``context.DeadlineExceeded`` text)."""

    def __init__(self) -> None:
        super().__init__("context deadline exceeded")


class ChildExitError(EntrypointError):
    """The step's command exited non-zero or was killed by a signal.

    ``exit_code`` is the child's status, or -1 when a signal killed it (as Go reports it).
    """

    def __init__(self, exit_code: int, signal_name: str | None = None) -> None:
        self.exit_code = exit_code
        self.signal_name = signal_name
        text = f"signal: {signal_name}" if signal_name is not None else f"exit status {exit_code}"
        super().__init__(text)


class StartError(EntrypointError):
    """The step's command could not be started (not found, not executable, ...)."""


class HermeticError(EntrypointError):
    """Hermetic (network-isolated) execution was requested but could not be set up."""


class DecodeError(EntrypointError, ValueError):
    """Malformed input to one of the codecs (Go's base64 and URLs, cs1 values, SVID PEM); still a
    ValueError, as the codecs' callers expect."""


class SigningError(EntrypointError):
    """The step's results could not be signed (no identity, unusable key, reserved name, ...)."""


class ReservedResultError(SigningError):
    """A step wrote a result whose name belongs to the signing entries."""


class VerificationError(EntrypointError):
    """A check of a signed message failed (the verifier turns it into a verdict, never raises it)."""


class TaskRunObjectError(VerificationError):
    """A TaskRun or Pod object that the verifier cannot read; the text names the field."""


class TrustError(EntrypointError):
    """The trust to verify against (a bundle, the cluster's issuer) could not be loaded or reached."""
