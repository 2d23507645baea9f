"""The credential flag values and the files built from them (loaded only when a credential
flag is actually given: most steps have none, and this code costs several milliseconds to import)."""

from __future__ import annotations

from collections.abc import Callable

from entrypoint._internal.step.creds import dockercreds, gitcreds
from entrypoint._internal.step.creds._common import CredentialError
from entrypoint._internal.step.seams import FlagValue


class CredentialValues:
    """The ``-basic-git``, ``-ssh-git``, ``-basic-docker``, ``-docker-config`` and
    ``-docker-cfg`` flags, and the credential files built from them.

    ``secrets_dir`` is where the controller mounts the secrets (normally
    ``/tekton/creds-secrets``); secret files are read while the flags are parsed.
    """

    def __init__(self, secrets_dir: str) -> None:
        self.secrets_dir = secrets_dir
        self.basic_git = gitcreds.BasicGitConfig(secrets_dir)
        self.ssh_git = gitcreds.SSHGitConfig(secrets_dir)
        self.basic_docker = dockercreds.BasicDocker(secrets_dir)
        self.docker_config = dockercreds.SecretList()
        self.docker_cfg = dockercreds.SecretList()

    def flag(self, name: str) -> FlagValue:
        values: dict[str, FlagValue] = {
            gitcreds.BASIC_AUTH_FLAG: self.basic_git,
            gitcreds.SSH_FLAG: self.ssh_git,
            dockercreds.BASIC_FLAG: self.basic_docker,
            dockercreds.CONFIG_FLAG: self.docker_config,
            dockercreds.CFG_FLAG: self.docker_cfg,
        }
        return values[name]

    def write(self, creds_dir: str) -> list[str]:
        """Write the credential files under ``creds_dir``: Docker first, then Git.

        Returns one ``Error initializing credentials: <err>`` line per failed builder; a
        failure is not fatal, the step still runs.
        """
        builders: tuple[Callable[[], None], ...] = (
            lambda: dockercreds.write(
                self.basic_docker, self.docker_config, self.docker_cfg, self.secrets_dir, creds_dir
            ),
            lambda: gitcreds.write(self.basic_git, self.ssh_git, creds_dir),
        )
        errors: list[str] = []
        for build in builders:
            try:
                build()
            except CredentialError as exc:
                errors.append(f"Error initializing credentials: {exc}")
        return errors
