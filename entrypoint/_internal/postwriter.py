"""The post file (``<post>`` or ``<post>.err``) and the ``exitCode`` file.

The next step's waiter keys on these, so a failure to write them is fatal (Tekton's behaviour).
"""

from __future__ import annotations

import os

from entrypoint.errors import PostFileError


class FilePostWriter:
    def write(self, file: str, content: str) -> None:
        if not file:
            return
        parent = os.path.dirname(file)
        if parent:
            try:
                os.makedirs(parent, 0o777, exist_ok=True)
            except OSError as exc:
                raise PostFileError(f'Error creating parent directory of "{file}": {exc.strerror}') from exc
        try:
            fd = os.open(file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o666)
        except OSError as exc:
            raise PostFileError(f'Creating "{file}": {exc.strerror}') from exc
        try:
            if content:
                os.write(fd, content.encode())
        except OSError as exc:
            raise PostFileError(f'Writing "{file}": {exc.strerror}') from exc
        finally:
            os.close(fd)
