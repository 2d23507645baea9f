"""``-basic-git`` and ``-ssh-git``: Git credentials from ServiceAccount secrets (spec §2.4.1, §2.4.2).

Secrets are read while the flags are parsed, as Go's ``flag.Value.Set`` does, so a missing
secret file is a usage error (exit 2) rather than a later, non-fatal write error.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import TypeVar

from entrypoint._internal.go import path as gopath
from entrypoint._internal.go import url as gourl
from entrypoint._internal.go.flag import go_quote
from entrypoint._internal.step.creds._common import (
    CredentialError,
    append_file,
    from_bytes,
    mkdir_all,
    read_file,
    secret_file,
    split_secret_url,
    to_bytes,
    write_file,
)
from entrypoint.errors import FlagValueError

BASIC_AUTH_FLAG = "basic-git"
SSH_FLAG = "ssh-git"
FLAG_USAGE = "List of secret=url pairs."

_DEFAULT_SSH_PORT = "22"

_T = TypeVar("_T")


def _host_only_first(items: Iterable[_T], is_host_only: Callable[[_T], bool]) -> list[_T]:
    # Git and ssh take the first matching entry, so host-wide credentials must come before
    # repository-specific ones to act as fallbacks; the sort is stable so flag order is kept.
    return sorted(items, key=lambda item: not is_host_only(item))


# -- basic auth ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class BasicEntry:
    """One ``-basic-git`` secret: the URL it is for and the credentials to write."""

    secret: str
    username: str
    password: str
    auth_url: gourl.URL

    @property
    def has_path(self) -> bool:
        return self.auth_url.path not in ("", "/")


class BasicGitConfig:
    """The ``-basic-git`` flag value: URL -> credentials, in the order the URLs were given."""

    is_bool = False

    def __init__(self, secrets_dir: str) -> None:
        self._secrets_dir = secrets_dir
        self._entries: dict[str, BasicEntry] = {}

    @property
    def entries(self) -> Mapping[str, BasicEntry]:
        return self._entries

    def set(self, value: str) -> None:
        secret, url = split_secret_url(value)
        if url in self._entries:
            raise FlagValueError(f"multiple entries for url: {url}")
        try:
            username = from_bytes(read_file(secret_file(self._secrets_dir, secret, "username")))
            password = from_bytes(read_file(secret_file(self._secrets_dir, secret, "password")))
            auth_url = gourl.parse(url)
        except (CredentialError, gourl.URLError) as exc:
            raise FlagValueError(str(exc)) from exc
        auth_url.user = gourl.Userinfo(username, password)
        self._entries[url] = BasicEntry(secret, username, password, auth_url)

    def string(self) -> str:
        return ",".join(f"{entry.secret}={url}" for url, entry in self._entries.items())

    def write(self, directory: str) -> None:
        """Write ``.gitconfig`` (store helper, per-URL username) and ``.git-credentials``."""
        if not self._entries:
            return
        blocks = ["[credential]\n\thelper = store\n"]
        for url, entry in self._entries.items():
            # git-config treats a backslash as an escape inside values.
            username = entry.username.replace("\\", "\\\\")
            block = f"[credential {go_quote(url)}]\n\tusername = {username}\n"
            if entry.has_path:
                # Without it git matches credentials by host only and the per-repository
                # entries could never be told apart.
                block += "\tuseHttpPath = true\n"
            blocks.append(block)
        write_file(gopath.join(directory, ".gitconfig"), to_bytes("".join(blocks)), 0o600)

        ordered = _host_only_first(self._entries.values(), lambda e: not e.has_path)
        lines = [entry.auth_url.string() for entry in ordered]
        lines.append("")  # the file ends with a newline
        write_file(gopath.join(directory, ".git-credentials"), to_bytes("\n".join(lines)), 0o600)


# -- ssh -------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SSHEntry:
    """One ``-ssh-git`` secret: the host it is for and the key to write."""

    secret: str
    private_key: bytes
    known_hosts: bytes


@dataclass(frozen=True)
class SSHTarget:
    """An ``-ssh-git`` URL split as ``host[:port][/repository/path]``."""

    host: str
    port: str
    repo: str  # without the leading "/"; empty for a host-only URL

    @property
    def alias(self) -> str:
        """The ``Host`` name used in ``.ssh/config``: one per repository, so ssh picks that
        repository's key instead of the first key configured for the host."""
        if not self.repo:
            return self.host
        return self.host + "--" + self.repo.replace("/", "--")


def split_host_port(hostport: str) -> tuple[str, str]:
    """Go's ``net.SplitHostPort``; raises ValueError with Go's reason."""
    colon = hostport.rfind(":")
    if colon < 0:
        raise ValueError("missing port in address")
    start, end_search = 0, 0
    if hostport[0] == "[":
        close = hostport.find("]")
        if close < 0:
            raise ValueError("missing ']' in address")
        if close + 1 == len(hostport):
            raise ValueError("missing port in address")
        if close + 1 != colon:
            if hostport[close + 1] == ":":
                raise ValueError("too many colons in address")
            raise ValueError("missing port in address")
        host = hostport[1:close]
        start, end_search = 1, close + 1
    else:
        host = hostport[:colon]
        if ":" in host:
            raise ValueError("too many colons in address")
    if "[" in hostport[start:]:
        raise ValueError("unexpected '[' in address")
    if "]" in hostport[end_search:]:
        raise ValueError("unexpected ']' in address")
    return host, hostport[colon + 1 :]


def parse_ssh_url(url: str) -> SSHTarget:
    slash = url.find("/")
    hostport, path = (url, "") if slash < 0 else (url[:slash], url[slash:])
    try:
        host, port = split_host_port(hostport)
    except ValueError:
        host, port = hostport, _DEFAULT_SSH_PORT
    return SSHTarget(host=host, port=port, repo=path[1:])


class SSHGitConfig:
    """The ``-ssh-git`` flag value: URL -> keys (several secrets may serve one URL, in order)."""

    is_bool = False

    def __init__(self, secrets_dir: str) -> None:
        self._secrets_dir = secrets_dir
        self._entries: dict[str, list[SSHEntry]] = {}

    @property
    def entries(self) -> Mapping[str, list[SSHEntry]]:
        return self._entries

    def set(self, value: str) -> None:
        secret, url = split_secret_url(value)
        try:
            private_key = read_file(secret_file(self._secrets_dir, secret, "ssh-privatekey"))
        except CredentialError as exc:
            raise FlagValueError(str(exc)) from exc
        try:
            known_hosts = read_file(secret_file(self._secrets_dir, secret, "known_hosts"))
        except CredentialError:
            known_hosts = b""  # optional: without it ssh asks the server for its key
        self._entries.setdefault(url, []).append(SSHEntry(secret, private_key, known_hosts))

    def string(self) -> str:
        return ",".join(f"{e.secret}={url}" for url, entries in self._entries.items() for e in entries)

    def write(self, directory: str) -> None:
        """Write ``.ssh/id_<secret>``, ``.ssh/config``, ``.ssh/known_hosts`` and, for URLs with a
        repository path, the ``insteadOf`` rewrites that route clones through the host alias."""
        if not self._entries:
            return
        ssh_dir = gopath.join(directory, ".ssh")
        mkdir_all(ssh_dir, 0o777)
        targets = [(parse_ssh_url(url), entries) for url, entries in self._entries.items()]
        config: list[str] = []
        known_hosts: list[bytes] = []
        rewrites: list[str] = []
        for target, entries in _host_only_first(targets, lambda t: not t[0].repo):
            block = f"Host {target.alias}\n    HostName {target.host}\n    Port {target.port}\n"
            for entry in entries:
                key_path = gopath.join(ssh_dir, "id_" + entry.secret)
                write_file(key_path, entry.private_key, 0o600)
                block += f"    IdentityFile {key_path}\n"
                if entry.known_hosts:
                    known_hosts.append(entry.known_hosts)
            config.append(block)
            if target.repo:
                rewrites.append(_insteadof_blocks(target))
        write_file(gopath.join(ssh_dir, "config"), to_bytes("".join(config)), 0o600)
        if known_hosts:
            write_file(gopath.join(ssh_dir, "known_hosts"), b"\n".join(known_hosts), 0o600)
        if rewrites:
            append_file(gopath.join(directory, ".gitconfig"), to_bytes("".join(rewrites)), 0o600)


def _insteadof_blocks(target: SSHTarget) -> str:
    repo = target.repo + ".git"
    ssh_host = target.host if target.port == _DEFAULT_SSH_PORT else f"{target.host}:{target.port}"
    return (
        f'[url "git@{target.alias}:{repo}"]\n'
        f"\tinsteadOf = git@{target.host}:{repo}\n"
        f'[url "ssh://{target.alias}/{repo}"]\n'
        f"\tinsteadOf = ssh://{ssh_host}/{repo}\n"
    )


def write(basic: BasicGitConfig, ssh: SSHGitConfig, directory: str) -> None:
    """Go's git builder: basic auth first; an error there skips the ssh files."""
    basic.write(directory)
    ssh.write(directory)
