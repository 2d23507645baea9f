"""Faults as tests (issue 15), continued: the disk full under each file the entrypoint writes.

A small tmpfs is mounted, in turn, where the termination file, the step's run directory (post
file, ``exitCode``), the post file alone and the task results live, and filled (its blocks, or its
blocks and inodes) so that the write there fails with ENOSPC.  Each case runs unsigned and
SPIRE-signed in both formats.  Invariants: one line naming the file (never a traceback), a non-zero
exit, whatever lies elsewhere still written as Tekton writes it (a failed post file or ``exitCode``
write is Go's ``log.Fatalf``: exit 1 at once, no termination message), and no helper left behind.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from entrypoint.testing.workload_api import WorkloadAPIServer
from tests.support import faults
from tests.support.faults import SIGNING_ENTRIES, finish, one_clear_line, sh, start
from tests.support.tekton import TektonRoot

ENOSPC = "no space left on device"
SIGNING = {
    "unsigned": [],
    "spire-tekton": ["-signature_format=tekton"],
    "spire-compact": ["-signature_format=compact"],
}


@dataclass(frozen=True)
class DiskCase:
    """``mount``: the directory (under the root) that becomes a full tmpfs; ``prepare`` runs on it
    before it is filled; ``inodes``: fill the inodes too (no file can be created, not only grown);
    ``args``: the step's arguments; ``error``: what the one error line says; then what must exist
    afterwards."""

    mount: str
    args: Callable[[TektonRoot], list[str]]
    error: Callable[[TektonRoot], str]
    inodes: bool = True
    prepare: Callable[[Path], None] = lambda _: None
    returncode: int = 1
    post: str | None = "out"  # which post file is written (None: neither)
    exit_code: str | None = "0"
    termination: str = "results"  # "results" (written, with them), "empty" ("[]"), "none"


def _args(root: TektonRoot, *, termination: Path | None = None, post: Path | None = None,
          script: str = "") -> list[str]:  # fmt: skip
    run = root.run_dir(0)
    results = root / "results"
    return ["-post_file", str(post or run / "out"), "-termination_path", str(termination or root.termination),
            "-step_metadata_dir", str(run / "status"), "-results", "a",
            *sh(script or f"printf 1 > '{results}/a'")]  # fmt: skip


def _make_status_dirs(run: Path) -> None:
    for d in ("status/results", "status/artifacts"):
        (run / d).mkdir(parents=True)


TERMINATION_ON_FULL = "full/termination"
CASES: dict[str, DiskCase] = {
    # The kubelet creates the termination file before the container starts: only its blocks run out.
    "termination-file-exists": DiskCase(
        mount="full",
        prepare=lambda d: (d / "termination").touch(),
        inodes=False,
        args=lambda r: _args(r, termination=r / TERMINATION_ON_FULL),
        error=lambda r: f"Error while writing message: write {r / TERMINATION_ON_FULL}: {ENOSPC}",
        termination="none",
    ),
    "termination-file-absent": DiskCase(
        mount="full",
        args=lambda r: _args(r, termination=r / TERMINATION_ON_FULL),
        error=lambda r: f"Error while writing message: open {r / TERMINATION_ON_FULL}: {ENOSPC}",
        termination="none",
    ),
    # R1 (the metadata directories) fails before the command: nothing ran, nothing is posted, and
    # the termination message (elsewhere) is written, as Tekton's entrypoint does.
    "run-dir": DiskCase(
        mount="run/0",
        args=_args,
        error=lambda r: f"mkdir {r.run_dir(0) / 'status'}: {ENOSPC}",
        post=None,
        exit_code=None,
        termination="empty",
    ),
    # The run directory is there (the post file is created empty) but exitCode's one byte has no block.
    "exit-code": DiskCase(
        mount="run/0",
        prepare=_make_status_dirs,
        inodes=False,
        args=_args,
        error=lambda r: (
            f'Writing "{r.run_dir(0) / "status" / "exitCode"}": '
            f"write {r.run_dir(0) / 'status' / 'exitCode'}: {ENOSPC}"
        ),
        exit_code="",  # created, as Go's os.Create does, then its one byte lost
        termination="none",
    ),
    "post-file": DiskCase(
        mount="posts",
        args=lambda r: _args(r, post=r / "posts" / "out"),
        error=lambda r: f'Creating "{r / "posts" / "out"}": open {r / "posts" / "out"}: {ENOSPC}',
        post=None,
        exit_code=None,
        termination="none",
    ),
    # The command's own write fails: the step records that the command failed, with the empty
    # result it left; only the shell has something to say.
    "results-dir": DiskCase(
        mount="results",
        inodes=False,
        args=_args,
        error=lambda r: "/bin/sh: ",
        returncode=1,
        post="out.err",
        exit_code=None,
        termination="results",
    ),
}
DISK_CASES = [(name, signing) for name in CASES for signing in SIGNING]


@pytest.mark.parametrize(("name", "signing"), DISK_CASES, ids=["/".join(c) for c in DISK_CASES])
def test_disk_full(root: TektonRoot, agent: WorkloadAPIServer, name: str, signing: str) -> None:
    case = CASES[name]
    args = case.args(root)
    if signing != "unsigned":
        args = ["-enable_spire", "-spire_socket_path", agent.address, "-signing_timeout", "20s",
                *SIGNING[signing], *args]  # fmt: skip
    with faults.small_tmpfs(root / case.mount) as full:
        case.prepare(full)
        faults.fill(full) if case.inodes else faults.fill_blocks(full)
        p, left = finish(start(root, args))
        files = {
            "out": (root.run_dir(0) / "out").exists() or (root / "posts" / "out").exists(),
            "out.err": (root.run_dir(0) / "out.err").exists(),
        }
        exit_code_file = root.run_dir(0) / "status" / "exitCode"
        exit_code = exit_code_file.read_text() if exit_code_file.exists() else None
        termination = root.termination if case.termination != "none" else root / TERMINATION_ON_FULL
        message = termination.read_text() if termination.exists() else None
    assert not left, left
    assert p.returncode == case.returncode, p.stderr
    if name == "results-dir":
        # The shell's complaint, not ours: the entrypoint itself has nothing to say.
        assert "Traceback" not in p.stderr, p.stderr
        lines = faults.error_lines(p.stderr)
        assert lines and all(line.startswith(case.error(root)) for line in lines), p.stderr
    else:
        one_clear_line(p.stderr, case.error(root))
    assert {k for k, v in files.items() if v} == ({case.post} if case.post else set())
    assert exit_code == case.exit_code
    if case.termination == "none":
        assert not message, message  # a full disk keeps nothing (a pre-existing file stays empty)
    elif case.termination == "empty":
        assert message is not None
        assert {e.key for e in root.entries()} <= SIGNING_ENTRIES  # nothing collected, maybe sealed
    else:
        values = root.values()
        assert values["a"] == ("", 1) and "StartedAt" in values
        if signing != "unsigned":
            assert SIGNING_ENTRIES & set(values)
