"""Legacy credential initialisation ("creds-init", spec §2.4): the five credential flags, the
files they produce under ``/tekton/creds`` and the copy of those files into ``$HOME``."""

from __future__ import annotations

import errno
import os
import stat

from entrypoint._internal.go import path as gopath
from entrypoint._internal.go.errors import errno_text
from entrypoint._internal.go.flag import go_quote
from entrypoint._internal.step.creds._common import (
    CredentialError,
    from_bytes,
    mkdir_all,
    path_error,
    to_bytes,
)

TYPE_CHECKING = False  # not typing.TYPE_CHECKING: importing typing costs a step ~1.7 ms
if TYPE_CHECKING:
    from entrypoint._internal.go.flag import FlagSet
    from entrypoint._internal.step.creds._flags import CredentialValues
    from entrypoint._internal.step.creds.dockercreds import BasicDocker, SecretList
    from entrypoint._internal.step.creds.gitcreds import BasicGitConfig, SSHGitConfig

__all__ = [
    "CREDS_INIT_CREDENTIALS",
    "CredentialError",
    "CredentialFlags",
    "copy_to_home",
]

# What creds-init can write under the creds directory, and so what is copied to $HOME.
CREDS_INIT_CREDENTIALS = (".docker", ".gitconfig", ".git-credentials", ".ssh")

_DIR_PERM = 0o700
_FILE_PERM = 0o600


class CredentialFlags:
    """The ``-basic-git``, ``-ssh-git``, ``-basic-docker``, ``-docker-config`` and
    ``-docker-cfg`` flags, and the credential files built from them.

    ``secrets_dir`` is where the controller mounts the secrets (normally
    ``/tekton/creds-secrets``); secret files are read while the flags are parsed.  The code
    behind the flags is loaded on first use, so a step without credentials never imports it.
    """

    def __init__(self, secrets_dir: str) -> None:
        self.secrets_dir = secrets_dir
        self._values: CredentialValues | None = None

    def values(self) -> CredentialValues:
        if self._values is None:
            from entrypoint._internal.step.creds._flags import CredentialValues

            self._values = CredentialValues(self.secrets_dir)
        return self._values

    def register(self, fs: FlagSet) -> None:
        for name, usage in _FLAGS:
            fs.var(_LazyFlag(self, name), name, usage)

    def write(self, creds_dir: str) -> list[str]:
        """Write the credential files under ``creds_dir``: Docker first, then Git.

        Returns one ``Error initializing credentials: <err>`` line per failed builder; a
        failure is not fatal, the step still runs.
        """
        return [] if self._values is None else self._values.write(creds_dir)

    # The parsed values, for tests and for whoever wants to inspect them.
    @property
    def basic_git(self) -> BasicGitConfig:
        return self.values().basic_git

    @property
    def ssh_git(self) -> SSHGitConfig:
        return self.values().ssh_git

    @property
    def basic_docker(self) -> BasicDocker:
        return self.values().basic_docker

    @property
    def docker_config(self) -> SecretList:
        return self.values().docker_config

    @property
    def docker_cfg(self) -> SecretList:
        return self.values().docker_cfg


class _LazyFlag:
    is_bool = False

    def __init__(self, owner: CredentialFlags, name: str) -> None:
        self._owner = owner
        self._name = name

    def set(self, value: str) -> None:
        self._owner.values().flag(self._name).set(value)

    def string(self) -> str:
        return "" if self._owner._values is None else self._owner._values.flag(self._name).string()


# Names and usage texts as Tekton registers them (kept here so that -help needs no heavy import).
_FLAGS = (
    ("basic-git", "List of secret=url pairs."),
    ("ssh-git", "List of secret=url pairs."),
    ("basic-docker", "List of secret=url pairs."),
    ("docker-config", "Docker config.json secret file."),
    ("docker-cfg", "Docker .dockercfg secret file."),
)


def copy_to_home(creds_dir: str, home: str | None) -> list[str]:
    """Copy each of :data:`CREDS_INIT_CREDENTIALS` from ``creds_dir`` into ``home`` (spec §2.4.7).

    Steps may run as a user other than the one that wrote ``creds_dir``, and git and ssh only
    look in ``$HOME``.  Returns the non-fatal log lines: one warning per item that failed, or a
    single error line when ``home`` is unknown (``None`` or empty, as go-homedir treats an empty
    ``$HOME``).  A missing ``creds_dir`` is not an error.
    """
    try:
        info = os.stat(to_bytes(creds_dir))
    except OSError:
        return []
    if not stat.S_ISDIR(info.st_mode):
        return []
    if not home:
        err = "error getting the user's home directory: $HOME is not defined"
        return [f"non-fatal error copying credentials: {go_quote(err)}"]
    lines: list[str] = []
    for cred in CREDS_INIT_CREDENTIALS:
        try:
            _try_copy(gopath.join(creds_dir, cred), gopath.join(home, cred))
        except CredentialError as exc:
            lines.append(
                f"warning: unsuccessful cred copy: {go_quote(cred)} from {go_quote(creds_dir)} "
                f"to {go_quote(home)}: {exc}"
            )
    return lines


def _try_copy(source: str, destination: str) -> None:
    """Copy ``source`` recursively; a missing source is skipped.  Directories are created 0700
    and files created or truncated 0600, because these are secrets."""
    src = to_bytes(source)
    try:
        info = os.lstat(src)
    except OSError as exc:
        if exc.errno == errno.ENOENT:
            return
        raise CredentialError(f"unable to read source file info: {path_error('lstat', source, exc)}") from exc
    try:
        src_fd = os.open(src, os.O_RDONLY | os.O_CLOEXEC)
    except OSError as exc:
        if exc.errno == errno.ENOENT:  # e.g. a dangling symlink
            return
        raise CredentialError(f"unable to open source: {path_error('open', source, exc)}") from exc
    try:
        if stat.S_ISDIR(info.st_mode):
            try:
                mkdir_all(destination, _DIR_PERM)
            except CredentialError as exc:
                raise CredentialError(f"unable to create destination directory: {exc}") from exc
            try:
                names = os.listdir(src)
            except OSError as exc:
                raise CredentialError(
                    f"unable to read subdirectories of source: readdirent {source}: {errno_text(exc.errno)}"
                ) from exc
            for name in names:
                child = from_bytes(name)
                _try_copy(gopath.join(source, child), gopath.join(destination, child))
        else:
            _copy_file(src_fd, source, destination)
    finally:
        os.close(src_fd)


def _copy_file(src_fd: int, source: str, destination: str) -> None:
    try:
        dst_fd = os.open(
            to_bytes(destination), os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, _FILE_PERM
        )
    except OSError as exc:
        raise CredentialError(f"unable to open destination: {path_error('open', destination, exc)}") from exc
    try:
        while True:
            try:
                chunk = os.read(src_fd, 1 << 16)
            except OSError as exc:
                raise CredentialError(
                    f"error copying from source to destination: {path_error('read', source, exc)}"
                ) from exc
            if not chunk:
                return
            view = memoryview(chunk)
            while view:
                try:
                    written = os.write(dst_fd, view)
                except OSError as exc:
                    raise CredentialError(
                        f"error copying from source to destination: {path_error('write', destination, exc)}"
                    ) from exc
                view = view[written:]
    finally:
        os.close(dst_fd)
