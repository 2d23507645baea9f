"""Go-compatible quoting, error texts and file operations shared by the credential writers.

Strings that come from argv or from secret files are Python ``str`` decoded with
``surrogateescape``, so they carry arbitrary bytes exactly as Go's ``string`` does; every helper
here re-encodes with ``surrogateescape`` to act on the same bytes Go would.
"""

from __future__ import annotations

import os

from entrypoint._internal.go import errors as goerrors
from entrypoint._internal.go import path as gopath
from entrypoint._internal.go.errors import errno_text
from entrypoint._internal.go.flag import go_quote
from entrypoint.errors import EntrypointError, FlagValueError

FS_ENCODING = "utf-8"
FS_ERRORS = "surrogateescape"


class CredentialError(EntrypointError):
    """A credential secret could not be read or a credential file could not be written.

    The text is the Go error text (for example ``open /tekton/creds-secrets/x/username: no such
    file or directory``) because operators compare these log lines with the Go entrypoint's.
    """


def to_bytes(s: str) -> bytes:
    return s.encode(FS_ENCODING, FS_ERRORS)


def from_bytes(b: bytes) -> str:
    return b.decode(FS_ENCODING, FS_ERRORS)


# -- Go strconv.Quote --------------------------------------------------------------------------------


def go_quote_bytes(b: bytes) -> str:
    return go_quote(from_bytes(b))


# -- Go os errors ------------------------------------------------------------------------------------


def path_error(op: str, path: str, exc: OSError) -> CredentialError:
    """Go's ``*fs.PathError`` text: ``<op> <path>: <errno text>``."""
    return CredentialError(f"{op} {path}: {errno_text(exc.errno)}")


# -- Go os file operations -------------------------------------------------------------------------


def read_file(path: str) -> bytes:
    """Go's ``os.ReadFile``: an open failure is reported as ``open …``, a read failure
    (e.g. the path is a directory) as ``read …``."""
    try:
        fd = os.open(to_bytes(path), os.O_RDONLY | os.O_CLOEXEC)
    except OSError as exc:
        raise path_error("open", path, exc) from exc
    try:
        chunks: list[bytes] = []
        while True:
            try:
                chunk = os.read(fd, 1 << 16)
            except OSError as exc:
                raise path_error("read", path, exc) from exc
            if not chunk:
                return b"".join(chunks)
            chunks.append(chunk)
    finally:
        os.close(fd)


def _write_all(fd: int, path: str, data: bytes) -> None:
    view = memoryview(data)
    while view:
        try:
            n = os.write(fd, view)
        except OSError as exc:
            raise path_error("write", path, exc) from exc
        view = view[n:]


def write_file(path: str, data: bytes, perm: int) -> None:
    """Go's ``os.WriteFile``: create with ``perm`` (masked by umask), or truncate an existing
    file and keep its mode."""
    _write_new(path, data, perm, os.O_TRUNC)


def append_file(path: str, data: bytes, perm: int) -> None:
    _write_new(path, data, perm, os.O_APPEND)


def _write_new(path: str, data: bytes, perm: int, mode_flag: int) -> None:
    try:
        fd = os.open(to_bytes(path), os.O_WRONLY | os.O_CREAT | mode_flag | os.O_CLOEXEC, perm)
    except OSError as exc:
        raise path_error("open", path, exc) from exc
    try:
        _write_all(fd, path, data)
    finally:
        os.close(fd)


def mkdir_all(path: str, perm: int) -> None:
    """Go's ``os.MkdirAll``, with its error texts (an existing non-directory is ENOTDIR)."""
    try:
        goerrors.mkdir_all(path, perm)
    except goerrors.GoPathError as exc:
        raise CredentialError(str(exc)) from exc


# -- flag values ---------------------------------------------------------------------------------------


def split_secret_url(value: str) -> tuple[str, str]:
    """Split ``secret=url`` on every ``=``, as Go does, so a URL holding ``=`` is rejected."""
    parts = value.split("=")
    if len(parts) != 2:
        raise FlagValueError(f"expect entries of the form secret=url, got: {value}")
    return parts[0], parts[1]


def secret_file(secrets_dir: str, secret: str, key: str) -> str:
    """``<secrets_dir>/<secret>/<key>``, built as Go does (``Sprintf`` then ``filepath.Join``)."""
    return gopath.join(f"{secrets_dir}/{secret}", key)
