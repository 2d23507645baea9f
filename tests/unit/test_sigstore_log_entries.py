"""A transparency log record is signed by no format's signature: only the backend that logs may
carry one (docs/sigstore.md, "Wire formats").  In another backend's message it would be an entry
Tekton publishes as a result that nothing vouches for, so the message is refused."""

from __future__ import annotations

import pytest

from entrypoint._internal.formats.compact import UNSTATED_KEYS, controller_view
from entrypoint._internal.signing import is_reserved
from entrypoint.termination import RunResult
from tests.support.signed import BACKENDS, FORMATS, SignedMessageFactory

RECORD = RunResult("SIGSTORE_LOG", "rk1.0.1." + "A" * 43 + ".AAAA.", 1)


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("backend", BACKENDS)
def test_a_log_record_added_to_another_backends_message_is_refused(
    signed_message: SignedMessageFactory, fmt: str, backend: str
) -> None:
    genuine = signed_message(fmt, backend)
    assert genuine.verify().verified
    verdict = genuine.verify([*genuine.entries, RECORD])
    assert not verdict.verified
    assert verdict.reason == "MessageInvalid", verdict.message
    assert "SIGSTORE_LOG" in verdict.message


def test_no_statement_lists_a_log_record_and_no_step_may_write_one() -> None:
    assert "SIGSTORE_LOG" in UNSTATED_KEYS
    assert [e.key for e in controller_view([RunResult("a", "1", 1), RECORD])] == ["a"]
    for name in ("SIGSTORE_LOG", "SIGSTORE_CERT", "SIGSTORE_BINDING", "SIGSTORE_BINDING.sig"):
        assert is_reserved(name), name
