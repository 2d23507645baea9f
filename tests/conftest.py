"""Fixtures every suite shares: a relocatable Tekton root, the test CA and what it issues, and a SPIRE
agent stand-in serving it.  The helpers behind them are in :mod:`tests.support`."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from entrypoint.testing.ca import Svid, TestCA
from entrypoint.testing.workload_api import WorkloadAPIServer
from entrypoint.verify import TrustBundle
from tests.support.pki import SPIFFE_ID, TD
from tests.support.signed import SignedMessage, SignedMessageFactory, make_signed_message
from tests.support.tekton import TektonRoot
from tests.support.tokens import Issuer


@pytest.fixture
def root(tmp_path: Path) -> TektonRoot:
    r = tmp_path / "tekton"
    for d in ("results", "run/0", "run/1", "run/2", "steps", "artifacts", "downward", "scripts"):
        (r / d).mkdir(parents=True)
    return TektonRoot(r)


# -- the test CA and a SPIRE agent stand-in for signed steps ---------------------------------------------


@pytest.fixture(scope="module")
def ca() -> TestCA:
    """The test CA of trust domain example.org, one per test module (tests that rotate it make
    their own)."""
    return TestCA(TD)


@pytest.fixture(scope="module")
def svid(ca: TestCA) -> Svid:
    """An X509-SVID of :data:`SPIFFE_ID` from ``ca``, one per test module."""
    return ca.issue_svid(SPIFFE_ID)


@pytest.fixture(scope="module")
def trust(ca: TestCA) -> TrustBundle:
    """``ca``'s trust bundle, as a verifier takes it."""
    return TrustBundle(TD, ca.bundle)


@pytest.fixture
def bundle(tmp_path: Path, ca: TestCA) -> Path:
    """``ca``'s trust bundle as a PEM file (what ``--trust-bundle`` reads)."""
    path = tmp_path / "bundle.pem"
    path.write_bytes(ca.bundle_pem())
    return path


@pytest.fixture
def agent(ca: TestCA) -> Iterator[WorkloadAPIServer]:
    """A real Workload API server issuing SPIFFE_ID from ``ca``."""
    # A short directory: unix socket paths are capped at 107 bytes.
    with (
        tempfile.TemporaryDirectory(prefix="wl-", dir="/tmp") as sock_dir,
        WorkloadAPIServer(os.path.join(sock_dir, "agent.sock"), ca, SPIFFE_ID) as server,
    ):
        yield server


# -- genuine signed messages, for tests that tamper with one thing ----------------------------------------


@pytest.fixture(scope="module")
def token_issuer() -> Issuer:
    """A cluster's service-account token issuer (ES256), one per test module."""
    return Issuer("ES256")


@pytest.fixture
def signed_message(ca: TestCA, token_issuer: Issuer) -> SignedMessageFactory:
    """``signed_message(fmt, backend, **changes)``: a genuine message signed by the project's signer,
    with the verifier and TaskRun it verifies against (:func:`tests.support.signed.make_signed_message`)."""

    def make(
        fmt: str = "tekton",
        backend: str = "spire",
        *,
        ca: TestCA = ca,
        issuer: Issuer = token_issuer,
        **changes: Any,
    ) -> SignedMessage:
        # ``ca`` and ``issuer`` replace the trusted ones: the verifier still trusts the fixtures'.
        return make_signed_message(ca, issuer, fmt, backend, **changes)

    return make
