"""The ``oidc-sa-token`` backend against a real kube-apiserver and etcd (tools/peers.sh; ``make e2e``
builds them from the Go module proxy, and this module is skipped, saying so, where they are not built).

What a kubelet, a scheduler and Tekton's controller would do is done here through the real API: a
namespace, the TaskRun's service account with docs/oidc-sa-token.md's RBAC, a node, the TaskRun's pod
bound to it (Pending for ever: there is no kubelet), the kube-api-access token the kubelet would
mount (a real TokenRequest bound to the pod), and a verifier's service account with
``system:auth-delegator``.  Then a step runs through the real ``entrypoint`` process, which asks the
real TokenRequest for its own bound token, and ``entrypoint save-jwks`` / ``entrypoint verify`` check
the termination message offline (the real JWKS) and online (the real TokenReview), as
tests/integration/test_k8s_sat_signing.py does against the double.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.realkube import KUBELET_TOKEN_SECONDS, ControlPlane, Kube
from tests.support.k8s_sat import (
    AUDIENCE_PREFIX,
    FORMATS,
    jwt_part,
    message_token,
    new_root,
    sa_flags,
    sh,
    verify,
    write_results,
)
from tests.support.k8s_sat import entrypoint as run_entrypoint
from tests.support.tekton import TektonRoot

NS, SA, NODE = "builds", "builder", "node-1"
VERIFIER_NS, VERIFIER_SA = "audit", "verifier"
RESULTS = {"commit": "abc123", "platforms": '["linux/amd64","linux/arm64"]'}
# The signer asks for the shortest lifetime TokenRequest grants (fetch.py's TOKEN_SECONDS).
SIGNING_TOKEN_SECONDS = 600
# kube-apiserver's token authentication success cache (10 s) plus slack for the pod informer.
CACHE_BOUND_SECONDS = 20
# Variables of the developer's shell that would change what a step or the verifier does.
_STEP_ENV_BLANKED = (
    "SIGNED_ENTRYPOINT_KUBE_API",
    "SIGNED_ENTRYPOINT_SIGNING_BACKEND",
    "SIGNED_ENTRYPOINT_SIGNATURE_FORMAT",
    "POD_NAME",
    "POD_UID",
    "POD_NAMESPACE",
    "POD_SERVICE_ACCOUNT",
)


@dataclass
class TaskRunPod:
    """A TaskRun's pod in the real cluster, and the files the kubelet would mount into it."""

    taskrun: str
    pod: dict[str, Any]
    directory: Path
    api_port: int

    @property
    def name(self) -> str:
        return str(self.pod["metadata"]["name"])

    @property
    def uid(self) -> str:
        return str(self.pod["metadata"]["uid"])

    @property
    def identity(self) -> str:
        return f"system:serviceaccount:{NS}:{SA} (pod {self.name}, uid {self.uid})"

    def step_env(self) -> dict[str, str]:
        """As in a pod: the in-cluster service address and the mounted files (the backend finds the
        pod in the mounted token's claims: no downward-API variables)."""
        env = dict.fromkeys(_STEP_ENV_BLANKED, "")
        env.update(
            {
                "KUBERNETES_SERVICE_HOST": "127.0.0.1",
                "KUBERNETES_SERVICE_PORT": str(self.api_port),
                "SIGNED_ENTRYPOINT_KUBE_TOKEN_FILE": str(self.directory / "token"),
                "SIGNED_ENTRYPOINT_KUBE_CA_FILE": str(self.directory / "ca.crt"),
                "SIGNED_ENTRYPOINT_KUBE_NAMESPACE_FILE": str(self.directory / "namespace"),
            }
        )
        return env


@dataclass
class Cluster:
    """The real control plane with the objects of one TaskRun namespace and a verifier."""

    plane: ControlPlane
    admin: Kube
    directory: Path
    service_account: dict[str, Any]
    node: dict[str, Any]
    verifier_token_file: Path

    def taskrun_pod(self, taskrun: str) -> TaskRunPod:
        """The TaskRun's pod, scheduled to the node, with the kubelet's mounted files."""
        pod = self.admin.pod(NS, f"{taskrun}-pod", SA, node=NODE)
        directory = self.directory / taskrun
        directory.mkdir()
        # What the kubelet projects: a token for the API audiences bound to the pod.
        token = self.admin.token(NS, SA, seconds=KUBELET_TOKEN_SECONDS, pod=pod)
        (directory / "token").write_text(token)
        (directory / "ca.crt").write_bytes(self.plane.ca_file.read_bytes())
        (directory / "namespace").write_text(NS)
        return TaskRunPod(taskrun, pod, directory, self.plane.port)

    def kube_args(self) -> list[str]:
        """``--kube-api`` and the verifier's credentials, for ``verify`` and ``save-jwks``."""
        return [
            "--kube-api",
            self.plane.url,
            "--kube-token-file",
            str(self.verifier_token_file),
            "--kube-ca-file",
            str(self.plane.ca_file),
        ]


@pytest.fixture(scope="module")
def cluster(control_plane: ControlPlane, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    admin = control_plane.client()
    directory = tmp_path_factory.mktemp("cluster")
    try:
        admin.namespace(NS)
        sa = admin.service_account(NS, SA)
        admin.allow_own_tokens(NS, SA)
        node = admin.node(NODE)
        admin.namespace(VERIFIER_NS)
        admin.service_account(VERIFIER_NS, VERIFIER_SA)
        admin.bind_cluster_role("system:auth-delegator", VERIFIER_NS, VERIFIER_SA)
        verifier_token = directory / "verifier-token"
        verifier_token.write_text(admin.token(VERIFIER_NS, VERIFIER_SA))
        yield Cluster(control_plane, admin, directory, sa, node, verifier_token)
    finally:
        admin.close()


@pytest.fixture
def root(tmp_path: Path) -> TektonRoot:
    return new_root(tmp_path / "tekton")


def sign(root: TektonRoot, pod: TaskRunPod, fmt: str, budget: tuple[str, ...] = ()) -> None:
    """Step 0 of ``pod`` writes RESULTS, signed by the real entrypoint process."""
    names = ",".join(RESULTS)
    flags = sa_flags(fmt, *(budget or ("-signing_timeout", "20s", "-signing_retry_interval", "500ms")))
    p = root.run(
        [*root.step_args(0), *flags, "-results", names, *sh(write_results(root, RESULTS))], env=pod.step_env()
    )
    assert p.returncode == 0, p.stdout + p.stderr
    assert p.stderr == ""


def save_jwks(c: Cluster, path: Path) -> dict[str, Any]:
    p = run_entrypoint("save-jwks", *c.kube_args(), "-o", str(path))
    assert p.returncode == 0, p.stdout + p.stderr
    doc: dict[str, Any] = json.loads(path.read_text())
    return doc


def online_args(c: Cluster, pod: TaskRunPod) -> list[str]:
    return [*c.kube_args(), "--pod-name", pod.name, "--pod-uid", pod.uid, "--service-account", SA]


def assert_verified(verdict: Mapping[str, Any], fmt: str, pod: TaskRunPod) -> None:
    assert verdict["verified"], verdict["message"]
    assert verdict["reason"] == "Verified"
    assert verdict["format"] == fmt
    assert verdict["identity"] == pod.identity
    shown = {r["key"]: r["value"] for r in verdict["results"] if r["type"] == 1}
    assert shown == RESULTS


# -- a signed step, verified offline and online --------------------------------------------------------


@pytest.mark.parametrize("fmt", FORMATS)
def test_a_step_signed_with_a_real_bound_token_verifies(
    cluster: Cluster, root: TektonRoot, tmp_path: Path, fmt: str
) -> None:
    pod = cluster.taskrun_pod(f"build-{fmt}")
    sign(root, pod, fmt)

    # The token the real TokenRequest issued: bound to this pod on its node, naming the step's key.
    token = message_token(root.termination)
    header, claims = jwt_part(token, 0), jwt_part(token, 1)
    [audience] = claims["aud"]
    assert audience.startswith(AUDIENCE_PREFIX)
    assert claims["iss"] == cluster.plane.issuer
    assert claims["sub"] == f"system:serviceaccount:{NS}:{SA}"
    assert claims["kubernetes.io"] == {
        "namespace": NS,
        "node": {"name": NODE, "uid": cluster.node["metadata"]["uid"]},
        "pod": {"name": pod.name, "uid": pod.uid},
        "serviceaccount": {"name": SA, "uid": cluster.service_account["metadata"]["uid"]},
    }
    assert claims["exp"] - claims["iat"] == SIGNING_TOKEN_SECONDS
    assert claims["nbf"] == claims["iat"]
    assert header["alg"] == "RS256"

    snapshot = save_jwks(cluster, tmp_path / "jwks.json")
    assert snapshot["issuer"] == cluster.plane.issuer
    assert snapshot["jwks"] == cluster.admin.get("/openid/v1/jwks")
    assert header["kid"] in {k["kid"] for k in snapshot["jwks"]["keys"]}

    offline = verify(root.termination, "--jwks", str(tmp_path / "jwks.json"), taskrun=f"{NS}/{pod.taskrun}")
    online = verify(root.termination, *online_args(cluster, pod), taskrun=f"{NS}/{pod.taskrun}")
    for verdict in (offline, online):
        assert_verified(verdict, fmt, pod)

    tampered = tmp_path / "tampered"
    tampered.write_text(root.termination.read_text().replace("abc123", "evil99"))
    for args in (["--jwks", str(tmp_path / "jwks.json")], online_args(cluster, pod)):
        rejected = verify(tampered, *args, taskrun=f"{NS}/{pod.taskrun}")
        assert not rejected["verified"]
        assert rejected["reason"] != "Verified"


def test_after_the_pod_is_deleted_only_the_offline_check_verifies(
    cluster: Cluster, root: TektonRoot, tmp_path: Path
) -> None:
    pod = cluster.taskrun_pod("build-deleted")
    sign(root, pod, "compact")
    save_jwks(cluster, tmp_path / "jwks.json")
    assert verify(root.termination, *online_args(cluster, pod), taskrun=f"{NS}/{pod.taskrun}")["verified"]

    token = message_token(root.termination)
    [audience] = jwt_part(token, 1)["aud"]
    cluster.admin.delete_pod(NS, pod.name)
    # The real authenticator refuses a token whose bound pod is gone, but not at once: kube-apiserver
    # caches a successful token authentication for 10 s (and its pod informer lags the deletion),
    # so a TokenReview just before the deletion is answered yes for a few seconds after it.
    deleted = time.monotonic()
    while True:
        review = cluster.admin.token_review(token, [audience])
        assert review.status_code == 201, review.text
        status = review.json()["status"]
        if status.get("authenticated") is not True:
            break
        assert time.monotonic() - deleted < CACHE_BOUND_SECONDS, "TokenReview still says yes"
        time.sleep(0.25)
    assert status["error"] == "[invalid bearer token, service account token has been invalidated]", status
    online = verify(root.termination, *online_args(cluster, pod), taskrun=f"{NS}/{pod.taskrun}")
    assert not online["verified"]
    assert online["reason"] == "TokenUntrusted", online
    offline = verify(root.termination, "--jwks", str(tmp_path / "jwks.json"), taskrun=f"{NS}/{pod.taskrun}")
    assert_verified(offline, "compact", pod)


# -- what the real server requires of the step's environment --------------------------------------------


def test_without_the_rbac_grant_the_step_fails_with_the_servers_reason(
    cluster: Cluster, root: TektonRoot
) -> None:
    other = "no-grant"
    cluster.admin.service_account(NS, other)
    pod_obj = cluster.admin.pod(NS, "build-no-grant-pod", other, node=NODE)
    directory = cluster.directory / "no-grant"
    directory.mkdir()
    (directory / "token").write_text(
        cluster.admin.token(NS, other, seconds=KUBELET_TOKEN_SECONDS, pod=pod_obj)
    )
    (directory / "ca.crt").write_bytes(cluster.plane.ca_file.read_bytes())
    (directory / "namespace").write_text(NS)
    pod = TaskRunPod("build-no-grant", pod_obj, directory, cluster.plane.port)
    names = ",".join(RESULTS)
    flags = sa_flags("tekton", "-signing_timeout", "2s", "-signing_retry_interval", "200ms")
    p = root.run(
        [*root.step_args(0), *flags, "-results", names, *sh(write_results(root, RESULTS))], env=pod.step_env()
    )
    assert p.returncode == 1
    assert (
        f'serviceaccounts "{other}" is forbidden: User "system:serviceaccount:{NS}:{other}" cannot create'
        f' resource "serviceaccounts/token" in API group "" in the namespace "{NS}"'
    ) in p.stderr, p.stderr
    assert "eyJ" not in p.stderr + p.stdout  # no token in the error


def discovery_paths() -> list[str]:
    return ["/.well-known/openid-configuration", "/openid/v1/jwks"]


@pytest.mark.parametrize("path", discovery_paths())
def test_oidc_discovery_needs_a_credential(cluster: Cluster, path: str) -> None:
    """The default ``system:service-account-issuer-discovery`` binding is to service accounts, not to
    anonymous callers: ``save-jwks`` needs a token (the double serves both paths to anyone)."""
    anonymous = cluster.plane.client(token="")
    try:
        r = anonymous.request("GET", path)
    finally:
        anonymous.close()
    assert r.status_code == 403
    assert r.json()["message"] == f'forbidden: User "system:anonymous" cannot get path "{path}"'
    verifier = cluster.plane.client(token=cluster.verifier_token_file.read_text())
    try:
        assert verifier.request("GET", path).status_code == 200
    finally:
        verifier.close()


def test_the_discovery_documents(cluster: Cluster) -> None:
    config = cluster.admin.get("/.well-known/openid-configuration")
    assert config == {
        "issuer": cluster.plane.issuer,
        "jwks_uri": cluster.plane.url + "/openid/v1/jwks",
        "response_types_supported": ["id_token"],
        "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": ["RS256"],
    }
    [key] = cluster.admin.get("/openid/v1/jwks")["keys"]
    assert set(key) == {"use", "kty", "kid", "alg", "n", "e"}
    assert (key["use"], key["kty"], key["alg"]) == ("sig", "RSA", "RS256")


def test_the_kubelets_token_lives_a_year(cluster: Cluster) -> None:
    """A TokenRequest for exactly 3607 s (the kubelet's) gets a year-long ``exp`` and a ``warnafter``
    claim (--service-account-extend-token-expiration, on by default), while ``expirationTimestamp``
    says an hour: what every step's mounted token looks like in a real cluster."""
    pod = cluster.taskrun_pod("build-kubelet-token")
    claims = jwt_part((pod.directory / "token").read_text(), 1)
    assert claims["aud"] == [cluster.plane.issuer]
    assert claims["exp"] - claims["iat"] == 365 * 24 * 3600
    assert claims["kubernetes.io"]["warnafter"] == claims["iat"] + KUBELET_TOKEN_SECONDS
