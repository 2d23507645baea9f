"""The SPIRE backend's arguments: the Workload API socket, from ``-spire_socket_path``."""

from __future__ import annotations

from collections.abc import Mapping


def fetcher_args(*, spire_socket: str, environ: Mapping[str, str], step: str = "") -> dict[str, str | float]:
    del environ, step  # the agent's socket is Tekton's flag, never the step's environment
    return {"address": spire_socket}
