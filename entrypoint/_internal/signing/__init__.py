"""Signing a step's results: identity backends x wire formats (any backend with any format).

A backend answers one question: "give me a key and the material that proves who holds it"
(:class:`~entrypoint._internal.signing.identity.Identity`).  A wire format answers another: "turn
entries, a key and its material into signing entries".  The signer joins them and is what the
lifecycle calls once per results phase.

Nothing here is imported unless signing is enabled: it pulls in cryptography and gRPC.
"""

from __future__ import annotations

from entrypoint._internal.backends import NAMES, get, tekton_entry_names
from entrypoint._internal.signing.errors import SigningError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Mapping

    from entrypoint._internal.signing.background import BackgroundSigner
    from entrypoint._internal.signing.compact_format import CompactFormat
    from entrypoint._internal.signing.forked import ForkedBackend
    from entrypoint._internal.signing.tekton_format import TektonFormat

# Result names a step may not use while signing is on: a result file with one of these names
# could otherwise forge or shadow the signing entries (any format, any backend).
RESERVED_NAMES = frozenset({"RESULT_MANIFEST", "RESULT_MANIFEST.sig", "SIGNATURE"}) | tekton_entry_names()
RESERVED_SUFFIXES = (".sig",)

BACKENDS = NAMES
FORMATS = ("tekton", "compact")


def is_reserved(name: str) -> bool:
    return name in RESERVED_NAMES or name.endswith(RESERVED_SUFFIXES)


def failing_signer(reason: str, budget: float = 20.0) -> BackgroundSigner:
    """A signer for a step whose signing is misconfigured: the step still runs, its post file and
    exitCode are written, and then its signing fails with ``reason`` (a later step waiting for the
    post file must not hang until the TaskRun times out)."""
    from entrypoint._internal.signing.background import BackgroundSigner

    def setup() -> tuple[ForkedBackend, TektonFormat | CompactFormat]:
        raise SigningError(reason)

    return BackgroundSigner(setup, budget, "misconfigured")


def background_signer(
    backend: str,
    wire_format: str = "tekton",
    *,
    spire_socket: str = "",
    budget: float = 20.0,
    interval: float = 2.0,
    step: str = "",
    metadata_dir: str = "",
    environ: Mapping[str, str] | None = None,
) -> BackgroundSigner:
    """A signer that prepares itself in the background once :meth:`BackgroundSigner.start` is
    called (or, at the latest, when it is first asked to sign).

    ``metadata_dir`` is the step's ``/tekton/run/<index>/status``: the compact format leaves a
    marker there for later steps, and reads the earlier steps' markers.

    Call this while the process is single-threaded: the backend's helper process is forked here
    and starts fetching at once, on another core.  Call it on the main thread: the helper dies
    when the thread that started it ends (PR_SET_PDEATHSIG, :func:`.forked.die_with_parent`).
    """
    from entrypoint._internal.signing.background import BackgroundSigner, capped
    from entrypoint._internal.signing.forked import ForkedBackend
    from entrypoint._internal.step.selfexec import make_undumpable

    # Before the helper's pipes exist and before the step's code runs: the key will cross them and
    # live in this process too.
    make_undumpable()
    budget = capped(budget)
    if backend not in BACKENDS or wire_format not in FORMATS:
        raise SigningError(f"unsupported signing configuration: backend {backend!r}, format {wire_format!r}")

    import os

    config = get(backend).module("config")
    args = config.fetcher_args(
        spire_socket=spire_socket, environ=os.environ if environ is None else environ, step=step
    )
    try:
        helper: ForkedBackend | None = ForkedBackend(
            backend, budget, {**args, "budget": budget, "interval": interval}
        )
        failure: SigningError | None = None
    except SigningError as exc:
        # The step still runs; its signing fails, clearly, when results are signed.
        helper, failure = None, exc

    def setup() -> tuple[ForkedBackend, TektonFormat | CompactFormat]:
        if helper is None:
            assert failure is not None
            raise failure
        # The helper's answer is decoded by the backend's evidence module, whose imports (the
        # X.509 parser: ~40 ms) would otherwise start only once the answer is in, often after the
        # command has exited; here they run while the helper is still fetching.
        get(backend).module("evidence")
        if wire_format == "compact":
            from entrypoint._internal.signing.compact_format import CompactFormat

            return helper, CompactFormat(step, metadata_dir=metadata_dir)
        from entrypoint._internal.signing.tekton_format import TektonFormat

        return helper, TektonFormat()

    signer = BackgroundSigner(setup, budget, backend, seals=wire_format == "compact")
    # A backend that logs what was signed (Rekor) adds its hook; the log call runs in the helper.
    hooks = getattr(config, "post_sign_hooks", None)
    if hooks is not None and helper is not None:
        signer.post_sign.extend(hooks({**args, "budget": budget}, helper, wire_format))
    return signer
