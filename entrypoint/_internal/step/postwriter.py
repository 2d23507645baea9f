"""The post file (``<post>`` or ``<post>.err``) and the ``exitCode`` file.

The next step's waiter keys on these, so a failure to write them is fatal (Tekton's behaviour):
the lifecycle turns PostFileError into an immediate exit 1, with no termination message.
"""

from __future__ import annotations

import os

from entrypoint._internal.go.errors import GoPathError, mkdir_all, path_error
from entrypoint._internal.go.flag import go_quote
from entrypoint.errors import PostFileError


class FilePostWriter:
    """Writes the post file (and ``.err`` on failure) that the next step waits for."""

    def write(self, file: str, content: str) -> None:
        if not file:
            return
        parent = os.path.dirname(file)
        if parent:
            try:
                mkdir_all(parent)
            except GoPathError as exc:
                raise PostFileError(f"Error creating parent directory of {go_quote(file)}: {exc}") from exc
        try:
            fd = os.open(file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o666)
        except OSError as exc:
            raise PostFileError(f"Creating {go_quote(file)}: {path_error('open', file, exc)}") from exc
        try:
            if content:
                os.write(fd, content.encode())
        except OSError as exc:
            raise PostFileError(f"Writing {go_quote(file)}: {path_error('write', file, exc)}") from exc
        finally:
            os.close(fd)
