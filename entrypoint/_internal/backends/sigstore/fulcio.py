"""Fulcio's API v2: a short-lived certificate for an ephemeral key and an OIDC identity token.

The key is proved either by a CSR's own signature (``certificateSigningRequest``, what cosign and
sigstore-python send) or by a signature over the token's subject (``publicKeyRequest``, for a
deployment that takes only that form).  The answer must embed its SCT: a certificate that no CT
log saw is refused before it is used.
"""

from __future__ import annotations

import base64
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from entrypoint._internal.backends.sigstore.http import JsonClient, SigstoreServerError

SIGNING_CERT_PATH = "/api/v2/signingCert"


def request_body(key: ec.EllipticCurvePrivateKey, proof: str, subject: str, token: str) -> dict[str, Any]:
    if proof == "public-key":
        pem = key.public_key().public_bytes(Encoding.PEM, PublicFormat.SubjectPublicKeyInfo).decode("ascii")
        possession = key.sign(subject.encode("utf-8"), ec.ECDSA(hashes.SHA256()))
        return {
            "credentials": {"oidcIdentityToken": token},
            "publicKeyRequest": {
                "publicKey": {"algorithm": "ECDSA", "content": pem},
                "proofOfPossession": base64.b64encode(possession).decode("ascii"),
            },
        }
    # Fulcio ignores the subject: an empty one, as sigstore-python sends.
    csr = x509.CertificateSigningRequestBuilder().subject_name(x509.Name([])).sign(key, hashes.SHA256())
    return {"certificateSigningRequest": base64.b64encode(csr.public_bytes(Encoding.PEM)).decode("ascii")}


def signing_certificate(
    client: JsonClient,
    key: ec.EllipticCurvePrivateKey,
    token: str,
    *,
    proof: str,
    subject: str,
    timeout: float,
) -> list[x509.Certificate]:
    """The chain Fulcio issued (leaf first) for ``key``; SigstoreServerError names Fulcio's reason."""
    body = request_body(key, proof, subject, token)
    # The CSR form sends the token as a bearer, as cosign does; the other carries it in the body.
    # Fulcio retries a CT log that does not answer until the request's gRPC deadline, which is
    # none unless the client sets one: a little inside our own timeout, so that its answer (504
    # "context deadline exceeded") comes before ours.
    deadline = {"Grpc-Timeout": f"{max(int(timeout * 900), 1)}m"}
    _, answer, _ = client.request(
        "POST",
        SIGNING_CERT_PATH,
        body,
        timeout=timeout,
        token=token if proof != "public-key" else "",
        headers=deadline,
    )
    url = client.base_url + SIGNING_CERT_PATH
    if not isinstance(answer, dict):
        raise SigstoreServerError(f"fulcio {url}: the answer is not a JSON object")
    if "signedCertificateEmbeddedSct" not in answer:
        if "signedCertificateDetachedSct" in answer:
            raise SigstoreServerError(
                f"fulcio {url}: the certificate has no embedded SCT (Fulcio answered "
                "signedCertificateDetachedSct: is its CT log configured?)"
            )
        raise SigstoreServerError(f"fulcio {url}: the answer has no certificate chain")
    try:
        pems = answer["signedCertificateEmbeddedSct"]["chain"]["certificates"]
        chain = [x509.load_pem_x509_certificate(pem.encode("ascii")) for pem in pems]
    except (KeyError, TypeError, AttributeError, ValueError, UnicodeError) as exc:
        raise SigstoreServerError(f"fulcio {url}: unusable certificate chain: {exc}") from exc
    if not chain:
        raise SigstoreServerError(f"fulcio {url}: the certificate chain is empty")
    ours = key.public_key().public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)
    theirs = chain[0].public_key().public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)
    if ours != theirs:
        raise SigstoreServerError(f"fulcio {url}: the certificate is for another key")
    return chain
