"""Rekor v1: log a ``hashedrekord`` entry and keep a compact record of it.

The record (:class:`~.common.LogRecord`) is what the message carries: the entry itself is
rebuilt by the verifier from the signature, the certificate and the digest, and the signed entry
timestamp (SET) is Rekor's promise, under its key, that the entry is in the log since
``integratedTime``.  The signer checks that promise before it trusts the record: a log that
answers with another body or an unverifiable SET fails the signing, not a later verification.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
from typing import Any

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding

from entrypoint._internal.backends.sigstore.common import LogRecord, hashedrekord_body, set_payload
from entrypoint._internal.backends.sigstore.http import JsonClient, SigstoreServerError
from entrypoint._internal.backends.sigstore.trust import TrustedRoot

ENTRIES_PATH = "/api/v1/log/entries"
LOG_PATH = "/api/v1/log"


def proposed_entry(digest: bytes, signature_der: bytes, cert_pem: bytes) -> dict[str, Any]:
    return {
        "apiVersion": "0.0.1",
        "kind": "hashedrekord",
        "spec": {
            "data": {"hash": {"algorithm": "sha256", "value": digest.hex()}},
            "signature": {
                "content": base64.b64encode(signature_der).decode("ascii"),
                "publicKey": {"content": base64.b64encode(cert_pem).decode("ascii")},
            },
        },
    }


def upload(
    client: JsonClient,
    digest: bytes,
    signature_der: bytes,
    leaf: x509.Certificate,
    root: TrustedRoot,
    *,
    timeout: float,
    keep_signature: bool,
) -> LogRecord:
    """Log the entry; its record, once the body and the SET check out.  ``keep_signature``: the
    record carries the signature (Tekton's format, where no other entry holds it)."""
    cert_pem = leaf.public_bytes(Encoding.PEM)
    url = client.base_url + ENTRIES_PATH
    status, answer, headers = client.request(
        "POST", ENTRIES_PATH, proposed_entry(digest, signature_der, cert_pem), timeout=timeout
    )
    if status == 409:
        # The same entry is in the log already: an earlier attempt that timed out did land.
        location = str(headers.get("location", ""))
        uuid = location.rstrip("/").rpartition("/")[2]
        if not uuid:
            raise SigstoreServerError(f"rekor {url}: HTTP 409 without the existing entry's Location")
        _, answer, _ = client.request("GET", f"{ENTRIES_PATH}/{uuid}", timeout=timeout)
    entry = _only_entry(answer, url)
    expected = hashedrekord_body(digest, signature_der, cert_pem)
    record = record_of(entry, url, expected, signature_der if keep_signature else b"")
    check_record(record, expected, root, leaf, what=f"rekor {url}")
    return record


def _only_entry(answer: object, url: str) -> dict[str, Any]:
    if not isinstance(answer, dict) or len(answer) != 1:
        raise SigstoreServerError(f"rekor {url}: the answer is not one log entry")
    entry = next(iter(answer.values()))
    if not isinstance(entry, dict):
        raise SigstoreServerError(f"rekor {url}: the answer is not one log entry")
    return entry


def record_of(entry: dict[str, Any], url: str, expected_body: bytes, signature: bytes) -> LogRecord:
    try:
        body = base64.b64decode(entry["body"], validate=True)
        index, when, log_id = entry["logIndex"], entry["integratedTime"], bytes.fromhex(entry["logID"])
        set_ = base64.b64decode(entry["verification"]["signedEntryTimestamp"], validate=True)
        if not all(isinstance(n, int) and not isinstance(n, bool) and n >= 0 for n in (index, when)):
            raise TypeError("logIndex and integratedTime must be non-negative integers")
    except (KeyError, TypeError, ValueError, binascii.Error) as exc:
        raise SigstoreServerError(f"rekor {url}: unusable log entry: {exc}") from exc
    if body != expected_body:
        raise SigstoreServerError(f"rekor {url}: the log stored another entry than the one submitted")
    if len(log_id) != 32:
        raise SigstoreServerError(f"rekor {url}: the logID is not a SHA-256")
    return LogRecord(index, when, log_id, set_, signature)


def check_record(
    record: LogRecord, body: bytes, root: TrustedRoot, leaf: x509.Certificate, *, what: str
) -> None:
    """The SET verifies with a log key the trusted root holds at the integrated time, and that time
    lies within the certificate's validity.  ValueError (SigstoreServerError for the signer)."""
    when = (
        dt.datetime.fromtimestamp(record.integrated_time, dt.UTC) if record.integrated_time < 2**40 else None
    )
    log = root.tlog(record.log_id, when) if when is not None else None
    if log is None:
        raise SigstoreServerError(
            f"{what}: log {record.log_id.hex()} is not in {root.source} "
            "(or not trusted at its integrated time)"
        )
    if not isinstance(log.key, ec.EllipticCurvePublicKey):
        raise SigstoreServerError(f"{what}: only ECDSA log keys are supported")
    payload = set_payload(body, record.integrated_time, record.log_id, record.log_index)
    try:
        log.key.verify(record.set, payload, ec.ECDSA(hashes.SHA256()))
    except InvalidSignature:
        raise SigstoreServerError(
            f"{what}: the signed entry timestamp does not verify with the log's key over this entry "
            "(not the entry logged: a value, the signature or the certificate changed)"
        ) from None
    assert when is not None
    if not leaf.not_valid_before_utc <= when <= leaf.not_valid_after_utc:
        raise SigstoreServerError(
            f"{what}: the entry was integrated at {when:%Y-%m-%dT%H:%M:%SZ}, "
            "outside the certificate's validity"
        )


def entry_by_index(client: JsonClient, log_index: int, *, timeout: float) -> dict[str, Any]:
    """The entry at ``log_index`` with a fresh inclusion proof (for a bundle made later)."""
    url = client.base_url + ENTRIES_PATH
    _, answer, _ = client.request("GET", f"{ENTRIES_PATH}?logIndex={log_index}", timeout=timeout)
    return _only_entry(answer, url)
