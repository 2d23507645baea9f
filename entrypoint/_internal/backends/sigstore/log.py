"""The post-sign hook that logs each signature to Rekor and adds its record to the message.

What is logged commits to every signed value: in the compact format the statement itself (the
SIGNATURE's own signature, as DER); in Tekton's format a payload of each logged entry's digest
(:func:`~.common.tekton_log_payload`), signed once more by the same key.  The upload runs in the
identity helper (``ForkedBackend.call``); a failure fails the signing with Rekor's reason.
"""

from __future__ import annotations

import hashlib
from typing import Protocol

from entrypoint._internal.backends.sigstore.common import (
    LOG_ENTRY,
    der_signature,
    log_request,
    tekton_log_payload,
    tekton_logged_names,
)
from entrypoint._internal.formats.entries import ResultType, RunResult
from entrypoint._internal.formats.paramvalue import canonical_value
from entrypoint._internal.signing.errors import SigningError
from entrypoint._internal.signing.identity import Identity

_TASK = int(ResultType.TASK_RUN_RESULT)


class HelperCall(Protocol):
    """What runs the upload: the identity helper (``ForkedBackend``), or a fetcher in-process."""

    def call(self, op: str, payload: bytes, budget: float) -> bytes: ...


class LogHook:
    """Uploads what was just signed to Rekor; answers the ``SIGSTORE_LOG`` entry to add."""

    def __init__(self, helper: HelperCall, wire_format: str, budget: float) -> None:
        self.helper, self.wire_format, self.budget = helper, wire_format, budget

    def __call__(self, signed: list[RunResult], identity: Identity) -> list[RunResult]:
        leaf_der = getattr(identity.evidence, "leaf_der", b"")
        if not leaf_der:
            raise SigningError("sigstore-keyless: the transparency log needs a Fulcio certificate")
        if self.wire_format == "compact":
            digest, signature, keep = self._compact(signed)
        else:
            payload = tekton_payload(signed)
            digest, signature, keep = hashlib.sha256(payload).digest(), identity.sign(payload), True
        record = self.helper.call("log", log_request(digest, signature, leaf_der, keep), self.budget)
        return [RunResult(LOG_ENTRY, record.decode("ascii"), _TASK)]

    @staticmethod
    def _compact(message: list[RunResult]) -> tuple[bytes, bytes, bool]:
        from entrypoint._internal.formats.compact import (
            SIGNATURE_KEY,
            SignatureValue,
            controller_view,
            statement_for,
        )

        found = [e for e in message if e.key == SIGNATURE_KEY]
        value = SignatureValue.decode(found[-1].value)
        statement = statement_for(value, controller_view(message))
        return hashlib.sha256(statement).digest(), der_signature(value.signature), False


def tekton_payload(entries: list[RunResult]) -> bytes:
    """The logged payload of the last Tekton-format block in ``entries`` (the values by key, the
    last one winning, as the controller reads them)."""
    values = {e.key: canonical_value(e.value) for e in entries if e.type == _TASK}
    manifest = values.get("RESULT_MANIFEST")
    if manifest is None:
        raise SigningError("sigstore-keyless: no RESULT_MANIFEST to log")
    try:
        return tekton_log_payload(values, tekton_logged_names(manifest))
    except KeyError as exc:
        raise SigningError(f"sigstore-keyless: the block has no value for {exc.args[0]!r} to log") from exc
