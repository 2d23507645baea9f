"""The compact format (docs/compact-format.md) through the real entrypoint and Workload API server."""

from __future__ import annotations

import datetime as dt
import json
import os
import tempfile
from pathlib import Path

from entrypoint.termination import RunResult, encode_message, parse_message
from entrypoint.testing.ca import TestCA
from entrypoint.testing.workload_api import WorkloadAPIServer
from entrypoint.verify import TrustBundle, Verdict, verify_entries, verify_message
from tests.support.paths import REPO
from tests.support.pki import NS, TASKRUN
from tests.support.tekton import TektonRoot


def sh(script: str) -> list[str]:
    return ["-entrypoint", "/bin/sh", "--", "-c", script]


def compact(agent: WorkloadAPIServer) -> list[str]:
    return ["-signing_backend=spire", "-signature_format=compact", "-spire_socket_path", agent.address,
            "-signing_timeout", "3s", "-signing_retry_interval", "100ms"]  # fmt: skip


def digests(root: TektonRoot, n: int, prefix: str = "IMAGE") -> tuple[str, str]:
    names = ",".join(f"{prefix}{i}_DIGEST" for i in range(n))
    script = "; ".join(f"printf 'sha256:%064d' {i} > {root / 'results'}/{prefix}{i}_DIGEST" for i in range(n))
    return names, script


def termination(root: TektonRoot, i: int) -> Path:
    return root.run_dir(i) / "termination"


def step_args(root: TektonRoot, i: int) -> list[str]:
    """Tekton's arguments for step i, with a termination file of its own (one per container)."""
    args = root.step_args(i)
    args[args.index("-termination_path") + 1] = str(termination(root, i))
    return args


def verdict(message: str, ca: TestCA, **kw: object) -> Verdict:
    trust = TrustBundle(ca.trust_domain, (ca.root_cert,))
    return verify_message(message, namespace=NS, name=TASKRUN, trust=trust, **kw)  # type: ignore[arg-type]


def test_compact_message_binds_every_entry_and_verifies(
    root: TektonRoot, agent: WorkloadAPIServer, ca: TestCA
) -> None:
    names, script = digests(root, 3)
    smd = root.run_dir(0) / "status"
    p = root.run([*step_args(root, 0), *compact(agent), "-results", names, "-step_results", "s", "-on_error",
                  "continue", *sh(f"{script}; printf v > {smd}/results/s; exit 3")])  # fmt: skip
    assert p.returncode == 0, p.stderr
    message = termination(root, 0).read_text()
    entries = parse_message(message)
    keys = {e.key for e in entries}
    assert {"IMAGE0_DIGEST", "s", "StartedAt", "ExitCode", "SIGNATURE"} <= keys
    assert not keys & {"SVID", "RESULT_MANIFEST"}  # one signature, no per-result entries
    v = verdict(message, ca, step="0")
    assert v.verified, v.message
    assert v.format == "compact"
    assert "SIGNATURE" not in {r.key for r in v.results}
    # Internal entries are bound too: the recorded exit code cannot be rewritten.
    forged = [RunResult(e.key, "0", e.type) if e.key == "ExitCode" else e for e in entries]
    assert not verdict(encode_message(forged).decode(), ca).verified


def test_message_replayed_as_another_step_is_rejected(
    root: TektonRoot, agent: WorkloadAPIServer, ca: TestCA
) -> None:
    (root.run_dir(0) / "out").write_text("")  # step 1 waits for step 0's post file
    p = root.run(
        [*step_args(root, 1), *compact(agent), "-results", "a", *sh(f"printf 1 > {root / 'results' / 'a'}")]
    )
    assert p.returncode == 0, p.stderr
    message = termination(root, 1).read_text()
    assert verdict(message, ca, step="1").verified
    rejected = verdict(message, ca, step="2")
    assert not rejected.verified
    assert rejected.reason == "StepMismatch"


def test_later_step_refers_to_the_chain_an_earlier_step_embedded(
    root: TektonRoot, agent: WorkloadAPIServer, ca: TestCA
) -> None:
    # Step 0 embeds the chain; step 1 has 30 digests, which only fit with a reference to it.
    p0 = root.run([*step_args(root, 0), *compact(agent), "-results", "commit",
                   *sh(f"printf abc123 > {root / 'results' / 'commit'}")])  # fmt: skip
    assert p0.returncode == 0, p0.stderr
    assert (root.run_dir(0) / "status" / "signing-material.sha256").exists()
    names, script = digests(root, 30)
    p1 = root.run([*step_args(root, 1), *compact(agent), "-results", names, *sh(script)])
    assert p1.returncode == 0, p1.stderr
    first, second = termination(root, 0).read_text(), termination(root, 1).read_text()
    assert len(second.encode()) <= 4096
    assert ".x509-ref:" in json.loads(second)[-1]["value"]
    alone = verdict(second, ca, step="1")
    assert not alone.verified
    assert alone.reason == "MaterialUnresolved"
    together = verdict(second, ca, step="1", companions=[first])
    assert together.verified, together.message
    assert len([r for r in together.results if r.type == 1]) == 30


def test_too_many_results_without_a_shared_chain_fail_like_tekton(
    root: TektonRoot, agent: WorkloadAPIServer
) -> None:
    names, script = digests(root, 30)
    p = root.run([*step_args(root, 0), *compact(agent), "-results", names, *sh(script)])
    assert p.returncode == 1
    assert "Termination message is above max allowed size 4096" in p.stderr
    assert (root.run_dir(0) / "out").exists()


def test_compression_fits_what_embedding_alone_cannot(
    root: TektonRoot, agent: WorkloadAPIServer, ca: TestCA
) -> None:
    names, script = digests(root, 40)
    p = root.run([*step_args(root, 0), *compact(agent), "-compress_termination_message", "-results", names,
                  *sh(script)])  # fmt: skip
    assert p.returncode == 0, p.stderr
    message = termination(root, 0).read_text()
    assert message.startswith("tknz:")
    assert verdict(message, ca).verified


def test_sidecar_logs_results_are_bound_though_not_written(
    root: TektonRoot, agent: WorkloadAPIServer, ca: TestCA
) -> None:
    script = f"printf 1 > {root / 'results' / 'a'}; printf 2 > {root / 'results' / 'b'}"
    p = root.run([*step_args(root, 0), *compact(agent), "-result_from", "sidecar-logs", "-results", "a,b",
                  *sh(script)])  # fmt: skip
    assert p.returncode == 0, p.stderr
    entries = parse_message(termination(root, 0).read_text())
    assert not {"a", "b"} & {e.key for e in entries}
    trust = TrustBundle(ca.trust_domain, (ca.root_cert,))
    sidecar = [RunResult("a", "1", 1), RunResult("b", "2", 1)]
    assert verify_entries([*entries, *sidecar], namespace=NS, name=TASKRUN, trust=trust).verified
    forged = [RunResult("a", "1", 1), RunResult("b", "3", 1)]
    assert not verify_entries([*entries, *forged], namespace=NS, name=TASKRUN, trust=trust).verified


def test_agent_failure_keeps_the_results_unsigned(root: TektonRoot, ca: TestCA) -> None:
    sock = os.path.join(tempfile.mkdtemp(prefix="wl", dir="/tmp"), "agent.sock")
    args = ["-signing_backend=spire", "-signature_format=compact", "-spire_socket_path", f"unix://{sock}",
            "-signing_timeout", "500ms", "-signing_retry_interval", "100ms"]  # fmt: skip
    p = root.run([*step_args(root, 0), *args, "-results", "a", *sh(f"printf 1 > {root / 'results' / 'a'}")])
    assert p.returncode == 1
    assert "failed to fetch SVID" in p.stderr
    values = {e.key: e.value for e in parse_message(termination(root, 0).read_text())}
    assert values["a"] == "1"  # what the step produced is kept, unsigned
    assert "SIGNATURE" not in values
    assert (root.run_dir(0) / "status" / "exitCode").read_text() == "0"


def test_result_named_signature_is_refused(root: TektonRoot, agent: WorkloadAPIServer) -> None:
    p = root.run([*step_args(root, 0), *compact(agent), "-results", "SIGNATURE",
                  *sh(f"printf x > {root / 'results' / 'SIGNATURE'}")])  # fmt: skip
    assert p.returncode == 1
    assert "reserved" in p.stderr


def test_expired_identity_needs_an_explicit_time(
    root: TektonRoot, agent: WorkloadAPIServer, ca: TestCA
) -> None:
    agent.svid_ttl = dt.timedelta(seconds=40)
    assert root.run([*step_args(root, 0), *compact(agent), *sh("true")]).returncode == 0
    message = termination(root, 0).read_text()
    later = dt.datetime.now(dt.UTC) + dt.timedelta(minutes=5)
    assert verdict(message, ca, at=later).reason == "ChainUntrusted"
    assert verdict(message, ca).verified


def test_the_documented_example_verifies() -> None:
    example = json.loads((REPO / "docs" / "compact-example.json").read_text())
    from cryptography import x509

    root = x509.load_pem_x509_certificate(example["trustBundlePem"].encode())
    trust = TrustBundle(example["trustDomain"], (root,))
    at = dt.datetime.fromisoformat(example["verifyAt"].replace("Z", "+00:00"))
    v = verify_message(example["message"], namespace=example["namespace"], name=example["name"], trust=trust,
                       at=at, step=example["step"])  # fmt: skip
    assert v.verified, v.message
    from entrypoint._internal.formats.compact import SignatureValue, statement

    entries = [e for e in parse_message(example["message"]) if e.key != "SIGNATURE"]
    value = SignatureValue.decode(
        next(e.value for e in parse_message(example["message"]) if e.key == "SIGNATURE")
    )
    rebuilt = statement(
        entries, step=example["step"], signed_at=value.signed_at, material_digest=value.material_digest
    )
    assert rebuilt.decode() == example["statement"]


def test_entries_the_step_writes_into_the_termination_file_are_not_signed(
    root: TektonRoot, agent: WorkloadAPIServer, ca: TestCA
) -> None:
    # The step can write its own termination file; in a sealed message that content must not be
    # signed as if the entrypoint had collected it (a forged exit code, an undeclared result).
    forged = json.dumps([
        {"key": "ExitCode", "value": "0", "type": 3},
        {"key": "UNDECLARED", "value": "evil", "type": 1},
        {"key": "SVID", "value": "x", "type": 1},
    ])  # fmt: skip
    term = termination(root, 0)
    script = f"printf 1 > {root / 'results' / 'a'}; printf '%s' '{forged}' > {term}; exit 7"
    p = root.run(
        [*step_args(root, 0), *compact(agent), "-on_error", "continue", "-results", "a", *sh(script)]
    )
    assert p.returncode == 0, p.stderr
    assert "Discarding" in p.stderr
    message = term.read_text()
    values = {e.key: e.value for e in parse_message(message)}
    assert values["ExitCode"] == "7"
    assert "UNDECLARED" not in values and "SVID" not in values
    assert verdict(message, ca, step="0").verified


def test_a_caller_can_require_the_compact_format(
    root: TektonRoot, agent: WorkloadAPIServer, ca: TestCA
) -> None:
    tekton_args = ["-enable_spire", "-spire_socket_path", agent.address, "-signing_timeout", "3s"]
    p = root.run(
        [*step_args(root, 0), *tekton_args, "-results", "a", *sh(f"printf 1 > {root / 'results' / 'a'}")]
    )
    assert p.returncode == 0, p.stderr
    tekton_message = termination(root, 0).read_text()
    assert verdict(tekton_message, ca).verified
    refused = verdict(tekton_message, ca, formats=["compact"])
    assert not refused.verified
    assert refused.reason == "FormatNotAllowed"
    # ... and the same CLI switch, as a process.
    bundle = root.path / "bundle.pem"
    from cryptography.hazmat.primitives.serialization import Encoding

    bundle.write_bytes(ca.root_cert.public_bytes(Encoding.PEM))
    import subprocess
    import sys

    cli = [sys.executable, "-m", "entrypoint._internal.verify_cli", "--taskrun", f"{NS}/{TASKRUN}",
           "--trust-domain", "example.org", "--trust-bundle", str(bundle)]  # fmt: skip
    message_file = termination(root, 0)
    assert subprocess.run([*cli, str(message_file)], capture_output=True, check=False).returncode == 0
    only_compact = subprocess.run(
        [*cli, "--format", "compact", str(message_file)], capture_output=True, text=True, check=False
    )
    assert only_compact.returncode == 1
    assert "FormatNotAllowed" in only_compact.stdout


def test_compact_verdict_reports_the_bound_step_and_time(
    root: TektonRoot, agent: WorkloadAPIServer, ca: TestCA
) -> None:
    before = dt.datetime.now(dt.UTC).replace(microsecond=0)
    assert root.run([*step_args(root, 0), *compact(agent), *sh("true")]).returncode == 0
    v = verdict(termination(root, 0).read_text(), ca)
    assert v.verified
    assert v.step == "0"
    assert v.signed_at is not None
    assert before <= v.signed_at <= dt.datetime.now(dt.UTC)
    assert v.to_json()["step"] == "0"
