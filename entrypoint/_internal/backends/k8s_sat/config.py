"""The ``oidc-sa-token`` backend's arguments, from the step's environment (docs/oidc-sa-token.md)."""

from __future__ import annotations

from collections.abc import Mapping

from entrypoint._internal.backends.k8s_sat.common import config_from_env


def fetcher_args(*, spire_socket: str, environ: Mapping[str, str], step: str = "") -> dict[str, str | float]:
    # Read here, in the entrypoint: the helper process that fetches gets no environment of its own.
    del spire_socket, step
    return config_from_env(environ)
