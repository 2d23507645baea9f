"""``make bench``'s sigstore-keyless section: what fits in 4096 bytes, and what signing adds to a step.

Against the doubles (Kubernetes API as the OIDC issuer, Fulcio with its CT log, Rekor), run in this
process: the certificate, the binding and the Rekor record are the real sizes of what a step writes.
"""

from __future__ import annotations

import contextlib
import functools
import os
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from benchlib import fast_tmp, fmt_ms, spawn

from entrypoint._internal.backends.sigstore.log import LogHook
from entrypoint._internal.signing.identity import Identity

NAMINGS = {
    "typical names": (
        "https://kubernetes.default.svc.cluster.local",
        "my-namespace", "build-image-run-x7k2p", "pipeline",
    ),
    "long names": (
        "https://container.googleapis.com/v1/projects/acme-platform-builds-prod/locations/europe-west4/clusters/build-cluster-01",
        "team-platform-build-production", "release-candidate-build-and-publish-multiarch-images-run",
        "tekton-pipelines-build-bot",
    ),
}  # fmt: skip
POD_UID = "0d8b260e-5b1c-4b8e-9a55-6f1f0b1c2d3e"


@dataclass
class Doubles:
    """The running doubles and the environment a signing step gets from them."""

    env: dict[str, str]
    token: str


@contextlib.contextmanager
def doubles(directory: Path, issuer: str, namespace: str, taskrun: str, sa: str) -> Iterator[Doubles]:
    from entrypoint.testing.fulcio import FulcioDouble, OIDCIssuer
    from entrypoint.testing.kube import KubeAPIServer
    from entrypoint.testing.rekor import RekorDouble

    pod = f"{taskrun}-pod"
    with contextlib.ExitStack() as stack:
        kube = stack.enter_context(KubeAPIServer(issuer=issuer, anonymous_discovery=True))
        kube.add_pod(namespace, pod, POD_UID, sa)
        fulcio = stack.enter_context(
            FulcioDouble([OIDCIssuer(issuer, "kubernetes", ca_pem=kube.ca_pem, discovery_url=kube.url)])
        )
        rekor = stack.enter_context(RekorDouble())
        root = directory / "trusted_root.json"
        fulcio.write_trusted_root(root)
        rekor.write_trusted_root(root)
        ca = directory / "ca.pem"
        ca.write_bytes(fulcio.ca_pem + rekor.ca_pem)
        token = kube.issue_token(namespace, sa, pod, audiences=["sigstore"], expires_in=600)
        token_file = directory / "token"
        token_file.write_text(token)
        yield Doubles(
            {
                "SIGNED_ENTRYPOINT_FULCIO_ADDRESS": fulcio.url,
                "SIGNED_ENTRYPOINT_TRANSPARENCY_URL": rekor.url,
                "SIGNED_ENTRYPOINT_IDENTITY_TOKEN_FILE": str(token_file),
                "SIGNED_ENTRYPOINT_SIGSTORE_TRUSTED_ROOT": str(root),
                "SIGNED_ENTRYPOINT_SIGSTORE_CA_FILE": str(ca),
                "TASKRUN_NAME": taskrun,
                "POD_NAMESPACE": namespace,
                "POD_NAME": pod,
                "POD_UID": POD_UID,
            },
            token,
        )


def _message_bytes(fmt: str, n: int, compressed: bool, ident: Identity, hook: LogHook) -> int:
    from entrypoint._internal.signing.compact_format import CompactFormat
    from entrypoint._internal.signing.tekton_format import TektonFormat
    from entrypoint.termination import RunResult, encode_message

    sys_path_bench()
    from bench import digest_results

    started = RunResult("StartedAt", "2026-11-22T10:00:00.000Z", 3)
    entries = digest_results(n)
    if fmt == "tekton":
        block = TektonFormat().sign(entries, ident)
        msg = [*entries, *block, *hook([*entries, *block], ident), started]
    else:
        [option] = CompactFormat("2").seal_options([*entries, started], ident, frozenset())
        msg = [*option, *hook(option, ident)]
    return len(encode_message(msg, compressed))


def capacity() -> list[tuple[str, str, int, int, int, int, int]]:
    """Per naming and format: leaf DER bytes, the message with 5 (tekton) or 20 (compact) image
    digests, and the most that fit plain and with tknz:."""
    from entrypoint._internal.backends.sigstore.config import fetcher_args
    from entrypoint._internal.backends.sigstore.fetch import KeylessFetcher
    from entrypoint.termination import MAX_MESSAGE_BYTES

    sys_path_bench()
    from bench import most_that_fit

    rows = []
    for naming, (issuer, namespace, taskrun, sa) in NAMINGS.items():
        with tempfile.TemporaryDirectory() as tmp, doubles(Path(tmp), issuer, namespace, taskrun, sa) as d:
            args: dict[str, Any] = fetcher_args(spire_socket="", environ=d.env, step="2")
            # The fetcher in this process stands in for the identity helper: its ``call`` uploads.
            fetcher = KeylessFetcher(**args)
            ident = fetcher.fetch(20.0)
            leaf = len(getattr(ident.evidence, "leaf_der", b""))
            for fmt, budget in (("tekton", 5), ("compact", 20)):
                hook = LogHook(fetcher, fmt, 20.0)
                most = [
                    most_that_fit(
                        functools.partial(
                            _fits, fmt=fmt, compressed=z, ident=ident, hook=hook, limit=MAX_MESSAGE_BYTES
                        )
                    )
                    for z in (False, True)
                ]
                size = _message_bytes(fmt, budget, False, ident, hook)
                rows.append((naming, fmt, leaf, budget, size, most[0], most[1]))
            fetcher.close()
    return rows


def _fits(n: int, *, fmt: str, compressed: bool, ident: Identity, hook: LogHook, limit: int) -> bool:
    return _message_bytes(fmt, n, compressed, ident, hook) <= limit


def sys_path_bench() -> None:
    import sys

    here = str(Path(__file__).resolve().parent)
    if here not in sys.path:
        sys.path.insert(0, here)


def bench_sigstore(runs: int, cmds: dict[str, list[str]]) -> None:
    print(
        "\n(f2) sigstore-keyless: termination message bytes (limit 4096) with a Fulcio leaf, the binding and"
    )
    print("     the Rekor record, for 5 (tekton) or 20 (compact) image digests, and the most that fit")
    for naming, fmt, leaf, budget, size, most, most_z in capacity():
        ok = "ok" if size <= 4096 else "OVER"
        print(f"  {naming:<14} leaf {leaf:4d} B  {fmt:<8} {budget:2d} results: {size:4d} B ({ok:>4})"
              f"   most: {most:2d}, with tknz: {most_z:2d}")  # fmt: skip
    overhead(runs, cmds)


def overhead(runs: int, cmds: dict[str, list[str]]) -> None:
    """Steps that write 5 results (as many as Tekton's format fits with long names):
    sigstore-keyless signed vs unsigned, per format, for a 0.3 s and a 1 s command.  The identity
    (helper start-up, the token, Fulcio, the checks) is fetched while the command runs; a command
    shorter than that fetch waits for the rest of it."""
    for seconds in (os.environ.get("BENCH_STEP_SECONDS", "0.3"), "1.0"):
        _overhead(runs if seconds != "1.0" else max(runs // 3, 3), cmds, seconds)


def _overhead(runs: int, cmds: dict[str, list[str]], seconds: str) -> None:
    name, cmd = next(iter(cmds.items()))
    n = 5
    print(
        f"\n(f3) a step running {seconds} s that writes {n} results: sigstore-keyless signed (Fulcio, Rekor)"
    )
    print(f"     vs unsigned ({name}); {runs} runs each, interleaved")
    issuer, namespace, taskrun, sa = NAMINGS["typical names"]
    with (
        tempfile.TemporaryDirectory(dir=fast_tmp()) as tmp,
        doubles(Path(tmp), issuer, namespace, taskrun, sa) as d,
    ):
        writes = "; ".join(f"printf 'sha256:%064d' {i} > $R/IMAGE{i}_DIGEST" for i in range(n))
        script = f"{writes}; sleep {seconds}"
        names = ",".join(f"IMAGE{i}_DIGEST" for i in range(n))
        for fmt in ("tekton", "compact"):
            samples: dict[str, list[float]] = {"unsigned": [], "signed": []}
            for i in range(runs + 1):
                for variant, kept in samples.items():
                    root = Path(tmp) / f"{fmt}-{variant}-{i}"
                    (root / "results").mkdir(parents=True)
                    sign = (
                        ["-signing_backend=sigstore-keyless", f"-signature_format={fmt}"]
                        if variant == "signed"
                        else []
                    )
                    args = [*cmd, *sign, "-termination_path", str(root / "termination"),
                            "-step_metadata_dir", str(root / "status"), "-post_file", str(root / "out"),
                            "-results", names, "-entrypoint", "/bin/sh", "--", "-c", script]  # fmt: skip
                    env = {
                        **os.environ,
                        **d.env,
                        "SIGNED_ENTRYPOINT_ROOT": str(root),
                        "R": str(root / "results"),
                    }
                    try:
                        s = spawn(args, env)
                    except RuntimeError:
                        import subprocess

                        p = subprocess.run(args, env=env, capture_output=True, text=True, check=False)
                        raise RuntimeError(f"the {variant} {fmt} step failed: {p.stderr.strip()}") from None
                    if i:
                        kept.append(s.seconds)
                    if variant == "signed" and "SIGSTORE_LOG" not in (root / "termination").read_text():
                        raise RuntimeError(
                            f"the signed step wrote no log record: {(root / 'termination').read_text()}"
                        )
            paired = [sg - un for sg, un in zip(samples["signed"], samples["unsigned"], strict=True)]
            print(f"  {fmt}")
            for variant, ss in samples.items():
                print(f"    {variant:<20} {fmt_ms(ss)}")
            print(f"    {'added by signing':<20} {fmt_ms(paired)}  (median of paired differences)")


if __name__ == "__main__":
    sys_path_bench()
    from bench import entrypoint_commands

    bench_sigstore(int(os.environ.get("BENCH_RUNS", "10")), entrypoint_commands())
