"""What a signed message logged to Rekor, as one artifact: the bytes, the signature, the leaf and
the record (for ``entrypoint sigstore-bundle``, which turns them into a Sigstore bundle).

The compact format logs its statement; Tekton's format the payload of :func:`~.common.tekton_log_payload`.
Nothing here verifies: the bundle is checked by whoever reads it (sigstore-python, cosign, or
``entrypoint verify`` on the message itself).
"""

from __future__ import annotations

import base64
from collections.abc import Sequence
from dataclasses import dataclass

from entrypoint._internal.backends.sigstore import common as c
from entrypoint._internal.formats.compact import SIGNATURE_KEY, SignatureValue, controller_view, statement_for
from entrypoint._internal.formats.paramvalue import canonical_value
from entrypoint.errors import DecodeError
from entrypoint.termination import RunResult


class ArtifactError(DecodeError):
    """A message that holds no logged sigstore-keyless signature; the text names the entry."""


@dataclass(frozen=True)
class LoggedArtifact:
    """The artifact a message's Rekor entry is for, with its signature, certificate and record."""

    artifact: bytes
    signature_der: bytes
    leaf_der: bytes
    record: c.LogRecord
    wire_format: str


def logged_artifact(entries: Sequence[RunResult]) -> LoggedArtifact:
    by_key = {e.key: e for e in entries if not e.is_zero()}
    log = by_key.get(c.LOG_ENTRY)
    if log is None:
        raise ArtifactError(f"{c.LOG_ENTRY}: the message has no transparency log record")
    try:
        record = c.LogRecord.decode(canonical_value(log.value))
    except ValueError as exc:
        raise ArtifactError(f"{c.LOG_ENTRY}: {exc}") from exc
    signature = by_key.get(SIGNATURE_KEY)
    if signature is not None:
        try:
            value = SignatureValue.decode(signature.value)
            if value.material_kind != c.MATERIAL_KIND:
                raise ValueError(f"signed with {value.material_kind!r} material, not {c.MATERIAL_KIND!r}")
            _, leaf = c.split_material(value.material)
        except ValueError as exc:
            raise ArtifactError(f"{SIGNATURE_KEY}: {exc}") from exc
        statement = statement_for(value, controller_view(list(entries)))
        return LoggedArtifact(statement, c.der_signature(value.signature), leaf, record, "compact")
    cert = by_key.get(c.CERT_ENTRY)
    if cert is None:
        raise ArtifactError(f"{c.CERT_ENTRY}: the message has no Fulcio certificate")
    if not record.signature:
        raise ArtifactError(f"{c.LOG_ENTRY}: a Tekton-format record must carry the logged signature")
    values = {k: canonical_value(e.value) for k, e in by_key.items() if e.type == 1}
    try:
        payload = c.tekton_log_payload(values, c.tekton_logged_names(values["RESULT_MANIFEST"]))
    except KeyError as exc:
        raise ArtifactError(f"{exc.args[0]}: missing from the message, but covered by the log entry") from exc
    pem = canonical_value(cert.value)
    lines = [line for line in pem.strip().splitlines() if not line.startswith("-----")]
    try:
        leaf = base64.b64decode("".join(lines), validate=True)
    except ValueError as exc:
        raise ArtifactError(f"{c.CERT_ENTRY}: not a PEM certificate") from exc
    return LoggedArtifact(payload, record.signature, leaf, record, "tekton")
