"""Reading files that someone else controls, with a size bound and without hanging.

A step can make a result, a token or a message path anything: ``/dev/zero``, a 300 MB sparse file,
a FIFO nobody writes to.  Reading such a file whole costs memory without bound, and opening a FIFO
blocks until a writer comes.  Every read here stops one byte past its bound and every open is
non-blocking; pipes (``<(kubectl ...)``) are then read as usual, until their writer closes them.
Only ``os`` is imported: the step's hot path uses this.
"""

from __future__ import annotations

import errno
import os

_CHUNK = 1 << 16
# A service-account token or another bearer token: a few KiB; far more is not one.
TOKEN_FILE_LIMIT = 64 << 10


def too_large(limit: int) -> OSError:
    """The error of an input larger than ``limit`` bytes (``strerror`` says so in words)."""
    return OSError(errno.EFBIG, f"larger than {limit} bytes")


def read_fd(fd: int, limit: int) -> bytes:
    """All of ``fd`` up to ``limit`` bytes; more raises :func:`too_large`'s error."""
    chunks: list[bytes] = []
    size = 0
    while size <= limit:
        chunk = os.read(fd, min(_CHUNK, limit + 1 - size))
        if not chunk:
            return b"".join(chunks)
        chunks.append(chunk)
        size += len(chunk)
    raise too_large(limit)


def open_nonblocking(path: str) -> int:
    """``path`` opened for reading without waiting for a FIFO's writer, then made blocking again so
    that a pipe with a live writer is read to its end (one with none reads as empty)."""
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    try:
        os.set_blocking(fd, True)
    except OSError:
        os.close(fd)
        raise
    return fd


def read_file(path: str, limit: int) -> bytes:
    """The bytes of ``path``, at most ``limit`` of them (OSError otherwise, as for any read error)."""
    fd = open_nonblocking(path)
    try:
        return read_fd(fd, limit)
    finally:
        os.close(fd)
