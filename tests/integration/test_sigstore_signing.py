"""The sigstore-keyless backend end to end (docs/sigstore.md): a step signs through the real
``entrypoint`` process against the Fulcio, CT and Rekor doubles (the Kubernetes API double is the
OIDC issuer), and ``entrypoint verify`` checks the message offline; every tampering is rejected
with its own reason, and every server failure fails the signing in one line naming its cause."""

from __future__ import annotations

import base64
import json
import subprocess
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from entrypoint.termination import RunResult, encode_message, parse_message
from entrypoint.testing.fulcio import FulcioDouble, OIDCIssuer
from entrypoint.verify import SigstoreTrust, TaskRunRef, TrustSet, Verifier
from tests.support.k8s_sat import NS, POD, POD_UID, TASKRUN, new_root
from tests.support.k8s_sat import entrypoint as run_entrypoint
from tests.support.sigstore import FORMATS, SAN, Stack, sign_step, stack, verify
from tests.support.tekton import TektonRoot

RESULTS = {"commit": "abc123", "image": "sha256:" + "5" * 64, "url": "https://x.example/a"}
Mutation = Callable[[list[RunResult]], list[RunResult]]


def post_file(root: TektonRoot, failed: bool = False) -> Path:
    return root.run_dir(0) / ("out.err" if failed else "out")


def exit_code_file(root: TektonRoot) -> Path:
    return root.run_dir(0) / "status" / "exitCode"


def entries(path: Path) -> list[RunResult]:
    return parse_message(path.read_text())


def values(path: Path) -> dict[str, str]:
    return {e.key: e.value for e in entries(path)}


def write_entries(path: Path, items: list[RunResult]) -> Path:
    path.write_bytes(encode_message(items))
    return path


@dataclass
class Signed:
    """One signed step per format, and a second signed message to borrow evidence from."""

    stack: Stack
    fmt: str
    message: Path
    other: Path
    process: subprocess.CompletedProcess[str]

    def trust(self, **policy: Any) -> SigstoreTrust:
        options = {"issuer": self.stack.issuer, "identity": SAN, **policy}
        return SigstoreTrust.from_file(str(self.stack.trusted_root), **options)


@pytest.fixture(scope="module", params=FORMATS)
def signed(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Signed]:
    fmt = str(request.param)
    base = tmp_path_factory.mktemp(f"sigstore-{fmt}")
    with stack(base / "stack") as s:
        root = new_root(base / "root")
        p = sign_step(root, s, RESULTS, fmt)
        assert p.returncode == 0, p.stderr
        other_root = new_root(base / "other")
        q = sign_step(other_root, s, {**RESULTS, "commit": "def456"}, fmt)
        assert q.returncode == 0, q.stderr
        yield Signed(s, fmt, root.termination, other_root.termination, p)


def _library(signed: Signed, items: list[RunResult], **ref: Any) -> Any:
    taskrun = TaskRunRef(ref.pop("namespace", NS), ref.pop("name", TASKRUN), **ref)
    return Verifier(TrustSet(sigstore=signed.trust())).verify_entries(items, taskrun)


def test_a_signed_step_verifies_offline_with_its_log_record(signed: Signed) -> None:
    verdict = verify(signed.stack, signed.message)
    assert verdict["verified"], verdict["message"]
    assert verdict["format"] == signed.fmt
    assert verdict["identity"] == SAN
    assert {r["key"]: r["value"] for r in verdict["results"]}.items() >= RESULTS.items()
    assert all(e["type"] != 1 for e in verdict["unsigned"])  # only internal entries
    found = values(signed.message)
    assert "SIGSTORE_LOG" in found
    index = int(found["SIGSTORE_LOG"].split(".")[1])
    # The record names an entry the log holds, made while the certificate was valid.
    assert index < len(signed.stack.rekor.entries)
    assert len(signed.message.read_bytes()) <= 4096
    # The certificate names the service account only: the pod is in the signed binding.
    if signed.fmt == "tekton":
        assert found["SIGSTORE_BINDING"].startswith(f"sb1/{NS}/{TASKRUN}/{POD}/{POD_UID}/0/")
    # No token in what the step printed.
    token = signed.stack.token_file.read_text().strip()
    assert token not in signed.process.stdout + signed.process.stderr


def test_the_library_and_the_process_agree(signed: Signed) -> None:
    verdict = _library(signed, entries(signed.message))
    assert verdict.verified, verdict.message
    assert verdict.identity == SAN


def test_an_identity_pattern_may_stand_for_the_san(signed: Signed) -> None:
    pattern = rf"https://kubernetes\.io/namespaces/{NS}/serviceaccounts/[a-z-]+"
    p = run_entrypoint(
        "verify", "--taskrun", f"{NS}/{TASKRUN}", "--json",
        "--sigstore-trusted-root", str(signed.stack.trusted_root),
        "--certificate-identity-regexp", pattern,
        "--certificate-oidc-issuer", signed.stack.issuer, str(signed.message),
    )  # fmt: skip
    assert p.returncode == 0, p.stdout + p.stderr


@pytest.mark.parametrize(
    ("flags", "reason"),
    [
        (
            ["--certificate-identity", f"https://kubernetes.io/namespaces/{NS}/serviceaccounts/other"],
            "IdentityMismatch",
        ),
        (["--certificate-oidc-issuer", "https://issuer.example"], "IdentityMismatch"),
    ],
    ids=["another SAN", "another issuer"],
)
def test_another_identity_policy_rejects_it(signed: Signed, flags: list[str], reason: str) -> None:
    args = signed.stack.verify_args()
    for flag, value in zip(flags[::2], flags[1::2], strict=True):
        args[args.index(flag) + 1] = value
    p = run_entrypoint("verify", "--taskrun", f"{NS}/{TASKRUN}", "--json", *args, str(signed.message))
    assert p.returncode == 1, p.stdout + p.stderr
    assert json.loads(p.stdout)["reason"] == reason


@pytest.mark.parametrize(
    ("ref", "reason"),
    [
        ({"name": "build-2", "pod_name": POD}, "BindingMismatch"),
        ({"namespace": "other"}, "BindingMismatch"),
        ({"pod_name": "build-1-pod-retry1"}, "BindingMismatch"),
        ({"pod_uid": "00000000-0000-0000-0000-000000000000"}, "BindingMismatch"),
        ({"step": "1"}, "StepMismatch"),
    ],
    ids=["another TaskRun", "another namespace", "another pod", "another pod UID", "another step"],
)
def test_a_message_moved_elsewhere_is_rejected(signed: Signed, ref: dict[str, Any], reason: str) -> None:
    verdict = _library(signed, entries(signed.message), **ref)
    assert not verdict.verified
    assert verdict.reason == reason, verdict.message
    # The right ones still pass: the check compares, it does not refuse everything.
    assert _library(signed, entries(signed.message), pod_uid=POD_UID, step="0").verified


def test_a_certificate_outside_the_trusted_root_is_rejected(signed: Signed, tmp_path: Path) -> None:
    # Another Fulcio (another CA) with the same issuer: its trusted root does not hold our CA.
    with FulcioDouble(
        [OIDCIssuer(signed.stack.issuer, "kubernetes", ca_pem=signed.stack.kube.ca_pem)]
    ) as other:
        root = tmp_path / "trusted_root.json"
        root.write_text(signed.stack.trusted_root.read_text())
        other.write_trusted_root(root)
    args = ["--sigstore-trusted-root", str(root), "--certificate-identity", SAN]
    p = run_entrypoint(
        "verify", "--taskrun", f"{NS}/{TASKRUN}", "--json", *args,
        "--certificate-oidc-issuer", signed.stack.issuer, str(signed.message),
    )  # fmt: skip
    assert p.returncode == 1
    shown = json.loads(p.stdout)
    # With the other CA's CT log key as the only one, the chain is what fails first.
    assert shown["reason"] == "ChainUntrusted", shown["message"]


def test_an_sct_from_an_unknown_ct_log_is_rejected(signed: Signed, tmp_path: Path) -> None:
    doc = json.loads(signed.stack.trusted_root.read_text())
    with FulcioDouble([OIDCIssuer(signed.stack.issuer, "kubernetes")]) as other:
        doc["ctlogs"] = [other.ctlog_instance()]
    root = tmp_path / "trusted_root.json"
    root.write_text(json.dumps(doc))
    trust = SigstoreTrust.from_file(str(root), issuer=signed.stack.issuer, identity=SAN)
    verdict = Verifier(TrustSet(sigstore=trust)).verify_entries(
        entries(signed.message), TaskRunRef(NS, TASKRUN)
    )
    assert verdict.reason == "SCTInvalid", verdict.message


def test_a_log_key_outside_the_trusted_root_is_rejected(signed: Signed, tmp_path: Path) -> None:
    doc = json.loads(signed.stack.trusted_root.read_text())
    doc["tlogs"] = []
    root = tmp_path / "trusted_root.json"
    root.write_text(json.dumps(doc))
    trust = SigstoreTrust.from_file(str(root), issuer=signed.stack.issuer, identity=SAN)
    verdict = Verifier(TrustSet(sigstore=trust)).verify_entries(
        entries(signed.message), TaskRunRef(NS, TASKRUN)
    )
    assert verdict.reason == "LogInvalid", verdict.message
    assert "is not in" in verdict.message


def _set(key: str, value: str) -> Mutation:
    return lambda items: [RunResult(e.key, value, e.type) if e.key == key else e for e in items]


def _drop(key: str) -> Mutation:
    return lambda items: [e for e in items if e.key != key]


def _add(key: str, value: str) -> Mutation:
    return lambda items: [*items, RunResult(key, value, 1)]


def _record_field(index: int, change: Callable[[str], str]) -> Mutation:
    def mutate(items: list[RunResult]) -> list[RunResult]:
        out = []
        for e in items:
            if e.key == "SIGSTORE_LOG":
                fields = e.value.split(".")
                fields[index] = change(fields[index])
                e = RunResult(e.key, ".".join(fields), e.type)
            out.append(e)
        return out

    return mutate


def _flip(text: str) -> str:
    raw = bytearray(base64.urlsafe_b64decode(text + "=" * (-len(text) % 4)))
    raw[-1] ^= 1
    return base64.urlsafe_b64encode(bytes(raw)).rstrip(b"=").decode()


def _borrowed_log(signed: Signed) -> Mutation:
    # The log record of another genuine signature, by the same identity, in the same log.
    record = values(signed.other)["SIGSTORE_LOG"]
    return _set("SIGSTORE_LOG", record)


def _both(reason: str) -> dict[str, str]:
    return {fmt: reason for fmt in FORMATS}


def _bump(delta: int) -> Callable[[str], str]:
    return lambda t: str(int(t) + delta)


BAD_PEM = "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"
TAMPERING: dict[str, tuple[Callable[[Signed], Mutation], dict[str, str]]] = {
    # The log is checked first: its entry commits to every value (in the compact format through
    # the statement), so a changed, added or dropped value no longer matches the logged entry.
    "changed value": (lambda s: _set("commit", "evil"), _both("LogInvalid")),
    "dropped result": (lambda s: _drop("url"), {"tekton": "ManifestIncomplete", "compact": "LogInvalid"}),
    "log record dropped": (lambda s: _drop("SIGSTORE_LOG"), _both("LogMissing")),
    "log record of another signature": (_borrowed_log, _both("LogInvalid")),
    "SET forged": (lambda s: _record_field(4, _flip), _both("LogInvalid")),
    "log index changed": (lambda s: _record_field(1, _bump(1)), _both("LogInvalid")),
    "integrated time changed": (lambda s: _record_field(2, _bump(-1)), _both("LogInvalid")),
    "log record garbled": (lambda s: _set("SIGSTORE_LOG", "rk1.x"), _both("LogInvalid")),
    "added unsigned result": (
        lambda s: _add("injected", "x"), {"tekton": "SignatureMissing", "compact": "LogInvalid"}
    ),
}  # fmt: skip
TEKTON_ONLY: dict[str, tuple[Mutation, str]] = {
    "binding changed": (_set("SIGSTORE_BINDING", f"sb1/{NS}/{TASKRUN}/{POD}/{POD_UID}/0/1"), "LogInvalid"),
    "binding dropped": (_drop("SIGSTORE_BINDING"), "BindingMismatch"),
    "certificate dropped": (_drop("SIGSTORE_CERT"), "CertificateInvalid"),
    "certificate garbled": (_set("SIGSTORE_CERT", BAD_PEM), "CertificateInvalid"),
    "result signature dropped": (_drop("commit.sig"), "SignatureMissing"),
    "manifest shortened": (_set("RESULT_MANIFEST", "image,url"), "LogInvalid"),
    "logged signature flipped": (_record_field(5, _flip), "LogInvalid"),
    "logged signature removed": (_record_field(5, lambda _: ""), "LogInvalid"),
}  # fmt: skip


def _signature_field(index: int, change: Callable[[str], str]) -> Mutation:
    def mutate(items: list[RunResult]) -> list[RunResult]:
        out = []
        for e in items:
            if e.key == "SIGNATURE":
                fields = e.value.split(".", 7)
                fields[index] = change(fields[index])
                e = RunResult(e.key, ".".join(fields), e.type)
            out.append(e)
        return out

    return mutate


def _material(change: Callable[[bytes], bytes]) -> Callable[[str], str]:
    def edit(field: str) -> str:
        kind, _, data = field.partition(":")
        raw = base64.urlsafe_b64decode(data + "=" * (-len(data) % 4))
        return kind + ":" + base64.urlsafe_b64encode(change(raw)).rstrip(b"=").decode()

    return edit


COMPACT_ONLY: dict[str, tuple[Mutation, str]] = {
    "signature bit flipped": (_signature_field(6, _flip), "LogInvalid"),
    "signedAt changed": (_signature_field(2, lambda t: str(int(t) - 1)), "LogInvalid"),
    "step changed": (_signature_field(1, lambda _: "1"), "LogInvalid"),
    "binding moved to another TaskRun": (
        _signature_field(7, _material(lambda m: m.replace(b"/build-1/", b"/build-2/", 1))), "BindingMismatch"
    ),
    "certificate garbled": (_signature_field(7, _material(lambda m: m[:-10])), "CertificateInvalid"),
    "record carries a signature": (_record_field(5, lambda _: "AAAA"), "LogInvalid"),
}  # fmt: skip


def _check(signed: Signed, mutate: Mutation, expected: str, tmp_path: Path) -> None:
    original = entries(signed.message)
    tampered = mutate(original)
    assert tampered != original
    verdict = _library(signed, tampered)
    assert not verdict.verified
    assert verdict.reason == expected, verdict.message
    path = write_entries(tmp_path / "tampered", tampered)
    shown = verify(signed.stack, path)
    assert shown["reason"] == expected and shown["message"] == verdict.message


@pytest.mark.parametrize("case", list(TAMPERING))
def test_tampering_is_rejected(signed: Signed, case: str, tmp_path: Path) -> None:
    make, expected = TAMPERING[case]
    _check(signed, make(signed), expected[signed.fmt], tmp_path)


@pytest.mark.parametrize("signed", ["tekton"], indirect=True)
@pytest.mark.parametrize("case", list(TEKTON_ONLY))
def test_tampering_is_rejected_tekton(signed: Signed, case: str, tmp_path: Path) -> None:
    _check(signed, *TEKTON_ONLY[case], tmp_path)


@pytest.mark.parametrize("signed", ["compact"], indirect=True)
@pytest.mark.parametrize("case", list(COMPACT_ONLY))
def test_tampering_is_rejected_compact(signed: Signed, case: str, tmp_path: Path) -> None:
    _check(signed, *COMPACT_ONLY[case], tmp_path)


def test_without_a_log_record_only_an_explicit_policy_accepts_it(signed: Signed, tmp_path: Path) -> None:
    path = write_entries(tmp_path / "no-log", _drop("SIGSTORE_LOG")(entries(signed.message)))
    assert verify(signed.stack, path)["reason"] == "LogMissing"
    # Then the certificate is checked at the signing time the signature claims.
    shown = verify(signed.stack, path, "--sigstore-allow-no-log")
    assert shown["verified"], shown["message"]


def test_a_service_account_cannot_sign_for_another_namespaces_taskrun(signed: Signed, tmp_path: Path) -> None:
    # The step claims (in the signed binding) to be a TaskRun of namespace "other", with a
    # certificate for a service account of namespace "builds": a policy that takes any service
    # account still refuses it.
    root = new_root(tmp_path / "root")
    p = sign_step(root, signed.stack, {"commit": "abc"}, signed.fmt, env={"POD_NAMESPACE": "other"})
    assert p.returncode == 0, p.stderr
    any_account = r"https://kubernetes\.io/namespaces/[^/]+/serviceaccounts/[^/]+"
    trust = signed.trust(identity=None, identity_regexp=any_account)
    verdict = Verifier(TrustSet(sigstore=trust)).verify_entries(
        entries(root.termination), TaskRunRef("other", TASKRUN)
    )
    assert verdict.reason == "BindingMismatch", verdict.message
    assert "service account is in namespace 'builds'" in verdict.message
