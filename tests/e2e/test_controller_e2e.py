"""The companion controller in a real cluster: deploy/controller.yaml applied to the real API server
(its RBAC is then the real authorizer's), ``entrypoint controller`` running under that
ServiceAccount's token beside Tekton's real controller, and TaskRuns whose steps signed through the
real entrypoint (the kubelet's part played by tests/e2e/kubelet.py).

Both backends (SPIRE through a Workload API double, oidc-sa-token through the real API server),
both formats. Each completed TaskRun gets the ``SignedResultsVerified`` condition Tekton defines,
True for the genuine one and False for one whose step messages were tampered with before Tekton
read them; the verdict annotation, the audit line and the metrics agree; and after the pod is gone
the TaskRun verifies offline (oidc-sa-token: with the JWKS the controller kept in its ConfigMap).
"""

from __future__ import annotations

import contextlib
import json
import re
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from entrypoint.termination import parse_message
from entrypoint.testing.ca import TestCA
from entrypoint.testing.workload_api import WorkloadAPIServer
from tests.e2e import kubelet
from tests.e2e.conftest import Tekton
from tests.e2e.realkube import ControlPlane, Kube
from tests.support.controller import CONTROLLER_NS, CONTROLLER_SA, ControllerProcess, wait_for
from tests.support.k8s_sat import entrypoint, sa_flags, sh, write_results
from tests.support.paths import REPO
from tests.support.pki import TD, spiffe_id
from tests.support.tekton import TektonRoot

NS, SA, NODE = "verified", "builder", "node-1"
JWKS_CONFIGMAP = "signed-entrypoint-jwks"
MANIFEST = REPO / "deploy" / "controller.yaml"
TASK = "two-signed-steps"
CONDITION = "SignedResultsVerified"


def task(fmt: str) -> dict[str, Any]:
    return {
        "apiVersion": "tekton.dev/v1",
        "kind": "Task",
        "metadata": {"name": f"{TASK}-{fmt}"},
        "spec": {
            "results": [{"name": "commit"}],
            "steps": [
                {"name": "write", "image": "localhost/signed-entrypoint-step-debian:latest",
                 "script": "#!/bin/sh\nprintf abc123 > $(results.commit.path)\n"},
                {"name": "read", "image": "localhost/signed-entrypoint-step-musl:latest",
                 "command": ["cat"], "args": ["$(results.commit.path)"]},
            ],
        },
    }  # fmt: skip


@pytest.fixture(scope="module")
def admin(control_plane: ControlPlane, tekton: Tekton) -> Iterator[Kube]:
    client = control_plane.client()
    try:
        client.namespace(NS)
        client.service_account(NS, SA)
        client.allow_own_tokens(NS, SA)
        client.node(NODE)
        for fmt in ("compact", "tekton"):
            client.create(f"/apis/tekton.dev/v1/namespaces/{NS}/tasks", task(fmt))
        yield client
    finally:
        client.close()


@pytest.fixture(scope="module")
def spire_ca() -> TestCA:
    """The SPIRE backend's trust domain (a Workload API double per TaskRun: the real SPIRE server
    and agent are not built here)."""
    return TestCA(TD)


@pytest.fixture(scope="module")
def controller(
    control_plane: ControlPlane, admin: Kube, spire_ca: TestCA, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ControllerProcess]:
    directory = tmp_path_factory.mktemp("controller")
    bundle = directory / "bundle.pem"
    bundle.write_bytes(spire_ca.bundle_pem())
    applied = subprocess.run(
        [sys.executable, str(REPO / "tools" / "kube_apply.py"), "--server", control_plane.url, "--ca-file",
         str(control_plane.ca_file), "--token-file", str(control_plane.admin_token_file), str(MANIFEST)],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert applied.returncode == 0, applied.stdout + applied.stderr
    # The Deployment's pods never run (no kubelet): the same command runs here, with its token.
    token = directory / "token"
    token.write_text(admin.token(CONTROLLER_NS, CONTROLLER_SA))
    controller = ControllerProcess(
        directory,
        ["--kube-api", control_plane.url, "--kube-token-file", str(token), "--kube-ca-file",
         str(control_plane.ca_file), "--lease-namespace", CONTROLLER_NS, "--jwks-configmap",
         f"{CONTROLLER_NS}/{JWKS_CONFIGMAP}", "--retry-period", "0.5", "--trust-domain", TD,
         "--trust-bundle", str(bundle)],
    )  # fmt: skip
    try:
        wait_for("the controller ready", lambda: _ready(controller), seconds=60)
        yield controller
    finally:
        assert controller.stop() == 0, controller.log()
        print(controller.log()[-4000:])


def _ready(c: ControllerProcess) -> bool:
    assert c.process.poll() is None, c.log()
    return c.ready()


def run_taskrun(
    plane: ControlPlane,
    admin: Kube,
    name: str,
    fmt: str,
    directory: Path,
    *,
    backend: str = "oidc-sa-token",
    spire_ca: TestCA | None = None,
    tamper: bool = False,
) -> dict[str, Any]:
    """A TaskRun of the two-step Task, both steps signing with ``backend`` in ``fmt``; the kubelet
    reports their messages (every step's ``commit`` rewritten when ``tamper``)."""
    admin.create(
        f"/apis/tekton.dev/v1/namespaces/{NS}/taskruns",
        {"apiVersion": "tekton.dev/v1", "kind": "TaskRun", "metadata": {"name": name},
         "spec": {"serviceAccountName": SA, "taskRef": {"name": f"{TASK}-{fmt}"}}},
    )  # fmt: skip
    pod = kubelet.bind(admin, NS, f"{name}-pod", NODE)
    with contextlib.ExitStack() as stack:
        if backend == "spire":
            assert spire_ca is not None
            sock = stack.enter_context(tempfile.TemporaryDirectory(prefix="wl-", dir="/tmp"))
            agent = stack.enter_context(
                WorkloadAPIServer(f"{sock}/agent.sock", spire_ca, spiffe_id(name, NS))
            )
            signing = ["-signing_backend=spire", f"-signature_format={fmt}",
                       "-spire_socket_path", agent.address, "-signing_timeout", "20s"]  # fmt: skip
        else:
            signing = sa_flags(fmt, "-signing_timeout", "20s")

        def write(root: Path) -> list[str]:
            return [
                *signing,
                "-results",
                "commit",
                *sh(write_results(TektonRoot(root), {"commit": "abc123"})),
            ]

        def read(root: Path) -> list[str]:
            return [
                *signing,
                "-results",
                "commit",
                "-entrypoint",
                "cat",
                "--",
                str(root / "results" / "commit"),
            ]

        messages, started, finished = kubelet.run_steps(plane, admin, pod, directory, [write, read])
    if tamper:
        # What a compromised step container could do to its own message: change a signed value.
        for i, message in enumerate(messages):
            entries = json.loads(message)
            for e in entries:
                if e["key"] == "commit":
                    e["value"] = "evil00"
            messages[i] = json.dumps(entries)
        assert parse_message(messages[0])
    kubelet.report(admin, pod, messages, started, finished)
    return pod


def taskrun_path(name: str) -> str:
    return f"/apis/tekton.dev/v1/namespaces/{NS}/taskruns/{name}"


def condition(tr: dict[str, Any], kind: str) -> dict[str, Any] | None:
    return next((c for c in tr.get("status", {}).get("conditions", []) if c["type"] == kind), None)


def verdict_of(admin: Kube, name: str) -> tuple[dict[str, Any], dict[str, Any], float]:
    """The TaskRun once it carries the verdict, the condition, and the seconds from Tekton's
    completion (as this test saw it) to the verdict."""

    def done() -> float | None:
        tr = admin.get(taskrun_path(name))
        succeeded = condition(tr, "Succeeded")
        return time.monotonic() if succeeded and succeeded["status"] != "Unknown" else None

    completed = kubelet.wait(f"{name} to finish", done)

    def verdict() -> tuple[dict[str, Any], dict[str, Any]] | None:
        tr = admin.get(taskrun_path(name))
        found = condition(tr, CONDITION)
        return (tr, found) if found is not None else None

    tr, found = kubelet.wait(f"{name}'s {CONDITION}", verdict, seconds=30)
    return tr, found, time.monotonic() - completed


BACKENDS = ["oidc-sa-token", "spire"]
FORMATS = ["compact", "tekton"]


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("fmt", FORMATS)
def test_a_genuine_taskrun_is_recorded_verified(
    control_plane: ControlPlane,
    admin: Kube,
    controller: ControllerProcess,
    spire_ca: TestCA,
    tmp_path: Path,
    fmt: str,
    backend: str,
) -> None:
    name = f"genuine-{backend}-{fmt}"
    pod = run_taskrun(control_plane, admin, name, fmt, tmp_path, backend=backend, spire_ca=spire_ca)
    tr, found, latency = verdict_of(admin, name)
    print(f"{name}: {CONDITION} {found['status']} {latency:.2f} s after Tekton marked it done")
    assert (found["status"], found["reason"]) == ("True", "TaskRunResultsVerified"), found
    assert (condition(tr, "Succeeded") or {}).get("status") == "True"
    annotations = tr["metadata"]["annotations"]
    assert annotations["signed-entrypoint.dev/verified-pod"] == f"{name}-pod"
    assert annotations["signed-entrypoint.dev/verdict"].startswith("Verified Verified sha256:")
    [line] = [a for a in controller.audit_lines() if a["taskRun"] == f"{NS}/{name}"]
    assert (line["outcome"], line["uid"]) == ("Verified", tr["metadata"]["uid"])
    uid = pod["metadata"]["uid"]
    expected = (
        f"system:serviceaccount:{NS}:{SA} (pod {name}-pod, uid {uid})"
        if backend == "oidc-sa-token"
        else spiffe_id(name, NS)
    )
    assert line["identity"] == [expected]

    # The pod gone, the TaskRun as stored (and, for tokens, the keys the controller kept) verify offline.
    admin.delete_pod(NS, f"{name}-pod")
    (tmp_path / "tr.json").write_text(json.dumps(admin.get(taskrun_path(name))))
    if backend == "oidc-sa-token":
        cm = admin.get(f"/api/v1/namespaces/{CONTROLLER_NS}/configmaps/{JWKS_CONFIGMAP}")
        (tmp_path / "jwks.json").write_text(cm["data"]["jwks.json"])
        trust = ["--jwks", str(tmp_path / "jwks.json")]
    else:
        (tmp_path / "bundle.pem").write_bytes(spire_ca.bundle_pem())
        trust = ["--trust-domain", TD, "--trust-bundle", str(tmp_path / "bundle.pem")]
    p = entrypoint("verify", "--taskrun-object", str(tmp_path / "tr.json"), *trust)
    assert p.returncode == 0, p.stdout + p.stderr
    assert p.stdout.startswith(f"VERIFIED taskrun {NS}/{name}")


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("fmt", FORMATS)
def test_a_tampered_message_is_recorded_failed(
    control_plane: ControlPlane,
    admin: Kube,
    controller: ControllerProcess,
    spire_ca: TestCA,
    tmp_path: Path,
    fmt: str,
    backend: str,
) -> None:
    name = f"tampered-{backend}-{fmt}"
    run_taskrun(control_plane, admin, name, fmt, tmp_path, backend=backend, spire_ca=spire_ca, tamper=True)
    tr, found, _ = verdict_of(admin, name)
    # Tekton took the forged value: only the verdict tells.
    results = {r["name"]: r["value"] for r in tr["status"]["results"]}
    assert results["commit"] == "evil00"
    assert (found["status"], found["reason"]) == ("False", "TaskRunResultsVerificationFailed"), found
    assert found["message"].startswith("Failed: "), found["message"]
    assert tr["metadata"]["annotations"]["signed-entrypoint.dev/verdict"].startswith("Failed ")
    # audit mode: Tekton's own verdict is left alone.
    assert (condition(tr, "Succeeded") or {}).get("status") == "True"


def test_the_rbac_of_deploy_is_enough_and_the_metrics_count(
    admin: Kube, controller: ControllerProcess
) -> None:
    err = controller.log()
    assert "forbidden" not in err.lower(), err
    lease = admin.get(f"/apis/coordination.k8s.io/v1/namespaces/{CONTROLLER_NS}/leases/{CONTROLLER_SA}")
    assert lease["spec"]["holderIdentity"]
    metrics = controller.get("/metrics").text
    assert "signed_entrypoint_leader 1.0" in metrics
    counted = (
        r'signed_entrypoint_taskrun_verifications_total\{[^}]*namespace="verified"[^}]*outcome="Verified"'
    )
    verified = re.findall(counted + r"[^}]*\} (\S+)", metrics)
    assert verified and sum(float(v) for v in verified) >= 1, metrics
