"""Where the Tekton pod layout lives.

Tekton hard-codes ``/tekton``.  Tests, the demo and local runs need to move it without root
privileges, so the root can be relocated with the ``SIGNED_ENTRYPOINT_ROOT`` environment variable.
An environment variable rather than a flag, because the legacy credential flags read secrets from
under the root *while* the command line is being parsed, so the root must be known before parsing.
"""

from __future__ import annotations

import os

from entrypoint._internal.go.path import join

TYPE_CHECKING = False  # not typing.TYPE_CHECKING: importing typing costs a step ~1.7 ms
if TYPE_CHECKING:
    from collections.abc import Mapping

ROOT_ENV = "SIGNED_ENTRYPOINT_ROOT"
DEFAULT_ROOT = "/tekton"


class Layout:
    """The paths under ``/tekton`` that the entrypoint reads and writes."""

    __slots__ = ("root",)

    def __init__(self, root: str = DEFAULT_ROOT) -> None:
        self.root = root

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Layout) and other.root == self.root

    def __hash__(self) -> int:
        return hash(self.root)

    def __repr__(self) -> str:
        return f"Layout(root={self.root!r})"

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Layout:
        env = os.environ if env is None else env
        return cls(env.get(ROOT_ENV) or DEFAULT_ROOT)

    def path(self, *parts: str) -> str:
        return join(self.root, *parts)

    @property
    def results_dir(self) -> str:
        return self.path("results")

    @property
    def task_artifacts_file(self) -> str:
        return self.path("artifacts", "provenance.json")

    @property
    def steps_dir(self) -> str:
        return self.path("steps")

    @property
    def scripts_dir(self) -> str:
        return self.path("scripts")

    @property
    def cancel_file(self) -> str:
        return self.path("downward", "cancel")

    @property
    def creds_dir(self) -> str:
        return self.path("creds")

    @property
    def creds_secrets_dir(self) -> str:
        return self.path("creds-secrets")

    @property
    def termination_file(self) -> str:
        return self.path("termination")

    def run_status_dir(self, index: int) -> str:
        return self.path("run", str(index), "status")
