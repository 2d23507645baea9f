"""Go's texts for operating-system errors (``*fs.PathError``: ``<op> <path>: <errno text>``), and
the file operations whose failures Go reports differently from Python.

Operators grep step logs for these; they read the same as the Go entrypoint's.
"""

from __future__ import annotations

import errno
import os
import stat

from entrypoint.errors import EntrypointError


def errno_text(code: int | None) -> str:
    """The text of Go's ``syscall.Errno``: glibc's message with a lower-case first letter."""
    if code is None:
        return "unknown error"
    try:
        text = os.strerror(code)
    except ValueError:
        text = ""
    if not text or text.startswith("Unknown error"):
        return f"errno {code}"
    return text[0].lower() + text[1:]


def path_error(op: str, path: str, exc: OSError) -> str:
    return f"{op} {path}: {errno_text(exc.errno)}"


def read_file_error(path: str, exc: OSError) -> str:
    """Go's ``os.ReadFile`` opens a directory fine and fails on the read; Python fails the open."""
    return path_error("read" if exc.errno == errno.EISDIR else "open", path, exc)


class GoPathError(EntrypointError):
    """An OS error worded as Go words it (the message is the whole text)."""


def mkdir_all(path: str, perm: int = 0o777) -> None:
    """Go's ``os.MkdirAll``: an existing non-directory anywhere on the path fails with ENOTDIR,
    naming that component (Python's ``makedirs`` says "file exists" and names the leaf)."""
    raw = os.fsencode(path)
    try:
        st = os.stat(raw)
    except OSError:
        pass
    else:
        if stat.S_ISDIR(st.st_mode):
            return
        raise GoPathError(f"mkdir {path}: {errno_text(errno.ENOTDIR)}")
    parent = path.rstrip("/")
    cut = parent.rfind("/")
    if cut > 0:
        mkdir_all(parent[:cut], perm)
    try:
        os.mkdir(raw, perm)
    except OSError as exc:
        # Another writer may have created it meanwhile; Go accepts an existing directory.
        if os.path.isdir(raw):
            return
        raise GoPathError(path_error("mkdir", path, exc)) from exc
