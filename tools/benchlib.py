"""What the benchmark sections share: timing a process, its peak memory, and formatting.

Peak RSS comes from tools/rusage.c, a small parent that forks the command and reports its
children's peak, so that the benchmark's own (large) memory does not count.  It is built once
into build/; without a C compiler memory is reported as n/a.
"""

from __future__ import annotations

import os
import shutil
import statistics
import subprocess
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


@dataclass
class Sample:
    seconds: float
    max_rss_kib: int
    cpu_seconds: float = 0.0  # user + system time of the process and its children


def rusage_helper() -> str | None:
    """Build tools/rusage.c once (None without a C compiler)."""
    out, src = REPO / "build" / "rusage", REPO / "tools" / "rusage.c"
    if out.exists() and out.stat().st_mtime >= src.stat().st_mtime:
        return str(out)
    cc = shutil.which("cc") or shutil.which("gcc")
    if cc is None:
        return None
    out.parent.mkdir(exist_ok=True)
    subprocess.run([cc, "-O2", "-o", str(out), str(src)], check=True)
    return str(out)


def spawn(argv: Sequence[str], env: dict[str, str] | None = None, rusage: str | None = None) -> Sample:
    """Run a process to completion: wall time (timed directly); with ``rusage`` (the helper), the
    peak RSS from a second, separate run, so that the helper's fork does not count in the time."""
    environ = env if env is not None else dict(os.environ)
    quiet = [(os.POSIX_SPAWN_OPEN, fd, os.devnull, os.O_WRONLY, 0) for fd in (1, 2)]
    start = time.perf_counter()
    pid = os.posix_spawn(argv[0], list(argv), environ, file_actions=quiet)
    _, status, usage = os.wait4(pid, 0)
    elapsed = time.perf_counter() - start
    if os.waitstatus_to_exitcode(status) != 0:
        raise RuntimeError(f"{list(argv)} exited with {os.waitstatus_to_exitcode(status)}")
    peak = -1
    if rusage is not None:
        r, w = os.pipe()
        actions = [*quiet, (os.POSIX_SPAWN_DUP2, w, 3)]
        pid = os.posix_spawn(rusage, [rusage, *argv], environ, file_actions=actions)
        os.close(w)
        os.waitpid(pid, 0)
        with os.fdopen(r) as f:
            peak = int(f.read().strip() or -1)
    return Sample(elapsed, peak, usage.ru_utime + usage.ru_stime)


def fmt_ms(values: Sequence[float]) -> str:
    ms = [v * 1000 for v in values]
    return f"{statistics.median(ms):7.1f} ms ({min(ms):.1f}-{max(ms):.1f})"


def fmt_mib(values: Sequence[int]) -> str:
    if any(v < 0 for v in values):
        return "n/a (no C compiler for tools/rusage.c)"
    mib = [v / 1024 for v in values]
    return f"{statistics.median(mib):5.1f} MiB ({min(mib):.1f}-{max(mib):.1f})"


def fast_tmp() -> str | None:
    """A tmpfs directory: the termination file is fsync'ed (as Tekton does), and on a VM disk that
    alone adds 0-12 ms at random, which would hide the entrypoint's own cost."""
    return "/dev/shm" if os.path.isdir("/dev/shm") and os.access("/dev/shm", os.W_OK) else None


def throughput(runs: int, check: Callable[[], bool]) -> float:
    """Calls of ``check`` per second: the median of half-second runs (at least 5)."""
    rates = []
    for _ in range(max(runs // 3, 5)):
        count, start = 0, time.perf_counter()
        while time.perf_counter() - start < 0.5:
            if not check():
                raise RuntimeError("a benchmark input did not verify")
            count += 1
        rates.append(count / (time.perf_counter() - start))
    return statistics.median(rates)
