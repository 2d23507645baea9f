"""``make bench``'s controller sections: whole-TaskRun verifications per second, and the time from
a TaskRun's completion to its ``SignedResultsVerified`` condition with 1,000 TaskRuns queued."""

from __future__ import annotations

import statistics
import sys
import time

from benchlib import REPO, throughput

sys.path.insert(0, str(REPO))  # tests.support: the signed TaskRuns the tests use too


def bench_taskrun_verify(runs: int, cmds: dict[str, list[str]]) -> None:
    from entrypoint.testing.ca import TestCA
    from entrypoint.verify import TrustBundle, TrustSet, Verifier
    from tests.support import tokens
    from tests.support.signed_taskruns import BACKENDS, FORMATS, signed_taskrun

    del cmds
    ca, issuer = TestCA("example.org"), tokens.Issuer("ES256")
    verifier = Verifier(TrustSet(spiffe=TrustBundle("example.org", ca.bundle), kube=issuer.jwks()))
    print("\n(k) whole-TaskRun verification (Verifier.verify_taskrun), one step, 10 results, one core")
    for backend in BACKENDS:
        for fmt in FORMATS:
            tr = signed_taskrun(ca, issuer, backend, fmt, "bench", "run")

            def check(tr: dict[str, object] = tr) -> bool:
                return verifier.verify_taskrun(tr).verified

            rate = throughput(runs, check)
            print(f"  {backend:<8} {fmt:<8} {rate:7.0f} TaskRuns/s   ({1000 / rate:.2f} ms each)")


def bench_controller(runs: int, cmds: dict[str, list[str]]) -> None:
    """1,000 done TaskRuns: made at once while the controller runs (each waits behind the others),
    and already there when it starts; seconds from each TaskRun's creation to its condition, as a
    watch of the API double sees them."""
    import tempfile
    import threading
    from pathlib import Path

    from entrypoint._internal.kube.client import KubeClient
    from entrypoint.controller.api import ControllerAPI
    from entrypoint.testing.ca import TestCA
    from entrypoint.testing.kube import KubeAPIServer
    from tests.support import tokens
    from tests.support.controller import CONTROLLER_NS, CONTROLLER_SA, ControllerProcess, wait_for
    from tests.support.signed_taskruns import signed_taskrun

    del runs
    n = 1000
    ca, issuer = TestCA("example.org"), tokens.Issuer("ES256")
    made = time.perf_counter()
    burst = [signed_taskrun(ca, issuer, "spire", "compact", "burst", f"tr-{i:04d}") for i in range(n)]
    backlog = [signed_taskrun(ca, issuer, "spire", "compact", "backlog", f"tr-{i:04d}") for i in range(n)]
    print(f"\n(l) controller: {n} done TaskRuns at once (spire, compact, 10 results; signed in "
          f"{time.perf_counter() - made:.0f} s), 2 workers, against the Kubernetes API double")  # fmt: skip
    with tempfile.TemporaryDirectory() as tmp, KubeAPIServer() as kube:
        directory = Path(tmp)
        kube.add_service_account(CONTROLLER_NS, CONTROLLER_SA)
        (directory / "token").write_text(kube.issue_token(CONTROLLER_NS, CONTROLLER_SA))
        (directory / "ca.crt").write_bytes(kube.ca_pem)
        (directory / "bundle.pem").write_bytes(ca.bundle_pem())
        args = ["--kube-api", kube.url, "--kube-token-file", str(directory / "token"),
                "--kube-ca-file", str(directory / "ca.crt"), "--trust-domain", "example.org",
                "--trust-bundle", str(directory / "bundle.pem"), "--kube-trust", "none",
                "--lease-namespace", CONTROLLER_NS]  # fmt: skip
        seen: dict[tuple[str, str], float] = {}
        stop = threading.Event()

        def watch() -> None:
            api = ControllerAPI(KubeClient(kube.url, token_file=str(directory / "token"),
                                           ca_file=str(directory / "ca.crt")))  # fmt: skip
            for event in api.watch_taskruns(None, "0", timeout_seconds=600):
                obj = event.get("object") or {}
                conds = (obj.get("status") or {}).get("conditions") or []
                if any(c.get("type") == "SignedResultsVerified" for c in conds):
                    meta = obj["metadata"]
                    seen.setdefault((meta["namespace"], meta["name"]), time.perf_counter())
                if stop.is_set():
                    return

        threading.Thread(target=watch, daemon=True).start()
        for tr in backlog:
            kube.create(tr)
        started = time.perf_counter()
        controller = ControllerProcess(directory, args)
        wait_for("the backlog", lambda: sum(k[0] == "backlog" for k in seen) == n, seconds=600, interval=0.1)
        backlog_s = max(t for k, t in seen.items() if k[0] == "backlog") - started
        created: dict[tuple[str, str], float] = {}
        for tr in burst:
            created[("burst", tr["metadata"]["name"])] = time.perf_counter()
            kube.create(tr)
        wait_for("the burst", lambda: sum(k[0] == "burst" for k in seen) == n, seconds=600, interval=0.1)
        stop.set()
        controller.stop()
        latency = sorted(seen[k] - t for k, t in created.items())
        spread = max(seen[k] for k in created) - min(created.values())
        print(
            f"  already there when it starts: all {n} recorded {backlog_s:.1f} s after the start "
            f"({n / backlog_s:.0f} TaskRuns/s, listing and start-up included)"
        )
        median = statistics.median(latency)
        print(f"  made at once while it runs:   creation -> condition median {median:.2f} s, "
              f"p90 {latency[int(n * 0.9)]:.2f} s, max {latency[-1]:.2f} s; {n / spread:.0f} TaskRuns/s; "
              f"the first {latency[0] * 1000:.0f} ms")  # fmt: skip
