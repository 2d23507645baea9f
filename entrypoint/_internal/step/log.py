"""Log lines on stderr in Go's ``log`` format (``YYYY/MM/DD HH:MM:SS message``).

Never pass key material or tokens here: step logs are readable by anyone who can read the pod.
"""

from __future__ import annotations

import sys
import time


def log(message: str) -> None:
    stamp = time.strftime("%Y/%m/%d %H:%M:%S")
    try:
        sys.stderr.write(f"{stamp} {message}\n")
        sys.stderr.flush()
    except (OSError, ValueError):
        pass  # a closed stderr must not change the step's outcome
