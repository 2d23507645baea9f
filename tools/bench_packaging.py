"""The built executable (``make binary``, dist/bin/): size, start-up, memory, signing, init copy.

Run it alone (``.venv/bin/python tools/bench_packaging.py [--runs N] [--binary PATH]``) or import
``main``/the ``bench_*`` functions.  As in tools/bench.py: medians of interleaved runs with
min-max in brackets, peak RSS through tools/rusage.c (a small forking parent, so that the
benchmark's own memory does not count), termination files on tmpfs (they are fsync'ed).
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import sysconfig
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

from benchlib import REPO, Sample, fast_tmp, fmt_mib, fmt_ms, rusage_helper, spawn

DIST = REPO / "dist" / "bin" / "entrypoint"
ROOT_ENV = "SIGNED_ENTRYPOINT_ROOT"
RUNTIME_DIR = "entrypoint-runtime"
GO_BYTES = 66.5e6


def lean_dev_command() -> list[str]:
    """The development interpreter started as tools/bench.py's ``lean (-I -S)`` variant."""
    purelib = sysconfig.get_paths()["purelib"]
    code = (
        f"import sys; sys.path[:0] = [{str(REPO)!r}, {purelib!r}]; sys.argv[0] = 'entrypoint'; "
        "from entrypoint.cli import run; run()"
    )
    return [sys.executable, "-I", "-S", "-c", code]


def step_args(root: str, command: Sequence[str]) -> list[str]:
    return ["-post_file", f"{root}/out", "-termination_path", f"{root}/termination", "-step_metadata_dir",
            f"{root}/status", "-entrypoint", command[0], "--", *command[1:]]  # fmt: skip


def bench_size(binary: Path) -> dict[str, float]:
    bundle = binary.parent
    files = [p for p in bundle.rglob("*") if p.is_file()]
    total = sum(p.stat().st_size for p in files)

    def part(pred: str) -> int:
        return sum(p.stat().st_size for p in files if p.match(pred))

    c_libraries = [p for p in files if p.parent.name == "lib" and ".so." in p.name]
    print(f"\n(a) size of {bundle}")
    print(f"  {total:,} bytes ({total / 1e6:.1f} MB) in {len(files)} files   target < {GO_BYTES / 1e6} MB "
          "(Tekton's Go entrypoint with SPIRE)")  # fmt: skip
    parts = {
        "launcher": binary.stat().st_size,
        "interpreter + loader": part("python") + part("ld-linux-x86-64.so.2"),
        # lib/ holds the C libraries and, named by their module, the extension modules.
        "C libraries (lib/*.so.N)": sum(p.stat().st_size for p in c_libraries),
        "extension modules (*.so)": part("*.so"),
        "byte-code pack (modules.pack)": part("modules.pack"),
        "byte-code files (*.pyc)": part("*.pyc"),
        "zip (tzdata, lark, metadata)": part("*.zip"),
    }
    for name, size in parts.items():
        print(f"  {name:<28} {size / 1e6:6.1f} MB")
    return {"bytes": total, "files": len(files)}


def bench_true_step(runs: int, binary: Path) -> dict[str, float]:
    true = shutil.which("true") or "/bin/true"
    rusage = rusage_helper()
    variants = {"binary": [str(binary)], "dev lean (-I -S)": lean_dev_command()}
    print(f"\n(b) one step running {true}: entrypoint vs {true} alone, {runs} runs each, interleaved")
    samples: dict[str, list[Sample]] = {name: [] for name in [f"{true} alone", *variants]}
    with tempfile.TemporaryDirectory(dir=fast_tmp()) as tmp:
        env = {**os.environ, ROOT_ENV: tmp}
        for i in range(runs + 2):
            s = spawn([true], env, rusage)
            if i >= 2:
                samples[f"{true} alone"].append(s)
            for name, cmd in variants.items():
                for f in ("termination", "out"):
                    Path(tmp, f).unlink(missing_ok=True)
                s = spawn([*cmd, *step_args(tmp, [true])], env, rusage)
                if i >= 2:
                    samples[name].append(s)
    base = statistics.median(s.seconds for s in samples[f"{true} alone"])
    print(f"  {'variant':<20} {'wall time':<26} {'added vs true':>13}   peak RSS")
    out = {}
    for name, ss in samples.items():
        added = statistics.median(s.seconds for s in ss) - base
        out[name] = added
        print(f"  {name:<20} {fmt_ms([s.seconds for s in ss]):<26} {added * 1000:10.1f} ms   "
              f"{fmt_mib([s.max_rss_kib for s in ss])}")  # fmt: skip
    print("  target (binary): <= 25 ms added at the median, peak < 20 MiB")
    return {"added_ms": out["binary"] * 1000,
            "peak_mib": statistics.median(s.max_rss_kib for s in samples["binary"]) / 1024}  # fmt: skip


def bench_signing(runs: int, binary: Path) -> dict[str, float]:
    n, seconds = 10, os.environ.get("BENCH_STEP_SECONDS", "0.3")
    rusage = rusage_helper()
    print(f"\n(c) the binary: a step running {seconds} s that writes {n} results, SPIRE-signed vs unsigned;")
    print(f"    {runs} runs each, interleaved (each signed run follows its unsigned twin)")
    sock_dir = tempfile.mkdtemp(prefix="agent", dir="/tmp")
    agent = subprocess.Popen(
        [sys.executable, "-m", "entrypoint.testing.workload_api", "--socket", f"{sock_dir}/agent.sock",
         "--trust-domain", "example.org", "--spiffe-id", "spiffe://example.org/ns/bench/taskrun/run"],
        stdout=subprocess.PIPE, text=True, cwd=REPO,
    )  # fmt: skip
    samples: dict[str, list[Sample]] = {"unsigned": [], "signed": []}
    try:
        assert agent.stdout is not None
        if not agent.stdout.readline().startswith("ready"):
            raise RuntimeError("the local Workload API server did not start")
        writes = "; ".join(f"printf 'sha256:%064d' {i} > $R/IMAGE{i}_DIGEST" for i in range(n))
        names = ",".join(f"IMAGE{i}_DIGEST" for i in range(n))
        with tempfile.TemporaryDirectory(dir=fast_tmp()) as tmp:
            for i in range(runs + 1):
                for variant, kept in samples.items():
                    root = Path(tmp) / f"{variant}-{i}"
                    (root / "results").mkdir(parents=True)
                    sign = ["-enable_spire", "-spire_socket_path", f"unix://{sock_dir}/agent.sock"]
                    command = ["/bin/sh", "-c", f"{writes}; sleep {seconds}"]
                    args = [str(binary), *(sign if variant == "signed" else []), "-results", names,
                            *step_args(str(root), command)]  # fmt: skip
                    env = {**os.environ, ROOT_ENV: str(root), "R": str(root / "results")}
                    s = spawn(args, env, rusage if i < 3 else None)
                    if i:
                        kept.append(s)
                    if variant == "signed" and "RESULT_MANIFEST" not in (root / "termination").read_text():
                        raise RuntimeError("the signed step produced no signature")
    finally:
        agent.terminate()
        agent.wait(10)
        shutil.rmtree(sock_dir, ignore_errors=True)
    paired = [sg.seconds - un.seconds for sg, un in zip(samples["signed"], samples["unsigned"], strict=True)]
    for variant, ss in samples.items():
        peaks = [s.max_rss_kib for s in ss if s.max_rss_kib >= 0]
        print(
            f"  {variant:<18} {fmt_ms([s.seconds for s in ss])}   peak {fmt_mib(peaks) if peaks else 'n/a'}"
        )
    print(f"  {'added by signing':<18} {fmt_ms(paired)}  (median of paired differences)")
    return {"added_ms": statistics.median(paired) * 1000}


def bench_init_copy(runs: int, binary: Path) -> dict[str, float]:
    """What Tekton's init container does: ``entrypoint init SRC /tekton/bin/entrypoint STEP...``
    into an empty directory (the emptyDir volume), beside ``cp`` of one file of the same size
    (what copying a single static binary of that size costs on the same disk)."""
    print(f"\n(d) `entrypoint init` copying the executable into an empty directory, {runs} runs each,")
    print("    interleaved with /bin/cp of one file of the same total size")
    size = sum(p.stat().st_size for p in binary.parent.rglob("*") if p.is_file())
    results = {}
    for where, base in (("disk", None), ("tmpfs", fast_tmp())):
        if where == "tmpfs" and base is None:
            continue
        times: dict[str, list[float]] = {"init": [], "cp, one file": []}
        with tempfile.TemporaryDirectory(dir=base) as tmp:
            blob = Path(tmp, "blob")
            blob.write_bytes(os.urandom(size))
            env = {**os.environ, ROOT_ENV: f"{tmp}/tekton"}
            for i in range(runs + 1):
                for name, kept in times.items():
                    dst = Path(tmp, f"{name}-{i}", "bin")
                    dst.mkdir(parents=True)
                    if name == "init":
                        argv = [str(binary), "init", str(binary), str(dst / "entrypoint"), "step-a", "step-b"]
                    else:
                        argv = [shutil.which("cp") or "/bin/cp", str(blob), str(dst / "entrypoint")]
                    s = spawn(argv, env)
                    if i:
                        kept.append(s.seconds)
                    shutil.rmtree(dst.parent)
        results[where] = statistics.median(times["init"])
        for name, kept in times.items():
            print(f"  {name:<14} on {where:<6} {fmt_ms(kept)}")
    return {f"{k}_ms": v * 1000 for k, v in results.items()}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", 1)[0])
    parser.add_argument("--runs", type=int, default=int(os.environ.get("BENCH_RUNS", "30")))
    parser.add_argument("--binary", type=Path, default=DIST, help="default: dist/bin/entrypoint")
    ns = parser.parse_args(argv)
    binary: Path = ns.binary.resolve()
    if not (binary.is_file() and (binary.parent / RUNTIME_DIR).is_dir()):
        print(f"{binary}: no packaged build there; run `make binary` first", file=sys.stderr)
        return 2
    runs = max(ns.runs, 20)
    print(f"packaged entrypoint benchmark: {os.cpu_count()} CPUs, {time.strftime('%Y-%m-%d %H:%M:%S')}")
    bench_size(binary)
    bench_true_step(runs, binary)
    bench_signing(runs, binary)
    bench_init_copy(runs, binary)
    return 0


if __name__ == "__main__":
    sys.exit(main())
