"""Tekton's ``enable-termination-message-compression`` feature flag, end to end: with it on, Tekton's
real controller passes ``-compress_termination_message=true`` to our entrypoint, which writes a
``tknz:`` message that only fits in 4096 bytes compressed; Tekton inflates it into the TaskRun, and
both the raw message (from the pod) and Tekton's copy (in the TaskRun) verify.  The flag is put back
afterwards: the control plane and Tekton's controller are the session's."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.e2e import kubelet
from tests.e2e.conftest import Tekton
from tests.e2e.podlet import Podlet
from tests.e2e.realkube import ControlPlane, Kube
from tests.support.k8s_sat import entrypoint
from tests.support.podman import STEP_IMAGES

NS, SA, NODE = "podman-compressed", "builder", "node-podman"
TASK, TASKRUN = "big-results", "big-results-1"
POD = f"{TASKRUN}-pod"
FLAG = "enable-termination-message-compression"
# Two results of 1,500 bytes each, with an oidc-sa-token signature (~1.5 KB): ~4.6 KB as plain
# JSON, over the 4096-byte limit; repetitive, so far smaller compressed.
VALUES = {"sbom": "ab" * 750, "log": "cd" * 750}


def task() -> dict[str, Any]:
    script = "#!/bin/sh\nset -e\n" + "".join(
        f"printf %s {value} > $(results.{name}.path)\n" for name, value in VALUES.items()
    )
    return {
        "apiVersion": "tekton.dev/v1",
        "kind": "Task",
        "metadata": {"name": TASK},
        "spec": {
            "results": [{"name": name} for name in VALUES],
            "steps": [
                {
                    "name": "write",
                    "image": STEP_IMAGES["debian"],
                    "env": [
                        {"name": "SIGNED_ENTRYPOINT_SIGNING_BACKEND", "value": "oidc-sa-token"},
                        {"name": "SIGNED_ENTRYPOINT_SIGNATURE_FORMAT", "value": "compact"},
                    ],
                    "script": script,
                }
            ],
        },
    }


def set_flag(admin: Kube, namespace: str, value: str) -> None:
    r = admin.http.patch(
        f"/api/v1/namespaces/{namespace}/configmaps/feature-flags",
        content=json.dumps({"data": {FLAG: value}}),
        headers={"Content-Type": "application/merge-patch+json"},
    )
    assert r.status_code == 200, r.text


@dataclass
class Done:
    admin: Kube
    plane: ControlPlane
    pod: dict[str, Any]
    taskrun: dict[str, Any]
    directory: Path


@pytest.fixture(scope="module")
def done(
    images: None, control_plane: ControlPlane, tekton: Tekton, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Done]:
    directory = tmp_path_factory.mktemp("compressed")
    admin = control_plane.client()
    try:
        set_flag(admin, tekton.namespace, "true")
        time.sleep(2)  # Tekton's controller watches its ConfigMaps; new pods get the flag
        admin.namespace(NS)
        admin.service_account(NS, SA)
        admin.allow_own_tokens(NS, SA)
        admin.node(NODE)
        admin.create(f"/apis/tekton.dev/v1/namespaces/{NS}/tasks", task())
        admin.create(
            f"/apis/tekton.dev/v1/namespaces/{NS}/taskruns",
            {"apiVersion": "tekton.dev/v1", "kind": "TaskRun", "metadata": {"name": TASKRUN},
             "spec": {"serviceAccountName": SA, "taskRef": {"name": TASK}}},
        )  # fmt: skip
        run = Podlet(control_plane, admin, NODE, directory / "podlet").run(NS, POD)
        assert run.phase == "Succeeded", run

        def finished() -> dict[str, Any] | None:
            tr = admin.get(f"/apis/tekton.dev/v1/namespaces/{NS}/taskruns/{TASKRUN}")
            conditions = tr.get("status", {}).get("conditions", [])
            return tr if conditions and conditions[0]["status"] != "Unknown" else None

        taskrun = kubelet.wait("the TaskRun to finish", finished)
        yield Done(admin, control_plane, admin.get(kubelet.pod_path(NS, POD)), taskrun, directory)
    finally:
        set_flag(admin, tekton.namespace, "false")
        admin.close()


def test_tekton_passes_the_flag_and_our_message_is_compressed(done: Done) -> None:
    [step] = [c for c in done.pod["spec"]["containers"] if c["name"] == "step-write"]
    assert "-compress_termination_message=true" in step["args"], step["args"]
    [status] = [c for c in done.pod["status"]["containerStatuses"] if c["name"] == "step-write"]
    raw = status["state"]["terminated"]["message"]
    assert raw.startswith("tknz:") and len(raw) <= 4096, raw[:80]


def test_tekton_inflates_it_into_the_taskrun_and_both_copies_verify(done: Done) -> None:
    [cond] = done.taskrun["status"]["conditions"]
    assert (cond["status"], cond["reason"]) == ("True", "Succeeded"), cond
    results = {r["name"]: r["value"] for r in done.taskrun["status"]["results"]}
    assert {k: results[k] for k in VALUES} == VALUES
    # Tekton stores its own re-serialization, uncompressed and over 4 KiB.
    [step] = done.taskrun["status"]["steps"]
    assert not step["terminated"]["message"].startswith("tknz:")
    assert len(step["terminated"]["message"]) > 4096
    jwks = done.directory / "jwks.json"
    token = done.directory / "admin-token"
    token.write_text(done.plane.admin_token_file.read_text())
    kube = [
        "--kube-api",
        done.plane.url,
        "--kube-token-file",
        str(token),
        "--kube-ca-file",
        str(done.plane.ca_file),
    ]
    assert entrypoint("save-jwks", *kube, "-o", str(jwks)).returncode == 0
    (done.directory / "tr.json").write_text(json.dumps(done.taskrun))
    (done.directory / "pod.json").write_text(json.dumps(done.pod))
    for extra in ([], ["--pod-object", str(done.directory / "pod.json")]):
        p = entrypoint(
            "verify", "--taskrun-object", str(done.directory / "tr.json"), *extra, "--jwks", str(jwks)
        )
        assert p.returncode == 0, (extra, p.stdout + p.stderr)
