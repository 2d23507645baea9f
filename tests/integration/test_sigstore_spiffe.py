"""sigstore-keyless with the ``spiffe`` provider (docs/sigstore.md): a JWT-SVID from the Workload API
for audience ``sigstore``, verified by Fulcio's ``spiffe`` issuer type through OIDC discovery, gives
a certificate naming Tekton's per-TaskRun SPIFFE ID, which may sign only for that TaskRun."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from entrypoint.termination import parse_message
from entrypoint.testing.ca import TestCA
from entrypoint.testing.fulcio import FulcioDouble, OIDCIssuer
from entrypoint.testing.rekor import RekorDouble
from entrypoint.testing.spiffe_oidc import SpiffeOIDCDiscovery
from entrypoint.testing.workload_api import WorkloadAPIServer
from entrypoint.verify import SigstoreTrust, TaskRunRef, TrustSet, Verdict, Verifier
from tests.support.k8s_sat import FAST, NS, POD, POD_UID, TASKRUN, new_root, sh, write_results
from tests.support.sigstore import FORMATS
from tests.support.tekton import TektonRoot

TD = "example.org"
OWN_ID = f"spiffe://{TD}/ns/{NS}/taskrun/{TASKRUN}"


@dataclass
class Spiffe:
    """The Workload API with JWT-SVIDs, its OIDC discovery, Fulcio (spiffe issuer), Rekor."""

    agent: WorkloadAPIServer
    discovery: SpiffeOIDCDiscovery
    fulcio: FulcioDouble
    rekor: RekorDouble
    directory: Path

    @property
    def trusted_root(self) -> Path:
        return self.directory / "trusted_root.json"

    def env(self) -> dict[str, str]:
        ca_file = self.directory / "ca.pem"
        ca_file.write_bytes(self.fulcio.ca_pem + self.rekor.ca_pem)
        return {
            "SIGNED_ENTRYPOINT_FULCIO_ADDRESS": self.fulcio.url,
            "SIGNED_ENTRYPOINT_FULCIO_PROVIDER": "spiffe",
            "SIGNED_ENTRYPOINT_TRANSPARENCY_URL": self.rekor.url,
            "SIGNED_ENTRYPOINT_SIGSTORE_TRUSTED_ROOT": str(self.trusted_root),
            "SIGNED_ENTRYPOINT_SIGSTORE_CA_FILE": str(ca_file),
            "POD_NAMESPACE": NS,
            "POD_NAME": POD,
            "POD_UID": POD_UID,
            "TASKRUN_NAME": TASKRUN,
            "SIGNED_ENTRYPOINT_SIGNING_BACKEND": "",
            "SIGNED_ENTRYPOINT_SIGNATURE_FORMAT": "",
        }


@pytest.fixture(scope="module")
def spiffe(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Spiffe]:
    directory = tmp_path_factory.mktemp("sigstore-spiffe")
    sock_dir = tempfile.mkdtemp(prefix="sgs", dir="/tmp")  # AF_UNIX paths are short
    try:
        with (
            WorkloadAPIServer(str(Path(sock_dir) / "agent.sock"), TestCA(TD), OWN_ID) as agent,
            SpiffeOIDCDiscovery(agent) as discovery,
        ):
            issuer = OIDCIssuer(discovery.issuer, "spiffe", trust_domain=TD, ca_pem=discovery.ca_pem)
            with FulcioDouble([issuer]) as fulcio, RekorDouble() as rekor:
                s = Spiffe(agent, discovery, fulcio, rekor, directory)
                fulcio.write_trusted_root(s.trusted_root)
                rekor.write_trusted_root(s.trusted_root)
                yield s
    finally:
        shutil.rmtree(sock_dir, ignore_errors=True)


def _sign(root: TektonRoot, s: Spiffe, fmt: str) -> None:
    args = [
        *root.step_args(0),
        "-signing_backend=sigstore-keyless",
        f"-signature_format={fmt}",
        "-spire_socket_path",
        s.agent.address,
        *FAST,
        "-results",
        "commit",
        *sh(write_results(root, {"commit": "abc"})),
    ]
    p = root.run(args, env=s.env())
    assert p.returncode == 0, p.stderr


def _verdict(s: Spiffe, root: TektonRoot, identity: str) -> Verdict:
    trust = SigstoreTrust.from_file(str(s.trusted_root), issuer=s.discovery.issuer, identity=identity)
    message = parse_message(root.termination.read_text())
    return Verifier(TrustSet(sigstore=trust)).verify_entries(message, TaskRunRef(NS, TASKRUN))


@pytest.mark.parametrize("fmt", FORMATS)
def test_a_jwt_svid_gives_a_certificate_for_the_taskrun(spiffe: Spiffe, tmp_path: Path, fmt: str) -> None:
    root = new_root(tmp_path / "root")
    _sign(root, spiffe, fmt)
    verdict = _verdict(spiffe, root, OWN_ID)
    assert verdict.verified, verdict.message
    assert verdict.identity == OWN_ID
    # Fulcio saw a JWT-SVID of the agent's, for audience sigstore.
    assert spiffe.agent.jwt_calls >= 1


@pytest.mark.parametrize("fmt", FORMATS)
def test_a_spiffe_id_of_another_taskrun_cannot_sign_for_this_one(
    spiffe: Spiffe, tmp_path: Path, fmt: str
) -> None:
    other = f"spiffe://{TD}/ns/{NS}/taskrun/someone-else"
    spiffe.agent.spiffe_id = other
    try:
        root = new_root(tmp_path / "root")
        _sign(root, spiffe, fmt)
    finally:
        spiffe.agent.spiffe_id = OWN_ID
    # The policy would take the identity, but the binding names build-1: refused.
    verdict = _verdict(spiffe, root, other)
    assert verdict.reason == "BindingMismatch", verdict.message
    assert "SPIFFE ID is for another TaskRun" in verdict.message
