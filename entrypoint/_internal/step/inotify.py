"""Minimal inotify binding through ctypes (the standard library has none).

Tekton polls wait files once a second, so a chain of N steps loses up to N seconds; with inotify the
next step starts within milliseconds of the previous post file appearing.  Everything here degrades
to ``None``/``False`` when inotify is unavailable so that callers can fall back to fast polling.
"""

from __future__ import annotations

import contextlib
import ctypes
import functools
import os

IN_MODIFY = 0x002
IN_ATTRIB = 0x004
IN_CLOSE_WRITE = 0x008
IN_MOVED_TO = 0x080
IN_CREATE = 0x100
IN_DELETE_SELF = 0x400
IN_MOVE_SELF = 0x800
IN_CLOEXEC = 0o2000000
IN_NONBLOCK = 0o4000

WATCH_MASK = IN_MODIFY | IN_ATTRIB | IN_CLOSE_WRITE | IN_MOVED_TO | IN_CREATE | IN_DELETE_SELF | IN_MOVE_SELF


@functools.cache
def _load() -> ctypes.CDLL | None:
    try:
        lib = ctypes.CDLL(None, use_errno=True)
        lib.inotify_init1.argtypes = [ctypes.c_int]
        lib.inotify_add_watch.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_uint32]
    except (OSError, AttributeError):
        return None
    return lib


class Inotify:
    """One inotify instance watching directories; ``fileno`` becomes readable on any event."""

    def __init__(self) -> None:
        lib = _load()
        if lib is None:
            raise OSError("inotify is not available")
        fd = lib.inotify_init1(IN_NONBLOCK | IN_CLOEXEC)
        if fd < 0:
            err = ctypes.get_errno()
            raise OSError(err, os.strerror(err))
        self._lib = lib
        self.fd: int = fd

    def fileno(self) -> int:
        return self.fd

    def add_watch(self, directory: str) -> bool:
        wd = self._lib.inotify_add_watch(self.fd, os.fsencode(directory), WATCH_MASK)
        return bool(wd >= 0)

    def drain(self) -> None:
        with contextlib.suppress(BlockingIOError):
            while os.read(self.fd, 65536):
                pass

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1
