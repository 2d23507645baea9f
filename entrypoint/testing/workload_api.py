"""A SPIFFE Workload API server for tests: real gRPC on a unix socket, behaving as a SPIRE agent does.

What it reproduces from SPIRE (so clients are tested against the behaviour they meet in a cluster):

* every call must carry exactly one ``workload.spiffe.io: true`` metadata entry, otherwise
  ``INVALID_ARGUMENT "security header missing from request"`` (SPIRE's workload API interceptor);
* a workload without a registration entry gets ``PERMISSION_DENIED "no identity issued"`` (``deny_for``:
  the window between pod start and the agent learning about the entry, spiffe/spire#2760);
* ``FetchX509SVID``/``FetchX509Bundles``/``FetchJWTBundles`` are server streams: the first message is
  sent at once, later ones when the material changes (CA rotation, a new SPIFFE ID or TTL, or the SVID
  passing half its lifetime, when SPIRE re-issues it), and the stream stays open until the client
  cancels or the server stops.

Run standalone with ``python -m entrypoint.testing.workload_api --socket PATH --spiffe-id ID``.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import os
import stat
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent import futures
from typing import Any, TypeVar

import grpc  # grpcio ships no type information
from spiffe._proto import workload_pb2, workload_pb2_grpc

from entrypoint.testing._serving import Serving, serve_until, stop_on_signals
from entrypoint.testing.ca import Svid, TestCA

__all__ = ["HEADER_KEY", "HEADER_VALUE", "WorkloadAPIServer", "main"]

HEADER_KEY = "workload.spiffe.io"
HEADER_VALUE = "true"

# Each open stream holds a worker thread.  maximum_concurrent_rpcs equal to the pool size makes
# the call beyond the limit fail fast with RESOURCE_EXHAUSTED instead of queueing forever.
MAX_CONCURRENT_CALLS = 64
# How quickly an open stream notices a cancelled client, a stopping server or new material.
_POLL_SECONDS = 0.05
_STOP_GRACE_SECONDS = 2.0
# sun_path is 108 bytes including the terminating NUL.
_MAX_UNIX_PATH_BYTES = 107
# Below this, re-issuing at half-life would turn an open stream into a busy loop.
_MIN_REFRESH_SECONDS = 0.5
_EMPTY_JWKS = b'{"keys":[]}'

_T = TypeVar("_T")
_R = TypeVar("_R")


class _Servicer(workload_pb2_grpc.SpiffeWorkloadAPIServicer):
    """Adapts grpc's generated servicer interface to :class:`WorkloadAPIServer`.

    FetchJWTSVID and ValidateJWTSVID keep the generated UNIMPLEMENTED answers: nothing here uses JWT-SVIDs.
    """

    def __init__(self, owner: WorkloadAPIServer) -> None:
        self._owner = owner

    def FetchX509SVID(  # names fixed by the generated servicer
        self, request: workload_pb2.X509SVIDRequest, context: Any
    ) -> Iterator[workload_pb2.X509SVIDResponse]:
        return self._owner._fetch_x509_svid(context)

    def FetchX509Bundles(
        self, request: workload_pb2.X509BundlesRequest, context: Any
    ) -> Iterator[workload_pb2.X509BundlesResponse]:
        return self._owner._fetch_x509_bundles(context)

    def FetchJWTBundles(
        self, request: workload_pb2.JWTBundlesRequest, context: Any
    ) -> Iterator[workload_pb2.JWTBundlesResponse]:
        return self._owner._fetch_jwt_bundles(context)


class WorkloadAPIServer(Serving):
    """A Workload API on ``socket_path`` that hands out X509-SVIDs for ``spiffe_id`` issued by ``ca``.

    ``deny_for``: for that many seconds after :meth:`start`, answer ``PERMISSION_DENIED "no identity
    issued"``; ``deny_first``: likewise for the first that many calls, however late they come.
    ``down``: accept connections but answer ``UNAVAILABLE`` to every call (an unhealthy agent);
    never starting the server simulates an absent agent instead.  ``svid_key_type`` and
    ``intermediate`` shape the served SVID as in :meth:`TestCA.issue_svid`.
    """

    def __init__(
        self,
        socket_path: str,
        ca: TestCA,
        spiffe_id: str,
        *,
        deny_for: float = 0.0,
        deny_first: int = 0,
        svid_ttl: datetime.timedelta = datetime.timedelta(hours=1),
        down: bool = False,
        svid_key_type: str = "ec-p256",
        intermediate: bool = False,
    ) -> None:
        path = os.path.abspath(socket_path.removeprefix("unix://"))
        if len(os.fsencode(path)) > _MAX_UNIX_PATH_BYTES:
            raise ValueError(
                f"unix socket path is {len(os.fsencode(path))} bytes, over the {_MAX_UNIX_PATH_BYTES}-byte"
                f" limit: {path}"
            )
        self._socket_path = path
        self.ca = ca
        self.deny_for = deny_for
        self.deny_first = deny_first
        self.down = down
        self._lock = threading.Lock()
        self._spiffe_id = spiffe_id
        self._svid_ttl = svid_ttl
        self._svid_key_type = svid_key_type
        self._intermediate = intermediate
        self._svid: Svid | None = None
        self._svid_refresh_at = 0.0
        self._calls = 0
        self._server: Any = None
        self._started_at = 0.0
        self._stopping = threading.Event()

    def __repr__(self) -> str:
        return f"WorkloadAPIServer(address={self.address!r}, spiffe_id={self.spiffe_id!r})"

    # -- configuration (settable while serving; open streams pick changes up) -------------------------

    @property
    def address(self) -> str:
        """``unix://`` + the absolute socket path, the form ``SPIFFE_ENDPOINT_SOCKET`` and clients take."""
        return "unix://" + self._socket_path

    @property
    def socket_path(self) -> str:
        return self._socket_path

    @property
    def spiffe_id(self) -> str:
        return self._spiffe_id

    @spiffe_id.setter
    def spiffe_id(self, value: str) -> None:
        with self._lock:
            self._spiffe_id = value
            self._svid = None

    @property
    def svid_ttl(self) -> datetime.timedelta:
        return self._svid_ttl

    @svid_ttl.setter
    def svid_ttl(self, value: datetime.timedelta) -> None:
        with self._lock:
            self._svid_ttl = value
            self._svid = None

    @property
    def calls(self) -> int:
        """How many FetchX509SVID calls arrived, including rejected ones."""
        with self._lock:
            return self._calls

    @property
    def svid(self) -> Svid:
        """The SVID currently being served (issued on first use, re-issued as SPIRE would)."""
        with self._lock:
            return self._current_svid_locked()

    # -- lifecycle -------------------------------------------------------------------------------------

    def start(self) -> None:
        """Listen on the socket.  A stopped server may be started again (an agent restart)."""
        if self._server is not None:
            raise RuntimeError("WorkloadAPIServer is already running")
        self._remove_stale_socket()
        server = grpc.server(
            futures.ThreadPoolExecutor(max_workers=MAX_CONCURRENT_CALLS, thread_name_prefix="workload-api"),
            maximum_concurrent_rpcs=MAX_CONCURRENT_CALLS,
        )
        workload_pb2_grpc.add_SpiffeWorkloadAPIServicer_to_server(_Servicer(self), server)  # type: ignore[no-untyped-call]
        # Older grpcio reports a failed bind by returning 0 instead of raising.
        if server.add_insecure_port("unix:" + self._socket_path) == 0:
            raise OSError(f"cannot listen on unix socket {self._socket_path}")
        self._stopping.clear()
        self._started_at = time.monotonic()
        server.start()
        self._server = server

    def stop(self) -> None:
        """Stop serving: open streams end, new calls are refused, the socket file is removed."""
        server, self._server = self._server, None
        if server is None:
            return
        self._stopping.set()
        server.stop(_STOP_GRACE_SECONDS).wait()
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self._socket_path)

    def _remove_stale_socket(self) -> None:
        # A socket left by a killed run would make the bind fail; anything else at the path is not ours.
        try:
            mode = os.lstat(self._socket_path).st_mode
        except FileNotFoundError:
            return
        if not stat.S_ISSOCK(mode):
            raise FileExistsError(f"{self._socket_path} exists and is not a socket")
        os.unlink(self._socket_path)

    # -- the calls -------------------------------------------------------------------------------------

    def _admit(self, context: Any, call: int = 0) -> None:
        """Reject the call as SPIRE would; ``context.abort`` raises, ending the handler."""
        if self.down:
            context.abort(grpc.StatusCode.UNAVAILABLE, "workload API is unavailable (agent unhealthy)")
        values = [value for key, value in context.invocation_metadata() if key == HEADER_KEY]
        if values != [HEADER_VALUE]:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, "security header missing from request")
        if time.monotonic() - self._started_at < self.deny_for or 0 < call <= self.deny_first:
            context.abort(grpc.StatusCode.PERMISSION_DENIED, "no identity issued")

    def _current_svid_locked(self) -> Svid:
        now = time.monotonic()
        svid = self._svid
        # Root subjects are unique per root (TestCA puts a random serialNumber in them), so comparing the
        # chain's top issuer with the current root also catches a rotation racing with the issue.
        if svid is None or svid.chain[-1].issuer != self.ca.root_cert.subject or now >= self._svid_refresh_at:
            svid = self.ca.issue_svid(
                self._spiffe_id,
                key_type=self._svid_key_type,
                ttl=self._svid_ttl,
                intermediate=self._intermediate,
            )
            self._svid = svid
            self._svid_refresh_at = now + max(self._svid_ttl.total_seconds() / 2, _MIN_REFRESH_SECONDS)
        return svid

    def _trust_domain_id(self) -> str:
        return f"spiffe://{self.ca.trust_domain}"

    def _fetch_x509_svid(self, context: Any) -> Iterator[workload_pb2.X509SVIDResponse]:
        with self._lock:
            self._calls += 1
            call = self._calls
        self._admit(context, call)

        def response(svid: Svid) -> workload_pb2.X509SVIDResponse:
            return workload_pb2.X509SVIDResponse(
                svids=[
                    workload_pb2.X509SVID(
                        spiffe_id=svid.spiffe_id,
                        x509_svid=svid.chain_der(),
                        x509_svid_key=svid.key_der(),
                        bundle=self.ca.bundle_der(),
                    )
                ]
            )

        yield from self._stream(context, lambda: self.svid, lambda a, b: a is b, response)

    def _fetch_x509_bundles(self, context: Any) -> Iterator[workload_pb2.X509BundlesResponse]:
        self._admit(context)
        yield from self._stream(
            context,
            self.ca.bundle_der,
            lambda a, b: a == b,
            lambda der: workload_pb2.X509BundlesResponse(bundles={self._trust_domain_id(): der}),
        )

    def _fetch_jwt_bundles(self, context: Any) -> Iterator[workload_pb2.JWTBundlesResponse]:
        # No JWT authorities here; clients still get a well-formed (empty) JWKS for the trust domain.
        self._admit(context)
        yield from self._stream(
            context,
            self._trust_domain_id,
            lambda a, b: a == b,
            lambda td: workload_pb2.JWTBundlesResponse(bundles={td: _EMPTY_JWKS}),
        )

    def _stream(
        self,
        context: Any,
        current: Callable[[], _T],
        same: Callable[[_T, _T], bool],
        build: Callable[[_T], _R],
    ) -> Iterator[_R]:
        """Send ``build(current())`` now and again whenever it changes, until cancelled or stopped."""
        last = current()
        yield build(last)
        while not self._stopping.wait(_POLL_SECONDS) and context.is_active():
            now = current()
            if not same(now, last):
                last = now
                yield build(now)


def _write_atomically(path: str, data: bytes) -> None:
    # Whoever waits for the file (the demo, a test) must never read half of it.
    tmp = f"{path}.tmp{os.getpid()}"
    with open(tmp, "wb") as f:
        f.write(data)
    os.replace(tmp, path)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m entrypoint.testing.workload_api",
        description="Serve a test SPIFFE Workload API (a fake SPIRE agent) until SIGTERM/SIGINT.",
    )
    parser.add_argument("--socket", required=True, help="unix socket path to listen on")
    parser.add_argument("--trust-domain", default="example.org")
    parser.add_argument("--spiffe-id", required=True, help="SPIFFE ID of the SVID handed out")
    parser.add_argument(
        "--deny-for", type=float, default=0.0, metavar="S", help='answer "no identity issued" for S seconds'
    )
    parser.add_argument(
        "--svid-ttl", type=float, default=3600.0, metavar="S", help="SVID lifetime in seconds"
    )
    parser.add_argument("--bundle-out", metavar="FILE", help="write the trust bundle PEM here before 'ready'")
    args = parser.parse_args(argv)

    stop = stop_on_signals()

    try:
        ca = TestCA(args.trust_domain)
        server = WorkloadAPIServer(
            args.socket,
            ca,
            args.spiffe_id,
            deny_for=args.deny_for,
            svid_ttl=datetime.timedelta(seconds=args.svid_ttl),
        )
        server.start()
    except (ValueError, OSError, RuntimeError) as err:
        print(f"workload_api: {err}", file=sys.stderr)
        return 2
    try:
        if args.bundle_out:
            _write_atomically(args.bundle_out, ca.bundle_pem())
        serve_until(stop, server.address)
    finally:
        server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
