"""A TaskRun pod, for real: ``podman kube play`` runs a Pod shaped like the one Tekton's controller
builds (spec §2.7, §3), with the entrypoint image as its init container and three steps in three
different step images chained through /tekton/bin/entrypoint, their results signed with SPIRE.

What is Tekton's here: the ``prepare`` init container's command, the volumes and their mount points
(read-only where Tekton mounts them read-only), each step's command and its arguments in Tekton's
order, the -results list on every step, the step names, the step-result path through the
/tekton/steps symlinks ``init`` creates, and the Workload API socket at /spiffe-workload-api.

What stands in for the kubelet and Kubernetes:
  * terminationMessagePath: the kubelet bind-mounts a host file there and reads it when the
    container ends; here each step gets a hostPath file at /tekton/termination, read afterwards.
  * the volumes a step writes (/tekton/run/<i>, /tekton/results, /workspace) are hostPath
    directories opened to every uid.  A Kubernetes emptyDir is world-writable, so a step of any
    uid can write it; podman's emptyDir is not (it is chowned to the uid of the first container
    that mounts it, which depends on start order), so with one step at uid 1000 emptyDirs would
    make the test flaky for a reason Kubernetes does not have.  /tekton/bin, /tekton/steps and
    /tekton/home, which steps do not write, are emptyDirs.
  * the downward volume (/tekton/downward) is left out: podman does not support downwardAPI
    volumes, and Tekton gives step 0 no wait file on it when the pod has no sidecars.

readOnlyRootFilesystem (steps b and c) is Kubernetes' here: ``podman kube play`` (4.3) mounts no tmpfs
on /tmp, /var/tmp or /run, unlike ``podman run --read-only`` (tests/containers/test_matrix.py turns
that off with ``--read-only-tmpfs=false``).  Step c's command checks that it cannot write /tmp, so a
podman that starts adding one is noticed.
"""

from __future__ import annotations

import json
import secrets
import time
from datetime import datetime
from pathlib import Path
from typing import Any

from tests.support.containers import Agent
from tests.support.pki import TASKRUN, TASKRUN_REF, TD
from tests.support.podman import (
    ENTRYPOINT,
    ENTRYPOINT_IMAGE,
    SPIFFE_MOUNT,
    STEP_IMAGES,
    TEKTON_BIN,
    keys_of,
    podman,
    results_of,
    tampered_copy,
    verify,
)

RESULTS = ["from-debian", "from-musl", "from-static"]
STEP_RESULT = "digest"
DIGEST = "sha256:" + "ab" * 32
POD_TIMEOUT = 120.0
FAILED_STEP_GRACE = 5.0
TMP_REFUSED, TMP_WRITTEN = "tmp probe: refused", "tmp probe: written"


def step_commands() -> list[tuple[str, str, list[str]]]:
    """(step name, image, command after -entrypoint) of the three steps, in order."""
    return [
        # The sleep makes the order meaningful: were the chain broken, b and c would log first.
        ("a", STEP_IMAGES["debian"], [
            "/bin/sh", "--", "-c",
            "sleep 0.3; echo step-a >> /workspace/order; printf %s debian-ok > /tekton/results/from-debian",
        ]),
        # The read-only, non-root step; its step result goes through the /tekton/steps symlink.
        ("b", STEP_IMAGES["musl"], [
            "/bin/steptool", "--",
            "append", "/workspace/order", "step-b",
            "write", "/tekton/results/from-musl", "musl-ok",
            "write", f"/tekton/steps/step-b/results/{STEP_RESULT}", DIGEST,
        ]),
        # Read-only too (as root): it also checks that /tmp is not writable.
        ("c", STEP_IMAGES["static"], [
            "/bin/sh", "--", "-c",
            "echo step-c >> /workspace/order; printf %s static-ok > /tekton/results/from-static;"
            f" if printf x > /tmp/probe; then echo '{TMP_WRITTEN}'; else echo '{TMP_REFUSED}'; fi",
        ]),
    ]  # fmt: skip


def pod_spec(name: str, host: Path, agent: Agent) -> dict[str, Any]:
    steps = step_commands()
    n = len(steps)
    volumes: list[dict[str, Any]] = [
        {"name": "tekton-internal-bin", "emptyDir": {}},
        {"name": "tekton-internal-steps", "emptyDir": {}},
        {"name": "tekton-internal-home", "emptyDir": {}},
        {"name": "tekton-internal-results", "hostPath": {"path": str(host / "results"), "type": "Directory"}},
        {
            "name": "tekton-internal-workspace",
            "hostPath": {"path": str(host / "workspace"), "type": "Directory"},
        },
        {"name": "spiffe-workload-api", "hostPath": {"path": str(agent.socket_dir), "type": "Directory"}},
    ]
    volumes += [
        {
            "name": f"tekton-internal-run-{i}",
            "hostPath": {"path": str(host / "run" / str(i)), "type": "Directory"},
        }
        for i in range(n)
    ]
    volumes += [
        {"name": f"termination-{s}", "hostPath": {"path": str(host / f"termination-{s}"), "type": "File"}}
        for s, _, _ in steps
    ]
    containers = []
    for i, (step, image, command) in enumerate(steps):
        args = ["-wait_file", f"/tekton/run/{i - 1}/out"] if i > 0 else []
        args += [
            "-post_file", f"/tekton/run/{i}/out",
            "-termination_path", "/tekton/termination",
            "-step_metadata_dir", f"/tekton/run/{i}/status",
            "-enable_spire",
        ]  # fmt: skip
        if step == "b":
            args += ["-step_results", STEP_RESULT]
        args += ["-results", ",".join(RESULTS), "-entrypoint", *command]
        mounts = [
            {"name": "tekton-internal-bin", "mountPath": TEKTON_BIN, "readOnly": True},
            {"name": "tekton-internal-steps", "mountPath": "/tekton/steps", "readOnly": True},
            {"name": "tekton-internal-home", "mountPath": "/tekton/home"},
            {"name": "tekton-internal-results", "mountPath": "/tekton/results"},
            {"name": "tekton-internal-workspace", "mountPath": "/workspace"},
            {"name": "spiffe-workload-api", "mountPath": SPIFFE_MOUNT, "readOnly": True},
            {"name": f"termination-{step}", "mountPath": "/tekton/termination"},
        ]
        mounts += [
            {"name": f"tekton-internal-run-{j}", "mountPath": f"/tekton/run/{j}", "readOnly": j != i}
            for j in range(n)
        ]
        container: dict[str, Any] = {
            "name": f"step-{step}",
            "image": image,
            "command": [ENTRYPOINT],
            "args": args,
            "workingDir": "/workspace",
            "terminationMessagePath": "/tekton/termination",
            "terminationMessagePolicy": "File",
            "volumeMounts": mounts,
        }
        if step == "b":
            container["securityContext"] = {
                "runAsUser": 1000,
                "runAsGroup": 1000,
                "readOnlyRootFilesystem": True,
            }
        elif step == "c":
            container["securityContext"] = {"readOnlyRootFilesystem": True}
        containers.append(container)
    prepare = {
        "name": "prepare",
        "image": ENTRYPOINT_IMAGE,
        "command": ["/ko-app/entrypoint"],
        "args": ["init", "/ko-app/entrypoint", ENTRYPOINT, *(f"step-{s}" for s, _, _ in steps)],
        "workingDir": "/",
        "volumeMounts": [
            {"name": "tekton-internal-bin", "mountPath": TEKTON_BIN},
            {"name": "tekton-internal-steps", "mountPath": "/tekton/steps"},
        ],
    }
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": name,
            "labels": {"tekton.dev/taskRun": TASKRUN, "app.kubernetes.io/managed-by": "tekton-pipelines"},
        },
        "spec": {
            "restartPolicy": "Never",
            "initContainers": [prepare],
            "containers": containers,
            "volumes": volumes,
        },
    }


def prepare_host(host: Path) -> None:
    for d in ["results", "workspace", *(f"run/{i}" for i in range(len(step_commands())))]:
        (host / d).mkdir(parents=True)
        (host / d).chmod(0o777)
    for f in ["workspace/order", *(f"termination-{s}" for s, _, _ in step_commands())]:
        (host / f).touch()
        (host / f).chmod(0o666)


def wait_for_steps(pod: str, steps: list[str]) -> dict[str, int]:
    """Each step container's exit code, once all have exited."""
    deadline = time.monotonic() + POD_TIMEOUT
    names = [f"{pod}-step-{s}" for s in steps]
    while True:
        states = {}
        for name in names:
            out = podman("inspect", "--format", "{{.State.Status}} {{.State.ExitCode}}", name).stdout.split()
            states[name.removeprefix(f"{pod}-")] = (out[0], int(out[1]))
        ended = {name: code for name, (status, code) in states.items() if status in {"exited", "stopped"}}
        if len(ended) == len(names):
            return ended
        # A step that failed without writing its post file leaves the next one waiting for ever.
        if any(ended.values()):
            deadline = min(deadline, time.monotonic() + FAILED_STEP_GRACE)
        if time.monotonic() > deadline:
            raise AssertionError(f"the pod's steps did not all finish: {states}\n{logs(pod, steps)}")
        time.sleep(0.2)


def logs(pod: str, steps: list[str]) -> str:
    out = []
    for s in steps:
        proc = podman("logs", f"{pod}-step-{s}", check=False)
        out.append(f"--- step-{s}\n{proc.stdout}{proc.stderr}")
    return "\n".join(out)


def test_taskrun_pod(spire_agent: Agent, tekton_bin: Path, tmp_path: Path) -> None:
    # tekton_bin: the images are built and `init` is known to copy the bundle.
    host = tmp_path / "pod"
    prepare_host(host)
    pod = f"taskrun-example-pod-{secrets.token_hex(3)}"
    spec = tmp_path / "pod.yaml"
    spec.write_text(json.dumps(pod_spec(pod, host, spire_agent), indent=1))  # JSON is YAML
    steps = [s for s, _, _ in step_commands()]
    try:
        play = podman("kube", "play", str(spec), timeout=POD_TIMEOUT, check=False)
        if play.returncode != 0:
            prepare = podman("logs", f"{pod}-prepare", check=False)
            raise AssertionError(
                f"podman kube play failed: {play.stderr}\n--- prepare\n{prepare.stdout}{prepare.stderr}"
            )
        codes = wait_for_steps(pod, steps)
        assert codes == {f"step-{s}": 0 for s in steps}, f"{codes}\n{logs(pod, steps)}"
        step_c = podman("logs", f"{pod}-step-c").stdout
        assert TMP_WRITTEN not in step_c, "readOnlyRootFilesystem left /tmp writable in step c"
        assert TMP_REFUSED in step_c, f"step c did not probe /tmp:\n{logs(pod, steps)}"
    finally:
        podman("pod", "rm", "--force", "--time", "0", pod, check=False)

    assert (host / "workspace/order").read_text().split() == ["step-a", "step-b", "step-c"]
    for i in range(len(steps)):
        assert (host / f"run/{i}/out").exists(), f"step {i} wrote no post file"
        assert (host / f"run/{i}/status/exitCode").read_text() == "0"
    assert (host / f"run/1/status/results/{STEP_RESULT}").read_text() == DIGEST

    # The results directory is shared, so each step reports what the steps before it wrote too.
    # It may also report a later step's: as in Tekton (§4.1 R7 then R8), a step writes its post
    # file before it reads the results, so the next step can already be writing.
    expected = {"from-debian": "debian-ok", "from-musl": "musl-ok", "from-static": "static-ok"}
    started = []
    for i, step in enumerate(steps):
        message = host / f"termination-{step}"
        found = results_of(message)
        assert dict(list(expected.items())[: i + 1]).items() <= found.items(), message.read_text()
        assert found.items() <= expected.items(), message.read_text()
        assert "SVID" in keys_of(message), f"step-{step} did not sign: {message.read_text()}"
        verdict = verify(message, TASKRUN_REF, TD, spire_agent.bundle)
        assert verdict.returncode == 0, f"step-{step}: {verdict.stdout}{verdict.stderr}"
        entries = json.loads(message.read_text())
        started += [
            datetime.fromisoformat(e["value"].replace("Z", "+00:00"))
            for e in entries
            if e["key"] == "StartedAt"
        ]
        if step == "b":
            assert {"key": STEP_RESULT, "value": DIGEST, "type": 4} in entries, entries
    assert started == sorted(started), f"steps started out of order: {started}"

    forged = tampered_copy(host / "termination-c", "from-debian", "evil", tmp_path / "forged")
    verdict = verify(forged, TASKRUN_REF, TD, spire_agent.bundle)
    assert verdict.returncode == 1, f"a tampered message verified: {verdict.stdout}{verdict.stderr}"
