"""The SPIRE agent stand-in the container tests mount (they run as :data:`tests.support.pki.SPIFFE_ID`)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from entrypoint.testing.workload_api import WorkloadAPIServer


@dataclass
class Agent:
    """The test Workload API server, and where its socket directory and trust bundle are on the host."""

    server: WorkloadAPIServer
    socket_dir: Path
    bundle: Path
