"""The test doubles run as processes (``python -m entrypoint.testing.<module>``), as the demo and the
container tests run them: started, awaited until they print ``ready <address>``, and never left behind.
"""

from __future__ import annotations

import contextlib
import queue
import subprocess
import sys
import threading
from collections.abc import Iterator

START_TIMEOUT = 30.0


def command(module: str, *args: str) -> list[str]:
    return [sys.executable, "-m", module, *args]


def read_line(proc: subprocess.Popen[str], timeout: float) -> str:
    """The next line of ``proc``'s stdout, or ``queue.Empty`` after ``timeout`` seconds."""
    lines: queue.Queue[str] = queue.Queue()
    assert proc.stdout is not None
    stdout = proc.stdout
    threading.Thread(target=lambda: lines.put(stdout.readline()), daemon=True).start()
    return lines.get(timeout=timeout)


@contextlib.contextmanager
def serving(module: str, *args: str) -> Iterator[tuple[subprocess.Popen[str], str]]:
    """The double's process with ``args`` and the address it printed ready; killed if still up after."""
    proc = subprocess.Popen(
        command(module, *args), stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True
    )
    try:
        line = read_line(proc, timeout=START_TIMEOUT)
        word, _, address = line.partition(" ")
        assert word == "ready" and line.endswith("\n"), line
        yield proc, address.rstrip("\n")
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        assert proc.stdout is not None
        proc.stdout.close()


def run(module: str, *args: str) -> subprocess.CompletedProcess[str]:
    """The double's process with ``args``, to completion (for the ones that must refuse to start)."""
    return subprocess.run(
        command(module, *args), capture_output=True, text=True, timeout=START_TIMEOUT, check=False
    )
