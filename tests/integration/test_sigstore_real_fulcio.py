"""sigstore-keyless against the real Fulcio (v1.8.8, ``tools/peers.sh build fulcio``): a step signs
through the real ``entrypoint`` process with a certificate of Fulcio's own making (its ephemeral CA,
a Kubernetes issuer that is the Kubernetes API double, the CT log double over HTTPS, whose SCT Fulcio
embeds and checks), logged in the Rekor double; ``entrypoint verify`` accepts it offline with a
trusted root of Fulcio's CA, the CT log's key and Rekor's, and rejects it under another SAN.  Fulcio's
own refusals (a token for another audience; no CT log, so no embedded SCT) fail the signing in one
line naming the reason.

Fulcio is started once per module (its start takes ~0.2 s) and reached through a TLS front
(tests/support/fulcio_peer.py: Fulcio serves clear text, and the signer sends tokens to https only).
Not built, the module fails rather than skips: ``make test`` builds it first.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator, Mapping
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from entrypoint.termination import parse_message
from entrypoint.testing.ctlog import CTLogDouble
from entrypoint.testing.kube import KubeAPIServer
from entrypoint.testing.rekor import RekorDouble
from tests.support.fulcio_peer import FulcioNotBuilt, FulcioPeer, fulcio_binary
from tests.support.k8s_sat import NS, POD, POD_UID, SA, TASKRUN, entrypoint, new_root, sh, write_results
from tests.support.sigstore import _SCRUBBED as SCRUBBED
from tests.support.sigstore import AUDIENCE, FORMATS, SAN, flags
from tests.support.tekton import TektonRoot

RESULTS = {"commit": "abc123", "image": "sha256:" + "5" * 64}
OTHER_SAN = f"https://kubernetes.io/namespaces/{NS}/serviceaccounts/other"
# Fulcio's answer to any token it refuses (pkg/server/error.go), as grpc-gateway's JSON "message".
INVALID_IDENTITY_TOKEN = "There was an error processing the identity token"


@dataclass
class RealStack:
    """The real Fulcio and the doubles around it, and the files a step and a verifier are given."""

    kube: KubeAPIServer
    fulcio: FulcioPeer
    ctlog: CTLogDouble
    rekor: RekorDouble
    directory: Path
    env: dict[str, str] = field(default_factory=dict)

    @property
    def trusted_root(self) -> Path:
        return self.directory / "trusted_root.json"

    @property
    def token_file(self) -> Path:
        return self.directory / "sigstore-token"

    @property
    def issuer(self) -> str:
        return self.kube.issuer

    def verify_args(self, *, identity: str = SAN) -> list[str]:
        return [
            "--sigstore-trusted-root", str(self.trusted_root),
            "--certificate-identity", identity,
            "--certificate-oidc-issuer", self.issuer,
        ]  # fmt: skip


def _binary() -> Path:
    try:
        return fulcio_binary()
    except FulcioNotBuilt as err:
        pytest.fail(
            f"the real Fulcio is not built ({err}): run `bash tools/peers.sh build fulcio`"
            " (make test builds it first)",
            pytrace=False,
        )


def _public_key_pem(der: bytes) -> bytes:
    return serialization.load_der_public_key(der).public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def _write_trust(s: RealStack, fulcio: FulcioPeer, directory: Path) -> dict[str, str]:
    """The trusted root (``fulcio``'s CA, the CT log's key, Rekor's key) and the TLS CAs in
    ``directory``, as the step's variables."""
    root = directory / "trusted_root.json"
    fulcio.write_trusted_root(root)
    s.ctlog.write_trusted_root(root)
    s.rekor.write_trusted_root(root)
    ca_file = directory / "sigstore-ca.pem"
    ca_file.write_bytes(fulcio.ca_pem + s.rekor.ca_pem)
    return {
        "SIGNED_ENTRYPOINT_FULCIO_ADDRESS": fulcio.https_url,
        "SIGNED_ENTRYPOINT_SIGSTORE_TRUSTED_ROOT": str(root),
        "SIGNED_ENTRYPOINT_SIGSTORE_CA_FILE": str(ca_file),
    }


@pytest.fixture(scope="module")
def real(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RealStack]:
    binary = _binary()
    directory = tmp_path_factory.mktemp("real-fulcio")
    with ExitStack() as on_exit:
        # Fulcio reads the issuer's discovery document and JWKS without credentials.
        kube = on_exit.enter_context(KubeAPIServer(alg="RS256", anonymous_discovery=True))
        kube.add_pod(NS, POD, POD_UID, SA)
        ctlog = on_exit.enter_context(CTLogDouble())
        rekor = on_exit.enter_context(RekorDouble())
        fulcio = FulcioPeer(
            kube.issuer,
            kube.ca_pem,
            ct_log_url=ctlog.url,
            ct_log_ca_pem=ctlog.ca_pem,
            ct_log_public_key_pem=_public_key_pem(ctlog.public_key_der),
            workdir=directory / "fulcio",
            binary=binary,
        )
        on_exit.enter_context(fulcio)
        # From now on the log takes only chains that end at Fulcio's root.
        for chain in fulcio.trust_bundle():
            ctlog.accept_root(chain[-1])
        s = RealStack(kube, fulcio, ctlog, rekor, directory)
        s.token_file.write_text(kube.issue_token(NS, SA, POD, audiences=[AUDIENCE]))
        s.env = {
            **_write_trust(s, fulcio, directory),
            "SIGNED_ENTRYPOINT_IDENTITY_TOKEN_FILE": str(s.token_file),
            "SIGNED_ENTRYPOINT_TRANSPARENCY_URL": rekor.url,
            "TASKRUN_NAME": TASKRUN,
        }
        yield s


def sign_step(
    root: TektonRoot, s: RealStack, fmt: str, env: Mapping[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """A step of the TaskRun's pod writing :data:`RESULTS`, signed by sigstore-keyless."""
    args = [*root.step_args(0), *flags(fmt), "-results", ",".join(RESULTS), *sh(write_results(root, RESULTS))]
    return root.run(args, env={**dict.fromkeys(SCRUBBED, ""), **s.env, **(env or {})})


def verify(s: RealStack, message: Path, *, identity: str = SAN) -> dict[str, Any]:
    p = entrypoint(
        "verify", "--taskrun", f"{NS}/{TASKRUN}", "--json", *s.verify_args(identity=identity), str(message)
    )
    assert p.returncode in (0, 1), p.stdout + p.stderr
    verdict: dict[str, Any] = json.loads(p.stdout)
    assert verdict["verified"] is (p.returncode == 0)
    return verdict


@dataclass
class Signed:
    stack: RealStack
    fmt: str
    message: Path
    process: subprocess.CompletedProcess[str]
    submissions: int  # precertificates the CT log took for this signing


@pytest.fixture(scope="module", params=FORMATS)
def signed(
    request: pytest.FixtureRequest, real: RealStack, tmp_path_factory: pytest.TempPathFactory
) -> Signed:
    fmt = str(request.param)
    root = new_root(tmp_path_factory.mktemp(f"real-fulcio-{fmt}"))
    before = len(real.ctlog.submissions)
    p = sign_step(root, real, fmt)
    assert p.returncode == 0, p.stdout + p.stderr + real.fulcio.log()[-2000:]
    return Signed(real, fmt, root.termination, p, len(real.ctlog.submissions) - before)


def _values(path: Path) -> dict[str, str]:
    return {e.key: e.value for e in parse_message(path.read_text())}


def test_a_step_signed_by_the_real_fulcio_verifies(signed: Signed) -> None:
    verdict = verify(signed.stack, signed.message)
    assert verdict["verified"], verdict["message"]
    assert verdict["format"] == signed.fmt
    assert verdict["identity"] == SAN
    assert {r["key"]: r["value"] for r in verdict["results"]}.items() >= RESULTS.items()
    assert "SIGSTORE_LOG" in _values(signed.message)
    # The certificate is the real Fulcio's: it went through the CT log, and no token was printed.
    assert signed.submissions == 1
    token = signed.stack.token_file.read_text().strip()
    assert token not in signed.process.stdout + signed.process.stderr
    assert signed.process.stderr == ""


# Tekton's format shows the leaf as PEM (the compact one inside its material).
@pytest.mark.parametrize("signed", ["tekton"], indirect=True)
def test_the_leaf_is_issued_by_the_ephemeral_root_directly(signed: Signed) -> None:
    leaf = x509.load_pem_x509_certificate(_values(signed.message)["SIGSTORE_CERT"].encode())
    (chain,) = signed.stack.fulcio.trust_bundle()
    assert len(chain) == 1  # ephemeralca: one self-signed root, no intermediate
    root = x509.load_der_x509_certificate(chain[0])
    leaf.verify_directly_issued_by(root)
    san = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName)
    assert san.critical
    assert san.value.get_values_for_type(x509.UniformResourceIdentifier) == [SAN]


def test_another_san_is_rejected(signed: Signed) -> None:
    verdict = verify(signed.stack, signed.message, identity=OTHER_SAN)
    assert not verdict["verified"]
    assert verdict["reason"] == "IdentityMismatch", verdict["message"]


def _assert_failed_in_one_line(
    p: subprocess.CompletedProcess[str], root: TektonRoot, token: str, *expected: str
) -> None:
    assert p.returncode == 1, p.stdout + p.stderr
    assert p.stderr.count("\n") == 1, p.stderr  # one line, no traceback
    for text in expected:
        assert text in p.stderr, p.stderr
    assert token not in p.stdout + p.stderr
    # What the step did is kept, unsigned.
    assert (root.run_dir(0) / "status" / "exitCode").read_text() == "0"
    found = _values(root.termination)
    assert found["commit"] == RESULTS["commit"]
    assert not {"SIGSTORE_CERT", "SIGSTORE_LOG", "SIGNATURE", "RESULT_MANIFEST"} & set(found)


@pytest.mark.parametrize("fmt", FORMATS)
def test_a_token_for_another_audience_is_refused_by_fulcio(real: RealStack, tmp_path: Path, fmt: str) -> None:
    token_file = tmp_path / "other-audience-token"
    token = real.kube.issue_token(NS, SA, POD, audiences=["not-sigstore"])
    token_file.write_text(token)
    root = new_root(tmp_path / "root")
    p = sign_step(root, real, fmt, {"SIGNED_ENTRYPOINT_IDENTITY_TOKEN_FILE": str(token_file)})
    _assert_failed_in_one_line(p, root, token, "HTTP 400", INVALID_IDENTITY_TOKEN)
    # Fulcio logs the reason it does not answer.
    assert 'oidc: expected audience \\"sigstore\\" got [\\"not-sigstore\\"]' in real.fulcio.log()


@pytest.fixture(scope="module")
def without_ct_log(real: RealStack) -> Iterator[dict[str, str]]:
    """A second Fulcio, with no CT log (an empty ``--ct-log-url``), as the step's variables."""
    directory = real.directory / "no-ct"
    with FulcioPeer(real.issuer, real.kube.ca_pem, workdir=directory, binary=_binary()) as fulcio:
        yield _write_trust(real, fulcio, directory)


@pytest.mark.parametrize("fmt", FORMATS)
def test_a_fulcio_without_a_ct_log_fails_the_signing(
    real: RealStack, without_ct_log: dict[str, str], tmp_path: Path, fmt: str
) -> None:
    root = new_root(tmp_path / "root")
    p = sign_step(root, real, fmt, without_ct_log)
    token = real.token_file.read_text().strip()
    _assert_failed_in_one_line(p, root, token, "no embedded SCT", "signedCertificateDetachedSct")
