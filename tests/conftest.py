"""Shared fixtures: a relocatable Tekton root and a way to run the real ``entrypoint`` process."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from entrypoint.testing.ca import TestCA
from entrypoint.testing.workload_api import WorkloadAPIServer
from tests.support.tekton import (
    SPIFFE_ID,
    TektonRoot,
)


@pytest.fixture
def root(tmp_path: Path) -> TektonRoot:
    r = tmp_path / "tekton"
    for d in ("results", "run/0", "run/1", "run/2", "steps", "artifacts", "downward", "scripts"):
        (r / d).mkdir(parents=True)
    return TektonRoot(r)


# -- a SPIRE agent stand-in for signed steps ------------------------------------------------------------


@pytest.fixture(scope="module")
def ca() -> TestCA:
    """The test CA of trust domain example.org, one per test module (tests that rotate it make
    their own)."""
    return TestCA("example.org")


@pytest.fixture
def agent(ca: TestCA) -> Iterator[WorkloadAPIServer]:
    """A real Workload API server issuing SPIFFE_ID from ``ca`` (socket paths must stay short)."""
    sock_dir = tempfile.mkdtemp(prefix="wl", dir="/tmp")
    with WorkloadAPIServer(os.path.join(sock_dir, "agent.sock"), ca, SPIFFE_ID) as server:
        yield server
