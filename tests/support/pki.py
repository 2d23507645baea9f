"""The SPIFFE identity signed test steps run as: one trust domain, one TaskRun, and its SPIFFE ID.

Written once so that every suite (the signers here, the Workload API stand-in, the containers) signs
and verifies as the same TaskRun.  The Kubernetes tests have a cluster of their own
(:mod:`tests.support.k8s_sat`).
"""

from __future__ import annotations

TD = "example.org"
NS = "foo"
TASKRUN = "taskrun-example"
TASKRUN_REF = f"{NS}/{TASKRUN}"  # as ``entrypoint verify --taskrun`` takes it


def spiffe_id(name: str = TASKRUN, namespace: str = NS, td: str = TD) -> str:
    """The SPIFFE ID of a TaskRun's pods, as Tekton registers them with SPIRE."""
    return f"spiffe://{td}/ns/{namespace}/taskrun/{name}"


SPIFFE_ID = spiffe_id()
