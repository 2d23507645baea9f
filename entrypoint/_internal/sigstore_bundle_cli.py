"""``entrypoint sigstore-bundle``: a Sigstore bundle of what a ``sigstore-keyless`` message logged.

    entrypoint sigstore-bundle MESSAGE --rekor-url URL --bundle-out B.sigstore.json --artifact-out A
                               [--ca-file PEM] [--trusted-root FILE] [--timeout SECONDS]

MESSAGE is a termination message file (plain or ``tknz:``), or ``-`` for stdin.  The entry its
Rekor record names is fetched with a fresh inclusion proof and checked against the message
(entrypoint/_internal/backends/sigstore/bundle.py); then the artifact that was logged goes to A
and the bundle (v0.3) to B, which ``sigstore verify artifact A --bundle B`` or cosign's
``verify-blob`` check with the trusted root and the identity policy.  ``--trusted-root`` also
checks the checkpoint's and the SETs' signatures before writing.  Nothing here verifies the
certificate or the identity: that is the bundle's reader's work (or ``entrypoint verify``'s).

Exit status: 0 written, 1 failed (one line on stderr), 2 usage.  Not on a step's path: argparse.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from typing import NoReturn

from entrypoint.errors import EntrypointError, TerminationMessageError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from entrypoint._internal.backends.sigstore.artifact import LoggedArtifact

EXIT_WRITTEN = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
PROG = "entrypoint sigstore-bundle"
# As ``entrypoint verify``: a re-serialised message can make each of its 128 Ki characters 6 bytes.
MAX_INPUT_BYTES = 6 * 128 * 1024


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        self.print_usage(sys.stderr)
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message}\n")


def _parser() -> argparse.ArgumentParser:
    p = _Parser(
        prog=PROG,
        description="Write a Sigstore bundle (v0.3) and the artifact of a sigstore-keyless message's "
        "Rekor entry, with a fresh inclusion proof, for sigstore-python, cosign or an audit.",
    )
    p.add_argument("message", metavar="MESSAGE", help="termination message file (plain or tknz:), or -")
    p.add_argument("--rekor-url", required=True, metavar="URL", help="the Rekor v1 log (https)")
    p.add_argument("--bundle-out", required=True, metavar="FILE", help="where to write the bundle")
    p.add_argument("--artifact-out", required=True, metavar="FILE", help="where to write the artifact")
    p.add_argument(
        "--ca-file", default="", metavar="PEM", help="CAs for Rekor's TLS certificate (default: the system's)"
    )
    p.add_argument(
        "--trusted-root",
        metavar="FILE",
        help="Sigstore trusted_root.json: also check the checkpoint's and the SETs' signatures",
    )
    p.add_argument(
        "--timeout", type=float, default=30.0, metavar="SECONDS", help="for Rekor's answer (default 30)"
    )
    return p


class _Failed(EntrypointError):
    """A one-line reason for exit status 1."""


def main(argv: list[str]) -> int:
    args = _parser().parse_args(argv)
    if not args.timeout > 0:
        _parser().error(f"--timeout {args.timeout}: expected a positive number of seconds")
    try:
        bundle, artifact, logged = _bundle(args)
        _write(args.artifact_out, artifact)
        _write(args.bundle_out, json.dumps(bundle, indent=2).encode("ascii") + b"\n")
    except _Failed as exc:
        print(f"{PROG}: error: {exc}", file=sys.stderr)
        return EXIT_FAILED
    print(
        f"wrote {args.bundle_out} (Rekor entry {logged.record.log_index}, {logged.wire_format} format) "
        f"and {args.artifact_out} ({len(artifact)} bytes)"
    )
    return EXIT_WRITTEN


def _bundle(args: argparse.Namespace) -> tuple[dict[str, object], bytes, LoggedArtifact]:
    from entrypoint._internal.backends.sigstore.artifact import ArtifactError, logged_artifact
    from entrypoint._internal.backends.sigstore.bundle import SigstoreBundleError, fetch_bundle
    from entrypoint._internal.backends.sigstore.trust import SigstoreTrustError, TrustedRoot
    from entrypoint._internal.bounded import read_fd, read_file
    from entrypoint._internal.go.json import decode_go_bytes
    from entrypoint.termination import parse_message

    name = "stdin" if args.message == "-" else args.message
    try:
        raw = (
            read_fd(sys.stdin.fileno(), MAX_INPUT_BYTES)
            if args.message == "-"
            else read_file(args.message, MAX_INPUT_BYTES)
        )
    except OSError as exc:
        raise _Failed(f"MESSAGE {name}: cannot read: {exc.strerror or exc}") from None
    try:
        entries = parse_message(decode_go_bytes(raw).strip())
        logged = logged_artifact(entries)
    except (TerminationMessageError, ArtifactError, ValueError) as exc:
        raise _Failed(f"MESSAGE {name}: {exc}") from None
    root = None
    if args.trusted_root is not None:
        try:
            root = TrustedRoot.from_file(args.trusted_root)
        except SigstoreTrustError as exc:
            raise _Failed(str(exc)) from None
    try:
        bundle = fetch_bundle(
            logged, args.rekor_url, ca_file=args.ca_file, trusted_root=root, timeout=args.timeout
        )
    except SigstoreBundleError as exc:
        raise _Failed(str(exc)) from None
    return bundle, logged.artifact, logged


def _write(path: str, data: bytes) -> None:
    """Whole or not at all: a temporary file beside ``path``, renamed over it."""
    directory = os.path.dirname(os.path.abspath(path))
    try:
        fd, tmp = tempfile.mkstemp(dir=directory, prefix=".sigstore-bundle.")
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(data)
            os.chmod(tmp, 0o644)
            os.replace(tmp, path)
        except BaseException:
            os.unlink(tmp)
            raise
    except OSError as exc:
        raise _Failed(f"{path}: {exc.strerror or exc}") from None
