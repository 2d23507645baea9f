"""How to start another interpreter of our own (for helper processes).

In a development install that is ``sys.executable``.  A packaged build may run its interpreter
through a launcher (for instance one that calls a bundled dynamic loader, so that the bundle runs
in images without a C library); it then passes itself as ``-X entrypoint_launcher=PATH``, an
interpreter option that child processes do not inherit.
"""

from __future__ import annotations

import sys


def python_command() -> list[str]:
    launcher = sys._xoptions.get("entrypoint_launcher")
    if isinstance(launcher, str) and launcher:
        return [launcher, "--python"]
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
