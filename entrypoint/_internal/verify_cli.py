"""``entrypoint verify``: check a TaskRun's signed termination message from the command line.

    entrypoint verify --taskrun NAMESPACE/NAME
                      [--trust-domain TD (--trust-bundle FILE | --spire-socket URI | --no-chain)]
                      [--jwks FILE | --kube-api URL [--kube-token-file F] [--kube-ca-file F]]
                      [--sigstore-trusted-root FILE --certificate-oidc-issuer URL
                       (--certificate-identity SAN | --certificate-identity-regexp RE)
                       [--sigstore-allow-no-log]]
                      [--pod-name NAME] [--pod-uid UID] [--service-account SA]
                      [--at RFC3339-TIME] [--json] [--step N] [--format F] MESSAGE [--companion FILE ...]
    entrypoint verify --taskrun-object FILE [--pod-object FILE] [trust options] [--at T] [--json]
    entrypoint save-jwks --kube-api URL [--kube-token-file F] [--kube-ca-file F] --output FILE

SPIFFE trust (``--trust-domain`` and a bundle) checks messages signed with an SVID; Kubernetes
trust (a JWKS snapshot saved by ``save-jwks``, or the API server's TokenReview) checks messages
signed with the ``oidc-sa-token`` backend (docs/oidc-sa-token.md); a Sigstore trusted root and an
identity policy (the flags are cosign's) checks messages signed with ``sigstore-keyless``
(docs/sigstore.md), offline.  Give any of them.

``--step`` and ``--companion`` concern the compact format (docs/compact-format.md): the step the
message must come from, and the messages of the TaskRun's other steps, where a chain the message
refers to (instead of embedding it) is looked up.

``--taskrun-object`` verifies a whole TaskRun as the API server stores it (``kubectl get taskrun
NAME -o json``, ``-`` for stdin): every step's message and every result of its status
(docs/verify-taskrun.md); ``--pod-object`` adds its Pod, for the raw messages and the pod's UID.

Exit status: 0 verified, 1 not verified (including when no trust could be obtained), 2 usage.
This is not on a step's path, so it uses argparse rather than Go's flag syntax.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import json
import sys
from typing import NoReturn, TextIO

from entrypoint._internal.backends.k8s_sat.common import MATERIAL_KIND, SA_DIR, TOKEN_ENTRY
from entrypoint._internal.backends.sigstore.common import CERT_ENTRY
from entrypoint._internal.backends.sigstore.common import MATERIAL_KIND as FULCIO_KIND
from entrypoint._internal.backends.spire.trust import TrustBundleError, check_trust_domain
from entrypoint._internal.bounded import read_fd, read_file
from entrypoint._internal.formats.compact import SIGNATURE_KEY
from entrypoint._internal.go.json import decode_go_bytes
from entrypoint.errors import UsageError
from entrypoint.termination import RunResult, parse_message
from entrypoint.verify import (
    MAX_MESSAGE_CHARS,
    ApiServer,
    KubeJwks,
    KubeTokenReview,
    KubeTrustError,
    Reason,
    SigstoreTrust,
    SigstoreTrustError,
    TaskRunRef,
    TaskRunVerdict,
    TrustBundle,
    TrustSet,
    Verdict,
    Verifier,
    rfc3339,
)

EXIT_VERIFIED = 0
EXIT_NOT_VERIFIED = 1
EXIT_USAGE = 2

PROG = "entrypoint verify"
NO_CHAIN_WARNING = (
    "WARNING: --no-chain: the SVID's chain of trust is NOT checked, so anyone can mint an SVID "
    "that passes; only the SPIFFE ID and the signatures are checked"
)


class _Usage(UsageError):
    """A wrong command line (exit status 2), reported with the program's name."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        self.print_usage(sys.stderr)
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message}\n")


# A message file may be a TaskRun status's re-serialised message, where Go's escaping can make each
# character six bytes; anything beyond that is not a termination message.
MAX_INPUT_BYTES = 6 * MAX_MESSAGE_CHARS
# etcd keeps objects of at most 1.5 MiB by default; a TaskRun or Pod beyond a few MiB is not one.
MAX_OBJECT_BYTES = 8 * 1024 * 1024


def _parser() -> argparse.ArgumentParser:
    p = _Parser(prog=PROG, description="Verify the signed results of a TaskRun's termination message.")
    p.add_argument("--taskrun", metavar="NAMESPACE/NAME", help="the TaskRun that must have signed")
    p.add_argument(
        "--taskrun-object",
        metavar="FILE",
        help="a TaskRun object as JSON (kubectl get taskrun NAME -o json; - for stdin): verify all of it",
    )
    p.add_argument(
        "--pod-object",
        metavar="FILE",
        help="with --taskrun-object: the TaskRun's Pod as JSON, while it exists",
    )
    p.add_argument("--trust-domain", metavar="TD", help="the SPIFFE trust domain, e.g. example.org")
    trust = p.add_mutually_exclusive_group()
    trust.add_argument(
        "--trust-bundle", metavar="FILE", help="PEM file of the trust domain's root certificates"
    )
    trust.add_argument(
        "--spire-socket",
        metavar="URI",
        help="SPIFFE Workload API address to fetch the bundle from (unix:///path)",
    )
    kube = p.add_mutually_exclusive_group()
    kube.add_argument(
        "--jwks",
        metavar="FILE",
        help="JWKS snapshot of the cluster (entrypoint save-jwks), for oidc-sa-token",
    )
    kube.add_argument(
        "--kube-api", metavar="URL", help="Kubernetes API server to ask (TokenReview), for oidc-sa-token"
    )
    _kube_credentials(p)
    p.add_argument(
        "--sigstore-trusted-root",
        metavar="FILE",
        help="Sigstore trusted_root.json (Fulcio CA, CT and Rekor keys), for sigstore-keyless",
    )
    p.add_argument("--certificate-identity", metavar="SAN", help="the SAN the Fulcio certificate must have")
    p.add_argument(
        "--certificate-identity-regexp",
        metavar="RE",
        help="a regular expression the whole SAN must match (instead of --certificate-identity)",
    )
    p.add_argument(
        "--certificate-oidc-issuer", metavar="URL", help="the OIDC issuer the certificate must record"
    )
    p.add_argument(
        "--sigstore-allow-no-log",
        action="store_true",
        help="accept messages without a Rekor record (the certificate is then checked at the signing "
        "time the signature claims)",
    )
    p.add_argument(
        "--pod-name", metavar="NAME", help="the TaskRun's pod (default: NAME-pod, as Tekton names it)"
    )
    p.add_argument("--pod-uid", metavar="UID", help="the UID of the TaskRun's pod (oidc-sa-token)")
    p.add_argument("--service-account", metavar="SA", help="the TaskRun's service account (oidc-sa-token)")
    p.add_argument(
        "--at", metavar="RFC3339-TIME", help="check the chain or the token at this time instead of now"
    )
    p.add_argument(
        "--no-chain",
        action="store_true",
        help="do not check the chain of trust (still checks ID and signatures)",
    )
    p.add_argument("--json", action="store_true", help="print the verdict as JSON")
    p.add_argument(
        "--step",
        metavar="N",
        help="the index of the step the message must come from (compact format; default: any)",
    )
    p.add_argument(
        "--companion",
        metavar="FILE",
        action="append",
        default=[],
        help="termination message of another step of the same TaskRun, to resolve a chain the "
        "message refers to (compact format; repeatable; - for stdin)",
    )
    p.add_argument(
        "--format",
        dest="formats",
        choices=("tekton", "compact"),
        action="append",
        help="accept only this signature format (repeatable; default: any known format)",
    )
    p.add_argument(
        "message",
        metavar="MESSAGE",
        nargs="?",
        help="termination message file (plain or tknz:), or - for stdin (not with --taskrun-object)",
    )
    return p


def _kube_credentials(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--kube-token-file",
        metavar="FILE",
        default=f"{SA_DIR}/token",
        help="bearer token for the API server (default: the in-cluster service-account token)",
    )
    p.add_argument(
        "--kube-ca-file",
        metavar="FILE",
        default=f"{SA_DIR}/ca.crt",
        help="CA certificates of the API server (default: the in-cluster CA)",
    )


def _taskrun(value: str) -> tuple[str, str]:
    namespace, sep, name = value.partition("/")
    if not sep or not namespace or not name or "/" in name:
        raise _Usage(f"--taskrun {value!r}: expected NAMESPACE/NAME")
    return namespace, name


def _time(value: str) -> dt.datetime:
    try:
        when = dt.datetime.fromisoformat(value)
    except ValueError as exc:
        raise _Usage(f"--at {value!r}: not an RFC 3339 time ({exc})") from exc
    if when.tzinfo is None:
        raise _Usage(f"--at {value!r}: an RFC 3339 time needs an offset, e.g. Z or +02:00")
    try:
        # 0001-01-01T00:00:00+01:00 is a year-0 time in UTC, which datetime cannot hold.
        return when.astimezone(dt.UTC)
    except OverflowError as exc:
        raise _Usage(f"--at {value!r}: outside the years 1 to 9999 in UTC") from exc


def _step(value: str) -> str:
    # The message carries the index as plain decimal; "01" or "+1" would never match it.
    if not (value.isascii() and value.isdigit() and str(int(value)) == value):
        raise _Usage(f"--step {value!r}: expected a step index (0, 1, ...)")
    return value


def _read_message(path: str, stdin: TextIO, what: str = "MESSAGE") -> str:
    # Bounded and never blocking on a FIFO without a writer: /dev/zero, a huge file or a named
    # pipe nobody opens must end in a one-line error, not in MemoryError or a hang.
    try:
        if path == "-":
            return decode_go_bytes(read_fd(stdin.fileno(), MAX_INPUT_BYTES))
        return decode_go_bytes(read_file(path, MAX_INPUT_BYTES))
    except OSError as exc:
        name = "stdin" if path == "-" else path
        raise _Usage(f"{what} {name}: cannot read: {exc.strerror or exc}") from exc


def _read_object(path: str, stdin: TextIO, what: str, kind: str) -> object:
    try:
        data = read_fd(stdin.fileno(), MAX_OBJECT_BYTES) if path == "-" else read_file(path, MAX_OBJECT_BYTES)
    except OSError as exc:
        raise _Usage(
            f"{what} {'stdin' if path == '-' else path}: cannot read: {exc.strerror or exc}"
        ) from exc
    try:
        obj = json.loads(data)
    except ValueError as exc:
        raise _Usage(f"{what} {path}: not JSON: {exc}") from exc
    if isinstance(obj, dict) and str(obj.get("kind", "")).endswith("List"):
        raise _Usage(
            f"{what} {path}: a list of objects; give one {kind} (kubectl get {kind.lower()} NAME -o json)"
        )
    return obj


def _sigstore_trust(args: argparse.Namespace) -> SigstoreTrust | str | None:
    """The trust for sigstore-keyless messages; a string says why the trusted root is unusable
    (the message then fails as TrustUnavailable, as with the other backends' trust)."""
    if args.sigstore_trusted_root is None:
        return None
    if args.certificate_oidc_issuer is None or (args.certificate_identity is None) == (
        args.certificate_identity_regexp is None
    ):
        raise _Usage(
            "--sigstore-trusted-root needs --certificate-oidc-issuer and one of --certificate-identity "
            "or --certificate-identity-regexp"
        )
    try:
        return SigstoreTrust.from_file(
            args.sigstore_trusted_root,
            issuer=args.certificate_oidc_issuer,
            identity=args.certificate_identity,
            identity_regexp=args.certificate_identity_regexp,
            require_log=not args.sigstore_allow_no_log,
        )
    except SigstoreTrustError as exc:
        return str(exc)
    except ValueError as exc:
        raise _Usage(str(exc)) from exc


def _object_mode(args: argparse.Namespace) -> None:
    if args.taskrun_object is None:
        if args.pod_object is not None:
            raise _Usage("--pod-object needs --taskrun-object")
        if args.taskrun is None or args.message is None:
            raise _Usage("give --taskrun NAMESPACE/NAME and MESSAGE, or --taskrun-object FILE")
        return
    clash = [
        flag
        for flag, value in (
            ("--taskrun", args.taskrun),
            ("MESSAGE", args.message),
            ("--step", args.step),
            ("--companion", args.companion or None),
            ("--pod-name", args.pod_name),
            ("--pod-uid", args.pod_uid),
            ("--service-account", args.service_account),
        )
        if value is not None
    ]
    if clash:
        raise _Usage(f"--taskrun-object reads {', '.join(clash)} from the object; do not give them")
    if args.taskrun_object == "-" and args.pod_object == "-":
        raise _Usage("stdin (-) can be read only once")


def main(argv: list[str]) -> int:
    args = _parser().parse_args(argv)
    try:
        _object_mode(args)
        namespace, name = _taskrun(args.taskrun) if args.taskrun is not None else ("", "")
        spiffe = args.trust_domain is not None
        if spiffe:
            try:
                check_trust_domain(args.trust_domain)
            except TrustBundleError as exc:
                raise _Usage(f"--trust-domain: {exc}") from exc
            if not args.no_chain and args.trust_bundle is None and args.spire_socket is None:
                raise _Usage("--trust-domain needs one of --trust-bundle or --spire-socket (or --no-chain)")
        elif args.trust_bundle is not None or args.spire_socket is not None or args.no_chain:
            raise _Usage("--trust-bundle, --spire-socket and --no-chain need --trust-domain")
        sigstore_flags = (
            args.certificate_identity,
            args.certificate_identity_regexp,
            args.certificate_oidc_issuer,
        )
        if args.sigstore_trusted_root is None and (
            any(f is not None for f in sigstore_flags) or args.sigstore_allow_no_log
        ):
            raise _Usage("--certificate-* and --sigstore-allow-no-log need --sigstore-trusted-root")
        if not spiffe and args.jwks is None and args.kube_api is None and args.sigstore_trusted_root is None:
            raise _Usage(
                "no trust given: --trust-domain with --trust-bundle or --spire-socket (SPIRE), "
                "--jwks or --kube-api (oidc-sa-token), or --sigstore-trusted-root (sigstore-keyless)"
            )
        sigstore_given = _sigstore_trust(args)
        at = _time(args.at) if args.at is not None else None
        step = _step(args.step) if args.step is not None else None
        if [args.message, *args.companion].count("-") > 1:
            raise _Usage("stdin (-) can be read only once: as MESSAGE or as one --companion")
        objects: tuple[object, object] | None = None
        message, companions = "", []
        if args.taskrun_object is not None:
            pod = None
            if args.pod_object is not None:
                pod = _read_object(args.pod_object, sys.stdin, "--pod-object", "Pod")
            objects = (_read_object(args.taskrun_object, sys.stdin, "--taskrun-object", "TaskRun"), pod)
        else:
            message = _read_message(args.message, sys.stdin)
            companions = [_read_message(path, sys.stdin, "--companion") for path in args.companion]
    except _Usage as exc:
        print(f"{PROG}: error: {exc}", file=sys.stderr)
        return EXIT_USAGE

    trust: TrustBundle | None = None
    trust_error = ""
    if args.no_chain:
        print(NO_CHAIN_WARNING, file=sys.stderr)
        trust = TrustBundle(args.trust_domain)
    elif spiffe:
        try:
            if args.trust_bundle is not None:
                trust = TrustBundle.from_pem_file(args.trust_bundle, args.trust_domain)
            else:
                trust = TrustBundle.from_workload_api(args.spire_socket, args.trust_domain)
        except TrustBundleError as exc:
            trust_error = str(exc)
    else:
        trust_error = (
            "this message needs SPIFFE trust: give --trust-domain and --trust-bundle or --spire-socket"
        )

    kube: KubeJwks | KubeTokenReview | None = None
    kube_error = ""
    try:
        if args.jwks is not None:
            kube = KubeJwks.from_file(args.jwks)
        elif args.kube_api is not None:
            kube = KubeTokenReview(_api_server(args))
        else:
            kube_error = "this message needs Kubernetes trust: give --jwks FILE or --kube-api URL"
    except KubeTrustError as exc:
        kube_error = str(exc)

    sigstore_error = "this message needs Sigstore trust: give --sigstore-trusted-root and an identity policy"
    sigstore = sigstore_given if not isinstance(sigstore_given, str) else None
    if isinstance(sigstore_given, str):
        sigstore_error = sigstore_given
    verifier = Verifier(
        TrustSet(spiffe=trust, kube=kube, sigstore=sigstore),
        check_chain=not args.no_chain,
        formats=args.formats,
    )
    if objects is not None:
        taskrun_verdict = verifier.verify_taskrun(objects[0], pod=objects[1], at=at)
        _print_taskrun(
            taskrun_verdict, as_json=args.json, trust_errors=(trust_error, kube_error, sigstore_error)
        )
        return EXIT_VERIFIED if taskrun_verdict.verified else EXIT_NOT_VERIFIED
    taskrun = TaskRunRef(
        namespace,
        name,
        pod_name=args.pod_name,
        pod_uid=args.pod_uid,
        service_account=args.service_account,
        step=step,
        companions=tuple(companions),
    )
    verdict = verifier.verify_message(message, taskrun, at=at)
    if verdict.reason == Reason.TRUST_UNAVAILABLE:
        # When the trust this message needs was never obtained, say why (not given, or failed to
        # load); a failure while using it (a TokenReview that did not get through) says so itself.
        signer = _signed_with(message)
        missing, detail = {
            "kube": (kube is None, kube_error),
            "sigstore": (sigstore is None, sigstore_error),
        }.get(signer, (trust is None, trust_error))
        if missing and detail:
            verdict = dataclasses.replace(verdict, message=detail)
    _print(verdict, as_json=args.json)
    return EXIT_VERIFIED if verdict.verified else EXIT_NOT_VERIFIED


def _signed_with(message: str) -> str:
    """Whose trust the message needs, by its material in either format: kube, sigstore or spire."""
    try:
        entries = parse_message(message)
    except Exception:
        return "spire"
    for e in entries:
        if (e.key == TOKEN_ENTRY and e.type == 1) or (
            e.key == SIGNATURE_KEY and f".{MATERIAL_KIND}:" in e.value
        ):
            return "kube"
        if (e.key == CERT_ENTRY and e.type == 1) or (
            e.key == SIGNATURE_KEY and f".{FULCIO_KIND}:" in e.value
        ):
            return "sigstore"
    return "spire"


def _api_server(args: argparse.Namespace) -> ApiServer:
    return ApiServer(args.kube_api, token_file=args.kube_token_file, ca_file=args.kube_ca_file)


def save_jwks_main(argv: list[str]) -> int:
    """``entrypoint save-jwks``: snapshot the cluster's token issuer and keys for offline checks."""
    p = _Parser(
        prog="entrypoint save-jwks",
        description="Save the cluster's service-account token issuer and JWKS, to verify oidc-sa-token "
        "messages after their pods are gone (entrypoint verify --jwks FILE).",
    )
    p.add_argument("--kube-api", required=True, metavar="URL", help="the Kubernetes API server")
    _kube_credentials(p)
    p.add_argument("--output", "-o", required=True, metavar="FILE", help="where to write the snapshot")
    args = p.parse_args(argv)
    try:
        snapshot = KubeJwks.fetch(_api_server(args))
        snapshot.save(args.output)
    except KubeTrustError as exc:
        print(f"entrypoint save-jwks: error: {exc}", file=sys.stderr)
        return EXIT_NOT_VERIFIED
    except OSError as exc:
        print(f"entrypoint save-jwks: error: {args.output}: {exc.strerror or exc}", file=sys.stderr)
        return EXIT_NOT_VERIFIED
    print(f"saved the JWKS of {snapshot.issuer} ({len(snapshot.jwks['keys'])} keys) to {args.output}")
    return EXIT_VERIFIED


def _print(verdict: Verdict, *, as_json: bool) -> None:
    if as_json:
        print(json.dumps(verdict.to_json(), indent=2, ensure_ascii=False))
        return
    if verdict.verified:
        print(
            f"VERIFIED {verdict.format} {_safe(str(verdict.identity))} at {rfc3339(verdict.checked_at)}: "
            f"{len(verdict.results)} results"
        )
    else:
        print(f"NOT VERIFIED {verdict.reason}: {_safe(verdict.message)}")
    _print_entries(verdict.results)
    if verdict.unsigned:
        print("NOT COVERED BY THE SIGNATURE (shown for information; do not trust):")
        _print_entries(verdict.unsigned)


def _print_taskrun(verdict: TaskRunVerdict, *, as_json: bool, trust_errors: tuple[str, ...]) -> None:
    if as_json:
        print(json.dumps(verdict.to_json(), indent=2, ensure_ascii=False))
        return
    ref = _safe(f"{verdict.namespace}/{verdict.name}")
    if verdict.verified:
        print(f"VERIFIED taskrun {ref} at {rfc3339(verdict.checked_at)}: {_safe(verdict.message)}")
    else:
        print(f"NOT VERIFIED taskrun {ref}: {verdict.outcome} {verdict.reason}: {_safe(verdict.message)}")
        if verdict.reason == Reason.TRUST_UNAVAILABLE:
            for detail in trust_errors:
                if detail:
                    print(f"  ({_safe(detail)})")
    for s in verdict.steps:
        v = s.verdict
        who = f" {v.format} {_safe(str(v.identity))}" if v is not None and v.verified else ""
        why = f": {v.reason}" if v is not None and not v.verified else ""
        print(f"  step {_safe(s.name)} ({s.source}): {s.outcome}{who}{why}")
    for r in verdict.results:
        print(f"  {r.where} {_safe(r.name)}: from step {_safe(str(r.step))} ({r.covered_by})")


def _print_entries(entries: tuple[RunResult, ...]) -> None:
    for r in entries:
        kind = "" if r.type == 1 else f" (type {r.type})"
        print(f"  {_safe(r.key)}{kind} = {json.dumps(r.value, ensure_ascii=True)}")


def _safe(text: str) -> str:
    """Message text and keys come from the message: escape control characters, so that a crafted
    entry cannot rewrite the terminal (e.g. print a fake VERIFIED line over the real verdict)."""
    return "".join(ch if ch.isprintable() else ch.encode("unicode_escape").decode("ascii") for ch in text)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
