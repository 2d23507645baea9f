"""Shared by the ``oidc-sa-token`` tests: a test cluster (KubeAPIServer + the files the kubelet mounts),
signed steps through the real ``entrypoint`` process, and ``entrypoint verify`` / ``save-jwks`` as processes.

The executable is the one tests/conftest.py chooses (``ENTRYPOINT_BIN`` or the console script).
"""

from __future__ import annotations

import base64
import json
import os
import subprocess
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from entrypoint.termination import RunResult, parse_message
from entrypoint.testing.kube import KubeAPIServer, Pod
from tests.support.tekton import TektonRoot, entrypoint_command

NS = "builds"
TASKRUN = "build-1"
POD = f"{TASKRUN}-pod"  # Tekton's name for the TaskRun's pod, the verifier's default
POD_UID = "7c4a1f0e-2b6d-4f1e-9a3c-5d8e6f7a8b9c"
SA = "builder"
VERIFIER_NS, VERIFIER_SA = "audit", "verifier"
FORMATS = ("tekton", "compact")
ALGS = ("RS256", "ES256")
# Short budgets: a failing backend costs the budget plus the signer's late attempt (2 s).
FAST = ("-signing_timeout", "3s", "-signing_retry_interval", "200ms")
AUDIENCE_PREFIX = "signed-entrypoint:spki-sha256:"
ROOT_DIRS = ("results", "run/0", "run/1", "run/2", "steps", "artifacts", "downward", "scripts")
# Variables of the developer's shell that would change what a step or the verifier does.
_SCRUBBED = (
    "KUBERNETES_SERVICE_HOST",
    "KUBERNETES_SERVICE_PORT",
    "SIGNED_ENTRYPOINT_KUBE_API",
    "SIGNED_ENTRYPOINT_KUBE_TOKEN_FILE",
    "SIGNED_ENTRYPOINT_KUBE_CA_FILE",
    "SIGNED_ENTRYPOINT_KUBE_NAMESPACE_FILE",
    "SIGNED_ENTRYPOINT_SIGNING_BACKEND",
    "SIGNED_ENTRYPOINT_SIGNATURE_FORMAT",
    "POD_NAME",
    "POD_UID",
    "POD_NAMESPACE",
    "POD_SERVICE_ACCOUNT",
)


def new_root(path: Path) -> TektonRoot:
    """A Tekton root as tests/conftest.py's ``root`` fixture makes it (for module-scoped fixtures)."""
    for d in ROOT_DIRS:
        (path / d).mkdir(parents=True, exist_ok=True)
    return TektonRoot(path)


@dataclass
class Cluster:
    """A running test API server, the TaskRun's pod, the pod's mounted files and a verifier's token."""

    server: KubeAPIServer
    pod: Pod
    directory: Path
    env: dict[str, str] = field(default_factory=dict)

    @property
    def sa_dir(self) -> Path:
        return self.directory / "serviceaccount"

    @property
    def token_file(self) -> Path:
        return self.sa_dir / "token"

    @property
    def ca_file(self) -> Path:
        return self.sa_dir / "ca.crt"

    @property
    def verifier_token_file(self) -> Path:
        return self.directory / "verifier-token"

    def caller_token(self) -> str:
        return self.token_file.read_text().strip()

    def refresh(self) -> None:
        """Write the mounted files and the verifier's token again (as the kubelet does, e.g. after
        the API server rotated its signing key)."""
        kube = self.server.write_in_cluster_files(self.sa_dir, self.pod)
        # The verifier is no pod: its token is not bound to the TaskRun's pod, so it keeps working
        # after that pod is deleted.
        # Its grant to create TokenReviews (system:auth-delegator, docs/oidc-sa-token.md): without
        # one, kube-apiserver v1.37.2 refuses TokenReview with 403 (tests/e2e/test_double_vs_real.py).
        self.server.allow_token_review(VERIFIER_NS, VERIFIER_SA)
        self.verifier_token_file.write_text(self.server.issue_token(VERIFIER_NS, VERIFIER_SA))
        self.env = {
            **kube,
            "SIGNED_ENTRYPOINT_KUBE_TOKEN_FILE": str(self.token_file),
            "SIGNED_ENTRYPOINT_KUBE_CA_FILE": str(self.ca_file),
            "SIGNED_ENTRYPOINT_KUBE_NAMESPACE_FILE": str(self.sa_dir / "namespace"),
        }

    def kube_args(self) -> list[str]:
        """``--kube-api`` and the verifier's credentials, for ``verify`` and ``save-jwks``."""
        return [
            "--kube-api",
            self.server.url,
            "--kube-token-file",
            str(self.verifier_token_file),
            "--kube-ca-file",
            str(self.ca_file),
        ]


@contextmanager
def cluster(directory: Path, alg: str = "ES256", **server_options: Any) -> Iterator[Cluster]:
    directory.mkdir(parents=True, exist_ok=True)
    with KubeAPIServer(alg=alg, **server_options) as server:
        pod = server.add_pod(NS, POD, POD_UID, SA)
        c = Cluster(server, pod, directory)
        c.refresh()
        yield c


def sa_flags(fmt: str, *budget: str) -> list[str]:
    return ["-signing_backend=oidc-sa-token", f"-signature_format={fmt}", *(budget or FAST)]


def sh(script: str) -> list[str]:
    return ["-entrypoint", "/bin/sh", "--", "-c", script]


def write_results(root: TektonRoot, results: Mapping[str, str]) -> str:
    return "; ".join(f"printf '%s' {json.dumps(v)} > '{root / 'results' / k}'" for k, v in results.items())


def step_env(c: Cluster, extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """The step's environment: the shell's, without Kubernetes or signing variables, plus the cluster's."""
    env = {k: "" for k in _SCRUBBED}
    env.update(c.env)
    env.update(extra or {})
    return env


def sign_step(
    root: TektonRoot,
    c: Cluster,
    results: Mapping[str, str],
    flags: Sequence[str],
    *,
    script: str = "",
    env: Mapping[str, str] | None = None,
) -> subprocess.CompletedProcess[str]:
    """Step 0 of the TaskRun's pod: writes ``results`` (then runs ``script``), signed as ``flags`` say."""
    body = "; ".join(s for s in (write_results(root, results), script) if s) or "true"
    names = ",".join(results) or "none"
    return root.run([*root.step_args(0), *flags, "-results", names, *sh(body)], env=step_env(c, env))


def entrypoint(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    """The executable under test as a command (``verify``, ``save-jwks``), outside any step."""
    env = {k: v for k, v in os.environ.items() if k not in _SCRUBBED}
    return subprocess.run(
        [*entrypoint_command(), *args],
        input=stdin,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def save_jwks(c: Cluster, path: Path) -> Path:
    p = entrypoint("save-jwks", *c.kube_args(), "-o", str(path))
    assert p.returncode == 0, p.stdout + p.stderr
    return path


def verify(message: Path, *args: str, taskrun: str = f"{NS}/{TASKRUN}") -> dict[str, Any]:
    """``entrypoint verify --json``'s verdict, checked for consistency with its exit status."""
    p = entrypoint("verify", "--taskrun", taskrun, "--json", *args, str(message))
    assert p.returncode in (0, 1), p.stdout + p.stderr
    verdict: dict[str, Any] = json.loads(p.stdout)
    assert verdict["verified"] is (p.returncode == 0)
    return verdict


def entries(path: Path) -> list[RunResult]:
    return parse_message(path.read_text())


def values(path: Path) -> dict[str, str]:
    return {e.key: e.value for e in entries(path)}


def write_entries(path: Path, items: Sequence[RunResult]) -> Path:
    from entrypoint.termination import encode_message

    path.write_bytes(encode_message(list(items)))
    return path


def jwt_part(token: str, index: int) -> dict[str, Any]:
    """A JWT's header (0) or claims (1), not verified: for a test to read what was issued."""
    part = token.split(".")[index]
    decoded: dict[str, Any] = json.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)))
    return decoded


def message_token(path: Path) -> str:
    """The token a signed message carries, in either format."""
    found = values(path)
    if "SA_TOKEN" in found:
        return found["SA_TOKEN"]
    material = found["SIGNATURE"].split(".", 7)[7]
    kind, _, rest = material.partition(":")
    assert kind == "k8s-sat", material
    return rest.partition(":")[2]
