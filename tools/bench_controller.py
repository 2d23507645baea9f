"""``make bench``'s controller sections: whole-TaskRun verifications per second, and the time from
a TaskRun's completion to its ``SignedResultsVerified`` condition with 1,000 TaskRuns queued."""

from __future__ import annotations

import statistics
import sys
import time
from collections.abc import Callable

from benchlib import REPO

sys.path.insert(0, str(REPO))  # tests.support: the signed TaskRuns the tests use too


def _rate(runs: int, check: Callable[[], bool]) -> float:
    rates = []
    for _ in range(max(runs // 3, 5)):
        count, start = 0, time.perf_counter()
        while time.perf_counter() - start < 0.5:
            if not check():
                raise RuntimeError("a benchmark TaskRun did not verify")
            count += 1
        rates.append(count / (time.perf_counter() - start))
    return statistics.median(rates)


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

            rate = _rate(runs, check)
            print(f"  {backend:<8} {fmt:<8} {rate:7.0f} TaskRuns/s   ({1000 / rate:.2f} ms each)")
