"""``entrypoint controller``: the command line of the companion controller (docs/controller.md).

Exit status: 0 stopped by SIGTERM/SIGINT, 1 the Lease was lost or the API server is unusable,
2 usage.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import socket
import sys
import threading
import uuid
from types import FrameType
from typing import NoReturn

from entrypoint._internal.backends.k8s_sat.common import SA_DIR, in_cluster_api_url
from entrypoint._internal.backends.k8s_sat.kube import ApiServer
from entrypoint._internal.backends.spire.trust import TrustBundleError, check_trust_domain
from entrypoint._internal.kube.client import KubeClient, KubeError
from entrypoint.controller.api import ControllerAPI
from entrypoint.controller.app import Controller
from entrypoint.controller.leader import LeaseElector
from entrypoint.controller.metrics import Metrics, serve
from entrypoint.controller.reconciler import Mode, Reconciler
from entrypoint.controller.trust import TrustConfig, TrustSource
from entrypoint.errors import TrustError, UsageError

PROG = "entrypoint controller"
EXIT_USAGE = 2
DEFAULT_JWKS_CONFIGMAP = "signed-entrypoint-jwks"
log = logging.getLogger("entrypoint.controller")


class _ArgumentError(UsageError):
    pass


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message}\n")


def _parser() -> argparse.ArgumentParser:
    p = _Parser(prog=PROG, description="Verify every completed TaskRun and record SignedResultsVerified.")
    api = p.add_argument_group("the API server (default: in-cluster)")
    api.add_argument("--kube-api", metavar="URL", help="API server URL (default: from KUBERNETES_SERVICE_*)")
    api.add_argument("--kube-token-file", metavar="FILE", default=f"{SA_DIR}/token", help="bearer token file")
    api.add_argument("--kube-ca-file", metavar="FILE", default=f"{SA_DIR}/ca.crt", help="the API server's CA")
    p.add_argument("--namespace", metavar="NS", help="watch only this namespace (default: all)")
    p.add_argument("--mode", choices=[m.value for m in Mode], default=Mode.AUDIT.value,
                   help="audit: record verdicts; enforce: also fail TaskRuns that do not verify")  # fmt: skip
    trust = p.add_argument_group("trust")
    trust.add_argument("--trust-domain", metavar="TD", help="the SPIFFE trust domain (SPIRE backend)")
    spiffe = trust.add_mutually_exclusive_group()
    spiffe.add_argument("--trust-bundle", metavar="FILE", help="PEM roots of the trust domain (re-read)")
    spiffe.add_argument("--spire-socket", metavar="URI", help="Workload API to fetch the bundle from")
    trust.add_argument("--kube-trust", choices=("jwks", "tokenreview", "none"), default="jwks",
                       help="oidc-sa-token: the API server's keys (default) or its TokenReview")  # fmt: skip
    trust.add_argument("--jwks", metavar="FILE", help="a fixed JWKS snapshot (entrypoint save-jwks) instead")
    trust.add_argument(
        "--jwks-configmap",
        metavar="[NS/]NAME",
        default=DEFAULT_JWKS_CONFIGMAP,
        help="where every key seen is kept for archived TaskRuns (default: %(default)s in the "
        "controller's namespace; '' keeps none)",
    )
    trust.add_argument("--sigstore-trusted-root", metavar="FILE",
                       help="Sigstore trusted_root.json, for sigstore-keyless (re-read)")  # fmt: skip
    trust.add_argument(
        "--certificate-oidc-issuer", metavar="URL", help="the issuer Fulcio certificates must name"
    )
    identity = trust.add_mutually_exclusive_group()
    identity.add_argument("--certificate-identity", metavar="SAN", help="the SAN they must have")
    identity.add_argument("--certificate-identity-regexp", metavar="RE", help="a full-match pattern for it")
    trust.add_argument("--sigstore-allow-no-log", action="store_true",
                       help="accept sigstore-keyless messages without a Rekor record")  # fmt: skip
    trust.add_argument("--format", dest="formats", choices=("tekton", "compact"), action="append",
                       help="accept only this signature format (repeatable)")  # fmt: skip
    trust.add_argument("--trust-refresh", metavar="SECONDS", type=float, default=300.0,
                       help="reload the trust this often (default: %(default)s)")  # fmt: skip
    lead = p.add_argument_group("leader election")
    lead.add_argument("--leader-elect", action=argparse.BooleanOptionalAction, default=True,
                      help="hold a Lease before writing (default: on)")  # fmt: skip
    lead.add_argument("--lease-name", default="signed-entrypoint-controller", help="the Lease's name")
    lead.add_argument(
        "--lease-namespace", metavar="NS", help="the Lease's namespace (default: the controller's)"
    )
    lead.add_argument("--identity", help="this replica's name in the Lease (default: host name + random)")
    lead.add_argument("--lease-duration", type=int, default=15, metavar="SECONDS")
    lead.add_argument("--renew-deadline", type=float, default=10.0, metavar="SECONDS")
    lead.add_argument("--retry-period", type=float, default=2.0, metavar="SECONDS")
    p.add_argument("--metrics-address", default="0.0.0.0", help="where /metrics, /healthz, /readyz listen")  # noqa: S104
    p.add_argument("--metrics-port", type=int, default=9090, help="their port (0: any free one, logged)")
    p.add_argument("--workers", type=int, default=2, help="TaskRuns verified at once (default: %(default)s)")
    p.add_argument("--watch-timeout", type=int, default=300, metavar="SECONDS", help=argparse.SUPPRESS)
    p.add_argument("--log-level", default="info", choices=("debug", "info", "warning", "error"))
    return p


def _own_namespace() -> str:
    try:
        with open(f"{SA_DIR}/namespace", encoding="utf-8") as f:
            return f.read().strip() or "default"
    except OSError:
        return os.environ.get("POD_NAMESPACE") or "default"


def _configmap(value: str, default_namespace: str) -> tuple[str, str] | None:
    if not value:
        return None
    namespace, sep, name = value.rpartition("/")
    if (sep and not namespace) or not name or "/" in namespace:
        raise _ArgumentError(f"--jwks-configmap: expected [NAMESPACE/]NAME, got {value!r}")
    return (namespace or default_namespace, name)


def _check(args: argparse.Namespace) -> None:
    if args.trust_domain is not None:
        try:
            check_trust_domain(args.trust_domain)
        except TrustBundleError as exc:
            raise _ArgumentError(f"--trust-domain: {exc}") from exc
        if args.trust_bundle is None and args.spire_socket is None:
            raise _ArgumentError("--trust-domain needs --trust-bundle or --spire-socket")
    elif args.trust_bundle is not None or args.spire_socket is not None:
        raise _ArgumentError("--trust-bundle and --spire-socket need --trust-domain")
    sigstore_policy = (
        args.certificate_oidc_issuer,
        args.certificate_identity,
        args.certificate_identity_regexp,
    )
    if args.sigstore_trusted_root is not None:
        if args.certificate_oidc_issuer is None or (
            args.certificate_identity is None and args.certificate_identity_regexp is None
        ):
            raise _ArgumentError(
                "--sigstore-trusted-root needs --certificate-oidc-issuer and --certificate-identity or "
                "--certificate-identity-regexp"
            )
    elif any(v is not None for v in sigstore_policy) or args.sigstore_allow_no_log:
        raise _ArgumentError("--certificate-* and --sigstore-allow-no-log need --sigstore-trusted-root")
    if (
        args.trust_domain is None
        and args.kube_trust == "none"
        and args.jwks is None
        and args.sigstore_trusted_root is None
    ):
        raise _ArgumentError(
            "no trust: give --trust-domain with a bundle, --sigstore-trusted-root, or leave --kube-trust on"
        )
    if args.workers < 1:
        raise _ArgumentError(f"--workers: must be at least 1, got {args.workers}")
    if args.trust_refresh <= 0 or args.renew_deadline <= 0 or args.retry_period <= 0:
        raise _ArgumentError("--trust-refresh, --renew-deadline and --retry-period must be positive")
    if args.lease_duration <= args.renew_deadline:
        raise _ArgumentError("--lease-duration must be longer than --renew-deadline")


def main(argv: list[str]) -> int:
    args = _parser().parse_args(argv)
    logging.basicConfig(
        level=args.log_level.upper(),
        stream=sys.stderr,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    # httpx logs every request at INFO: a line per TaskRun patched says nothing the audit line does not.
    logging.getLogger("httpx").setLevel(logging.WARNING)
    own_namespace = _own_namespace()
    try:
        _check(args)
        jwks_configmap = _configmap(args.jwks_configmap, own_namespace)
        url = args.kube_api or in_cluster_api_url(os.environ)
        if not url:
            raise _ArgumentError(
                "--kube-api: not in a cluster (KUBERNETES_SERVICE_HOST/PORT unset); give the URL"
            )
    except _ArgumentError as exc:
        print(f"{PROG}: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    try:
        client = KubeClient(url, token_file=args.kube_token_file, ca_file=args.kube_ca_file, keep_alive=True)
        api_server = ApiServer(url, token_file=args.kube_token_file, ca_file=args.kube_ca_file)
    except (KubeError, TrustError) as exc:
        print(f"{PROG}: error: {exc}", file=sys.stderr)
        return 1
    api = ControllerAPI(client)
    config = TrustConfig(
        trust_domain=args.trust_domain,
        trust_bundle=args.trust_bundle,
        spire_socket=args.spire_socket,
        kube_trust=args.kube_trust,
        jwks_file=args.jwks,
        jwks_configmap=jwks_configmap if args.jwks is None and args.kube_trust == "jwks" else None,
        formats=args.formats,
        sigstore_trusted_root=args.sigstore_trusted_root,
        sigstore_issuer=args.certificate_oidc_issuer,
        sigstore_identity=args.certificate_identity,
        sigstore_identity_regexp=args.certificate_identity_regexp,
        sigstore_require_log=not args.sigstore_allow_no_log,
    )
    trust = TrustSource(config, api_server, api, refresh=args.trust_refresh)
    metrics = Metrics()
    reconciler = Reconciler(api, trust.verifier, mode=Mode(args.mode), observe=metrics.observe)
    elector = None
    if args.leader_elect:
        identity = args.identity or f"{socket.gethostname()}_{uuid.uuid4()}"
        elector = LeaseElector(
            api,
            args.lease_namespace or own_namespace,
            args.lease_name,
            identity,
            lease_seconds=args.lease_duration,
            renew_deadline=args.renew_deadline,
            retry_period=args.retry_period,
        )
    controller = Controller(
        api,
        reconciler,
        metrics,
        namespace=args.namespace,
        elector=elector,
        workers=args.workers,
        watch_timeout=args.watch_timeout,
    )
    try:
        server, _ = serve(metrics, args.metrics_address, args.metrics_port, controller.ready)
    except OSError as exc:
        print(f"{PROG}: error: --metrics-port {args.metrics_port}: {exc.strerror or exc}", file=sys.stderr)
        return 1
    log.info("metrics on http://%s:%d/metrics", args.metrics_address, server.server_port)

    def _stop(signum: int, frame: FrameType | None) -> None:
        log.info("signal %d: stopping", signum)
        controller.stop()

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    trust.reload()  # what fails is logged; the TaskRuns that need it wait for a later reload
    stop_trust = threading.Event()
    threading.Thread(target=trust.run, args=(stop_trust,), name="trust", daemon=True).start()
    try:
        return controller.run()
    finally:
        stop_trust.set()
        server.shutdown()
