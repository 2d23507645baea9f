"""``make demo``: a two-step "TaskRun" signed with SPIFFE identities and verified, no cluster needed.

``make demo BACKEND=oidc-sa-token`` (or ``tools/demo.py --backend oidc-sa-token``) signs with
pod-bound Kubernetes service-account tokens instead, from a local test API server over HTTPS, and
verifies both online (TokenReview) and offline (a saved JWKS snapshot).  ``make demo
BACKEND=sigstore-keyless`` signs with short-lived Fulcio certificates for the pod's service account
(a TokenRequest for audience ``sigstore``), logs each signature to Rekor, and verifies offline
against a Sigstore trusted root, with test Fulcio, CT and Rekor servers (docs/sigstore.md).

A local SPIFFE Workload API server stands in for the SPIRE agent (a real gRPC server on a unix
socket, issuing X.509-SVIDs from a test CA for this TaskRun's SPIFFE ID).  Both steps are started
at once with the arguments Tekton's controller gives them (spec §2.7) plus ``-enable_spire``:
step 1 ("build") writes results; step 2 ("report") waits for step 1's post file and reads step 1's
result through a ``$(steps...)`` reference.  Each termination message is printed, then checked
with ``entrypoint verify``; finally a tampered copy of step 1's message is shown to be rejected.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from entrypoint.termination import ResultType, encode_message, parse_message  # noqa: E402

TYPE_NAMES = {int(t): t.name.lower().replace("_", "-") for t in ResultType}
NAMESPACE, TASKRUN = "demo", "build-and-report"
TRUST_DOMAIN = "example.org"
POD_UID = "6b1f2c1e-0d4a-4d7e-9f60-2a9e0c3b7d15"
SERVICE_ACCOUNT = "pipeline"


def entrypoint_cmd() -> list[str]:
    script = Path(sys.executable).parent / "entrypoint"
    return [str(script)] if script.exists() else [sys.executable, "-m", "entrypoint"]


def step_args(root: Path, i: int) -> list[str]:
    run = root / "run" / str(i)
    wait = ["-wait_file", str(root / "run" / str(i - 1) / "out")] if i else []
    return [
        *wait,
        "-post_file", str(run / "out"),
        "-termination_path", str(run / "termination"),
        "-step_metadata_dir", str(run / "status"),
    ]  # fmt: skip


def start_server(module: str, args: list[str], what: str) -> tuple[subprocess.Popen[str], str]:
    """Start one of the test doubles (``python -m entrypoint.testing.<module>``) and wait for its
    ``ready <address>`` line; returns the process and the address."""
    server = subprocess.Popen(
        [sys.executable, "-m", f"entrypoint.testing.{module}", *args],
        stdout=subprocess.PIPE,
        text=True,
        cwd=REPO,
    )
    assert server.stdout is not None
    line = server.stdout.readline()
    if not line.startswith("ready"):
        server.kill()
        raise SystemExit(f"the local {what} did not start: {line!r}")
    return server, line.split()[1]


def start_agent(sock: Path, bundle: Path) -> subprocess.Popen[str]:
    spiffe_id = f"spiffe://{TRUST_DOMAIN}/ns/{NAMESPACE}/taskrun/{TASKRUN}"
    args = [
        "--socket",
        str(sock),
        "--trust-domain",
        TRUST_DOMAIN,
        "--spiffe-id",
        spiffe_id,
        "--bundle-out",
        str(bundle),
    ]
    agent, address = start_server("workload_api", args, "Workload API server")
    print(f"local SPIFFE Workload API: {address} issuing {spiffe_id}")
    return agent


def start_kube_api(sa_dir: Path, *extra: str) -> tuple[subprocess.Popen[str], str]:
    pod = f"{NAMESPACE}/{TASKRUN}-pod/{POD_UID}"
    args = ["--pod", pod, "--service-account", SERVICE_ACCOUNT, "--in-cluster-dir", str(sa_dir), *extra]
    # `verify --kube-api` below reviews tokens with the pod's own token: grant it TokenReview.
    args += ["--token-reviewer", f"{NAMESPACE}/{SERVICE_ACCOUNT}"]
    server, url = start_server("kube_api", args, "Kubernetes API server")
    print(f"local Kubernetes API server: {url}, pod {pod}, service account {SERVICE_ACCOUNT}")
    return server, url


def verify(message: Path, trust: list[str], shown: str) -> int:
    cmd = [*entrypoint_cmd(), "verify", "--taskrun", f"{NAMESPACE}/{TASKRUN}", *trust, str(message)]
    print(f"$ entrypoint verify --taskrun {NAMESPACE}/{TASKRUN} {shown} {message.parent.name}/{message.name}")
    return subprocess.run(cmd, check=False).returncode


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backend", choices=("spire", "oidc-sa-token", "sigstore-keyless"), default="spire")
    backend = parser.parse_args(argv).backend
    with tempfile.TemporaryDirectory(prefix="tekton-demo-") as tmp:
        root = Path(tmp)
        env = {**os.environ, "SIGNED_ENTRYPOINT_ROOT": str(root)}
        for d in ("results", "run/0", "run/1"):
            (root / d).mkdir(parents=True)
        if backend == "oidc-sa-token":
            return demo_oidc_sa_token(root, env)
        if backend == "sigstore-keyless":
            return demo_sigstore(root, env)
        sock_dir = Path(tempfile.mkdtemp(prefix="agent", dir="/tmp"))
        agent = start_agent(sock_dir / "agent.sock", root / "bundle.pem")
        bundle = ["--trust-domain", TRUST_DOMAIN, "--trust-bundle", str(root / "bundle.pem")]
        shown = f"--trust-domain {TRUST_DOMAIN} --trust-bundle bundle.pem"
        try:
            signing = ["-enable_spire", "-spire_socket_path", f"unix://{sock_dir / 'agent.sock'}"]
            return run_taskrun(root, env, signing, [(bundle, shown)])
        finally:
            agent.terminate()
            agent.wait(10)


def demo_oidc_sa_token(root: Path, env: dict[str, str]) -> int:
    sa_dir = root / "serviceaccount"
    server, url = start_kube_api(sa_dir)
    try:
        # What the kubelet and the downward API give a real pod (docs/oidc-sa-token.md §3).
        host, port = url.removeprefix("https://").rsplit(":", 1)
        env.update({
            "KUBERNETES_SERVICE_HOST": host, "KUBERNETES_SERVICE_PORT": port,
            "SIGNED_ENTRYPOINT_KUBE_TOKEN_FILE": str(sa_dir / "token"),
            "SIGNED_ENTRYPOINT_KUBE_CA_FILE": str(sa_dir / "ca.crt"),
            "SIGNED_ENTRYPOINT_KUBE_NAMESPACE_FILE": str(sa_dir / "namespace"),
            "POD_NAME": f"{TASKRUN}-pod", "POD_UID": POD_UID, "POD_NAMESPACE": NAMESPACE,
            "POD_SERVICE_ACCOUNT": SERVICE_ACCOUNT,
        })  # fmt: skip
        creds = ["--kube-token-file", str(sa_dir / "token"), "--kube-ca-file", str(sa_dir / "ca.crt")]
        jwks = root / "jwks.json"
        saved = subprocess.run(
            [*entrypoint_cmd(), "save-jwks", "--kube-api", url, *creds, "-o", str(jwks)], check=False
        )
        if saved.returncode != 0:
            return saved.returncode
        online = ["--kube-api", url, *creds, "--pod-uid", POD_UID, "--service-account", SERVICE_ACCOUNT]
        offline = ["--jwks", str(jwks), "--pod-uid", POD_UID]
        checks = [
            (online, f"--kube-api {url} --pod-uid {POD_UID} ..."),
            (offline, f"--jwks jwks.json --pod-uid {POD_UID}"),
        ]
        return run_taskrun(root, env, ["-signing_backend=oidc-sa-token", "-signature_format=compact"], checks)
    finally:
        server.terminate()
        server.wait(10)


def demo_sigstore(root: Path, env: dict[str, str]) -> int:
    sa_dir = root / "serviceaccount"
    trusted_root = root / "trusted_root.json"
    servers = []
    try:
        # Fulcio reads the cluster's OIDC discovery without credentials, as a private Fulcio does.
        kube, url = start_kube_api(sa_dir, "--anonymous-discovery")
        servers.append(kube)
        fulcio, fulcio_url = start_server(
            "fulcio",
            ["--kubernetes-issuer", url, "--issuer-ca", str(sa_dir / "ca.crt"),
             "--trusted-root", str(trusted_root), "--ca-out", str(root / "fulcio-ca.pem")],
            "Fulcio",
        )  # fmt: skip
        servers.append(fulcio)
        rekor, rekor_url = start_server(
            "rekor", ["--trusted-root", str(trusted_root), "--ca-out", str(root / "rekor-ca.pem")], "Rekor"
        )
        servers.append(rekor)
        print(f"local Fulcio: {fulcio_url} (issuer {url}); local Rekor: {rekor_url}")
        ca = root / "sigstore-ca.pem"
        ca.write_bytes((root / "fulcio-ca.pem").read_bytes() + (root / "rekor-ca.pem").read_bytes())
        host, port = url.removeprefix("https://").rsplit(":", 1)
        env.update({
            "KUBERNETES_SERVICE_HOST": host, "KUBERNETES_SERVICE_PORT": port,
            "SIGNED_ENTRYPOINT_KUBE_TOKEN_FILE": str(sa_dir / "token"),
            "SIGNED_ENTRYPOINT_KUBE_CA_FILE": str(sa_dir / "ca.crt"),
            "SIGNED_ENTRYPOINT_KUBE_NAMESPACE_FILE": str(sa_dir / "namespace"),
            "POD_NAME": f"{TASKRUN}-pod", "POD_UID": POD_UID, "POD_NAMESPACE": NAMESPACE,
            "POD_SERVICE_ACCOUNT": SERVICE_ACCOUNT, "TASKRUN_NAME": TASKRUN,
            # The pod's service account asks for its own token with audience sigstore.
            "SIGNED_ENTRYPOINT_FULCIO_PROVIDER": "kubernetes",
            "SIGNED_ENTRYPOINT_FULCIO_ADDRESS": fulcio_url,
            "SIGNED_ENTRYPOINT_TRANSPARENCY_URL": rekor_url,
            "SIGNED_ENTRYPOINT_SIGSTORE_TRUSTED_ROOT": str(trusted_root),
            "SIGNED_ENTRYPOINT_SIGSTORE_CA_FILE": str(ca),
        })  # fmt: skip
        san = f"https://kubernetes.io/namespaces/{NAMESPACE}/serviceaccounts/{SERVICE_ACCOUNT}"
        policy = ["--sigstore-trusted-root", str(trusted_root), "--certificate-identity", san,
                  "--certificate-oidc-issuer", url, "--pod-uid", POD_UID]  # fmt: skip
        checks = [(policy, f"--sigstore-trusted-root trusted_root.json --certificate-identity {san} ...")]
        signing = ["-signing_backend=sigstore-keyless", "-signature_format=compact"]
        code = run_taskrun(root, env, signing, checks)
        if code != 0:
            return code
        return sigstore_bundle(root, rekor_url, trusted_root, san, url)
    finally:
        for server in servers:
            server.terminate()
            server.wait(10)


def sigstore_bundle(root: Path, rekor_url: str, trusted_root: Path, san: str, issuer: str) -> int:
    """Step 0's log entry as a Sigstore bundle, verified by sigstore-python (its own environment,
    from tools/sigstore-python-requirements.txt); then a tampered artifact, which it rejects."""
    from tests.support.sigstore_python import environment, verify

    message = root / "run" / "0" / "termination"
    bundle, artifact = root / "step0.sigstore.json", root / "step0.artifact"
    print("\n--- step 0's log entry as a Sigstore bundle, checked by sigstore-python ---")
    print(f"$ entrypoint sigstore-bundle 0/termination --rekor-url {rekor_url} --bundle-out {bundle.name} "
          f"--artifact-out {artifact.name} ...")  # fmt: skip
    made = subprocess.run(
        [*entrypoint_cmd(), "sigstore-bundle", str(message), "--rekor-url", rekor_url,
         "--ca-file", str(root / "rekor-ca.pem"), "--trusted-root", str(trusted_root),
         "--bundle-out", str(bundle), "--artifact-out", str(artifact)],
        check=False,
    )  # fmt: skip
    if made.returncode != 0:
        return made.returncode
    print("installing sigstore-python 4.5.1 into build/sigstore-python (once; from its hash-pinned lock)")
    python = environment().python
    genuine = verify(
        python, bundle=bundle, artifact=artifact, trusted_root=trusted_root, identity=san, issuer=issuer
    )
    print(f"sigstore-python {genuine['sigstore']}: genuine bundle verified: {genuine['verified']}")
    forged = root / "step0.artifact.tampered"
    forged.write_bytes(artifact.read_bytes().replace(b'"step":"0"', b'"step":"1"'))
    tampered = verify(
        python, bundle=bundle, artifact=forged, trusted_root=trusted_root, identity=san, issuer=issuer
    )
    print(f"sigstore-python: tampered artifact rejected: {not tampered['verified']} ({tampered['error']})")
    return 0 if genuine["verified"] and not tampered["verified"] else 1


def run_taskrun(
    root: Path, env: dict[str, str], signing: list[str], checks: list[tuple[list[str], str]]
) -> int:
    init = subprocess.run([*entrypoint_cmd(), "step-init", "step-build", "step-report"], env=env, check=False)
    if init.returncode != 0:
        return init.returncode
    build = (
        'echo "building..."; '
        f"printf 'sha256:%064d' 42 > {root}/results/IMAGE_DIGEST; "
        f"printf 'registry.example/app' > {root}/results/IMAGE_URL; "
        f'printf \'["linux/amd64","linux/arm64"]\' > {root}/run/0/status/results/platforms'
    )
    report = 'echo "step 2 sees platforms: $1"; printf ok > ' + f"{root}/results/REPORT"
    steps = [
        [*signing, "-results", "IMAGE_DIGEST,IMAGE_URL", "-step_results", "platforms",
         "-entrypoint", "/bin/sh", "--", "-c", build],
        [*signing, "-results", "REPORT", "-entrypoint", "/bin/sh", "--", "-c", report, "sh",
         "$(steps.build.results.platforms[1])"],
    ]  # fmt: skip
    print("\nStarting both steps at once; step 2 waits for step 1's post file.\n")
    procs = [
        subprocess.Popen([*entrypoint_cmd(), *step_args(root, i), *args], env=env)
        for i, args in reversed(list(enumerate(steps)))
    ]
    codes = list(reversed([p.wait() for p in procs]))
    verdicts = []
    for i in range(len(steps)):
        path = root / "run" / str(i) / "termination"
        print(f"\n--- step {i} termination message ({len(path.read_bytes())} bytes of 4096) ---")
        for e in parse_message(path.read_text()):
            value = e.value if len(e.value) < 70 else e.value[:40] + "..." + e.value[-12:]
            print(f"  {e.key:<20} {TYPE_NAMES.get(e.type, str(e.type)):<16} {value!r}")
        for trust, shown in checks:
            print()
            verdicts.append(verify(path, trust, shown))

    print("\n--- a tampered copy of step 0's message (IMAGE_DIGEST changed) ---")
    tampered = root / "run" / "0" / "tampered"
    entries = parse_message((root / "run" / "0" / "termination").read_text())
    forged = [type(e)(e.key, "sha256:" + "6" * 64, e.type) if e.key == "IMAGE_DIGEST" else e for e in entries]
    tampered.write_bytes(encode_message(forged))
    rejected = all(verify(tampered, trust, shown) == 1 for trust, shown in checks)
    print(f"\nstep exit codes: {codes}; verify exit codes: {verdicts}; tampered copy rejected: {rejected}")
    return 0 if all(c == 0 for c in codes + verdicts) and rejected else 1


if __name__ == "__main__":
    sys.exit(main())
