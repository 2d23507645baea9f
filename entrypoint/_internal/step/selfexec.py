"""How to start another interpreter of our own (for helper processes), and where the packaged
build lives.

In a development install that is ``sys.executable``.  The packaged build (tools/build_binary.py)
runs its interpreter through a static launcher that calls the bundle's own dynamic loader, so that
it runs in images without a C library; the launcher passes itself as ``-X
entrypoint_launcher=PATH``, an interpreter option that child processes do not inherit, and the
bundle is the directory ``RUNTIME_DIR`` beside it (tools/launcher.c).
"""

from __future__ import annotations

import sys

RUNTIME_DIR = "entrypoint-runtime"  # tools/launcher.c and tools/build_binary.py use the same name


def launcher() -> str | None:
    """The packaged executable this interpreter runs under (its real path), or None."""
    path = sys._xoptions.get("entrypoint_launcher")
    return path if isinstance(path, str) and path else None


def python_command() -> list[str]:
    """The argv prefix that starts a bare interpreter of ours (append its options and code).

    The launcher switches to the bare interpreter only when ``--python`` is its first argument,
    which Tekton never passes: a Go entrypoint would reject it as an undefined flag.
    """
    exe = launcher()
    if exe is not None:
        return [exe, "--python"]
    return [sys.executable]


def make_undumpable() -> None:
    """Keep other processes of the same user (the step's own code) out of this one's memory and
    file descriptors through /proc: PR_SET_DUMPABLE 0.  Processes with CAP_SYS_PTRACE still get
    in, and exec resets it, so every process that holds key material calls this itself."""
    try:
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(4, 0, 0, 0, 0)  # 4: PR_SET_DUMPABLE
    except (OSError, AttributeError):
        pass  # not Linux, or no libc: nothing else to do
