"""Shared by the ``sigstore-keyless`` tests: a Sigstore stack of doubles (the Kubernetes API double as
the OIDC issuer, the Fulcio double with its CT log, the Rekor double), the trusted root that matches
it, and signed steps through the real ``entrypoint`` process (docs/sigstore.md).

The executable is the one tests/conftest.py chooses (``ENTRYPOINT_BIN`` or the console script).
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterator, Mapping, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from entrypoint.testing.fulcio import FulcioDouble, OIDCIssuer
from entrypoint.testing.kube import KubeAPIServer, Pod
from entrypoint.testing.rekor import RekorDouble
from tests.support.k8s_sat import FAST, NS, POD, POD_UID, SA, TASKRUN, entrypoint, sh, write_results
from tests.support.tekton import TektonRoot

AUDIENCE = "sigstore"
SAN = f"https://kubernetes.io/namespaces/{NS}/serviceaccounts/{SA}"
FORMATS = ("tekton", "compact")
_SCRUBBED = (
    "KUBERNETES_SERVICE_HOST",
    "KUBERNETES_SERVICE_PORT",
    "SIGNED_ENTRYPOINT_KUBE_API",
    "SIGNED_ENTRYPOINT_KUBE_TOKEN_FILE",
    "SIGNED_ENTRYPOINT_KUBE_CA_FILE",
    "SIGNED_ENTRYPOINT_KUBE_NAMESPACE_FILE",
    "SIGNED_ENTRYPOINT_SIGNING_BACKEND",
    "SIGNED_ENTRYPOINT_SIGNATURE_FORMAT",
    "SIGNED_ENTRYPOINT_FULCIO_ADDRESS",
    "SIGNED_ENTRYPOINT_FULCIO_ISSUER",
    "SIGNED_ENTRYPOINT_FULCIO_PROVIDER",
    "SIGNED_ENTRYPOINT_FULCIO_PROOF",
    "SIGNED_ENTRYPOINT_IDENTITY_TOKEN_FILE",
    "SIGNED_ENTRYPOINT_TRANSPARENCY_ENABLED",
    "SIGNED_ENTRYPOINT_TRANSPARENCY_URL",
    "SIGNED_ENTRYPOINT_SIGSTORE_TRUSTED_ROOT",
    "SIGNED_ENTRYPOINT_SIGSTORE_CA_FILE",
    "SIGNED_ENTRYPOINT_SIGSTORE_AUDIENCE",
    "TASKRUN_NAME",
    "POD_NAME",
    "POD_UID",
    "POD_NAMESPACE",
    "POD_SERVICE_ACCOUNT",
)


@dataclass
class Stack:
    """The running doubles, the pod, and the files a step and a verifier are given."""

    kube: KubeAPIServer
    fulcio: FulcioDouble
    rekor: RekorDouble
    pod: Pod
    directory: Path
    env: dict[str, str] = field(default_factory=dict)

    @property
    def trusted_root(self) -> Path:
        return self.directory / "trusted_root.json"

    @property
    def token_file(self) -> Path:
        """The projected token (audience ``sigstore``), as the pod spec in docs/sigstore.md mounts it."""
        return self.directory / "sigstore-token"

    @property
    def issuer(self) -> str:
        return self.kube.issuer

    def refresh_token(self, **options: Any) -> None:
        self.token_file.write_text(self.kube.issue_token(NS, SA, POD, audiences=[AUDIENCE], **options))

    def verify_args(self, *, identity: str = SAN, issuer: str | None = None) -> list[str]:
        return [
            "--sigstore-trusted-root",
            str(self.trusted_root),
            "--certificate-identity",
            identity,
            "--certificate-oidc-issuer",
            issuer or self.issuer,
        ]


@contextmanager
def stack(directory: Path, *, transparency: bool = True, **fulcio_options: Any) -> Iterator[Stack]:
    directory.mkdir(parents=True, exist_ok=True)
    with ExitStack() as on_exit:
        kube = on_exit.enter_context(KubeAPIServer(alg="RS256", anonymous_discovery=True))
        pod = kube.add_pod(NS, POD, POD_UID, SA)
        fulcio = on_exit.enter_context(
            FulcioDouble(
                issuers=[OIDCIssuer(kube.issuer, "kubernetes", ca_pem=kube.ca_pem)], **fulcio_options
            )
        )
        rekor = on_exit.enter_context(RekorDouble())
        s = Stack(kube, fulcio, rekor, pod, directory)
        fulcio.write_trusted_root(s.trusted_root)
        rekor.write_trusted_root(s.trusted_root)
        ca_file = directory / "sigstore-ca.pem"
        ca_file.write_bytes(fulcio.ca_pem + rekor.ca_pem)
        s.refresh_token()
        s.env = {
            "SIGNED_ENTRYPOINT_FULCIO_ADDRESS": fulcio.url,
            "SIGNED_ENTRYPOINT_IDENTITY_TOKEN_FILE": str(s.token_file),
            "SIGNED_ENTRYPOINT_SIGSTORE_TRUSTED_ROOT": str(s.trusted_root),
            "SIGNED_ENTRYPOINT_SIGSTORE_CA_FILE": str(ca_file),
            "TASKRUN_NAME": TASKRUN,
        }
        if transparency:
            s.env["SIGNED_ENTRYPOINT_TRANSPARENCY_URL"] = rekor.url
        yield s


def flags(fmt: str, *budget: str) -> list[str]:
    return ["-signing_backend=sigstore-keyless", f"-signature_format={fmt}", *(budget or FAST)]


def step_env(s: Stack, extra: Mapping[str, str] | None = None) -> dict[str, str]:
    env = {k: "" for k in _SCRUBBED}
    env.update(s.env)
    env.update(extra or {})
    return env


def sign_step(
    root: TektonRoot,
    s: Stack,
    results: Mapping[str, str],
    fmt: str,
    *,
    script: str = "",
    env: Mapping[str, str] | None = None,
    step: int = 0,
    extra_flags: Sequence[str] = (),
) -> subprocess.CompletedProcess[str]:
    """A step of the TaskRun's pod: writes ``results`` (then runs ``script``), signed by sigstore-keyless."""
    body = "; ".join(x for x in (write_results(root, results), script) if x) or "true"
    names = ",".join(results) or "none"
    args = [*root.step_args(step), *flags(fmt), *extra_flags, "-results", names, *sh(body)]
    return root.run(args, env=step_env(s, env))


def verify(s: Stack, message: Path, *args: str, taskrun: str = f"{NS}/{TASKRUN}") -> dict[str, Any]:
    """``entrypoint verify --json``'s verdict with the stack's trust, checked against its exit status."""
    import json

    p = entrypoint("verify", "--taskrun", taskrun, "--json", *s.verify_args(), *args, str(message))
    assert p.returncode in (0, 1), p.stdout + p.stderr
    verdict: dict[str, Any] = json.loads(p.stdout)
    assert verdict["verified"] is (p.returncode == 0)
    return verdict
