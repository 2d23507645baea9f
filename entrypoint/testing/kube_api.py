"""``python -m entrypoint.testing.kube_api``: the Kubernetes API double as a process.

The double itself is :mod:`entrypoint.testing.kube`; this module keeps its old import path and
serves it standalone until SIGTERM or SIGINT.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from entrypoint.testing import kube
from entrypoint.testing._serving import serve_until, stop_on_signals
from entrypoint.testing.kube import *  # noqa: F403  (this module's old import path re-exports the double)
from entrypoint.testing.kube import ALGORITHMS, KubeAPIServer

__all__ = [*kube.__all__, "main"]  # noqa: PLE0604


def _parse_service_account(value: str) -> tuple[str, str]:
    namespace, _, name = value.partition("/")
    if not namespace or not name or "/" in name:
        raise argparse.ArgumentTypeError(f"expected NAMESPACE/NAME, got {value!r}")
    return namespace, name


def _parse_pod(value: str) -> tuple[str, str, str]:
    parts = value.split("/")
    if len(parts) != 3 or not all(parts):
        raise argparse.ArgumentTypeError(f"expected NAMESPACE/NAME/UID, got {value!r}")
    return parts[0], parts[1], parts[2]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m entrypoint.testing.kube_api",
        description=(
            "Serve a test Kubernetes API (TokenRequest, TokenReview, OIDC; TaskRuns, Pods, Leases, Events)"
            " until SIGTERM/SIGINT."
        ),
    )
    parser.add_argument(
        "--pod",
        required=True,
        action="append",
        type=_parse_pod,
        metavar="NS/NAME/UID",
        help="a pod (repeatable)",
    )
    parser.add_argument(
        "--service-account", required=True, metavar="SA", help="service account the pods run as"
    )
    parser.add_argument("--node", default="node-1", help="node the pods run on")
    parser.add_argument("--alg", choices=sorted(ALGORITHMS), default="RS256", help="token signing algorithm")
    parser.add_argument("--port", type=int, default=0, help="port on 127.0.0.1 (default: any free port)")
    parser.add_argument("--issuer", help="token issuer (default: the server's URL)")
    parser.add_argument("--max-token-seconds", type=int, metavar="S", help="cap on issued token lifetimes")
    parser.add_argument(
        "--own-pod-tokens-only",
        action="store_true",
        help="admission policy: signed-entrypoint tokens may only be bound to the requesting pod",
    )
    parser.add_argument(
        "--token-reviewer",
        action="append",
        default=[],
        type=_parse_service_account,
        metavar="NS/SA",
        help="a service account that may create TokenReviews (system:auth-delegator; repeatable)",
    )
    parser.add_argument(
        "--anonymous-discovery",
        action="store_true",
        help="serve OIDC discovery and the JWKS to callers without credentials too",
    )
    parser.add_argument(
        "--in-cluster-dir",
        metavar="DIR",
        help="write token, ca.crt and namespace for the first pod here before 'ready'",
    )
    args = parser.parse_args(argv)

    stop = stop_on_signals()

    try:
        server = KubeAPIServer(
            alg=args.alg,
            issuer=args.issuer,
            max_token_seconds=args.max_token_seconds,
            port=args.port,
            own_pod_tokens_only=args.own_pod_tokens_only,
            anonymous_discovery=args.anonymous_discovery,
        )
        pods = [server.add_pod(ns, name, uid, args.service_account, args.node) for ns, name, uid in args.pod]
        for namespace, name in args.token_reviewer:
            server.allow_token_review(namespace, name)
        server.start()
    except (ValueError, OSError) as err:
        print(f"kube_api: {err}", file=sys.stderr)
        return 2
    try:
        if args.in_cluster_dir:
            server.write_in_cluster_files(args.in_cluster_dir, pods[0])
        serve_until(stop, server.url)
    finally:
        server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
