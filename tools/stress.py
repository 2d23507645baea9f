"""``make stress``: the integration suite, against the development install and against the
executable, several runs in a row while every core is kept busy by another process.

A signing error that names no cause, or a test that only passes on an idle machine, shows up
here and not on a developer's quiet machine.  The hog is one busy loop per core, in processes of
its own (never the tests'), stopped when the runs end or fail.  Bounded: ``--runs`` runs of at
most ``--run-timeout`` seconds each.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
HOG = "import time\nend = time.monotonic() + {limit}\nwhile time.monotonic() < end: pass\n"


def start_hog(limit: float) -> list[subprocess.Popen[bytes]]:
    cores = os.cpu_count() or 1
    return [subprocess.Popen([sys.executable, "-c", HOG.format(limit=limit)]) for _ in range(cores)]


def stop(hog: list[subprocess.Popen[bytes]]) -> None:
    for proc in hog:
        proc.send_signal(signal.SIGKILL)
        proc.wait()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", 1)[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--run-timeout", type=float, default=3600.0, help="seconds, per run")
    parser.add_argument("--no-executable", action="store_true", help="only the development install")
    parser.add_argument("--binary", type=Path, default=REPO / "dist" / "bin" / "entrypoint")
    parser.add_argument("pytest_args", nargs="*", default=["tests/integration"])
    ns = parser.parse_args(argv)
    targets: list[tuple[str, dict[str, str]]] = [("development install", {})]
    if not ns.no_executable:
        binary = ns.binary.resolve()
        if not binary.exists():
            print(f"stress: {binary} is missing: run `make binary` first", file=sys.stderr)
            return 2
        targets.append(("executable", {"ENTRYPOINT_BIN": str(binary)}))
    hog = start_hog(ns.runs * len(targets) * ns.run_timeout)
    print(f"stress: {len(hog)} busy loops started (one per core)", flush=True)
    start = time.monotonic()
    try:
        for run in range(1, ns.runs + 1):
            for label, env in targets:
                began = time.monotonic()
                proc = subprocess.run(
                    [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *ns.pytest_args],
                    cwd=REPO, env={**os.environ, **env}, timeout=ns.run_timeout, check=False,
                )  # fmt: skip
                took = time.monotonic() - began
                verdict = "passed" if proc.returncode == 0 else f"FAILED (exit {proc.returncode})"
                print(f"stress: run {run}/{ns.runs}, {label}: {verdict} in {took:.0f} s", flush=True)
                if proc.returncode != 0:
                    return 1
    finally:
        stop(hog)
    print(f"stress: {ns.runs} runs in a row green, cores busy throughout ({time.monotonic() - start:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
