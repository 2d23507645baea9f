"""Running an identity backend in a helper process.

The SPIRE backend needs py-spiffe, gRPC and protobuf: ~130 ms of imports, Python threads polling
the channel, and a large address space that the kernel must tear down when the step exits (~8 ms).
In the step's own process all of that competes with the step's work and lengthens its critical
path.  So the entrypoint starts a helper interpreter at start-up, on the other core; the helper
imports the backend and fetches; the identity comes back over a pipe as DER bytes.  The entrypoint
keeps only cryptography, can always kill a fetch that overruns its budget, and exits light.

The private key crosses a pipe between a process and its own fork, inside the step's container.
"""

from __future__ import annotations

import contextlib
import os
import select
import signal
import struct
import threading
import time

from entrypoint._internal.signing.errors import SigningError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable

    from entrypoint._internal.signing.background import Backend
    from entrypoint._internal.signing.identity import Identity

# Beyond its own budget, how long the helper may take to answer before it is killed.
GRACE = 5.0
_U32 = struct.Struct("!I")
# A request: what to do (F: fetch an identity; C: a backend call, its name and payload follow in
# frames) and the budget it has.
_REQUEST = struct.Struct("!cd")


class ForkedBackend:
    """A backend whose ``fetch`` runs in a helper process started at construction.

    The helper is a fresh interpreter started with ``posix_spawn`` (a fork would make the step's
    process pay copy-on-write faults on its whole heap while the helper lives).  ``name`` is the
    backend (:mod:`entrypoint._internal.backends`), ``args`` its fetcher's arguments; the helper
    imports the backend's ``fetch`` module, the step's process only its ``evidence``.
    """

    def __init__(self, name: str, budget: float, args: dict[str, str | float]) -> None:
        import sys

        from entrypoint._internal.step.selfexec import python_command

        self.name = name
        self.budget = budget
        # One request and its answer at a time: two interleaved exchanges on the same pipes would
        # read each other's answers.
        self._exchange = threading.Lock()
        req_r, self._req_w = os.pipe2(os.O_CLOEXEC)
        self._resp_r, resp_w = os.pipe2(os.O_CLOEXEC)
        # The package's own location first: an editable install is found through an import hook
        # that an isolated interpreter without ``site`` does not run.  The factory's arguments are
        # plain strings and numbers, passed as a Python literal (no JSON: it costs the step ~2 ms
        # of imports before its command can start).
        package_root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(__file__))))
        bootstrap = (
            f"import sys; sys.path[:0] = {[package_root, *sys.path]!r}; "
            # First of all, before any import: this process will hold the private key.
            "from entrypoint._internal.step.selfexec import make_undumpable; make_undumpable(); "
            # Then tie its life to this process's (this thread's: the main one, see the caller).
            "from entrypoint._internal.signing.forked import die_with_parent; "
            f"die_with_parent({os.getpid()}); "
            "from entrypoint._internal.backends import get; "
            f"fetcher = get({name!r}).module('fetch').Fetcher; "
            "from entrypoint._internal.signing.forked import serve; "
            f"serve(lambda: fetcher(**{args!r}))"
        )
        # stdin/stdout carry requests and answers; stderr is shared, so that a helper that cannot
        # even start says why in the step's log.
        actions = [(os.POSIX_SPAWN_DUP2, req_r, 0), (os.POSIX_SPAWN_DUP2, resp_w, 1)]
        env = {"PATH": os.environ.get("PATH", "")}
        python = python_command()
        try:
            self.pid = os.posix_spawn(
                python[0], [*python, "-I", "-S", "-c", bootstrap], env, file_actions=actions
            )
        except OSError as exc:
            for fd in (self._req_w, self._resp_r):
                os.close(fd)
            raise SigningError(
                f"{name}: cannot start the identity helper {python[0]}: {exc.strerror}"
            ) from exc
        finally:
            for fd in (req_r, resp_w):
                os.close(fd)

    def fetch(self, budget: float | None = None) -> Identity:
        with self._exchange:
            return self._fetch(budget)

    def call(self, op: str, payload: bytes, budget: float) -> bytes:
        """Run the backend's ``call(op, payload, budget)`` in the helper (e.g. a transparency log
        upload, with the HTTP client the fetch already loaded there); SigningError on failure."""
        with self._exchange:
            deadline = time.monotonic() + budget + GRACE
            self._send(b"C", budget, _frame(op.encode()) + _frame(payload), deadline)
            try:
                status = _read_exactly(self._resp_r, 1, deadline)
                answer = _read_frame(self._resp_r, deadline)
            except TimeoutError:
                self.close()
                raise SigningError(f"{self.name}: {op}: no answer within {budget:g}s") from None
            if status == b"E":
                raise SigningError(answer.decode("utf-8", "replace"))
            return answer

    def _send(self, kind: bytes, budget: float, extra: bytes, deadline: float) -> None:
        # Even the request gets a deadline: nothing on the signing path may block forever.
        try:
            os.set_blocking(self._req_w, False)
            request = _REQUEST.pack(kind, budget) + extra
            while request:
                remaining = deadline - time.monotonic()
                if remaining <= 0 or not select.select([], [self._req_w], [], remaining)[1]:
                    self.close()
                    raise SigningError(f"{self.name}: the identity helper does not take requests")
                request = request[os.write(self._req_w, request) :]
        except OSError as exc:
            raise SigningError(
                f"{self.name}: the identity helper process is gone ({self._status()})"
            ) from exc

    def _fetch(self, budget: float | None) -> Identity:
        total = self.budget if budget is None else budget
        deadline = time.monotonic() + total + GRACE
        self._send(b"F", total, b"", deadline)
        try:
            status = _read_exactly(self._resp_r, 1, deadline)
            if status == b"E":
                raise SigningError(_read_frame(self._resp_r, deadline).decode("utf-8", "replace"))
            key, source, evidence = (_read_frame(self._resp_r, deadline) for _ in range(3))
        except TimeoutError:
            self.close()
            raise SigningError(f"{self.name}: no identity within the signing budget of {total:g}s") from None
        return self._identity(key, source.decode("utf-8", "replace"), evidence)

    def _identity(self, key_der: bytes, source: str, evidence: bytes) -> Identity:
        from cryptography.hazmat.primitives.serialization import load_der_private_key

        from entrypoint._internal.backends import get
        from entrypoint._internal.signing.identity import Identity

        try:
            decoded = get(self.name).module("evidence").decode(evidence)
            return Identity(load_der_private_key(key_der, None), decoded, source)
        except (ValueError, TypeError) as exc:
            raise SigningError(f"{self.name}: the identity helper's answer does not decode: {exc}") from exc

    def _status(self) -> str:
        try:
            pid, status = os.waitpid(self.pid, os.WNOHANG)
        except ChildProcessError:
            return "already reaped"
        if pid == 0:
            return "still running"
        return f"exit status {os.waitstatus_to_exitcode(status)}"

    def close(self) -> None:
        with contextlib.suppress(OSError):
            os.close(self._req_w)
        with contextlib.suppress(ProcessLookupError):
            os.kill(self.pid, signal.SIGKILL)


def die_with_parent(parent: int) -> None:  # pragma: no cover - runs in the helper
    """End the helper when the entrypoint ends, however it ends.  Its pipe's EOF is not enough: a
    helper in the middle of a fetch (an agent slow to register the pod) reads the pipe only once
    the fetch is over, so after a SIGKILL, or a SIGTERM before the command starts (Go's default
    action: the process dies), it would live on for the rest of its budget, holding the key and
    the step's stderr.  PR_SET_PDEATHSIG fires when the thread that started the helper ends;
    :func:`~entrypoint._internal.signing.background_signer` runs on the main thread, which ends
    with the process."""
    try:
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(1, int(signal.SIGKILL), 0, 0, 0)  # 1: PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass  # not Linux: the pipe's EOF still ends an idle helper
    if os.getppid() != parent:  # the entrypoint was gone before the prctl took effect
        os._exit(0)


def serve(make_backend: Callable[[], Backend]) -> None:  # pragma: no cover - runs in the helper
    """The helper's entry point: requests on stdin, answers on stdout."""
    _serve(make_backend, 0, 1)


def _serve(make_backend: Callable[[], Backend], req_r: int, resp_w: int) -> None:  # pragma: no cover
    """The helper's whole life: answer fetch requests until the entrypoint closes the pipe."""
    code = 0
    try:
        # The step's signals are for the step: the helper ends when its pipe closes or is killed.
        for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            signal.signal(sig, signal.SIG_IGN)
        backend: Backend | None = None
        while True:
            request = _read_exactly(req_r, _REQUEST.size, None)
            kind, budget = _REQUEST.unpack(request)
            op = payload = b""
            if kind == b"C":
                op, payload = _read_frame(req_r, None), _read_frame(req_r, None)
            try:
                if backend is None:
                    backend = make_backend()
                if kind == b"C":
                    answer = backend.call(op.decode(), payload, budget)  # type: ignore[attr-defined]
                    _write_all(resp_w, b"O" + _frame(answer))
                    continue
                ident = backend.fetch(budget)
                _send_identity(resp_w, ident)
            except Exception as exc:
                message = str(exc) if isinstance(exc, SigningError) else f"{type(exc).__name__}: {exc}"
                _write_all(resp_w, b"E" + _frame(message.encode()))
    except EOFError:
        code = 0
    except BaseException:
        code = 1
    os._exit(code)


def _send_identity(fd: int, ident: Identity) -> None:  # pragma: no cover - runs in the helper
    from cryptography.hazmat.primitives import serialization

    key = ident.key.private_bytes(
        serialization.Encoding.DER, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    # The evidence is the backend's: opaque bytes here, decoded by the same backend on the other end.
    parts = [b"O", _frame(key), _frame(ident.source.encode()), _frame(ident.evidence.to_bytes())]
    _write_all(fd, b"".join(parts))


def _frame(data: bytes) -> bytes:
    return _U32.pack(len(data)) + data


def _read_frame(fd: int, deadline: float | None) -> bytes:
    size = _U32.unpack(_read_exactly(fd, 4, deadline))[0]
    return _read_exactly(fd, size, deadline)


def _read_exactly(fd: int, size: int, deadline: float | None) -> bytes:
    buf = bytearray()
    while len(buf) < size:
        if deadline is not None:
            remaining = deadline - time.monotonic()
            if remaining <= 0 or not select.select([fd], [], [], remaining)[0]:
                raise TimeoutError
        chunk = os.read(fd, size - len(buf))
        if not chunk:
            if deadline is None:
                raise EOFError
            raise SigningError("the identity helper process ended without answering")
        buf += chunk
    return bytes(buf)


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]
