"""Tekton's real controller (tools/peers.sh, ``start tekton``) against the real kube-apiserver: a Task
and a TaskRun created through the API are reconciled into the TaskRun's pod, with this project's
image as ``-entrypoint-image``.  ``make e2e`` builds the controller (and its CRDs come from the Go
module cache at start time, never from the repository); where it is not built this module is
skipped, saying so.

There is no kubelet yet (issue 14's pod executor), so the pod stays Pending and the TaskRun
Unknown/Pending: what is checked here is the pod Tekton's controller asks for, the contract our
entrypoint has to meet (the ``prepare`` init container's copy, each step's command and flags).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest

from tests.e2e.conftest import Tekton
from tests.e2e.realkube import ControlPlane, Kube

NS, SA, TASK, TASKRUN = "tekton-e2e", "builder", "build", "build-1"
TEKTON_API = "/apis/tekton.dev/v1"
# What the controller's pod creation may take on a loaded two-core machine.
RECONCILE_SECONDS = 60
# The step images of images/build.sh (no registry is asked: every step has a command or a script).
DEBIAN = "localhost/signed-entrypoint-step-debian:latest"
MUSL = "localhost/signed-entrypoint-step-musl:latest"


@pytest.fixture(scope="module")
def admin(control_plane: ControlPlane, tekton: Tekton) -> Iterator[Kube]:
    kube = control_plane.client()
    try:
        kube.namespace(NS)
        kube.service_account(NS, SA)
        yield kube
    finally:
        kube.close()


def task() -> dict[str, Any]:
    """Two steps in two images: a task result, and a step reading it (through the results file)."""
    return {
        "apiVersion": "tekton.dev/v1",
        "kind": "Task",
        "metadata": {"name": TASK},
        "spec": {
            "results": [{"name": "commit"}],
            "steps": [
                {
                    "name": "write",
                    "image": DEBIAN,
                    "script": "#!/bin/sh\nprintf abc123 > $(results.commit.path)\n",
                },
                {
                    "name": "read",
                    "image": MUSL,
                    "command": ["/bin/steptool"],
                    "args": ["env"],
                },
            ],
        },
    }


def taskrun() -> dict[str, Any]:
    return {
        "apiVersion": "tekton.dev/v1",
        "kind": "TaskRun",
        "metadata": {"name": TASKRUN},
        "spec": {"serviceAccountName": SA, "taskRef": {"name": TASK}},
    }


def wait_for_pod(kube: Kube, name: str) -> dict[str, Any]:
    deadline = time.monotonic() + RECONCILE_SECONDS
    path = f"/api/v1/namespaces/{NS}/pods/{name}"
    while True:
        r = kube.request("GET", path)
        if r.status_code == 200:
            pod: dict[str, Any] = r.json()
            return pod
        assert r.status_code == 404, f"GET {path}: {r.status_code} {r.text}"
        assert time.monotonic() < deadline, f"Tekton's controller made no pod {name} in {RECONCILE_SECONDS} s"
        time.sleep(0.5)


def flag(args: list[str], name: str) -> str | None:
    """The value of ``-name VALUE`` in a step's arguments (as Tekton writes them), else None."""
    for i, arg in enumerate(args[:-1]):
        if arg == f"-{name}":
            return args[i + 1]
    return None


def test_a_taskrun_is_reconciled_into_a_pod_that_runs_our_entrypoint(admin: Kube, tekton: Tekton) -> None:
    admin.create(f"{TEKTON_API}/namespaces/{NS}/tasks", task())
    admin.create(f"{TEKTON_API}/namespaces/{NS}/taskruns", taskrun())
    pod = wait_for_pod(admin, f"{TASKRUN}-pod")
    image = tekton.entrypoint_image
    spec = pod["spec"]

    assert pod["metadata"]["labels"]["tekton.dev/taskRun"] == TASKRUN
    assert spec["serviceAccountName"] == SA
    # The ServiceAccount admission plugin projected the kube-api-access token the backend reads.
    assert any(v["name"].startswith("kube-api-access-") for v in spec["volumes"])

    # Our image copies itself into /tekton/bin, as Tekton's own entrypoint image does.
    init = {c["name"]: c for c in spec["initContainers"]}
    prepare = init["prepare"]
    assert prepare["image"] == image
    assert prepare["command"][:4] == [
        "/ko-app/entrypoint",
        "init",
        "/ko-app/entrypoint",
        "/tekton/bin/entrypoint",
    ]
    assert prepare["command"][4:] == ["step-write", "step-read"]
    assert "place-scripts" in init  # the script step's file, decoded by `entrypoint decode-script`
    assert "/tekton/bin/entrypoint decode-script" in init["place-scripts"]["args"][-1]

    write, read = spec["containers"]
    assert [write["name"], read["name"]] == ["step-write", "step-read"]
    assert [write["image"], read["image"]] == [DEBIAN, MUSL]
    for i, step in enumerate((write, read)):
        args = step["args"]
        assert step["command"] == ["/tekton/bin/entrypoint"]
        assert flag(args, "post_file") == f"/tekton/run/{i}/out"
        assert flag(args, "termination_path") == "/tekton/termination"
        assert flag(args, "step_metadata_dir") == f"/tekton/run/{i}/status"
        assert flag(args, "results") == "commit"
        assert step["terminationMessagePath"] == "/tekton/termination"
    assert flag(write["args"], "wait_file") == "/tekton/downward/ready"
    assert "-wait_file_content" in write["args"]
    assert flag(read["args"], "wait_file") == "/tekton/run/0/out"
    assert flag(read["args"], "entrypoint") == "/bin/steptool"
    assert read["args"][-2:] == ["--", "env"]

    # No kubelet: the pod is never run, and the TaskRun waits for it.
    run = admin.get(f"{TEKTON_API}/namespaces/{NS}/taskruns/{TASKRUN}")
    assert run["status"]["podName"] == f"{TASKRUN}-pod"
    [succeeded] = [c for c in run["status"]["conditions"] if c["type"] == "Succeeded"]
    assert (succeeded["status"], succeeded["reason"]) == ("Unknown", "Pending")
