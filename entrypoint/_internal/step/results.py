"""Collecting result and artifact files into termination entries (spec §5.1, §4.1 R8-R10)."""

from __future__ import annotations

import errno
import os
import stat
import time

from entrypoint._internal.bounded import read_fd
from entrypoint._internal.go.errors import read_file_error
from entrypoint._internal.go.json import decode_go_bytes
from entrypoint._internal.go.path import join
from entrypoint.errors import ResultsError
from entrypoint.termination import ResultType, RunResult

# Far beyond what a termination message can carry (4096 bytes; a tknz: message inflates to 128 KiB
# at most), and small enough that a step cannot make the entrypoint's memory its own (a 300 MB or
# sparse result file, read whole, is gigabytes of RSS or a MemoryError).
RESULT_FILE_LIMIT = 1 << 20


def phase_enabled(names: list[str]) -> bool:
    """Tekton reads a phase only when its first name is non-empty (``-results ",a"`` reads nothing)."""
    return bool(names) and names[0] != ""


def read_results(names: list[str], directory: str, result_type: ResultType) -> list[RunResult]:
    """The results that exist, in name order, each value being the file's exact bytes."""
    out: list[RunResult] = []
    for name in names:
        if not name:
            continue
        path = join(directory, name)
        data = _read_regular(path)
        if data is not None:
            out.append(RunResult(name, decode_go_bytes(data), int(result_type)))
    return out


def read_artifact(path: str, result_type: ResultType) -> RunResult | None:
    """The provenance file as one entry keyed by its full path; ``None`` if it does not exist."""
    data = _read_regular(path)
    return None if data is None else RunResult(path, decode_go_bytes(data), int(result_type))


def _read_regular(path: str) -> bytes | None:
    """A result file's bytes; ``None`` if it does not exist.

    Only regular files (symlinks to them included) are read.  Tekton reads anything, so a step
    can make a result a FIFO (the step then hangs) or a link to ``/proc/self/fd/N`` (the
    entrypoint reads one of its own descriptors, such as the signing helper's pipe, for the step).
    """
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise ResultsError(read_file_error(path, exc)) from exc
    try:
        mode = os.fstat(fd).st_mode
        if stat.S_ISDIR(mode):
            raise ResultsError(read_file_error(path, IsADirectoryError(errno.EISDIR, "is a directory")))
        if not stat.S_ISREG(mode):
            raise ResultsError(f"read {path}: not a regular file; results must be regular files")
        try:
            return read_fd(fd, RESULT_FILE_LIMIT)
        except OSError as exc:
            if exc.errno == errno.EFBIG:
                raise ResultsError(
                    f"read {path}: larger than {RESULT_FILE_LIMIT} bytes, more than any termination "
                    "message can carry"
                ) from exc
            raise
    except OSError as exc:
        raise ResultsError(read_file_error(path, exc)) from exc
    finally:
        os.close(fd)


def format_started_at(now_ns: int | None = None) -> str:
    """Go layout ``2006-01-02T15:04:05.000Z07:00`` in local time, milliseconds truncated.

    Built on ``time`` rather than ``datetime``, which would cost the step ~1 ms to import.
    """
    ns = time.time_ns() if now_ns is None else now_ns
    seconds, rest = divmod(ns, 1_000_000_000)
    t = time.localtime(seconds)
    base = time.strftime("%Y-%m-%dT%H:%M:%S", t) + f".{rest // 1_000_000:03d}"
    total = t.tm_gmtoff or 0
    if total == 0:
        return base + "Z"
    sign = "+" if total > 0 else "-"
    hours, rem = divmod(abs(total), 3600)
    return f"{base}{sign}{hours:02d}:{rem // 60:02d}"
