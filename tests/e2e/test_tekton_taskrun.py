"""A TaskRun from creation to its results, through Tekton's real controller and the real API server,
with this project's entrypoint running the steps (``make e2e`` builds the peers; without them this
module is skipped, saying so).

There is no kubelet (issue 14's pod executor is still to come), so this test plays its part for the
pod the controller made: it binds the pod to a node, projects the pod's service-account token with a
real TokenRequest bound to that pod, runs the pod's two steps through the real ``entrypoint`` process
(the first signing its result with ``oidc-sa-token``), and reports their termination messages in
the pod's status, as a kubelet would.  Tekton then parses our messages into the TaskRun's results,
and the signed message verifies against the real API server, bound to the controller's pod.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import pytest

from tests.e2e import kubelet
from tests.e2e.conftest import Tekton
from tests.e2e.realkube import ControlPlane, Kube
from tests.support.k8s_sat import sa_flags, sh, verify, write_results
from tests.support.tekton import TektonRoot

NS, SA, NODE = "taskruns", "builder", "node-1"
TASK, TASKRUN = "build", "build-1"
POD = f"{TASKRUN}-pod"
STEP_IMAGES = (
    "localhost/signed-entrypoint-step-debian:latest",
    "localhost/signed-entrypoint-step-musl:latest",
)
RESULTS = {"commit": "abc123"}
# The signing entries of Tekton's wire format for oidc-sa-token (docs/oidc-sa-token.md §2).
SIGNING_ENTRIES = {
    "commit.sig",
    "RESULT_MANIFEST",
    "RESULT_MANIFEST.sig",
    "SA_TOKEN",
    "SA_TOKEN.sig",
    "SA_TOKEN_KEY",
}
T = TypeVar("T")


@dataclass
class Run:
    admin: Kube
    plane: ControlPlane
    pod: dict[str, Any]
    directory: Path

    def taskrun(self) -> dict[str, Any]:
        return self.admin.get(f"/apis/tekton.dev/v1/namespaces/{NS}/taskruns/{TASKRUN}")


def task() -> dict[str, Any]:
    return {
        "apiVersion": "tekton.dev/v1",
        "kind": "Task",
        "metadata": {"name": TASK},
        "spec": {
            "results": [{"name": "commit"}],
            "steps": [
                {
                    "name": "write",
                    "image": STEP_IMAGES[0],
                    "script": "#!/bin/sh\nprintf abc123 > $(results.commit.path)\n",
                },
                {
                    "name": "read",
                    "image": STEP_IMAGES[1],
                    "command": ["cat"],
                    "args": ["$(results.commit.path)"],
                },
            ],
        },
    }


@pytest.fixture(scope="module")
def run(
    control_plane: ControlPlane, tekton: Tekton, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Run]:
    admin = control_plane.client()
    try:
        admin.namespace(NS)
        admin.service_account(NS, SA)
        admin.allow_own_tokens(NS, SA)
        admin.node(NODE)
        admin.create(f"/apis/tekton.dev/v1/namespaces/{NS}/tasks", task())
        admin.create(
            f"/apis/tekton.dev/v1/namespaces/{NS}/taskruns",
            {
                "apiVersion": "tekton.dev/v1",
                "kind": "TaskRun",
                "metadata": {"name": TASKRUN},
                "spec": {"serviceAccountName": SA, "taskRef": {"name": TASK}},
            },
        )
        # The scheduler's part: bind the pod to the node (its tokens then name the node too).
        pod = kubelet.bind(admin, NS, POD, NODE)
        yield Run(admin, control_plane, pod, tmp_path_factory.mktemp("taskrun"))
    finally:
        admin.close()


def run_steps(run: Run) -> tuple[list[str], float, float]:
    """The pod's two steps through the real entrypoint (step 1 waits for step 0's post file, as in
    the pod); their termination messages, and when they started and finished."""

    def write(root: Path) -> list[str]:
        return [*sa_flags("tekton", "-signing_timeout", "20s"), "-results", "commit",
                *sh(write_results(TektonRoot(root), RESULTS))]  # fmt: skip

    def read(root: Path) -> list[str]:
        return ["-results", "commit", "-entrypoint", "cat", "--", str(root / "results" / "commit")]

    return kubelet.run_steps(run.plane, run.admin, run.pod, run.directory, [write, read])


def test_tekton_parses_our_signed_messages_into_the_taskrun(run: Run) -> None:
    messages, started, finished = run_steps(run)

    # The kubelet's report: every container terminated, with its termination message.
    kubelet.report(run.admin, run.pod, messages, started, finished)

    def finished_taskrun() -> dict[str, Any] | None:
        tr = run.taskrun()
        [cond] = tr["status"]["conditions"]
        return tr if cond["status"] != "Unknown" else None

    taskrun = kubelet.wait("the TaskRun to finish", finished_taskrun)
    [cond] = taskrun["status"]["conditions"]
    assert (cond["status"], cond["reason"]) == ("True", "Succeeded"), cond
    # Tekton parsed the result from our message, and keeps the signing entries as results beside it
    # (with enforce-nonfalsifiability "none" it checks nothing and drops nothing, undeclared or not).
    results = {r["name"]: r for r in taskrun["status"]["results"]}
    assert results.pop("commit") == {"name": "commit", "type": "string", "value": "abc123"}
    assert set(results) == SIGNING_ENTRIES
    assert results["SA_TOKEN"]["value"].count(".") == 2
    steps = {s["name"]: s["terminated"] for s in taskrun["status"]["steps"]}
    assert set(steps) == {"write", "read"}
    assert all(t["exitCode"] == 0 and t["reason"] == "Completed" for t in steps.values())

    # The signed message verifies against the real API server, bound to the controller's pod.
    message = run.directory / "message-0"
    message.write_text(messages[0])
    reviewer = run.directory / "reviewer-token"
    reviewer.write_text(run.plane.admin_token_file.read_text())
    verdict = verify(
        message,
        "--kube-api",
        run.plane.url,
        "--kube-token-file",
        str(reviewer),
        "--kube-ca-file",
        str(run.plane.ca_file),
        "--pod-name",
        POD,
        "--pod-uid",
        run.pod["metadata"]["uid"],
        "--service-account",
        SA,
        taskrun=f"{NS}/{TASKRUN}",
    )
    assert verdict["verified"], verdict["message"]
    assert (
        verdict["identity"]
        == f"system:serviceaccount:{NS}:{SA} (pod {POD}, uid {run.pod['metadata']['uid']})"
    )
