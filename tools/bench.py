"""``make bench``: speed and memory of the entrypoint, measured side by side in one run.

Figures are medians over N runs (min-max in brackets); the runs of the things being compared are
interleaved so that machine noise hits both alike.  Nothing here is a pass/fail test: targets are
printed beside the figures for a reader to judge.
"""

from __future__ import annotations

import argparse
import functools
import os
import shutil
import statistics
import subprocess
import sys
import sysconfig
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from bench_controller import bench_controller, bench_taskrun_verify
from bench_sigstore import bench_sigstore
from benchlib import REPO, Sample, fast_tmp, fmt_mib, fmt_ms, rusage_helper, spawn, throughput

TYPE_CHECKING = False
if TYPE_CHECKING:
    from entrypoint.termination import RunResult

ROOT_ENV = "SIGNED_ENTRYPOINT_ROOT"


RUSAGE = rusage_helper()


def entrypoint_commands() -> dict[str, list[str]]:
    """The ways to start the entrypoint that are worth comparing.

    ``lean`` starts the interpreter as the packaged executable does (isolated, no ``site``), which is
    what a step pays in the field; ``console-script`` is the developer install (``pip install -e``).
    """
    python = sys.executable
    purelib = sysconfig.get_paths()["purelib"]
    lean_code = (
        f"import sys; sys.path[:0] = [{str(REPO)!r}, {purelib!r}]; sys.argv[0] = 'entrypoint'; "
        "from entrypoint.cli import run; run()"
    )
    cmds = {"lean (-I -S)": [python, "-I", "-S", "-c", lean_code]}
    script = Path(python).parent / "entrypoint"
    if script.exists():
        cmds["console-script"] = [str(script)]
    binary = os.environ.get("ENTRYPOINT_BIN")
    if binary:
        cmds["binary"] = [binary]
    return cmds


def bench_true_step(runs: int, cmds: dict[str, list[str]]) -> None:
    true = shutil.which("true") or "/bin/true"
    print(f"\n(a) one step running {true}: entrypoint vs {true} alone, {runs} runs each, interleaved")
    with tempfile.TemporaryDirectory(dir=fast_tmp()) as tmp, tempfile.TemporaryDirectory() as disk:
        variants = {name: (cmd, tmp) for name, cmd in cmds.items()}
        first = next(iter(cmds))
        variants[f"{first}, disk root"] = (cmds[first], disk)
        samples: dict[str, list[Sample]] = {name: [] for name in ["/bin/true alone", *variants]}
        for i in range(runs + 2):
            warm = i < 2
            s = spawn([true], {**os.environ, ROOT_ENV: tmp}, RUSAGE)
            if not warm:
                samples["/bin/true alone"].append(s)
            for name, (cmd, root) in variants.items():
                args = ["-post_file", f"{root}/out", "-termination_path", f"{root}/termination",
                        "-step_metadata_dir", f"{root}/status", "-entrypoint", true, "--"]  # fmt: skip
                for f in (f"{root}/termination", f"{root}/out"):
                    Path(f).unlink(missing_ok=True)
                s = spawn([*cmd, *args], {**os.environ, ROOT_ENV: root}, RUSAGE)
                if not warm:
                    samples[name].append(s)
        base = statistics.median(x.seconds for x in samples["/bin/true alone"])
        print(f"  {'variant':<26} {'wall time':<28} {'added vs true':>14}   {'peak RSS':<22}")
        for name, ss in samples.items():
            added = statistics.median(x.seconds for x in ss) - base
            print(
                f"  {name:<26} {fmt_ms([x.seconds for x in ss]):<28} {added * 1000:11.1f} ms   "
                f"{fmt_mib([x.max_rss_kib for x in ss])}"
            )
        print(
            f"  root on {tmp.rsplit('/', 1)[0]} (tmpfs) unless marked 'disk root' (fsync on this VM's disk)"
        )
        print("  target: <= 25 ms added at the median, peak < 20 MiB (Tekton's Go entrypoint adds ~20 ms)")


def _chain(cmd: list[str], n: int, wait: bool, tmp: str) -> float:
    root = Path(tmp) / f"chain-{time.monotonic_ns()}"
    for i in range(n):
        (root / "run" / str(i)).mkdir(parents=True)
    env = {**os.environ, ROOT_ENV: str(root)}
    procs = []
    start = time.perf_counter()
    for i in range(n):
        args = [
            "-post_file",
            str(root / "run" / str(i) / "out"),
            "-termination_path",
            str(root / "run" / str(i) / "termination"),
            "-step_metadata_dir",
            str(root / "run" / str(i) / "status"),
            "-entrypoint",
            "/bin/true",
            "--",
        ]
        if wait and i > 0:
            args = ["-wait_file", str(root / "run" / str(i - 1) / "out"), *args]
        procs.append(subprocess.Popen([*cmd, *args], env=env, stdout=subprocess.DEVNULL))
    for p in procs:
        if p.wait() != 0:
            raise RuntimeError("a chained step failed")
    return time.perf_counter() - start


def bench_chain(runs: int, cmds: dict[str, list[str]], n: int = 10) -> None:
    print(f"\n(b) {n} steps started at once, each waiting for the previous post file, vs no waiting;")
    print(f"    {runs} runs each, interleaved")
    with tempfile.TemporaryDirectory(dir=fast_tmp()) as tmp:
        for name, cmd in cmds.items():
            chained: list[float] = []
            free: list[float] = []
            for i in range(runs + 1):
                c, f = _chain(cmd, n, True, tmp), _chain(cmd, n, False, tmp)
                if i:
                    chained.append(c)
                    free.append(f)
            per_step = [(c - f) / (n - 1) for c, f in zip(chained, free, strict=True)]
            print(f"  {name:<22} chained {fmt_ms(chained)}   no waiting {fmt_ms(free)}")
            print(f"  {'':<22} hand-off per step (chained - no waiting) / {n - 1}: {fmt_ms(per_step)}")
        print("  target: < 20 ms of hand-off per step (Tekton polls once a second: ~500 ms on average)")


class Agent:
    """The local Workload API server, as a separate process (as a SPIRE agent would be)."""

    def __init__(self, spiffe_id: str, tmp: str) -> None:
        self.socket = os.path.join(tempfile.mkdtemp(prefix="agent", dir="/tmp"), "agent.sock")
        self.bundle = os.path.join(tmp, "bundle.pem")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "entrypoint.testing.workload_api", "--socket", self.socket,
             "--trust-domain", "example.org", "--spiffe-id", spiffe_id, "--bundle-out", self.bundle],
            stdout=subprocess.PIPE, text=True, cwd=REPO,
        )  # fmt: skip
        assert self.proc.stdout is not None
        if not self.proc.stdout.readline().startswith("ready"):
            raise RuntimeError("the local Workload API server did not start")

    @property
    def address(self) -> str:
        return f"unix://{self.socket}"

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(10)


def bench_signing(runs: int, cmds: dict[str, list[str]]) -> None:
    name, cmd = next(iter(cmds.items()))
    n = 10
    seconds = os.environ.get("BENCH_STEP_SECONDS", "0.3")
    print(f"\n(c) a step running {seconds} s that writes {n} results: SPIRE-signed vs unsigned ({name});")
    print(f"    {runs} runs each, interleaved")
    with tempfile.TemporaryDirectory(dir=fast_tmp()) as tmp:
        agent = Agent("spiffe://example.org/ns/bench/taskrun/run", tmp)
        try:
            writes = "; ".join(f"printf 'sha256:%064d' {i} > $R/IMAGE{i}_DIGEST" for i in range(n))
            script = f"{writes}; sleep {seconds}"
            names = ",".join(f"IMAGE{i}_DIGEST" for i in range(n))
            samples: dict[str, list[float]] = {"unsigned": [], "signed": []}
            for i in range(runs + 1):
                for variant, kept in samples.items():
                    root = Path(tmp) / f"{variant}-{i}"
                    (root / "results").mkdir(parents=True)
                    sign = (
                        ["-enable_spire", "-spire_socket_path", agent.address] if variant == "signed" else []
                    )
                    args = [*cmd, *sign, "-termination_path", str(root / "termination"),
                            "-step_metadata_dir", str(root / "status"), "-post_file", str(root / "out"),
                            "-results", names, "-entrypoint", "/bin/sh", "--", "-c", script]  # fmt: skip
                    env = {**os.environ, ROOT_ENV: str(root), "R": str(root / "results")}
                    s = spawn(args, env)
                    if i:
                        kept.append(s.seconds)
                    if variant == "signed" and "RESULT_MANIFEST" not in (root / "termination").read_text():
                        raise RuntimeError("the signed step produced no signature")
            # Each signed run follows its unsigned twin: the median of the paired differences
            # cancels the machine's drift, which moves either median by several ms between runs.
            paired = [sg - un for sg, un in zip(samples["signed"], samples["unsigned"], strict=True)]
            for variant, ss in samples.items():
                print(f"  {variant:<22} {fmt_ms(ss)}")
            print(f"  {'added by signing':<22} {fmt_ms(paired)}  (median of paired differences)")
            print("  target: <= 5 ms added on the critical path")
        finally:
            agent.stop()


def openssl_verify_rate(curve: str = "ecdsap256") -> float | None:
    """What this machine's OpenSSL does alone: ``openssl speed`` verifications per second."""
    openssl = shutil.which("openssl")
    if openssl is None:
        return None
    out = subprocess.run([openssl, "speed", "-seconds", "2", "-elapsed", curve],
                         capture_output=True, text=True, check=False).stdout  # fmt: skip
    for line in out.splitlines():
        if "ecdsa" in line and "bits" in line:
            return float(line.split()[-1])
    return None


def bench_verify(runs: int, cmds: dict[str, list[str]]) -> None:
    from entrypoint._internal.backends.spire.evidence import x509_identity
    from entrypoint._internal.signing.compact_format import CompactFormat
    from entrypoint._internal.signing.tekton_format import TektonFormat
    from entrypoint.termination import RunResult, encode_message
    from entrypoint.testing.ca import TestCA
    from entrypoint.verify import TrustBundle, verify_message

    del cmds
    n = 10
    ca = TestCA("example.org")
    svid = ca.issue_svid("spiffe://example.org/ns/bench/taskrun/run")
    entries = [RunResult(f"IMAGE{i}_DIGEST", f"sha256:{i:064x}", 1) for i in range(n)]
    ident = x509_identity(svid.key, svid.chain, svid.spiffe_id)
    trust = TrustBundle("example.org", (ca.root_cert,))
    started = RunResult("StartedAt", "2026-11-22T10:00:00.000Z", 3)
    messages = {
        # each result, the manifest, and the leaf's signature by the CA
        "tekton": (
            encode_message([*entries, *TektonFormat().sign(entries, ident), started]).decode(),
            n + 2,
            0.70,
        ),
        # the statement, and the leaf's signature by the CA
        "compact": (
            encode_message(
                CompactFormat("0").seal_options([*entries, started], ident, frozenset())[0]
            ).decode(),
            2,
            0.50,
        ),
    }
    bound = openssl_verify_rate()
    print(f"\n(d) verifier throughput, {n} results, one core (median of half-second runs)")
    for name, (message, checks, target) in messages.items():

        def check(message: str = message) -> bool:
            return verify_message(message, namespace="bench", name="run", trust=trust).verified

        rate = throughput(runs, check)
        line = f"  {name:<8} verify_message {rate:8.0f} messages/s"
        if bound:
            per_message = bound / checks
            line += (f"   OpenSSL bound {per_message:6.0f}/s ({bound:.0f} P-256 verifies/s / {checks})"
                     f"   ratio {rate / per_message:4.0%}  target >= {target:.0%}")  # fmt: skip
        print(line)


def digest_results(n: int) -> list[RunResult]:
    """``n`` image-digest results.  Real digests are random hex: compression gets no help from
    repetition, so these are SHA-256 outputs too."""
    import hashlib

    from entrypoint.termination import RunResult

    return [RunResult(f"IMAGE{i}_DIGEST", "sha256:" + hashlib.sha256(str(i).encode()).hexdigest(), 1)
            for i in range(n)]  # fmt: skip


def most_that_fit(fits: Callable[[int], bool]) -> int:
    """The largest n for which ``fits(n)`` holds (``fits`` holds for every smaller n too)."""
    n = 0
    while fits(n + 1):
        n += 1
    return n


def capacity_table() -> tuple[int, dict[str, int]]:
    """The largest number of image-digest results whose signed message fits in 4096 bytes."""
    import hashlib

    from cryptography.hazmat.primitives.serialization import Encoding

    from entrypoint._internal.backends.spire.evidence import X509Evidence, x509_identity
    from entrypoint._internal.signing.compact_format import CompactFormat
    from entrypoint._internal.signing.tekton_format import TektonFormat
    from entrypoint.termination import MAX_MESSAGE_BYTES, RunResult, encode_message
    from entrypoint.testing.ca import TestCA

    svid = TestCA("example.org").issue_svid(
        "spiffe://example.org/ns/my-namespace/taskrun/build-image-run-x7k2p"
    )
    ident = x509_identity(svid.key, svid.chain, svid.spiffe_id)
    leaf_size = len(svid.chain[0].public_bytes(Encoding.DER))
    started = RunResult("StartedAt", "2026-11-22T10:00:00.000Z", 3)
    digest = hashlib.sha256(X509Evidence(svid.chain).chain_der()).digest()

    def fits(variant: str, n: int) -> bool:
        entries = digest_results(n)
        compressed = variant.endswith("tknz:")
        if variant.startswith("unsigned"):
            message = [*entries, started]
        elif variant.startswith("tekton"):
            message = [*entries, *TektonFormat().sign(entries, ident), started]
        else:
            options = CompactFormat("2").seal_options([*entries, started], ident, frozenset({digest}))
            message = options[1] if "reference" in variant else options[0]
        return len(encode_message(message, compressed)) <= MAX_MESSAGE_BYTES

    out = {}
    for variant in ("unsigned", "tekton", "tekton + tknz:", "compact", "compact + tknz:",
                    "compact, chain by reference", "compact, chain by reference + tknz:"):  # fmt: skip
        out[variant] = most_that_fit(functools.partial(fits, variant))
    return leaf_size, out


def bench_capacity(runs: int, cmds: dict[str, list[str]]) -> None:
    del runs, cmds
    leaf, table = capacity_table()
    print("\n(e) capacity: image-digest results (IMAGEn_DIGEST = sha256:<64 hex>) that fit in 4096 bytes,")
    print(f"    SPIRE-shaped P-256 SVID leaf of {leaf} bytes DER, StartedAt included")
    targets = {"compact": ">= 30", "compact + tknz:": ">= 55"}
    for variant, n in table.items():
        print(f"  {variant:<38} {n:4d}   {('target ' + targets[variant]) if variant in targets else ''}")


# (issuer, namespace, pod, service account, node): the token carries all of them.
SA_TOKEN_CLUSTERS = {
    "typical names": (
        "https://kubernetes.default.svc.cluster.local",
        "my-namespace", "build-image-run-x7k2p-pod", "pipeline", "node-1",
    ),
    "long names": (
        "https://container.googleapis.com/v1/projects/acme-platform-builds-prod/locations/europe-west4/clusters/build-cluster-01",
        "team-platform-build-production", "release-candidate-build-and-publish-multiarch-images-run-x7k2p",
        "tekton-pipelines-build-bot", "gke-build-cluster-01-default-pool-1a2b3c4d-x7k2",
    ),
}  # fmt: skip


def oidc_sa_token_budget() -> list[tuple[str, str, str, int, int, int, int, int]]:
    """Per cluster naming, token algorithm and format: the bytes of the message with the issue's
    budget of image-digest results (5 tekton, 20 compact), and the most that fit, plain and with
    tknz:."""
    import datetime as dt

    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

    from entrypoint._internal.backends.k8s_sat.common import key_audience
    from entrypoint._internal.backends.k8s_sat.evidence import token_identity
    from entrypoint._internal.signing.compact_format import CompactFormat
    from entrypoint._internal.signing.identity import Identity
    from entrypoint._internal.signing.tekton_format import TektonFormat
    from entrypoint.termination import MAX_MESSAGE_BYTES, RunResult, encode_message
    from entrypoint.testing.kube import KubeAPIServer

    started = RunResult("StartedAt", "2026-11-22T10:00:00.000Z", 3)

    rows = []
    for cluster, (issuer, namespace, pod, sa, node) in SA_TOKEN_CLUSTERS.items():
        for alg in ("RS256", "ES256"):
            server = KubeAPIServer(alg=alg, issuer=issuer)
            server.add_pod(namespace, pod, "0d8b260e-5b1c-4b8e-9a55-6f1f0b1c2d3e", sa, node)
            key = ec.generate_private_key(ec.SECP256R1())
            spki = key.public_key().public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)
            token = server.issue_token(namespace, sa, pod, audiences=[key_audience(spki)], expires_in=600)
            ident = token_identity(key, token, dt.datetime.now(dt.UTC), "bench")

            def message(fmt: str, n: int, compressed: bool, ident: Identity = ident) -> int:
                entries = digest_results(n)
                if fmt == "tekton":
                    msg = [*entries, *TektonFormat().sign(entries, ident), started]
                else:
                    msg = CompactFormat("2").seal_options([*entries, started], ident, frozenset())[0]
                return len(encode_message(msg, compressed))

            def fits(fmt: str, compressed: bool, n: int, ident: Identity = ident) -> bool:
                return message(fmt, n, compressed, ident) <= MAX_MESSAGE_BYTES

            for fmt, budget in (("tekton", 5), ("compact", 20)):
                most = {
                    compressed: most_that_fit(functools.partial(fits, fmt, compressed))
                    for compressed in (False, True)
                }
                size = message(fmt, budget, False)
                rows.append((cluster, alg, fmt, len(token), budget, size, most[False], most[True]))
    return rows


def bench_oidc_sa_token(runs: int, cmds: dict[str, list[str]]) -> None:
    del runs, cmds
    print("\n(f) oidc-sa-token budget: termination message bytes (limit 4096) with the issue's budget of")
    print("    image-digest results (5 tekton, 20 compact), and the most that fit; bound SA tokens of")
    print("    two clusters: typical names, and long ones (GKE-style issuer URL, 63-character pod name)")
    for cluster, alg, fmt, token, budget, size, most, most_z in oidc_sa_token_budget():
        ok = "ok" if size <= 4096 else "OVER"
        print(f"  {cluster:<14} {alg} token {token:4d} B  {fmt:<8} {budget:2d} results: {size:4d} B ({ok:>4})"
              f"   most: {most:2d}, with tknz: {most_z:2d}")  # fmt: skip


def bench_binary(runs: int, cmds: dict[str, list[str]]) -> None:
    """The built executable (tools/bench_packaging.py): size, /bin/true step, signing, init copy."""
    del cmds
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    import bench_packaging

    print("\n(g) the packaged executable (make binary)")
    if bench_packaging.main(["--runs", str(runs)]) != 0:
        print("  no dist/bin/entrypoint: run `make binary`")


def bench_entrypoint_image(runs: int, cmds: dict[str, list[str]]) -> None:
    """The entrypoint image (tools/bench_image.py): its size and the init container's copy."""
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from bench_image import bench_image

    print("\n(h) the entrypoint image (make image)")
    bench_image(runs, cmds)


def bench_go_pair(runs: int, cmds: dict[str, list[str]]) -> None:
    """The executable beside Tekton's Go entrypoint, on tmpfs and on disk (tools/bench_go.py)."""
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    import bench_go

    bench_go.bench_go_pair(runs, cmds)


SECTIONS: dict[str, Callable[[int, dict[str, list[str]]], None]] = {
    "true-step": bench_true_step,
    "chain": bench_chain,
    "signing": bench_signing,
    "verify": bench_verify,
    "capacity": bench_capacity,
    "oidc-sa-token": bench_oidc_sa_token,
    "sigstore-keyless": bench_sigstore,
    "binary": bench_binary,
    "image": bench_entrypoint_image,
    "go-pair": bench_go_pair,
    "taskrun-verify": bench_taskrun_verify,
    "controller": bench_controller,
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=int(os.environ.get("BENCH_RUNS", "30")))
    parser.add_argument("--only", choices=sorted(SECTIONS), action="append")
    ns = parser.parse_args(argv)
    cmds = entrypoint_commands()
    print(
        f"signed-entrypoint benchmark: {os.cpu_count()} CPUs, Python {sys.version.split()[0]}, "
        f"{time.strftime('%Y-%m-%d %H:%M:%S')}"
    )
    for name, section in SECTIONS.items():
        if ns.only and name not in ns.only:
            continue
        section(ns.runs, cmds)
    return 0


if __name__ == "__main__":
    sys.exit(main())
