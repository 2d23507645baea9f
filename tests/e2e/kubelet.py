"""The kubelet's part for a pod Tekton's real controller made (there is no kubelet here): bind it
to a node, run its steps through the real entrypoint with the pod's projected token, and report
the containers' terminations, messages included, in the pod's status."""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar

from tests.e2e.realkube import ControlPlane, Kube, in_pod_env, mount_service_account
from tests.support.controller import wait_for
from tests.support.k8s_sat import new_root

T = TypeVar("T")


def wait(what: str, check: Callable[[], T | None], seconds: float = 60) -> T:
    return wait_for(what, check, seconds, interval=0.1)


def rfc3339(seconds: float) -> str:
    return dt.datetime.fromtimestamp(int(seconds), dt.UTC).isoformat().replace("+00:00", "Z")


def pod_path(namespace: str, name: str) -> str:
    return f"/api/v1/namespaces/{namespace}/pods/{name}"


def bind(admin: Kube, namespace: str, pod: str, node: str) -> dict[str, Any]:
    """The scheduler's part, once the controller made the pod: bind it to ``node``."""
    path = pod_path(namespace, pod)
    wait("the controller's pod", lambda: True if admin.request("GET", path).status_code == 200 else None)
    admin.bind(namespace, pod, node)
    return admin.get(path)


def container_status(container: dict[str, Any], terminated: dict[str, Any]) -> dict[str, Any]:
    return {
        "name": container["name"],
        "image": container["image"],
        "imageID": "",
        "ready": False,
        "restartCount": 0,
        "started": False,
        "state": {"terminated": terminated},
    }


def run_steps(
    plane: ControlPlane,
    admin: Kube,
    pod: dict[str, Any],
    directory: Path,
    steps: Sequence[Callable[[Path], list[str]]],
) -> tuple[list[str], float, float]:
    """Each step's arguments (given the Tekton root) through the real entrypoint, in order, in the
    pod's environment; their termination messages, and when they started and finished."""
    sa_dir = mount_service_account(admin, pod, directory / "serviceaccount", plane.ca_file)
    env = in_pod_env(sa_dir, plane.port)
    root = new_root(directory / "tekton")
    started = time.time()
    messages = []
    for i, argv_of in enumerate(steps):
        # Each container has its own /tekton/termination; here each step its own file.
        args = [*root.step_args(i), *argv_of(root.path)]
        termination = root / f"termination-{i}"
        args[args.index("-termination_path") + 1] = str(termination)
        p = root.run(args, env=env)
        assert p.returncode == 0, p.stdout + p.stderr
        messages.append(termination.read_text())
    return messages, started, time.time()


def report(
    admin: Kube, pod: dict[str, Any], messages: Sequence[str], started: float, finished: float
) -> None:
    """Every container terminated (exit 0), with its termination message, and the pod Succeeded."""
    meta = pod["metadata"]
    path = pod_path(meta["namespace"], meta["name"])
    current = admin.get(path)
    terminated = {
        "exitCode": 0,
        "reason": "Completed",
        "startedAt": rfc3339(started),
        "finishedAt": rfc3339(finished),
    }
    current["status"].update(
        {
            "phase": "Succeeded",
            "startTime": rfc3339(started),
            "initContainerStatuses": [
                container_status(c, terminated) for c in current["spec"].get("initContainers", [])
            ],
            "containerStatuses": [
                container_status(c, {**terminated, "message": messages[i]})
                for i, c in enumerate(current["spec"]["containers"])
            ],
        }
    )
    r = admin.request("PUT", f"{path}/status", current)
    assert r.status_code == 200, r.text
