"""The oidc-sa-token backend against a real kube-apiserver (``make e2e``): a pod-bound token from
the real TokenRequest signs a step's results in both formats, and the message verifies offline
(a saved JWKS) and online (the real TokenReview); a tampered message does not."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.e2e.conftest import ControlPlane

NS, SA, POD = "builds", "builder", "build-1-pod"


def entrypoint(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "entrypoint", *args],
        capture_output=True, text=True, timeout=120, check=False, env={**os.environ, **(env or {})},
    )  # fmt: skip


@pytest.fixture(scope="module")
def pod_uid(control_plane: ControlPlane) -> str:
    control_plane.request("POST", "/api/v1/namespaces", {"metadata": {"name": NS}})
    control_plane.request("POST", f"/api/v1/namespaces/{NS}/serviceaccounts", {"metadata": {"name": SA}})
    pod = control_plane.request(
        "POST",
        f"/api/v1/namespaces/{NS}/pods",
        {
            "metadata": {"name": POD},
            "spec": {"serviceAccountName": SA, "containers": [{"name": "c", "image": "x"}]},
        },
    )
    return str(pod["metadata"]["uid"])


@pytest.mark.parametrize("fmt", ["tekton", "compact"])
def test_a_step_signed_with_a_real_bound_token_verifies(
    control_plane: ControlPlane, pod_uid: str, tmp_path: Path, fmt: str
) -> None:
    root = tmp_path / "tekton"
    (root / "results").mkdir(parents=True)
    (tmp_path / "namespace").write_text(NS)
    env = {
        "SIGNED_ENTRYPOINT_ROOT": str(root),
        "SIGNED_ENTRYPOINT_KUBE_API": control_plane.url,
        # The admin token stands in for the pod's own token: there is no kubelet to mount one.
        "SIGNED_ENTRYPOINT_KUBE_TOKEN_FILE": str(control_plane.token_file),
        "SIGNED_ENTRYPOINT_KUBE_CA_FILE": str(control_plane.ca_file),
        "SIGNED_ENTRYPOINT_KUBE_NAMESPACE_FILE": str(tmp_path / "namespace"),
        "POD_NAME": POD, "POD_UID": pod_uid, "POD_NAMESPACE": NS, "POD_SERVICE_ACCOUNT": SA,
    }  # fmt: skip
    termination = root / "termination"
    p = entrypoint(
        "-signing_backend", "oidc-sa-token", "-signature_format", fmt, "-post_file", str(root / "out"),
        "-termination_path", str(termination), "-step_metadata_dir", str(root / "status"),
        "-results", "commit", "-entrypoint", "/bin/sh", "--", "-c", f"printf abc > {root}/results/commit",
        env=env,
    )  # fmt: skip
    assert p.returncode == 0, p.stderr
    jwks = tmp_path / "jwks.json"
    saved = entrypoint("save-jwks", "--kube-api", control_plane.url, "--kube-token-file",
                       str(control_plane.token_file), "--kube-ca-file", str(control_plane.ca_file),
                       "--output", str(jwks))  # fmt: skip
    assert saved.returncode == 0, saved.stderr
    offline = entrypoint("verify", "--taskrun", f"{NS}/build-1", "--jwks", str(jwks), "--pod-uid", pod_uid,
                         str(termination))  # fmt: skip
    assert offline.returncode == 0, offline.stdout + offline.stderr
    assert offline.stdout.startswith(f"VERIFIED {fmt} system:serviceaccount:{NS}:{SA}")
    online = entrypoint("verify", "--taskrun", f"{NS}/build-1", "--kube-api", control_plane.url,
                        "--kube-token-file", str(control_plane.token_file), "--kube-ca-file",
                        str(control_plane.ca_file), str(termination))  # fmt: skip
    assert online.returncode == 0, online.stdout + online.stderr
    tampered = tmp_path / "tampered"
    tampered.write_text(termination.read_text().replace('"abc"', '"evil"'))
    rejected = entrypoint("verify", "--taskrun", f"{NS}/build-1", "--jwks", str(jwks), str(tampered))
    assert rejected.returncode == 1 and rejected.stdout.startswith("NOT VERIFIED"), rejected.stdout
