"""``entrypoint verify --taskrun-object``: TaskRuns whose steps ran through the real entrypoint
process, stored as Tekton's controller stores them, verified by the verifier process."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest

from entrypoint.testing.workload_api import WorkloadAPIServer
from tests.support.pki import NS, TASKRUN, TD
from tests.support.signed_taskruns import run_spire_steps
from tests.support.tekton import TektonRoot, entrypoint_command
from tests.support.tekton_status import pod_object, taskrun_object


def verify(
    tmp_path: Path, bundle: Path, taskrun: Any, *extra: str, pod: Any = None
) -> subprocess.CompletedProcess[str]:
    (tmp_path / "tr.json").write_text(json.dumps(taskrun))
    args = ["--taskrun-object", str(tmp_path / "tr.json")]
    if pod is not None:
        (tmp_path / "pod.json").write_text(json.dumps(pod))
        args += ["--pod-object", str(tmp_path / "pod.json")]
    return subprocess.run(
        [*entrypoint_command(), "verify", *args, "--trust-domain", TD, "--trust-bundle", str(bundle), *extra],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip


@pytest.mark.parametrize("fmt", ["compact", "tekton"])
def test_a_taskrun_signed_by_the_entrypoint_verifies_as_stored(
    root: TektonRoot, agent: WorkloadAPIServer, bundle: Path, tmp_path: Path, fmt: str
) -> None:
    steps = run_spire_steps(root, agent, fmt)
    tr = taskrun_object(NS, TASKRUN, steps)
    assert tr["status"]["steps"][1]["terminated"]["exitCode"] == 3
    p = verify(tmp_path, bundle, tr)
    assert p.returncode == 0, p.stdout + p.stderr
    assert p.stdout.startswith(f"VERIFIED taskrun {NS}/{TASKRUN}"), p.stdout
    doc = json.loads(verify(tmp_path, bundle, tr, "--json").stdout)
    assert doc["outcome"] == "Verified"
    assert doc["condition"]["type"] == "SignedResultsVerified"
    # Every step re-reads every result file (Tekton passes all names to each): s1 carries both.
    assert {(r["name"], r["step"]) for r in doc["results"]} >= {("commit", "s1"), ("list", "s1")}
    assert [s["exitCodeBound"] for s in doc["steps"]] == [fmt == "compact"] * 2
    live = verify(tmp_path, bundle, tr, pod=pod_object(NS, tr, steps))
    assert live.returncode == 0, live.stdout


@pytest.mark.parametrize("fmt", ["compact", "tekton"])
def test_a_tampered_status_fails_with_the_reason(
    root: TektonRoot, agent: WorkloadAPIServer, bundle: Path, tmp_path: Path, fmt: str
) -> None:
    tr = taskrun_object(NS, TASKRUN, run_spire_steps(root, agent, fmt))
    for r in tr["status"]["results"]:
        if r["name"] == "commit":
            r["value"] = "0a1b2c3d"  # the earlier step's value: Tekton kept the later one
    p = verify(tmp_path, bundle, tr)
    assert p.returncode == 1
    assert "NOT VERIFIED" in p.stdout and "ResultMismatch" in p.stdout


def test_the_exit_code_a_compact_step_recorded_cannot_be_rewritten(
    root: TektonRoot, agent: WorkloadAPIServer, bundle: Path, tmp_path: Path
) -> None:
    tr = taskrun_object(NS, TASKRUN, run_spire_steps(root, agent, "compact"))
    tr["status"]["steps"][1]["terminated"]["exitCode"] = 0  # hide the failure
    p = verify(tmp_path, bundle, tr)
    assert p.returncode == 1
    assert "ExitCodeMismatch" in p.stdout


@pytest.mark.parametrize(
    ("args", "complaint"),
    [
        (["--taskrun", f"{NS}/{TASKRUN}"], "--taskrun-object reads --taskrun"),
        (["--step", "0"], "--step"),
    ],
)
def test_object_mode_refuses_what_the_object_gives(
    bundle: Path, tmp_path: Path, args: list[str], complaint: str
) -> None:
    p = verify(tmp_path, bundle, {"kind": "TaskRun"}, *args)
    assert p.returncode == 2
    assert complaint in p.stderr


def test_a_list_or_not_json_is_a_usage_error(bundle: Path, tmp_path: Path) -> None:
    p = verify(tmp_path, bundle, {"kind": "TaskRunList", "items": []})
    assert (p.returncode, "a list of objects" in p.stderr) == (2, True)
    (tmp_path / "bad.json").write_text("{")
    q = subprocess.run(
        [*entrypoint_command(), "verify", "--taskrun-object", str(tmp_path / "bad.json"), "--trust-domain",
         TD, "--trust-bundle", str(bundle)], capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert q.returncode == 2 and "not JSON" in q.stderr and "bad.json" in q.stderr
