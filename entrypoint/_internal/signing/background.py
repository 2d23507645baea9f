"""Getting the identity in the background while the step's command runs.

Tekton fetches the SVID only after the command has exited, so the SPIRE registration delay, the
gRPC connection and the fetch all sit on the critical path of every step.  Here the heavy imports
(cryptography, gRPC), the backend's construction and the fetch start with the step on a thread of
their own; only the signing itself is left for after the command.  This module stays light: it
must not import what it is hiding.
"""

from __future__ import annotations

import gc
import threading
import time

from entrypoint._internal.signing.errors import SigningError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Protocol

    from entrypoint._internal.signing.identity import Identity
    from entrypoint._internal.step.context import Context
    from entrypoint.termination import RunResult

    class Backend(Protocol):
        """What the signer needs of an identity backend: a fetch within a budget."""

        name: str
        budget: float

        def fetch(self, budget: float | None = None) -> Identity: ...

    class WireFormat(Protocol):
        """What the signer needs of a wire format: per-phase signing or sealing, and a warm-up."""

        name: str
        seals: bool

        def sign(self, entries: list[RunResult], identity: Identity) -> list[RunResult]: ...

        def warm_up(self, identity: Identity) -> None: ...

        def seal_options(
            self, entries: list[RunResult], identity: Identity, *, exit_code: int | None = None
        ) -> list[list[RunResult]]: ...

        def after_write(self, written: list[RunResult]) -> None: ...

    class PostSignHook(Protocol):
        """Runs on what was just signed (e.g. to log it to a transparency log) and returns entries
        to add beside the signature; a failure raises SigningError, which fails the signing."""

        def __call__(self, signed: list[RunResult], identity: Identity) -> list[RunResult]: ...


# Go durations reach 292 years; waits here cannot (threading and select overflow past ~2^31 s on
# some platforms, and a deadline of monotonic() + 2^63 ns is no deadline).  A budget is capped at
# a day: far beyond any TaskRun's timeout, so no signing that could succeed is cut short.
MAX_BUDGET = 86400.0


def capped(budget: float) -> float:
    """``budget`` within [0, MAX_BUDGET]."""
    return min(max(budget, 0.0), MAX_BUDGET)


# A step that outlived the budget gets one more attempt this long, in case the agent recovered.
LATE_ATTEMPT = 2.0
# How long past the budget and the late attempt a prefetch may still be finishing on a loaded
# machine (process start-up, imports) before the step gives up on it.
PREFETCH_SLACK = 30.0


class BackgroundSigner:
    """A ResultsSigner whose backend, wire format and identity are prepared on a thread."""

    def __init__(
        self,
        setup: Callable[[], tuple[Backend, WireFormat]],
        budget: float,
        name: str = "signer",
        seals: bool = False,
    ) -> None:
        self._setup = setup
        # Whether the format seals each termination write (compact) rather than appending
        # entries per results phase (tekton); known before the format itself is loaded.
        self.seals = seals
        self._failed: SigningError | None = None
        self.budget = capped(budget)
        self._done = threading.Event()
        # Set when the prefetch ends or the step is told to stop: what the signing path waits on.
        self._wake = threading.Event()
        self._interrupted: str | None = None
        self._backend: Backend | None = None
        self._format: WireFormat | None = None
        self._identity: Identity | None = None
        self._error: SigningError | None = None
        self._started = time.monotonic()
        self._start_lock = threading.Lock()
        self._launched = False
        self._thread = threading.Thread(target=self._run, name=f"{name}-prefetch", daemon=True)
        # Steps that come after signing, owned by whoever adds them (a backend's log upload).
        self.post_sign: list[PostSignHook] = []
        self._exit_code: int | None = None

    def start(self) -> BackgroundSigner:
        """Begin preparing (idempotent).  Best called when the main thread goes idle: the imports
        here are CPU-bound and would otherwise delay the step's own work for the GIL."""
        with self._start_lock:
            if not self._thread.is_alive() and not self._done.is_set() and not self._launched:
                self._launched = True
                self._started = time.monotonic()
                self._thread.start()
        return self

    def _run(self) -> None:
        try:
            self._backend, self._format = self._setup()
            self._identity = self._backend.fetch()
            # First uses are slow (OpenSSL initialisation, the PEM path): pay them here.  Then
            # exempt the heap the imports built from the garbage collector, whose full pass over
            # it would otherwise land on the signing path after the command.
            self._format.warm_up(self._identity)
            for hook in self.post_sign:
                warm_up = getattr(hook, "warm_up", None)
                if callable(warm_up):
                    warm_up()
            gc.freeze()
        except SigningError as exc:
            self._error = exc
        except Exception as exc:
            self._error = SigningError(f"preparing to sign: {exc}")
        finally:
            self._done.set()
            self._wake.set()

    def interrupt(self, reason: str) -> None:
        """Give up waiting for the identity (the step was told to stop): the signing fails at
        once with ``reason``, so that the results are still written, unsigned, in the grace
        period Kubernetes leaves before it kills the container.  Safe in a signal handler."""
        self._interrupted = reason
        self._wake.set()
        close = getattr(self._backend, "close", None)
        if callable(close):
            close()  # a fetch in progress ends when its helper does

    def _check_interrupted(self) -> None:
        if self._interrupted is not None:
            raise SigningError(f"signing abandoned: {self._interrupted} while waiting for the identity")

    def _elapsed(self) -> float:
        return time.monotonic() - self._started

    def identity(self) -> Identity:
        """The identity to sign with: the prefetched one while valid, else a fresh fetch.  Once
        that has failed, it fails at once: a step may ask up to three times (compact seals every
        write) and must not wait out the budget each time."""
        if self._failed is not None:
            raise self._failed
        try:
            return self._identity_now()
        except SigningError as exc:
            self._failed = exc
            raise

    def _identity_now(self) -> Identity:
        self.start()
        # Every part of the prefetch is bounded (the backends' fetches have deadlines), so wait
        # for its own outcome, which names the cause, rather than guess one from a shorter wait:
        # on a loaded machine the answer can come well after the budget.  The cap only guards
        # against an import that never returns.
        cap = max(self.budget - self._elapsed(), 0.0) + LATE_ATTEMPT + PREFETCH_SLACK
        self._check_interrupted()
        self._wake.wait(cap)
        self._check_interrupted()
        if not self._done.is_set():
            phase = "loading the signer" if self._backend is None else "fetching the identity"
            raise SigningError(
                f"no identity within the signing budget of {self.budget:g}s: {phase} had not finished "
                f"{self._elapsed():.0f}s after the step started"
            )
        backend, ident, error = self._backend, self._identity, self._error
        if backend is None:
            raise error or SigningError("preparing to sign failed before loading the signer")
        if ident is not None:
            if ident.expires_within(ident.refresh_within):
                # Kept: a compact step seals up to three writes and must not fetch for each.
                ident = self._identity = backend.fetch()
            return ident
        remaining = self.budget - self._elapsed()
        try:
            ident = backend.fetch(budget=remaining if remaining > 0 else LATE_ATTEMPT)
        except SigningError:
            self._check_interrupted()
            if remaining > 0 or error is None:
                raise
            # The late attempt only tried again: the prefetch's failure is the cause to report.
            raise error from None
        self._identity = ident
        return ident

    def sign(self, ctx: Context, entries: list[RunResult]) -> list[RunResult]:
        # ``ctx`` is the step's run context, already ended after a timeout or a cancellation.
        # Tekton signs under it and so loses the results in exactly those cases; the fetch here
        # has its own budget instead.
        del ctx
        identity = self.identity()
        assert self._format is not None  # set together with the backend
        signed = self._format.sign(entries, identity)
        # The hooks see the values the block signs as well as the block.
        return signed + self._after_signing([*entries, *signed], identity) if signed else signed

    def ended(self, exit_code: int | None) -> None:
        """The exit status the step's process will have; a sealing format binds it (None: unknown)."""
        self._exit_code = exit_code

    def seal_options(self, entries: list[RunResult]) -> list[list[RunResult]]:
        identity = self.identity()
        assert self._format is not None
        return [
            option + self._after_signing(option, identity)
            for option in self._format.seal_options(entries, identity, exit_code=self._exit_code)
        ]

    def _after_signing(self, signed: list[RunResult], identity: Identity) -> list[RunResult]:
        added: list[RunResult] = []
        for hook in self.post_sign:
            added += hook(signed, identity)
        return added

    def after_write(self, written: list[RunResult]) -> None:
        """Let the format tell later steps about what was written (nothing if it never loaded)."""
        if self._format is not None:
            self._format.after_write(written)
