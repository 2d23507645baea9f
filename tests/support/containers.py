"""What the container tests share: the TaskRun they run as and the SPIRE agent stand-in they mount."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from entrypoint.testing.workload_api import WorkloadAPIServer
from tests.support.tekton import NS, TASKRUN

TRUST_DOMAIN = "example.org"


TASKRUN_REF = f"{NS}/{TASKRUN}"


@dataclass
class Agent:
    """The test Workload API server, and where its socket directory and trust bundle are on the host."""

    server: WorkloadAPIServer
    socket_dir: Path
    bundle: Path
