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
