"""sigstore-keyless signing failures through the real ``entrypoint`` process: each fails the step in
one line naming its cause (Fulcio's or Rekor's own reason, the SCT, the file), never prints the
token, and keeps what the step did (post file, exitCode, the results unsigned)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from entrypoint.termination import parse_message
from tests.support.k8s_sat import NS, POD, SA, new_root
from tests.support.sigstore import FORMATS, Stack, sign_step, stack, verify

Fault = Callable[[Stack], dict[str, str]]


@pytest.fixture(scope="module")
def doubles(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    with stack(tmp_path_factory.mktemp("sigstore-failures")) as s:
        yield s


@pytest.fixture
def s(doubles: Stack) -> Iterator[Stack]:
    yield doubles
    doubles.fulcio.fail_status = None
    doubles.fulcio.sct_mode = "embedded"
    doubles.rekor.fail_status = None
    doubles.rekor.bad_set = False
    doubles.refresh_token()


def _fulcio_down(s: Stack) -> dict[str, str]:
    s.fulcio.fail_status = 500
    return {}


def _token_for_another_audience(s: Stack) -> dict[str, str]:
    s.token_file.write_text(s.kube.issue_token(NS, SA, POD, audiences=["not-sigstore"]))
    return {}


def _no_sct(s: Stack) -> dict[str, str]:
    s.fulcio.sct_mode = "none"
    return {}


def _sct_by_another_log(s: Stack) -> dict[str, str]:
    s.fulcio.sct_mode = "wrong-key"
    return {}


def _rekor_down(s: Stack) -> dict[str, str]:
    s.rekor.fail_status = 500
    return {}


def _forged_set(s: Stack) -> dict[str, str]:
    s.rekor.bad_set = True
    return {}


def _no_token_file(s: Stack) -> dict[str, str]:
    return {"SIGNED_ENTRYPOINT_IDENTITY_TOKEN_FILE": str(s.directory / "missing-token")}


def _no_trusted_root(s: Stack) -> dict[str, str]:
    return {"SIGNED_ENTRYPOINT_SIGSTORE_TRUSTED_ROOT": ""}


def _plain_http_fulcio(s: Stack) -> dict[str, str]:
    return {"SIGNED_ENTRYPOINT_FULCIO_ADDRESS": s.fulcio.url.replace("https://", "http://")}


def _another_issuer_expected(s: Stack) -> dict[str, str]:
    return {"SIGNED_ENTRYPOINT_FULCIO_ISSUER": "https://issuer.example"}


FAULTS: dict[str, tuple[Fault, tuple[str, ...]]] = {
    "fulcio answers 500": (_fulcio_down, ("no certificate within the signing budget of 3s", "HTTP 500")),
    "token for another audience": (_token_for_another_audience, ("HTTP 400", "the identity token")),
    "no embedded SCT": (_no_sct, ("no embedded SCT", "signedCertificateDetachedSct")),
    "SCT by an unknown CT log": (_sct_by_another_log, ("refused its certificate", "SCT")),
    "rekor answers 500": (_rekor_down, ("transparency log", "rekor https://", "HTTP 500")),
    "forged SET": (_forged_set, ("transparency log", "signed entry timestamp does not verify")),
    "no token file": (_no_token_file, ("identity token file", "missing-token", "No such file")),
    "no trusted root": (_no_trusted_root, ("no trusted root", "SIGNED_ENTRYPOINT_SIGSTORE_TRUSTED_ROOT"),),
    "fulcio over plain http": (_plain_http_fulcio, ("must be an https URL",)),
    "token from an unexpected issuer": (_another_issuer_expected, ("SIGNED_ENTRYPOINT_FULCIO_ISSUER", "https://issuer.example")),
}  # fmt: skip


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("fault", list(FAULTS))
def test_a_failure_fails_the_signing_in_one_line(s: Stack, tmp_path: Path, fault: str, fmt: str) -> None:
    make, expected = FAULTS[fault]
    env = make(s)
    root = new_root(tmp_path / "root")
    p = sign_step(root, s, {"commit": "abc"}, fmt, env=env)
    assert p.returncode == 1, p.stdout + p.stderr
    assert p.stderr.count("\n") == 1, p.stderr  # one line, no traceback
    for text in expected:
        assert text in p.stderr, p.stderr
    token = s.token_file.read_text().strip()
    assert token and token not in p.stdout + p.stderr
    # What the step did is kept: its post file, its exit code, its results (unsigned).
    assert (root.run_dir(0) / "out").exists() and not (root.run_dir(0) / "out.err").exists()
    assert (root.run_dir(0) / "status" / "exitCode").read_text() == "0"
    found = {e.key: e.value for e in parse_message(root.termination.read_text())}
    assert found["commit"] == "abc"
    assert not {"SIGSTORE_CERT", "SIGSTORE_LOG", "SIGNATURE", "RESULT_MANIFEST"} & set(found)


@pytest.mark.parametrize("fmt", FORMATS)
def test_transient_failures_are_retried(s: Stack, tmp_path: Path, fmt: str) -> None:
    s.fulcio.fail_next(2, 503)
    s.rekor.fail_next(1, 503)
    root = new_root(tmp_path / "root")
    p = sign_step(root, s, {"commit": "abc"}, fmt)
    assert p.returncode == 0, p.stderr
    assert verify(s, root.termination)["verified"]


@pytest.mark.parametrize("fmt", FORMATS)
def test_the_kubernetes_provider_asks_for_a_pod_bound_sigstore_token(
    s: Stack, tmp_path: Path, fmt: str
) -> None:
    # No projected token: the step's own service account asks the API server (TokenRequest).
    sa_dir = tmp_path / "serviceaccount"
    kube_env = s.kube.write_in_cluster_files(sa_dir, s.pod)
    env = {
        **kube_env,
        "SIGNED_ENTRYPOINT_FULCIO_PROVIDER": "kubernetes",
        "SIGNED_ENTRYPOINT_IDENTITY_TOKEN_FILE": str(tmp_path / "none"),
        "SIGNED_ENTRYPOINT_KUBE_TOKEN_FILE": str(sa_dir / "token"),
        "SIGNED_ENTRYPOINT_KUBE_CA_FILE": str(sa_dir / "ca.crt"),
        "SIGNED_ENTRYPOINT_KUBE_NAMESPACE_FILE": str(sa_dir / "namespace"),
    }
    before = len([r for r in s.kube.requests if r[0] == "POST" and r[1].endswith("/token")])
    root = new_root(tmp_path / "root")
    p = sign_step(root, s, {"commit": "abc"}, fmt, env=env)
    assert p.returncode == 0, p.stderr
    after = len([r for r in s.kube.requests if r[0] == "POST" and r[1].endswith("/token")])
    assert after == before + 1
    assert verify(s, root.termination)["verified"]


@pytest.mark.parametrize("fmt", FORMATS)
def test_the_public_key_proof_signs_the_tokens_subject(s: Stack, tmp_path: Path, fmt: str) -> None:
    root = new_root(tmp_path / "root")
    p = sign_step(root, s, {"commit": "abc"}, fmt, env={"SIGNED_ENTRYPOINT_FULCIO_PROOF": "public-key"})
    assert p.returncode == 0, p.stderr
    assert verify(s, root.termination)["verified"]


@pytest.mark.parametrize("fmt", FORMATS)
def test_without_a_transparency_log_it_signs_and_verifies_only_when_allowed(
    s: Stack, tmp_path: Path, fmt: str
) -> None:
    before = len(s.rekor.entries)
    root = new_root(tmp_path / "root")
    p = sign_step(root, s, {"commit": "abc"}, fmt, env={"SIGNED_ENTRYPOINT_TRANSPARENCY_ENABLED": "false"})
    assert p.returncode == 0, p.stderr
    assert len(s.rekor.entries) == before
    assert verify(s, root.termination)["reason"] == "LogMissing"
    assert verify(s, root.termination, "--sigstore-allow-no-log")["verified"]
