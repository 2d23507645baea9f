"""``make demo``: a two-step "TaskRun" signed with SPIFFE identities and verified, no cluster needed.

A local SPIFFE Workload API server stands in for the SPIRE agent (a real gRPC server on a unix
socket, issuing X.509-SVIDs from a test CA for this TaskRun's SPIFFE ID).  Both steps are started
at once with the arguments Tekton's controller gives them (spec §2.7) plus ``-enable_spire``:
step 1 ("build") writes results; step 2 ("report") waits for step 1's post file and reads step 1's
result through a ``$(steps...)`` reference.  Each termination message is printed, then checked
with ``entrypoint verify``; finally a tampered copy of step 1's message is shown to be rejected.
"""

from __future__ import annotations

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


def start_agent(sock: Path, bundle: Path) -> subprocess.Popen[str]:
    spiffe_id = f"spiffe://{TRUST_DOMAIN}/ns/{NAMESPACE}/taskrun/{TASKRUN}"
    agent = subprocess.Popen(
        [sys.executable, "-m", "entrypoint.testing.workload_api", "--socket", str(sock),
         "--trust-domain", TRUST_DOMAIN, "--spiffe-id", spiffe_id, "--bundle-out", str(bundle)],
        stdout=subprocess.PIPE, text=True, cwd=REPO,
    )  # fmt: skip
    assert agent.stdout is not None
    line = agent.stdout.readline()
    if not line.startswith("ready"):
        agent.kill()
        raise SystemExit(f"the local Workload API server did not start: {line!r}")
    print(f"local SPIFFE Workload API: {line.split()[1]} issuing {spiffe_id}")
    return agent


def verify(message: Path, bundle: Path) -> int:
    cmd = [*entrypoint_cmd(), "verify", "--taskrun", f"{NAMESPACE}/{TASKRUN}", "--trust-domain", TRUST_DOMAIN,
           "--trust-bundle", str(bundle), str(message)]  # fmt: skip
    print(f"$ entrypoint verify --taskrun {NAMESPACE}/{TASKRUN} --trust-domain {TRUST_DOMAIN} "
          f"--trust-bundle bundle.pem {message.parent.name}/{message.name}")  # fmt: skip
    return subprocess.run(cmd, check=False).returncode


def main() -> int:
    with tempfile.TemporaryDirectory(prefix="tekton-demo-") as tmp:
        root = Path(tmp)
        env = {**os.environ, "SIGNED_ENTRYPOINT_ROOT": str(root)}
        for d in ("results", "run/0", "run/1"):
            (root / d).mkdir(parents=True)
        sock_dir = Path(tempfile.mkdtemp(prefix="agent", dir="/tmp"))
        agent = start_agent(sock_dir / "agent.sock", root / "bundle.pem")
        try:
            return run_taskrun(root, env, f"unix://{sock_dir / 'agent.sock'}")
        finally:
            agent.terminate()
            agent.wait(10)


def run_taskrun(root: Path, env: dict[str, str], socket: str) -> int:
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
    signing = ["-enable_spire", "-spire_socket_path", socket]
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
        print()
        verdicts.append(verify(path, root / "bundle.pem"))

    print("\n--- a tampered copy of step 0's message (IMAGE_DIGEST changed) ---")
    tampered = root / "run" / "0" / "tampered"
    entries = parse_message((root / "run" / "0" / "termination").read_text())
    forged = [type(e)(e.key, "sha256:" + "6" * 64, e.type) if e.key == "IMAGE_DIGEST" else e for e in entries]
    tampered.write_bytes(encode_message(forged))
    rejected = verify(tampered, root / "bundle.pem") == 1
    print(f"\nstep exit codes: {codes}; verify exit codes: {verdicts}; tampered copy rejected: {rejected}")
    return 0 if all(c == 0 for c in codes + verdicts) and rejected else 1


if __name__ == "__main__":
    sys.exit(main())
