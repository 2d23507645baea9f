"""The real control plane of tools/peers.sh (etcd + kube-apiserver) as the end-to-end tests use it:
where it is, and a small admin client that makes the objects a kubelet and a controller would.

Nothing here imitates the API server: every answer is kube-apiserver's own.
"""

from __future__ import annotations

import os
import shlex
import socket
import ssl
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from tests.support.paths import REPO

PEERS = REPO / "tools" / "peers.sh"
CONTROL_PLANE = ("etcd", "kube-apiserver")
AUTH_API = "authentication.k8s.io/v1"
# What the kubelet asks for when it projects the kube-api-access token (the API server then
# extends its `exp` to a year and adds `warnafter`, --service-account-extend-token-expiration).
KUBELET_TOKEN_SECONDS = 3607


def peers(
    *args: str, env: Mapping[str, str] | None = None, timeout: float = 300
) -> subprocess.CompletedProcess[str]:
    """``tools/peers.sh ARGS`` (never builds unless asked to)."""
    return subprocess.run(
        ["bash", str(PEERS), *args],
        env={**os.environ, **(env or {})},
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def not_built(*names: str) -> str:
    """Why these peers (by default the control plane) cannot start here ("" when they are built)."""
    p = peers("built", *(names or CONTROL_PLANE))
    return "" if p.returncode == 0 else (p.stdout + p.stderr).strip()


def free_ports(count: int) -> list[int]:
    """``count`` distinct ports free on 127.0.0.1 now (the control plane binds them a moment later)."""
    sockets = []
    try:
        for _ in range(count):
            s = socket.socket()
            s.bind(("127.0.0.1", 0))
            sockets.append(s)
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


def read_env(text: str) -> dict[str, str]:
    """``tools/peers.sh env``'s ``export NAME=value`` lines as a mapping."""
    found = {}
    for line in text.splitlines():
        words = shlex.split(line)
        if len(words) == 2 and words[0] == "export" and "=" in words[1]:
            name, _, value = words[1].partition("=")
            found[name] = value
    return found


@dataclass(frozen=True)
class ControlPlane:
    """A started control plane: the API server's URL (also the service-account issuer), its CA, the
    admin's token, and the peers' pinned versions."""

    url: str
    issuer: str
    ca_file: Path
    admin_token_file: Path
    run_dir: Path
    versions: dict[str, str]
    # What tools/peers.sh needs to find this control plane again (its state dir and ports).
    peers_env: dict[str, str]

    @classmethod
    def from_env(cls, env: Mapping[str, str], run_dir: Path, peers_env: Mapping[str, str]) -> ControlPlane:
        return cls(
            url=env["PEERS_KUBE_API"],
            issuer=env["PEERS_KUBE_ISSUER"],
            ca_file=Path(env["PEERS_KUBE_CA_FILE"]),
            admin_token_file=Path(env["PEERS_KUBE_TOKEN_FILE"]),
            run_dir=run_dir,
            versions={
                "kube-apiserver": env.get("PEERS_KUBE_VERSION", ""),
                "etcd": env.get("PEERS_ETCD_VERSION", ""),
                "tekton": env.get("PEERS_TEKTON_VERSION", ""),
            },
            peers_env=dict(peers_env),
        )

    @property
    def port(self) -> int:
        return int(self.url.rsplit(":", 1)[1])

    def client(self, token: str | None = None) -> Kube:
        """A client authenticated as the admin (system:masters), or with ``token``, or anonymous ("")."""
        if token is None:
            token = self.admin_token_file.read_text().strip()
        return Kube(self.url, self.ca_file, token)


class Kube:
    """A thin JSON client of the real API server: answers are returned as they came, errors included."""

    def __init__(self, url: str, ca_file: Path, token: str) -> None:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        trust = ssl.create_default_context(cafile=str(ca_file))
        self.http = httpx.Client(base_url=url, verify=trust, headers=headers, timeout=30)

    def close(self) -> None:
        self.http.close()

    def request(self, method: str, path: str, body: Any = None, **params: Any) -> httpx.Response:
        return self.http.request(method, path, json=body, params=params or None)

    def create(self, path: str, obj: dict[str, Any]) -> dict[str, Any]:
        """POST ``obj`` to ``path``; 201 expected (an AssertionError shows the Status otherwise)."""
        r = self.request("POST", path, obj)
        assert r.status_code in (200, 201), f"POST {path}: {r.status_code} {r.text}"
        created: dict[str, Any] = r.json()
        return created

    def get(self, path: str) -> dict[str, Any]:
        r = self.request("GET", path)
        assert r.status_code == 200, f"GET {path}: {r.status_code} {r.text}"
        found: dict[str, Any] = r.json()
        return found

    def token_request(
        self,
        namespace: str,
        service_account: str,
        *,
        audiences: list[str] | None = None,
        seconds: int | None = None,
        pod: dict[str, Any] | None = None,
    ) -> httpx.Response:
        """TokenRequest for ``namespace/service_account``, bound to ``pod`` (an object as the server
        returned it) when given."""
        spec: dict[str, Any] = {}
        if audiences is not None:
            spec["audiences"] = audiences
        if seconds is not None:
            spec["expirationSeconds"] = seconds
        if pod is not None:
            meta = pod["metadata"]
            spec["boundObjectRef"] = {
                "apiVersion": "v1",
                "kind": "Pod",
                "name": meta["name"],
                "uid": meta["uid"],
            }
        body = {"apiVersion": AUTH_API, "kind": "TokenRequest", "spec": spec}
        return self.request(
            "POST", f"/api/v1/namespaces/{namespace}/serviceaccounts/{service_account}/token", body
        )

    def token(self, namespace: str, service_account: str, **kwargs: Any) -> str:
        r = self.token_request(namespace, service_account, **kwargs)
        assert r.status_code == 201, f"TokenRequest: {r.status_code} {r.text}"
        token: str = r.json()["status"]["token"]
        return token

    def token_review(self, token: str, audiences: list[str] | None = None) -> httpx.Response:
        spec: dict[str, Any] = {"token": token}
        if audiences is not None:
            spec["audiences"] = audiences
        body = {"apiVersion": AUTH_API, "kind": "TokenReview", "spec": spec}
        return self.request("POST", "/apis/authentication.k8s.io/v1/tokenreviews", body)

    # -- the objects a kubelet, a scheduler and a controller would make --------------------------------

    def namespace(self, name: str) -> dict[str, Any]:
        return self.create(
            "/api/v1/namespaces", {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}}
        )

    def service_account(self, namespace: str, name: str) -> dict[str, Any]:
        return self.create(
            f"/api/v1/namespaces/{namespace}/serviceaccounts",
            {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": name}},
        )

    def node(self, name: str) -> dict[str, Any]:
        """The node (made if missing: several modules share it)."""
        if self.request("GET", f"/api/v1/nodes/{name}").status_code == 404:
            self.create("/api/v1/nodes", {"apiVersion": "v1", "kind": "Node", "metadata": {"name": name}})
        return self.get(f"/api/v1/nodes/{name}")

    def pod(self, namespace: str, name: str, service_account: str, node: str | None = None) -> dict[str, Any]:
        """A pod that stays Pending (no kubelet), bound to ``node`` as the scheduler would bind it."""
        self.create(
            f"/api/v1/namespaces/{namespace}/pods",
            {
                "apiVersion": "v1",
                "kind": "Pod",
                "metadata": {"name": name, "labels": {"tekton.dev/taskRun": name.removesuffix("-pod")}},
                "spec": {
                    "serviceAccountName": service_account,
                    "containers": [{"name": "step-build", "image": "registry.invalid/step:latest"}],
                },
            },
        )
        if node is not None:
            self.bind(namespace, name, node)
        return self.get(f"/api/v1/namespaces/{namespace}/pods/{name}")

    def bind(self, namespace: str, pod: str, node: str) -> None:
        """The scheduler's part: bind the pod to ``node``."""
        self.create(
            f"/api/v1/namespaces/{namespace}/pods/{pod}/binding",
            {
                "apiVersion": "v1",
                "kind": "Binding",
                "metadata": {"name": pod},
                "target": {"apiVersion": "v1", "kind": "Node", "name": node},
            },
        )

    def delete_pod(self, namespace: str, name: str) -> None:
        """Delete at once (no kubelet would ever confirm a graceful deletion)."""
        r = self.request("DELETE", f"/api/v1/namespaces/{namespace}/pods/{name}", gracePeriodSeconds=0)
        assert r.status_code == 200, f"DELETE pod: {r.status_code} {r.text}"

    def allow_own_tokens(self, namespace: str, service_account: str) -> None:
        """docs/oidc-sa-token.md §3's Role and RoleBinding: the service account may create tokens for
        itself, and only for itself."""
        name = "signed-entrypoint-token"
        rbac = "/apis/rbac.authorization.k8s.io/v1"
        self.create(
            f"{rbac}/namespaces/{namespace}/roles",
            {
                "apiVersion": "rbac.authorization.k8s.io/v1",
                "kind": "Role",
                "metadata": {"name": name},
                "rules": [
                    {
                        "apiGroups": [""],
                        "resources": ["serviceaccounts/token"],
                        "verbs": ["create"],
                        "resourceNames": [service_account],
                    }
                ],
            },
        )
        self.create(
            f"{rbac}/namespaces/{namespace}/rolebindings",
            {
                "apiVersion": "rbac.authorization.k8s.io/v1",
                "kind": "RoleBinding",
                "metadata": {"name": name},
                "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": name},
                "subjects": [{"kind": "ServiceAccount", "name": service_account, "namespace": namespace}],
            },
        )

    def bind_cluster_role(self, role: str, namespace: str, service_account: str) -> None:
        self.create(
            "/apis/rbac.authorization.k8s.io/v1/clusterrolebindings",
            {
                "apiVersion": "rbac.authorization.k8s.io/v1",
                "kind": "ClusterRoleBinding",
                "metadata": {"name": f"{role.replace(':', '-')}-{namespace}-{service_account}"},
                "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": role},
                "subjects": [{"kind": "ServiceAccount", "name": service_account, "namespace": namespace}],
            },
        )


def mount_service_account(admin: Kube, pod: dict[str, Any], directory: Path, ca_file: Path) -> Path:
    """Write what the kubelet projects into ``pod`` (``token``, ``ca.crt``, ``namespace``) under
    ``directory``: a real TokenRequest for the pod's service account, bound to the pod, for the
    API audiences, asking 3607 s as the kubelet does."""
    meta, spec = pod["metadata"], pod["spec"]
    directory.mkdir(parents=True, exist_ok=True)
    token = admin.token(meta["namespace"], spec["serviceAccountName"], seconds=KUBELET_TOKEN_SECONDS, pod=pod)
    (directory / "token").write_text(token)
    (directory / "ca.crt").write_bytes(ca_file.read_bytes())
    (directory / "namespace").write_text(meta["namespace"])
    return directory


def in_pod_env(directory: Path, api_port: int) -> dict[str, str]:
    """A step's environment in that pod: the in-cluster service address and the mounted files, and
    none of the developer's signing or downward-API variables (the backend reads the pod from the
    mounted token's claims)."""
    env = dict.fromkeys(
        (
            "SIGNED_ENTRYPOINT_KUBE_API",
            "SIGNED_ENTRYPOINT_SIGNING_BACKEND",
            "SIGNED_ENTRYPOINT_SIGNATURE_FORMAT",
            "POD_NAME",
            "POD_UID",
            "POD_NAMESPACE",
            "POD_SERVICE_ACCOUNT",
        ),
        "",
    )
    env.update(
        {
            "KUBERNETES_SERVICE_HOST": "127.0.0.1",
            "KUBERNETES_SERVICE_PORT": str(api_port),
            "SIGNED_ENTRYPOINT_KUBE_TOKEN_FILE": str(directory / "token"),
            "SIGNED_ENTRYPOINT_KUBE_CA_FILE": str(directory / "ca.crt"),
            "SIGNED_ENTRYPOINT_KUBE_NAMESPACE_FILE": str(directory / "namespace"),
        }
    )
    return env
