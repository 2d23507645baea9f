"""The test Workload API server, exercised through the real py-spiffe client and raw gRPC."""

from __future__ import annotations

import datetime
import os
import queue
import shutil
import signal
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.verification import PolicyBuilder, Store
from spiffe import TrustDomain, WorkloadApiClient, X509Svid
from spiffe._proto import workload_pb2, workload_pb2_grpc
from spiffe.workloadapi.errors import FetchX509BundleError, FetchX509SvidError

from entrypoint.testing import workload_api
from entrypoint.testing.ca import TestCA
from entrypoint.testing.workload_api import WorkloadAPIServer
from tests.support import doubles

ID = "spiffe://example.org/ns/foo/taskrun/taskrun-example"
TD = TrustDomain("example.org")
TIMEOUT = 5.0
RUNNER = "entrypoint.testing.workload_api"


@pytest.fixture
def sock_dir() -> Iterator[str]:
    # pytest's tmp_path can exceed the 107-byte AF_UNIX limit.
    path = tempfile.mkdtemp(prefix="wl", dir="/tmp")
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def ca() -> TestCA:
    """A fresh CA per test, not the shared one: these tests rotate it."""
    return TestCA()


@pytest.fixture
def server(sock_dir: str, ca: TestCA) -> Iterator[WorkloadAPIServer]:
    with WorkloadAPIServer(os.path.join(sock_dir, "agent.sock"), ca, ID) as srv:
        yield srv


@pytest.fixture
def client(server: WorkloadAPIServer) -> Iterator[WorkloadApiClient]:
    c = WorkloadApiClient(socket_path=server.address, default_timeout=TIMEOUT)
    yield c
    c.close()


def _raw_call(address: str, method: str, metadata: list[tuple[str, str]] | None) -> Any:
    """One raw server-streaming call; returns the first message or raises grpc.RpcError."""
    with grpc.insecure_channel(address) as channel:
        stub = workload_pb2_grpc.SpiffeWorkloadAPIStub(channel)  # type: ignore[no-untyped-call]
        request = (
            workload_pb2.X509SVIDRequest() if method == "FetchX509SVID" else workload_pb2.X509BundlesRequest()
        )
        call = getattr(stub, method)(request, metadata=metadata, timeout=TIMEOUT)
        try:
            return next(call)
        finally:
            call.cancel()


def _rpc_error(
    address: str, method: str = "FetchX509SVID", metadata: Any = (("workload.spiffe.io", "true"),)
) -> Any:
    with pytest.raises(grpc.RpcError) as info:
        _raw_call(address, method, list(metadata) if metadata is not None else None)
    return info.value


def _verifies(leaf: x509.Certificate, roots: list[x509.Certificate]) -> None:
    PolicyBuilder().store(Store(roots)).build_client_verifier().verify(leaf, [])


def test_fetch_x509_svid_returns_the_configured_identity(
    server: WorkloadAPIServer, client: WorkloadApiClient, ca: TestCA
) -> None:
    svid = client.fetch_x509_svid()
    assert str(svid.spiffe_id) == ID
    key = svid.private_key
    assert isinstance(key, ec.EllipticCurvePrivateKey)
    signature = key.sign(b"payload", ec.ECDSA(hashes.SHA256()))
    leaf_key = svid.leaf.public_key()
    assert isinstance(leaf_key, ec.EllipticCurvePublicKey)
    leaf_key.verify(signature, b"payload", ec.ECDSA(hashes.SHA256()))  # raises if the key is not the leaf's
    _verifies(svid.leaf, [ca.root_cert])
    assert server.calls == 1


def test_svid_response_carries_the_bundle(client: WorkloadApiClient, ca: TestCA) -> None:
    context = client.fetch_x509_context()
    bundle = context.x509_bundle_set.get_bundle_for_trust_domain(TD)
    assert bundle is not None
    assert bundle.x509_authorities == {ca.root_cert}


def test_fetch_x509_bundles_has_the_trust_domain(client: WorkloadApiClient, ca: TestCA) -> None:
    bundles = client.fetch_x509_bundles()
    bundle = bundles.get_bundle_for_trust_domain(TD)
    assert bundle is not None
    assert bundle.x509_authorities == {ca.root_cert}
    assert len(bundles.bundles) == 1


def test_fetch_jwt_bundles_is_empty_but_well_formed(client: WorkloadApiClient) -> None:
    bundle = client.fetch_jwt_bundles().get_bundle_for_trust_domain(TD)
    assert bundle is not None
    assert bundle.jwt_authorities == {}


@pytest.mark.parametrize("method", ["FetchX509SVID", "FetchX509Bundles"])
@pytest.mark.parametrize(
    "metadata",
    [
        None,
        [("workload.spiffe.io", "false")],
        [("workload.spiffe.io", "true"), ("workload.spiffe.io", "true")],
    ],
    ids=["missing", "wrong-value", "repeated"],
)
def test_security_header_is_enforced(server: WorkloadAPIServer, method: str, metadata: Any) -> None:
    err = _rpc_error(server.address, method, metadata)
    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert err.details() == "security header missing from request"


def test_raw_call_with_the_header_succeeds(server: WorkloadAPIServer) -> None:
    response = _raw_call(server.address, "FetchX509SVID", [("workload.spiffe.io", "true")])
    assert [s.spiffe_id for s in response.svids] == [ID]
    assert X509Svid.parse_raw(response.svids[0].x509_svid, response.svids[0].x509_svid_key).leaf == (
        server.svid.leaf
    )


def test_calls_counts_rejected_calls_too(server: WorkloadAPIServer) -> None:
    _rpc_error(server.address, metadata=None)
    _raw_call(server.address, "FetchX509SVID", [("workload.spiffe.io", "true")])
    _raw_call(server.address, "FetchX509Bundles", [("workload.spiffe.io", "true")])
    assert server.calls == 2


@pytest.mark.slow
def test_deny_for_answers_no_identity_then_serves(sock_dir: str, ca: TestCA) -> None:
    with WorkloadAPIServer(os.path.join(sock_dir, "a.sock"), ca, ID, deny_for=2.0) as srv:
        started = time.monotonic()
        for method in ("FetchX509SVID", "FetchX509Bundles"):
            err = _rpc_error(srv.address, method)
            assert err.code() == grpc.StatusCode.PERMISSION_DENIED
            assert err.details() == "no identity issued"
        client = WorkloadApiClient(socket_path=srv.address, default_timeout=TIMEOUT)
        with pytest.raises(FetchX509SvidError, match="no identity issued"):
            client.fetch_x509_svid()
        assert time.monotonic() - started < 2.0, "the checks above must run inside the window"
        time.sleep(max(0.0, 2.1 - (time.monotonic() - started)))
        assert str(client.fetch_x509_svid().spiffe_id) == ID
        client.close()


def test_down_answers_unavailable_to_every_call(sock_dir: str, ca: TestCA) -> None:
    with WorkloadAPIServer(os.path.join(sock_dir, "a.sock"), ca, ID, down=True) as srv:
        for method in ("FetchX509SVID", "FetchX509Bundles"):
            assert _rpc_error(srv.address, method).code() == grpc.StatusCode.UNAVAILABLE
        client = WorkloadApiClient(socket_path=srv.address, default_timeout=TIMEOUT)
        with pytest.raises(FetchX509SvidError, match="UNAVAILABLE"):
            client.fetch_x509_svid()
        with pytest.raises(FetchX509BundleError, match="UNAVAILABLE"):
            client.fetch_x509_bundles()
        client.close()
        srv.down = False
        assert _raw_call(srv.address, "FetchX509SVID", [("workload.spiffe.io", "true")]).svids


def test_svid_ttl_is_honoured_and_settable(sock_dir: str, ca: TestCA) -> None:
    ttl = datetime.timedelta(minutes=7)
    with WorkloadAPIServer(os.path.join(sock_dir, "a.sock"), ca, ID, svid_ttl=ttl) as srv:
        client = WorkloadApiClient(socket_path=srv.address, default_timeout=TIMEOUT)
        now = datetime.datetime.now(datetime.UTC)
        lifetime = client.fetch_x509_svid().leaf.not_valid_after_utc - now
        assert abs(lifetime - ttl) < datetime.timedelta(seconds=5)
        srv.svid_ttl = datetime.timedelta(minutes=2)
        lifetime = client.fetch_x509_svid().leaf.not_valid_after_utc - datetime.datetime.now(datetime.UTC)
        assert abs(lifetime - datetime.timedelta(minutes=2)) < datetime.timedelta(seconds=5)
        client.close()


def test_spiffe_id_is_settable(server: WorkloadAPIServer, client: WorkloadApiClient) -> None:
    server.spiffe_id = "spiffe://example.org/bogus"
    assert str(client.fetch_x509_svid().spiffe_id) == "spiffe://example.org/bogus"


def test_svid_key_type_and_intermediate_shape_the_served_svid(sock_dir: str, ca: TestCA) -> None:
    path = os.path.join(sock_dir, "a.sock")
    with WorkloadAPIServer(path, ca, ID, svid_key_type="rsa-2048", intermediate=True) as srv:
        client = WorkloadApiClient(socket_path=srv.address, default_timeout=TIMEOUT)
        svid = client.fetch_x509_svid()
        client.close()
    assert len(svid.cert_chain) == 2
    assert svid.private_key.key_size == 2048  # type: ignore[union-attr]
    PolicyBuilder().store(Store([ca.root_cert])).build_client_verifier().verify(
        svid.leaf, svid.cert_chain[1:]
    )


def test_rotate_changes_the_bundle_and_the_svid(
    server: WorkloadAPIServer, client: WorkloadApiClient, ca: TestCA
) -> None:
    old_root = ca.root_cert
    old_leaf = client.fetch_x509_svid().leaf
    ca.rotate()
    bundle = client.fetch_x509_bundles().get_bundle_for_trust_domain(TD)
    assert bundle is not None
    assert bundle.x509_authorities == {ca.root_cert}
    assert old_root not in bundle.x509_authorities
    new_leaf = client.fetch_x509_svid().leaf
    assert new_leaf != old_leaf
    _verifies(new_leaf, [ca.root_cert])


def test_open_streams_receive_updates(server: WorkloadAPIServer, ca: TestCA) -> None:
    updates: queue.Queue[Any] = queue.Queue()
    client = WorkloadApiClient(socket_path=server.address)
    handler = client.stream_x509_contexts(updates.put, updates.put, retry_connect=False)
    try:
        first = updates.get(timeout=TIMEOUT)
        assert str(first.default_svid.spiffe_id) == ID
        ca.rotate()
        second = updates.get(timeout=TIMEOUT)
        bundle = second.x509_bundle_set.get_bundle_for_trust_domain(TD)
        assert bundle.x509_authorities == {ca.root_cert}
        _verifies(second.default_svid.leaf, [ca.root_cert])
        server.spiffe_id = "spiffe://example.org/other"
        third = updates.get(timeout=TIMEOUT)
        assert str(third.default_svid.spiffe_id) == "spiffe://example.org/other"
    finally:
        handler.cancel()
        client.close()
    assert server.calls == 1, "one stream carried every update"


def test_stream_stays_open_until_the_server_stops(sock_dir: str, ca: TestCA) -> None:
    srv = WorkloadAPIServer(os.path.join(sock_dir, "a.sock"), ca, ID)
    srv.start()
    channel = grpc.insecure_channel(srv.address)
    stub = workload_pb2_grpc.SpiffeWorkloadAPIStub(channel)  # type: ignore[no-untyped-call]
    call = stub.FetchX509SVID(workload_pb2.X509SVIDRequest(), metadata=[("workload.spiffe.io", "true")])
    assert next(call).svids
    outcome: queue.Queue[BaseException | object] = queue.Queue()

    def read_next() -> None:
        try:
            outcome.put(next(call))
        except BaseException as err:  # handed to the test thread, whatever it is
            outcome.put(err)

    threading.Thread(target=read_next, daemon=True).start()
    with pytest.raises(queue.Empty):
        outcome.get(timeout=0.5)  # no second message, and the stream has not ended
    started = time.monotonic()
    srv.stop()
    ended = outcome.get(timeout=TIMEOUT)
    assert time.monotonic() - started < 3.0
    assert isinstance(ended, grpc.RpcError | StopIteration)
    assert not os.path.exists(srv.socket_path)
    channel.close()


def test_calls_beyond_the_limit_fail_fast(sock_dir: str, ca: TestCA, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(workload_api, "MAX_CONCURRENT_CALLS", 3)
    with WorkloadAPIServer(os.path.join(sock_dir, "a.sock"), ca, ID) as srv:
        channel = grpc.insecure_channel(srv.address)
        stub = workload_pb2_grpc.SpiffeWorkloadAPIStub(channel)  # type: ignore[no-untyped-call]
        header = [("workload.spiffe.io", "true")]
        streams = [stub.FetchX509SVID(workload_pb2.X509SVIDRequest(), metadata=header) for _ in range(3)]
        for stream in streams:
            assert next(stream).svids  # all three are now holding a worker
        started = time.monotonic()
        err = _rpc_error(srv.address)
        assert err.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert time.monotonic() - started < 2.0
        streams[0].cancel()
        deadline = time.monotonic() + TIMEOUT
        while True:  # the cancelled stream's worker frees up within a poll interval
            try:
                assert _raw_call(srv.address, "FetchX509SVID", header).svids
                break
            except grpc.RpcError:
                assert time.monotonic() < deadline
                time.sleep(0.05)
        for stream in streams[1:]:
            stream.cancel()
        channel.close()


def test_a_stopped_server_can_start_again(sock_dir: str, ca: TestCA) -> None:
    srv = WorkloadAPIServer(os.path.join(sock_dir, "a.sock"), ca, ID)
    srv.start()
    srv.stop()
    srv.start()
    try:
        client = WorkloadApiClient(socket_path=srv.address, default_timeout=TIMEOUT)
        assert str(client.fetch_x509_svid().spiffe_id) == ID
        client.close()
    finally:
        srv.stop()


def test_address_is_an_absolute_unix_uri(sock_dir: str, ca: TestCA) -> None:
    srv = WorkloadAPIServer(os.path.join(sock_dir, "a.sock"), ca, ID)
    assert srv.address == "unix://" + os.path.join(sock_dir, "a.sock")
    assert WorkloadAPIServer(srv.address, ca, ID).address == srv.address


def test_overlong_socket_path_is_refused(ca: TestCA) -> None:
    with pytest.raises(ValueError, match="107-byte"):
        WorkloadAPIServer("/tmp/" + "x" * 120, ca, ID)


def test_a_non_socket_at_the_path_is_not_clobbered(sock_dir: str, ca: TestCA) -> None:
    path = os.path.join(sock_dir, "a.sock")
    with open(path, "w") as f:
        f.write("keep me")
    with pytest.raises(FileExistsError):
        WorkloadAPIServer(path, ca, ID).start()
    with open(path) as f:
        assert f.read() == "keep me"


@pytest.mark.slow
def test_module_runner_prints_ready_and_serves(sock_dir: str) -> None:
    sock = os.path.join(sock_dir, "agent.sock")
    bundle_out = os.path.join(sock_dir, "bundle.pem")
    args = ["--socket", sock, "--trust-domain", "example.org", "--spiffe-id", ID, "--svid-ttl", "600"]
    with doubles.serving(RUNNER, *args, "--bundle-out", bundle_out) as (proc, address):
        assert address == f"unix://{sock}"
        roots = x509.load_pem_x509_certificates(Path(bundle_out).read_bytes())
        client = WorkloadApiClient(socket_path=f"unix://{sock}", default_timeout=TIMEOUT)
        svid = client.fetch_x509_svid()
        bundle = client.fetch_x509_bundles().get_bundle_for_trust_domain(TD)
        client.close()
        assert str(svid.spiffe_id) == ID
        assert bundle is not None
        assert bundle.x509_authorities == set(roots)
        _verifies(svid.leaf, roots)
        lifetime = svid.leaf.not_valid_after_utc - datetime.datetime.now(datetime.UTC)
        assert abs(lifetime - datetime.timedelta(seconds=600)) < datetime.timedelta(seconds=5)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=10) == 0
        assert not os.path.exists(sock)


@pytest.mark.slow
def test_module_runner_honours_deny_for_and_sigint(sock_dir: str) -> None:
    sock = os.path.join(sock_dir, "agent.sock")
    with doubles.serving(RUNNER, "--socket", sock, "--spiffe-id", ID, "--deny-for", "30") as (proc, address):
        assert address.startswith("unix://")
        err = _rpc_error(f"unix://{sock}")
        assert err.code() == grpc.StatusCode.PERMISSION_DENIED
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=10) == 0


def test_module_runner_reports_a_bad_socket_path() -> None:
    result = doubles.run(RUNNER, "--socket", "/tmp/" + "x" * 120, "--spiffe-id", ID)
    assert result.returncode == 2
    assert "107-byte" in result.stderr
    assert "ready" not in result.stdout
