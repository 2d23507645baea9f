"""Whole TaskRuns signed by sigstore-keyless, verified as the API server stores them after the pod is
gone (docs/verify-taskrun.md): the binding, the log record and the certificate survive Tekton's copy
of each step's message into the TaskRun, in both wire formats."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support.k8s_sat import NS, POD_UID, SA, TASKRUN, new_root
from tests.support.k8s_sat import entrypoint as run_entrypoint
from tests.support.sigstore import FORMATS, Stack, sign_step, stack
from tests.support.tekton_status import StepRun, pod_object, taskrun_object


@pytest.fixture(scope="module")
def doubles(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    with stack(tmp_path_factory.mktemp("sigstore-taskrun")) as s:
        yield s


def _taskrun(s: Stack, tmp_path: Path, fmt: str) -> tuple[dict[str, Any], list[StepRun]]:
    root = new_root(tmp_path / "root")
    steps = []
    for i, (name, results) in enumerate(
        (("build", {"image": "sha256:" + "1" * 64}), ("test", {"passed": "12"}))
    ):
        p = sign_step(root, s, results, fmt, step=i)
        assert p.returncode == 0, p.stderr
        steps.append(StepRun(name, root.termination.read_text()))
        root.termination.unlink()
    return taskrun_object(NS, TASKRUN, steps), steps


def _verify(s: Stack, tmp_path: Path, obj: dict[str, Any], *extra: str) -> tuple[int, dict[str, Any]]:
    path = tmp_path / "taskrun.json"
    path.write_text(json.dumps(obj))
    p = run_entrypoint("verify", "--taskrun-object", str(path), "--json", *s.verify_args(), *extra)
    assert p.returncode in (0, 1), p.stdout + p.stderr
    return p.returncode, json.loads(p.stdout)


@pytest.mark.parametrize("fmt", FORMATS)
def test_a_taskrun_verifies_after_its_pod_is_gone(doubles: Stack, tmp_path: Path, fmt: str) -> None:
    obj, _ = _taskrun(doubles, tmp_path, fmt)
    code, verdict = _verify(doubles, tmp_path, obj)
    assert code == 0, verdict
    assert verdict["outcome"] == "Verified", verdict
    covered = {r["name"]: r["coveredBy"] for r in verdict["results"]}
    assert covered["image"] == covered["passed"] == "signature"
    # Tekton publishes the log record as a result too: a signing entry, not a result of the step.
    assert covered["SIGSTORE_LOG"] == "signing-entry"


@pytest.mark.parametrize("fmt", FORMATS)
def test_with_its_pod_the_pod_uid_is_checked_too(doubles: Stack, tmp_path: Path, fmt: str) -> None:
    obj, steps = _taskrun(doubles, tmp_path, fmt)
    pod = tmp_path / "pod.json"
    pod.write_text(json.dumps(pod_object(NS, obj, steps, uid=POD_UID, service_account=SA)))
    code, verdict = _verify(doubles, tmp_path, obj, "--pod-object", str(pod))
    assert code == 0, verdict
    # Another pod UID: the steps' bindings name the real one.
    pod.write_text(
        json.dumps(pod_object(NS, obj, steps, uid="00000000-0000-4000-8000-000000000000", service_account=SA))
    )
    code, verdict = _verify(doubles, tmp_path, obj, "--pod-object", str(pod))
    assert code == 1, verdict


@pytest.mark.parametrize("fmt", FORMATS)
def test_a_result_changed_in_the_status_is_rejected(doubles: Stack, tmp_path: Path, fmt: str) -> None:
    obj, _ = _taskrun(doubles, tmp_path, fmt)
    for r in obj["status"]["results"]:
        if r["name"] == "image":
            r["value"] = "sha256:" + "6" * 64
    code, verdict = _verify(doubles, tmp_path, obj)
    assert code == 1
    assert verdict["outcome"] == "Failed", verdict


@pytest.mark.parametrize("fmt", FORMATS)
def test_a_taskrun_moved_to_another_name_is_rejected(doubles: Stack, tmp_path: Path, fmt: str) -> None:
    obj, _ = _taskrun(doubles, tmp_path, fmt)
    # Renamed with its pod, so that only the signed binding can tell.
    obj["metadata"]["name"] = "build-2"
    obj["status"]["podName"] = "build-2-pod"
    code, verdict = _verify(doubles, tmp_path, obj)
    assert code == 1
    assert "BindingMismatch" in json.dumps(verdict), verdict
