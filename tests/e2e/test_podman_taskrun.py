"""A TaskRun end to end in real containers (issue 14): Tekton's real controller (v1.15.1) reconciles it
into a pod in the real kube-apiserver, and tests/e2e/podlet.py, a kubelet on top of ``podman kube
play``, runs that very pod: Tekton's ``prepare`` init container (our image's ``/ko-app/entrypoint
init``), its ``place-scripts`` init container (``/tekton/bin/entrypoint decode-script``), then the
two steps in two step images (Debian, musl), each ``/tekton/bin/entrypoint`` with Tekton's flags.

Both steps sign with ``oidc-sa-token``: Tekton passes none of our flags, so each step's ``env``
sets ``SIGNED_ENTRYPOINT_SIGNING_BACKEND`` and the format: compact for the first step, whose step
result only the compact format signs (Tekton's format signs task results only, and the verifier
fails a TaskRun with an unsigned step result), Tekton's for the second, which also names its pod
through ``POD_*`` variables from the downward API.  The
token they use for TokenRequest is the projected ``kube-api-access`` one, a real TokenRequest bound
to the pod, and the API server is reached through the kubelet's ``KUBERNETES_SERVICE_*`` variables.

The first step (a script) writes a task result and a step result; the second reads the step result
through ``$(steps.write.results.digest)`` and writes it as another task result.  Tekton must parse
both into the TaskRun, which must verify as stored, online (TokenReview, while the pod exists) and
offline after the pod is deleted (the API server's JWKS snapshot); a tampered copy must not.

The tests share one TaskRun and run in file order (the last one deletes the pod).  Without podman
or the images they are skipped, saying so; without the real peers, conftest.py skips them.
"""

from __future__ import annotations

import copy
import json
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.e2e import kubelet
from tests.e2e.conftest import Tekton
from tests.e2e.podlet import Podlet, PodRun, Untranslatable, translate
from tests.e2e.realkube import ControlPlane, Kube, peers
from tests.support.k8s_sat import entrypoint, jwt_part
from tests.support.paths import REPO
from tests.support.podman import ENTRYPOINT_IMAGE, STEP_IMAGES

NS, SA, NODE = "podman-taskruns", "builder", "node-podman"
TASK, TASKRUN = "two-images", "two-images-1"
POD = f"{TASKRUN}-pod"
TEKTON_API = "/apis/tekton.dev/v1"
COMMIT = "abc123"
DIGEST = "sha256:" + "cd" * 32
DIST_ENTRYPOINT = REPO / "dist" / "bin" / "entrypoint"
# Tekton's format: per result a .sig, the manifest, the token and its key (docs/oidc-sa-token.md §2).
TEKTON_ENTRIES = {
    "commit.sig",
    "echo.sig",
    "RESULT_MANIFEST",
    "RESULT_MANIFEST.sig",
    "SA_TOKEN",
    "SA_TOKEN.sig",
    "SA_TOKEN_KEY",
}
FINISH_SECONDS = 60
# kube-apiserver's token authentication success cache (10 s), and slack (tests/e2e/test_real_apiserver.py).
CACHE_SECONDS = 20


def signing(fmt: str) -> list[dict[str, Any]]:
    return [
        {"name": "SIGNED_ENTRYPOINT_SIGNING_BACKEND", "value": "oidc-sa-token"},
        {"name": "SIGNED_ENTRYPOINT_SIGNATURE_FORMAT", "value": fmt},
    ]


def pod_field(name: str, path: str) -> dict[str, Any]:
    return {"name": name, "valueFrom": {"fieldRef": {"fieldPath": path}}}


def task() -> dict[str, Any]:
    return {
        "apiVersion": "tekton.dev/v1",
        "kind": "Task",
        "metadata": {"name": TASK},
        "spec": {
            "results": [{"name": "commit"}, {"name": "echo"}],
            "steps": [
                {
                    "name": "write",
                    "image": STEP_IMAGES["debian"],
                    "env": signing("compact"),
                    "results": [{"name": "digest"}],
                    "script": "#!/bin/sh\nset -e\nprintf %s "
                    f"{COMMIT} > $(results.commit.path)\nprintf %s {DIGEST} > $(step.results.digest.path)\n",
                },
                {
                    "name": "read",
                    "image": STEP_IMAGES["musl"],
                    "env": [
                        *signing("tekton"),
                        pod_field("POD_NAME", "metadata.name"),
                        pod_field("POD_UID", "metadata.uid"),
                        pod_field("POD_NAMESPACE", "metadata.namespace"),
                        pod_field("POD_SERVICE_ACCOUNT", "spec.serviceAccountName"),
                    ],
                    "command": ["/bin/steptool"],
                    "args": ["write", "$(results.echo.path)", "$(steps.write.results.digest)"],
                },
            ],
        },
    }


@dataclass
class Done:
    """The finished TaskRun, and what the executor saw of its pod."""

    plane: ControlPlane
    admin: Kube
    run: PodRun
    pod: dict[str, Any]
    taskrun: dict[str, Any]
    directory: Path
    seconds: float

    def trust_online(self) -> list[str]:
        token = self.directory / "admin-token"
        token.write_text(self.plane.admin_token_file.read_text())
        return ["--kube-api", self.plane.url, "--kube-token-file", str(token),
                "--kube-ca-file", str(self.plane.ca_file)]  # fmt: skip


@pytest.fixture(scope="module")
def done(
    images: None, control_plane: ControlPlane, tekton: Tekton, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Done]:
    assert tekton.entrypoint_image == ENTRYPOINT_IMAGE, tekton
    directory = tmp_path_factory.mktemp("podman-taskrun")
    admin = control_plane.client()
    try:
        admin.namespace(NS)
        admin.service_account(NS, SA)
        admin.allow_own_tokens(NS, SA)
        admin.node(NODE)
        # As a user would: kubectl apply of the Task and the TaskRun (kubectl v1.37.2, built by
        # tools/peers.sh from the same release as the API server), with the control plane's kubeconfig.
        taskrun_doc = {"apiVersion": "tekton.dev/v1", "kind": "TaskRun", "metadata": {"name": TASKRUN},
                       "spec": {"serviceAccountName": SA, "taskRef": {"name": TASK}}}  # fmt: skip
        applied = kubectl(control_plane, "apply", "-n", NS, "-f", "-", stdin=json.dumps(
            {"apiVersion": "v1", "kind": "List", "items": [task(), taskrun_doc]}))  # fmt: skip
        assert applied.returncode == 0, applied.stderr
        assert f"taskrun.tekton.dev/{TASKRUN} created" in applied.stdout, applied.stdout
        run = Podlet(control_plane, admin, NODE, directory / "podlet").run(NS, POD)
        print(f"podlet: {run.phase} after {run.timings}, {run.reports} status reports")
        print("podlet translations:\n  " + "\n  ".join(run.notes))
        taskrun = kubelet.wait("the TaskRun to finish", lambda: finished(admin), seconds=FINISH_SECONDS)
        pod = admin.get(kubelet.pod_path(NS, POD))
        yield Done(control_plane, admin, run, pod, taskrun, directory, run.timings["ended"])
    finally:
        admin.close()


def kubectl(plane: ControlPlane, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    """The real kubectl against the control plane (``tools/peers.sh path kubectl`` builds it if missing)."""
    found = peers("path", "kubectl", timeout=900)
    assert found.returncode == 0, f"tools/peers.sh path kubectl: {found.stderr}"
    binary = found.stdout.strip().splitlines()[-1]
    return subprocess.run([binary, "--kubeconfig", str(plane.run_dir / "kubeconfig"), *args], input=stdin,
                          capture_output=True, text=True, timeout=120, check=False)  # fmt: skip


def finished(admin: Kube, name: str = TASKRUN) -> dict[str, Any] | None:
    tr = admin.get(f"{TEKTON_API}/namespaces/{NS}/taskruns/{name}")
    conditions = tr.get("status", {}).get("conditions", [])
    return tr if conditions and conditions[0]["status"] != "Unknown" else None


def verify_object(done: Done, taskrun: dict[str, Any], *trust: str, pod: bool = False) -> tuple[int, str]:
    """``entrypoint verify --taskrun-object`` of ``taskrun`` (and the pod while it exists)."""
    path = done.directory / "taskrun.json"
    path.write_text(json.dumps(taskrun))
    extra = []
    if pod:
        (done.directory / "pod.json").write_text(json.dumps(done.pod))
        extra = ["--pod-object", str(done.directory / "pod.json")]
    p = entrypoint("verify", "--taskrun-object", str(path), *extra, *trust)
    return p.returncode, p.stdout + p.stderr


def test_the_pod_runs_in_podman_init_containers_then_steps(done: Done) -> None:
    run = done.run
    assert run.phase == "Succeeded", run.describe()
    assert list(run.statuses) == ["prepare", "place-scripts", "step-write", "step-read"]
    for status in run.statuses.values():
        terminated = status["state"]["terminated"]
        assert (terminated["exitCode"], terminated["reason"]) == (0, "Completed"), run.describe()
        assert terminated["startedAt"] <= terminated["finishedAt"], status
    # What the kubelet reported is in the API, as Tekton read it.
    reported = {s["name"]: s for s in done.pod["status"]["containerStatuses"]}
    assert done.pod["status"]["phase"] == "Succeeded"
    assert reported["step-write"]["state"]["terminated"]["message"].startswith("[")
    assert done.pod["spec"]["nodeName"] == NODE
    # The first step waited for Tekton's ready annotation, which the executor wrote into the
    # downward volume once Tekton had set it (after the pod was reported Running).
    assert done.pod["metadata"]["annotations"]["tekton.dev/ready"] == "READY"
    assert "running" in run.timings, run.timings
    ready = "metadata.annotations['tekton.dev/ready']"
    assert run.timings["running"] <= run.timings[ready] <= run.timings["ended"], run.timings


def test_tekton_takes_the_results_from_our_signed_messages(done: Done) -> None:
    tr = done.taskrun
    [cond] = tr["status"]["conditions"]
    assert (cond["status"], cond["reason"]) == ("True", "Succeeded"), f"{cond}\n{done.run.describe()}"
    results = {r["name"]: r["value"] for r in tr["status"]["results"]}
    assert results.pop("commit") == COMMIT
    assert results.pop("echo") == DIGEST  # the second step read the first one's step result
    # The signing entries Tekton keeps as results: compact (step 1), Tekton's format (step 2).
    assert set(results) >= TEKTON_ENTRIES, sorted(results)
    assert "SIGNATURE" in results, sorted(results)
    steps = {s["name"]: s for s in tr["status"]["steps"]}
    assert list(steps) == ["write", "read"]
    for step in steps.values():
        assert step["terminated"]["exitCode"] == 0, step
        assert step["container"] == f"step-{step['name']}"
    step_results = {r["name"]: r["value"] for r in steps["write"].get("results", [])}
    assert step_results == {"digest": DIGEST}, steps["write"]


def test_the_stored_taskrun_verifies_online_while_its_pod_exists(done: Done) -> None:
    code, out = verify_object(done, done.taskrun, *done.trust_online(), pod=True)
    assert code == 0, out
    assert out.startswith(f"VERIFIED taskrun {NS}/{TASKRUN}"), out


def test_after_the_pod_is_deleted_it_verifies_offline_and_a_tampered_copy_does_not(done: Done) -> None:
    jwks = done.directory / "jwks.json"
    saved = entrypoint("save-jwks", *done.trust_online(), "-o", str(jwks))
    assert saved.returncode == 0, saved.stdout + saved.stderr
    done.admin.delete_pod(NS, POD)
    stored = done.admin.get(f"{TEKTON_API}/namespaces/{NS}/taskruns/{TASKRUN}")

    # TokenReview no longer vouches for tokens bound to the deleted pod (once kube-apiserver's 10 s
    # cache of its last yes has expired); the snapshot still does.
    token = {r["name"]: r["value"] for r in stored["status"]["results"]}["SA_TOKEN"]
    [audience] = jwt_part(token, 1)["aud"]

    def refused() -> dict[str, Any] | None:
        status: dict[str, Any] = done.admin.token_review(token, [audience]).json()["status"]
        return None if status.get("authenticated") else status

    status = kubelet.wait("TokenReview to refuse the deleted pod's token", refused, seconds=CACHE_SECONDS)
    assert "invalidated" in status.get("error", ""), status
    code, out = verify_object(done, stored, *done.trust_online())
    assert code != 0, f"online verification passed after the pod was deleted:\n{out}"
    code, out = verify_object(done, stored, "--jwks", str(jwks))
    assert code == 0, out
    assert out.startswith(f"VERIFIED taskrun {NS}/{TASKRUN}"), out

    forged = copy.deepcopy(stored)
    [commit] = [r for r in forged["status"]["results"] if r["name"] == "commit"]
    commit["value"] = "evil00"
    code, out = verify_object(done, forged, "--jwks", str(jwks))
    assert code == 1, f"a TaskRun with a changed result verified:\n{out}"


def test_a_failing_step_fails_the_pod_and_the_taskrun(
    done: Done, control_plane: ControlPlane, tmp_path: Path
) -> None:
    name = "fails-1"
    done.admin.create(
        f"{TEKTON_API}/namespaces/{NS}/tasks",
        {"apiVersion": "tekton.dev/v1", "kind": "Task", "metadata": {"name": "fails"},
         "spec": {"steps": [{"name": "fail", "image": STEP_IMAGES["musl"],
                             "command": ["/bin/steptool"], "args": ["exit", "3"]}]}},
    )  # fmt: skip
    done.admin.create(
        f"{TEKTON_API}/namespaces/{NS}/taskruns",
        {"apiVersion": "tekton.dev/v1", "kind": "TaskRun", "metadata": {"name": name},
         "spec": {"serviceAccountName": SA, "taskRef": {"name": "fails"}}},
    )  # fmt: skip
    run = Podlet(control_plane, done.admin, NODE, tmp_path).run(NS, f"{name}-pod")
    assert run.phase == "Failed", run.describe()
    terminated = run.statuses["step-fail"]["state"]["terminated"]
    assert (terminated["exitCode"], terminated["reason"]) == (3, "Error"), run.describe()
    tr = kubelet.wait("the TaskRun to fail", lambda: finished(done.admin, name), seconds=FINISH_SECONDS)
    [cond] = tr["status"]["conditions"]
    assert (cond["status"], cond["reason"]) == ("False", "StepFailed"), cond
    assert cond["message"] == '"step-fail" exited with code 3: Error', cond
    [step] = tr["status"]["steps"]
    assert step["terminated"]["exitCode"] == 3, step


def test_podman_is_given_the_pods_commands_with_host_directories_and_host_networking(
    done: Done, tmp_path: Path
) -> None:
    given = translate(done.pod, tmp_path, "127.0.0.1", done.plane.port, image_env=lambda _: ())
    spec, original = given.manifest["spec"], done.pod["spec"]
    assert spec["hostNetwork"] is True
    # Every volume, emptyDir, projected or downwardAPI, is a host directory, plus one termination
    # file per container.
    assert {v["name"] for v in original["volumes"]} <= {v["name"] for v in spec["volumes"]}
    assert {kind for v in spec["volumes"] for kind in v if kind != "name"} == {"hostPath"}
    assert len(spec["volumes"]) == len(original["volumes"]) + len(given.all_containers)
    for key in ("initContainers", "containers"):
        assert [c["name"] for c in spec[key]] == [c["name"] for c in original[key]]
        for ours, theirs in zip(spec[key], original[key], strict=True):
            assert (ours["image"], ours.get("command"), ours.get("args")) == (
                theirs["image"], theirs.get("command"), theirs.get("args"),
            )  # fmt: skip
            assert ours["imagePullPolicy"] == "Never"
            env = {e["name"]: e["value"] for e in ours["env"]}
            assert env["KUBERNETES_SERVICE_HOST"] == "127.0.0.1"
            assert env["KUBERNETES_SERVICE_PORT"] == str(done.plane.port)
            mounts = {m["mountPath"]: m for m in ours["volumeMounts"]}
            assert theirs["terminationMessagePath"] in mounts
    read = {e["name"]: e["value"] for e in spec["containers"][1]["env"]}
    assert read["POD_UID"] == done.pod["metadata"]["uid"]
    assert read["POD_SERVICE_ACCOUNT"] == SA


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (lambda p: p["spec"]["containers"][0].update(livenessProbe={"exec": {"command": ["true"]}}),
         "containers[0] (step-write): fields ['livenessProbe']"),
        (lambda p: p["spec"]["volumes"].append({"name": "creds", "secret": {"secretName": "x"}}),
         "volume creds: ['secret'] volumes are not supported"),
        (lambda p: p["spec"].update(restartPolicy="OnFailure"), "restartPolicy 'OnFailure' (only Never)"),
        (lambda p: p["spec"]["containers"][1]["env"].append(
            {"name": "X", "valueFrom": {"secretKeyRef": {"name": "s", "key": "k"}}}),
         "containers[1] (step-read): env X valueFrom ['secretKeyRef']"),
    ],
)  # fmt: skip
def test_what_podman_cannot_be_given_fails_with_one_line(
    done: Done, tmp_path: Path, change: Any, expected: str
) -> None:
    pod = copy.deepcopy(done.pod)
    change(pod)
    with pytest.raises(Untranslatable) as failed:
        translate(pod, tmp_path, "127.0.0.1", done.plane.port, image_env=lambda _: ())
    assert str(failed.value) == f"pod {NS}/{POD}: podlet cannot run {expected}"
