"""Certificates the signer would refuse, put into messages by hand and logged for real: the
verifier refuses them too (docs/sigstore.md, "Verifying", checks 5 and 6).  The certificates come
from the Fulcio double in its fault modes (no SCT, an SCT by an unknown log, an SCT over another
certificate); everything else about the message is genuine, its Rekor record included."""

from __future__ import annotations

import base64
import datetime as dt
import ssl
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding

from entrypoint._internal.backends.sigstore.common import Binding
from entrypoint._internal.backends.sigstore.config import fetcher_args
from entrypoint._internal.backends.sigstore.evidence import CertEvidence
from entrypoint._internal.backends.sigstore.fetch import KeylessFetcher
from entrypoint._internal.backends.sigstore.log import LogHook
from entrypoint._internal.signing.compact_format import CompactFormat
from entrypoint._internal.signing.identity import Identity
from entrypoint._internal.signing.tekton_format import TektonFormat
from entrypoint.termination import RunResult
from entrypoint.verify import SigstoreTrust, TaskRunRef, TrustSet, Verifier
from tests.support.k8s_sat import NS, POD, POD_UID, TASKRUN
from tests.support.sigstore import FORMATS, SAN, Stack, stack

RESULTS = [RunResult("commit", "abc123", 1), RunResult("image", "sha256:" + "7" * 64, 1)]


@pytest.fixture(scope="module")
def s(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    with stack(tmp_path_factory.mktemp("sigstore-forged")) as st:
        yield st
        st.fulcio.sct_mode = "embedded"


def _certificate(s: Stack, key: ec.EllipticCurvePrivateKey, mode: str) -> x509.Certificate:
    """A leaf from the Fulcio double in ``mode``, asked for as the signer asks (a CSR)."""
    s.fulcio.sct_mode = mode
    csr = x509.CertificateSigningRequestBuilder().subject_name(x509.Name([])).sign(key, hashes.SHA256())
    body = {"certificateSigningRequest": base64.b64encode(csr.public_bytes(Encoding.PEM)).decode()}
    ca = s.directory / "sigstore-ca.pem"
    with httpx.Client(verify=ssl.create_default_context(cafile=str(ca))) as client:
        answer = client.post(
            s.fulcio.url + "/api/v2/signingCert",
            json=body,
            headers={"Authorization": f"Bearer {s.token_file.read_text().strip()}"},
        )
    assert answer.status_code == 200, answer.text
    doc: dict[str, Any] = answer.json()
    chain = next(iter(doc.values()))["chain"]["certificates"]
    return x509.load_pem_x509_certificate(chain[0].encode())


def _signed(s: Stack, fmt: str, mode: str) -> list[RunResult]:
    key = ec.generate_private_key(ec.SECP256R1())
    leaf = _certificate(s, key, mode)
    evidence = CertEvidence(
        leaf.public_bytes(Encoding.DER), Binding(NS, TASKRUN, POD, POD_UID, "0"), leaf.not_valid_after_utc
    )
    ident = Identity(key, evidence, SAN)
    # The upload runs as the identity helper would run it.
    args: dict[str, Any] = fetcher_args(spire_socket="", environ=s.env, step="0")
    uploader = KeylessFetcher(**args)
    hook = LogHook(uploader, fmt, 10.0)
    try:
        if fmt == "tekton":
            block = TektonFormat().sign(RESULTS, ident)
            return [*RESULTS, *block, *hook([*RESULTS, *block], ident)]
        [option] = CompactFormat("0").seal_options(RESULTS, ident, frozenset(), exit_code=0)
        return [*option, *hook(option, ident)]
    finally:
        uploader.close()


def _verdict(s: Stack, items: list[RunResult]) -> Any:
    trust = SigstoreTrust.from_file(str(s.trusted_root), issuer=s.issuer, identity=SAN)
    return Verifier(TrustSet(sigstore=trust)).verify_entries(
        items, TaskRunRef(NS, TASKRUN), at=dt.datetime.now(dt.UTC)
    )


@pytest.mark.parametrize("fmt", FORMATS)
def test_a_genuine_certificate_signed_this_way_verifies(s: Stack, fmt: str) -> None:
    verdict = _verdict(s, _signed(s, fmt, "embedded"))
    assert verdict.verified, verdict.message


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize(
    ("mode", "why"),
    [("none", "no embedded SCT"), ("wrong-key", "does not verify"), ("wrong-tbs", "does not verify")],
    ids=["no SCT", "SCT signed by another key", "SCT over another certificate"],
)
def test_a_certificate_without_a_valid_sct_is_refused(s: Stack, fmt: str, mode: str, why: str) -> None:
    verdict = _verdict(s, _signed(s, fmt, mode))
    assert verdict.reason == "SCTInvalid", verdict.message
    assert why in verdict.message
