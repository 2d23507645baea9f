"""``make bench`` section ``go-pair``: the executable against Tekton's own Go entrypoint.

Both run the same ``/bin/true`` step, interleaved run by run, on a tmpfs root and on a
disk-backed one (in a real pod ``/tekton`` is an emptyDir on the node's disk).  Tekton's
entrypoint is built from the Go module proxy at the release pinned in tools/peers.sh; without Go
the section says so and measures nothing.
"""

from __future__ import annotations

import os
import shutil
import statistics
import subprocess
import tempfile
from pathlib import Path

from benchlib import REPO, Sample, fast_tmp, fmt_ms, rusage_helper, spawn

ROOT_ENV = "SIGNED_ENTRYPOINT_ROOT"
BINARY = REPO / "dist" / "bin" / "entrypoint"


def go_entrypoint() -> tuple[str, str] | None:
    """The path and version of Tekton's Go entrypoint, built if missing; None without Go."""
    proc = subprocess.run(["bash", str(REPO / "tools" / "peers.sh"), "path", "entrypoint"],
                          capture_output=True, text=True, check=False)  # fmt: skip
    if proc.returncode != 0:
        print(f"  Tekton's Go entrypoint is not available: {proc.stderr.strip().splitlines()[-1:]}")
        return None
    path = proc.stdout.strip()
    version = Path(path).resolve().name.rsplit("-", 1)[-1]
    return path, version


def filesystem(path: str) -> str:
    proc = subprocess.run(["stat", "-f", "-c", "%T", path], capture_output=True, text=True, check=False)
    return proc.stdout.strip() or "?"


def step(cmd: list[str], root: str) -> list[str]:
    for name in ("termination", "out"):
        Path(root, name).unlink(missing_ok=True)
    return [*cmd, "-post_file", f"{root}/out", "-termination_path", f"{root}/termination",
            "-step_metadata_dir", f"{root}/status", "-entrypoint", shutil.which("true") or "/bin/true",
            "--"]  # fmt: skip


def ratio(ours: list[Sample], go: list[Sample], key: str) -> float:
    def median(ss: list[Sample]) -> float:
        return statistics.median(float(getattr(s, key)) for s in ss)

    return median(ours) / median(go)


def bench_go_pair(runs: int, cmds: dict[str, list[str]]) -> None:
    del cmds
    runs = max(runs, 40)
    print(f"\n(i) a /bin/true step: the executable vs Tekton's Go entrypoint, {runs} runs each, interleaved")
    if not BINARY.exists():
        print("  no dist/bin/entrypoint: run `make binary`")
        return
    found = go_entrypoint()
    if found is None:
        return
    go, version = found
    rusage = rusage_helper()
    disk_base = REPO / "build"
    disk_base.mkdir(exist_ok=True)
    with (
        tempfile.TemporaryDirectory(dir=fast_tmp()) as tmpfs,
        tempfile.TemporaryDirectory(dir=disk_base) as disk,
    ):
        roots = {f"tmpfs ({filesystem(tmpfs)})": tmpfs, f"disk ({filesystem(disk)})": disk}
        variants = {"ours": [str(BINARY)], f"Go {version}": [go]}
        samples: dict[tuple[str, str], list[Sample]] = {(v, r): [] for r in roots for v in variants}
        for i in range(runs + 2):
            for where, root in roots.items():
                for name, cmd in variants.items():
                    s = spawn(step(cmd, root), {**os.environ, ROOT_ENV: root}, rusage)
                    if i >= 2:  # the first two warm the page cache
                        samples[(name, where)].append(s)
    print(f"  {'root':<14} {'entrypoint':<12} {'wall time':<26} {'CPU (user+sys)':<26} {'peak RSS':>9}")
    for (name, where), ss in samples.items():
        peak = statistics.median(s.max_rss_kib for s in ss) / 1024
        print(f"  {where:<14} {name:<12} {fmt_ms([s.seconds for s in ss]):<26} "
              f"{fmt_ms([s.cpu_seconds for s in ss]):<26} {peak:6.1f} MiB")  # fmt: skip
    for where in roots:
        ours, theirs = samples[("ours", where)], samples[(f"Go {version}", where)]
        print(f"  {where:<14} ours / Go: wall {ratio(ours, theirs, 'seconds'):.2f}, "
              f"CPU {ratio(ours, theirs, 'cpu_seconds'):.2f}")  # fmt: skip
