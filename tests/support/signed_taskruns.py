"""TaskRuns as Tekton stores them, each step's message signed by the project's signer for that
TaskRun's own identity: the input of the controller's tests and of ``make bench``."""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Sequence
from typing import Any

from cryptography.hazmat.primitives.asymmetric import ec

from entrypoint._internal.backends.k8s_sat.evidence import token_identity
from entrypoint._internal.backends.spire.evidence import x509_identity
from entrypoint.termination import RunResult
from entrypoint.testing.ca import TestCA
from entrypoint.testing.workload_api import WorkloadAPIServer
from tests.support import tokens
from tests.support.messages import message
from tests.support.pki import spiffe_id
from tests.support.signed import sign_entries
from tests.support.tekton import TektonRoot
from tests.support.tekton_status import StepRun, taskrun_object

STARTED = RunResult("StartedAt", "2026-12-03T10:00:00.000Z", 3)
BACKENDS = ("spire", "k8s_sat")
FORMATS = ("tekton", "compact")


def digest_results(n: int) -> list[RunResult]:
    """``n`` image-digest task results (random-looking hex, as real digests are)."""
    return [RunResult(f"IMAGE{i}_DIGEST", "sha256:" + hashlib.sha256(str(i).encode()).hexdigest(), 1)
            for i in range(n)]  # fmt: skip


def signed_step_message(
    ca: TestCA,
    issuer: tokens.Issuer,
    backend: str,
    fmt: str,
    namespace: str,
    name: str,
    results: Sequence[RunResult],
    *,
    pod_uid: str = tokens.POD_UID,
    service_account: str = tokens.SA,
) -> str:
    """Step 0's termination message for TaskRun ``namespace/name`` (its pod ``name-pod``)."""
    if backend == "spire":
        svid = ca.issue_svid(spiffe_id(name, namespace))
        identity = x509_identity(svid.key, svid.chain, "test")
    else:
        key = ec.generate_private_key(ec.SECP256R1())
        token = issuer.token(
            key,
            sub=f"system:serviceaccount:{namespace}:{service_account}",
            **{
                "kubernetes.io": {
                    "namespace": namespace,
                    "serviceaccount": {"name": service_account, "uid": "sa-uid"},
                    "pod": {"name": f"{name}-pod", "uid": pod_uid},
                    "node": {"name": "node-1", "uid": "node-uid"},
                }
            },
        )
        identity = token_identity(key, token, dt.datetime.now(dt.UTC), "test")
    return message(sign_entries(fmt, [*results, STARTED], identity, "0", 0))


def signed_taskrun(
    ca: TestCA,
    issuer: tokens.Issuer,
    backend: str,
    fmt: str,
    namespace: str,
    name: str,
    results: Sequence[RunResult] = (),
) -> dict[str, Any]:
    """The done TaskRun ``namespace/name`` of one step that signed ``results`` (default: 10
    image digests), as Tekton's controller stores it."""
    results = list(results) or digest_results(10)
    text = signed_step_message(ca, issuer, backend, fmt, namespace, name, results)
    return taskrun_object(
        namespace, name, [StepRun("build", text)], task_results=[{"name": r.key} for r in results]
    )


def run_spire_steps(root: TektonRoot, agent: WorkloadAPIServer, fmt: str) -> list[StepRun]:
    """Two steps through the real entrypoint, signing with the agent's SVID in ``fmt``: the first
    writes two results; the second rewrites one and fails with 3 under onError: continue, so
    Tekton records exit code 3 from its ExitCode entry."""
    signing = ["-signing_backend=spire", f"-signature_format={fmt}", "-spire_socket_path", agent.address,
               "-signing_timeout", "5s", "-signing_retry_interval", "100ms"]  # fmt: skip
    results = root / "results"
    scripts = [
        (f'printf 0a1b2c3d > {results}/commit; printf \'["a","b"]\' > {results}/list', []),
        (f"printf ffff0000 > {results}/commit; exit 3", ["-on_error", "continue"]),
    ]
    steps = []
    for i, (script, extra) in enumerate(scripts):
        args = root.step_args(i)
        term = root.run_dir(i) / "termination"
        args[args.index("-termination_path") + 1] = str(term)
        command = ["-entrypoint", "/bin/sh", "--", "-c", script]
        p = root.run([*args, *signing, *extra, "-results", "commit,list", *command])
        assert p.returncode == 0, p.stderr
        steps.append(StepRun(f"s{i}", term.read_text(), exit_code=p.returncode))
    return steps
