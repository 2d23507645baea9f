"""docs/oidc-sa-token.md's ValidatingAdmissionPolicy, as the document prints it, enforced by the
real kube-apiserver: a pod may ask for a ``signed-entrypoint:`` token bound to itself, never to
another pod of its service account; other audiences are left alone; and the real entrypoint still
signs under the policy."""

from __future__ import annotations

import re
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml  # type: ignore[import-untyped]

from tests.e2e import kubelet
from tests.e2e.realkube import ControlPlane, Kube, in_pod_env, mount_service_account
from tests.support.k8s_sat import new_root, sa_flags, sh, verify, write_results
from tests.support.paths import REPO
from tests.support.tekton import TektonRoot

NS, SA, NODE = "admission", "builder", "node-1"
AUDIENCE = "signed-entrypoint:spki-sha256:" + "0" * 64
MESSAGE = "signed-entrypoint tokens must be bound to the pod that requests them"
ADMISSION = "/apis/admissionregistration.k8s.io/v1"


def documented_policy() -> list[dict[str, Any]]:
    """The policy and its binding, exactly as docs/oidc-sa-token.md shows them."""
    doc = (REPO / "docs" / "oidc-sa-token.md").read_text()
    blocks = re.findall(r"```yaml\n(.*?)```", doc, flags=re.S)
    [block] = [b for b in blocks if "ValidatingAdmissionPolicy" in b]
    return [d for d in yaml.safe_load_all(textwrap.dedent(block)) if d]


@pytest.fixture(scope="module")
def cluster(control_plane: ControlPlane) -> Iterator[tuple[Kube, dict[str, Any], dict[str, Any]]]:
    admin = control_plane.client()
    try:
        admin.namespace(NS)
        admin.service_account(NS, SA)
        admin.allow_own_tokens(NS, SA)
        admin.node(NODE)
        a = admin.pod(NS, "a-pod", SA, node=NODE)
        b = admin.pod(NS, "b-pod", SA, node=NODE)
        policy, binding = documented_policy()
        assert (policy["kind"], binding["kind"]) == (
            "ValidatingAdmissionPolicy",
            "ValidatingAdmissionPolicyBinding",
        )
        admin.create(f"{ADMISSION}/validatingadmissionpolicies", policy)
        admin.create(f"{ADMISSION}/validatingadmissionpolicybindings", binding)
        try:
            yield admin, a, b
        finally:
            # The control plane is the session's: other modules ask for signed-entrypoint: tokens
            # the policy would refuse (a stale policy denied tests/e2e/test_double_vs_real.py's).
            for collection, obj in (("validatingadmissionpolicybindings", binding),
                                    ("validatingadmissionpolicies", policy)):  # fmt: skip
                r = admin.request("DELETE", f"{ADMISSION}/{collection}/{obj['metadata']['name']}")
                assert r.status_code == 200, r.text
            kubelet.wait("the policy gone", lambda: _admits_any(control_plane, admin, b))
    finally:
        admin.close()


def _admits_any(plane: ControlPlane, admin: Kube, pod: dict[str, Any]) -> bool | None:
    """Whether a signed-entrypoint: token bound to nothing is issued again (the policy unloaded)."""
    client = plane.client(admin.token(NS, SA, seconds=3607, pod=pod))
    try:
        return True if client.token_request(NS, SA, audiences=[AUDIENCE]).status_code == 201 else None
    finally:
        client.close()


def as_pod(plane: ControlPlane, admin: Kube, pod: dict[str, Any]) -> Kube:
    """A client holding the token the kubelet would mount into ``pod``."""
    return plane.client(admin.token(NS, SA, seconds=3607, pod=pod))


def test_a_pod_gets_tokens_bound_to_itself_only(
    control_plane: ControlPlane, cluster: tuple[Kube, dict[str, Any], dict[str, Any]]
) -> None:
    admin, a, b = cluster
    client = as_pod(control_plane, admin, a)
    try:
        # The policy takes effect once the API server's admission informers have it.
        def denied() -> Any:
            r = client.token_request(NS, SA, audiences=[AUDIENCE], pod=b)
            return r if r.status_code != 201 else None

        r = kubelet.wait("the policy to deny a token bound to another pod", denied, seconds=30)
        # 422 Invalid, not 403: a validation without a ``reason`` is Invalid (the double had 403).
        body = r.json()
        assert (r.status_code, body["reason"]) == (422, "Invalid"), r.text
        assert body["message"] == (
            f'serviceaccounts "{SA}" is forbidden: ValidatingAdmissionPolicy '
            f"'signed-entrypoint-own-pod-tokens' with binding 'signed-entrypoint-own-pod-tokens' denied "
            f"request: {MESSAGE}"
        )
        assert client.token_request(NS, SA, audiences=[AUDIENCE], pod=a).status_code == 201
        # No bound object at all: denied too (the signer always binds).
        unbound = client.token_request(NS, SA, audiences=[AUDIENCE])
        assert unbound.status_code == 422 and MESSAGE in unbound.text
        # Other audiences are none of the policy's business.
        assert client.token_request(NS, SA, audiences=["vault"], pod=b).status_code == 201
    finally:
        client.close()


def test_the_entrypoint_signs_under_the_policy(
    control_plane: ControlPlane, cluster: tuple[Kube, dict[str, Any], dict[str, Any]], tmp_path: Path
) -> None:
    admin, a, _ = cluster
    kubelet.wait(
        "the policy in force",
        lambda: (
            True
            if as_pod(control_plane, admin, a).token_request(NS, SA, audiences=[AUDIENCE]).status_code == 422
            else None
        ),
    )
    env = in_pod_env(
        mount_service_account(admin, a, tmp_path / "sa", control_plane.ca_file), control_plane.port
    )
    root: TektonRoot = new_root(tmp_path / "tekton")
    args = [*root.step_args(0), *sa_flags("compact", "-signing_timeout", "20s"), "-results", "commit",
            *sh(write_results(root, {"commit": "abc123"}))]  # fmt: skip
    p = root.run(args, env=env)
    assert p.returncode == 0, p.stdout + p.stderr
    message = tmp_path / "message"
    message.write_text(root.termination.read_text())
    verdict = verify(message, "--kube-api", control_plane.url, "--kube-token-file",
                     str(control_plane.admin_token_file), "--kube-ca-file", str(control_plane.ca_file),
                     "--pod-name", "a-pod", "--pod-uid", a["metadata"]["uid"], "--service-account", SA,
                     taskrun=f"{NS}/a")  # fmt: skip
    assert verdict["verified"], verdict["message"]
