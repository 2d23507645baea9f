"""The entrypoint image: its size, and how long Tekton's init container takes to copy the executable.

Run standalone (``python tools/bench_image.py --runs 10``) or import ``bench_image`` / ``measure``.
Needs the image built (``make image``) and podman able to run it (images/README.md).

The copy time is measured the only way that counts for a TaskRun: the init container itself, run
with ``podman run`` into a fresh host directory on disk (what an emptyDir is on a node), as
``init /ko-app/entrypoint /tekton/bin/entrypoint step-a step-b step-c``.  A container start costs
more than the copy, so each init run is paired with a run of the same image doing only the rest of
``init`` (``step-init step-a step-b step-c``: same container, same interpreter start), and the
median of the paired differences is the copy itself.  The image's files are in the page cache
after the first run, as they are on a node that has pulled the image.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
IMAGE = "localhost/signed-entrypoint:latest"
DIST_BIN = REPO / "dist" / "bin"
STEPS = ("step-a", "step-b", "step-c")
# Tekton's Go entrypoint (default build, SPIRE compiled in), ../shared/reference/packaging-and-baseline.md.
GO_ENTRYPOINT_BYTES = 66_500_000


@dataclass
class ImageFigures:
    image_bytes: int  # as the engine reports it: the unpacked size on a node
    compressed_bytes: int | None  # gzip -6 of `podman save`: about what a registry pull transfers
    dist_bytes: int
    dist_files: int
    init_runs: list[float]  # seconds: the init container, start to exit
    baseline_runs: list[float]  # seconds: the same container without the copy
    copy: list[float]  # seconds: paired differences


def podman_env() -> dict[str, str]:
    env = dict(os.environ)
    env.setdefault("CONTAINERS_CONF", str(REPO / "images" / "containers.conf"))
    return env


def podman(*args: str, timeout: float = 300) -> subprocess.CompletedProcess[bytes]:
    proc = subprocess.run(
        ["podman", *args], env=podman_env(), capture_output=True, timeout=timeout, check=False
    )
    if proc.returncode != 0:
        raise RuntimeError(
            f"podman {' '.join(args)} exited {proc.returncode}: {proc.stderr.decode(errors='replace')}"
        )
    return proc


def tree_size(path: Path) -> tuple[int, int]:
    """Bytes of regular files (symlinks not followed) and number of entries under ``path``."""
    total = count = 0
    for root, dirs, files in os.walk(path):
        for name in files:
            st = os.lstat(os.path.join(root, name))
            total += st.st_size
        count += len(files) + len(dirs)
    return total, count


def compressed_size(image: str) -> int:
    """gzip -6 of the saved image, streamed (nothing written to disk)."""
    proc = subprocess.Popen(
        ["podman", "save", "--format", "docker-archive", image],
        env=podman_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
    )
    assert proc.stdout is not None
    gz = zlib.compressobj(6, zlib.DEFLATED, 31)
    size = 0
    while chunk := proc.stdout.read(1 << 20):
        size += len(gz.compress(chunk))
    size += len(gz.flush())
    if proc.wait() != 0:
        raise RuntimeError(f"podman save {image} failed")
    return size


def _timed_run(image: str, volume: str, args: Sequence[str]) -> float:
    start = time.perf_counter()
    podman("run", "--rm", "--network", "none", "-v", f"{volume}:/tekton/bin", image, *args)
    return time.perf_counter() - start


def measure(runs: int = 10, image: str = IMAGE, compressed: bool = True) -> ImageFigures:
    try:
        image_bytes = int(podman("image", "inspect", "--format", "{{.Size}}", image).stdout)
    except (RuntimeError, FileNotFoundError) as err:
        raise RuntimeError(f"cannot inspect {image} (build it with `make image`): {err}") from err
    dist_bytes, dist_files = tree_size(DIST_BIN)
    init_runs: list[float] = []
    baseline_runs: list[float] = []
    copy: list[float] = []
    scratch = Path(tempfile.mkdtemp(prefix="bench-image-", dir="/var/tmp"))  # on disk, as an emptyDir is
    try:
        _timed_run(image, str(scratch), ["step-init"])  # warm the page cache and the storage layers
        for i in range(runs):
            pair = {}
            # Alternate which goes first, so that neither always follows the other's cache effects.
            order = ("init", "base") if i % 2 == 0 else ("base", "init")
            for kind in order:
                volume = scratch / f"{kind}-{i}"
                volume.mkdir()
                if kind == "init":
                    args = ["init", "/ko-app/entrypoint", "/tekton/bin/entrypoint", *STEPS]
                else:
                    args = ["step-init", *STEPS]
                pair[kind] = _timed_run(image, str(volume), args)
                shutil.rmtree(volume)
            init_runs.append(pair["init"])
            baseline_runs.append(pair["base"])
            copy.append(pair["init"] - pair["base"])
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return ImageFigures(
        image_bytes=image_bytes,
        compressed_bytes=compressed_size(image) if compressed else None,
        dist_bytes=dist_bytes,
        dist_files=dist_files,
        init_runs=init_runs,
        baseline_runs=baseline_runs,
        copy=copy,
    )


def _ms(values: Sequence[float]) -> str:
    ms = [v * 1000 for v in values]
    return f"{statistics.median(ms):7.1f} ms ({min(ms):.1f}-{max(ms):.1f})"


def _mb(n: int) -> str:
    return f"{n / 1e6:.1f} MB"


def report(figures: ImageFigures, runs: int, image: str = IMAGE) -> None:
    f = figures
    print(f"\n(i) the entrypoint image ({image}) and Tekton's init copy, {runs} runs")
    print(f"  {'dist/bin/':<34} {_mb(f.dist_bytes):>10}  ({f.dist_files} files and directories)")
    go = _mb(GO_ENTRYPOINT_BYTES)
    print(f"  {'image, unpacked':<34} {_mb(f.image_bytes):>10}  (Go entrypoint binary: {go})")
    if f.compressed_bytes is not None:
        print(f"  {'image, gzip -6 (about a pull)':<34} {_mb(f.compressed_bytes):>10}")
    print(f"  {'init container, start to exit':<34} {_ms(f.init_runs)}")
    print(f"  {'same container, no copy':<34} {_ms(f.baseline_runs)}")
    print(f"  {'the copy itself':<34} {_ms(f.copy)}  (median of paired differences)")


def bench_image(runs: int, cmds: object = None) -> None:
    """The section for tools/bench.py (``cmds`` is accepted for its section signature, unused)."""
    runs = max(3, min(runs, 15))  # each run starts two containers: ~0.5 s
    report(measure(runs), runs)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--image", default=IMAGE)
    parser.add_argument("--no-compressed", action="store_true", help="skip the gzip size (~3 s)")
    args = parser.parse_args(argv)
    if shutil.which("podman") is None:
        print("bench_image: podman is not installed (bash images/ensure-tools.sh)", file=sys.stderr)
        return 1
    try:
        report(measure(args.runs, args.image, compressed=not args.no_compressed), args.runs, args.image)
    except RuntimeError as err:
        print(f"bench_image: {err}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
