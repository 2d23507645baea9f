"""Every format with every backend: a genuine message verifies, and a message changed in one place
does not.  The messages come from the ``signed_message`` factory (tests/conftest.py)."""

from __future__ import annotations

import pytest

from entrypoint.termination import RunResult
from tests.support.signed import BACKENDS, FORMATS, SignedMessage, SignedMessageFactory


@pytest.fixture(params=[(f, b) for f in FORMATS for b in BACKENDS], ids=lambda p: f"{p[0]}-{p[1]}")
def genuine(request: pytest.FixtureRequest, signed_message: SignedMessageFactory) -> SignedMessage:
    fmt, backend = request.param
    return signed_message(fmt, backend)


def test_a_genuine_message_verifies_and_covers_the_task_results(genuine: SignedMessage) -> None:
    verdict = genuine.verify()
    assert verdict.verified, verdict.message
    assert verdict.format == genuine.fmt
    covered = {r.key: r.value for r in verdict.results}
    assert covered["commit"] == "0a1b2c3d"
    assert covered["image"].startswith("sha256:")


def test_a_compressed_genuine_message_verifies(genuine: SignedMessage) -> None:
    verdict = genuine.verifier.verify_message(genuine.text(compressed=True), genuine.taskrun)
    assert verdict.verified, verdict.message


def test_a_changed_task_result_is_rejected(genuine: SignedMessage) -> None:
    verdict = genuine.verify(genuine.replaced("commit", "evil"))
    assert not verdict.verified
    assert verdict.reason != "Verified"


def test_a_removed_task_result_is_rejected(genuine: SignedMessage) -> None:
    kept = [e for e in genuine.entries if e.key != "image"]
    verdict = genuine.verify(kept)
    assert not verdict.verified, verdict


def test_an_added_task_result_is_rejected(genuine: SignedMessage) -> None:
    # Tekton's format needs a signature for every task result, the compact format covers every entry.
    verdict = genuine.verify([*genuine.entries, RunResult("extra", "forged", 1)])
    assert not verdict.verified


def test_another_taskrun_is_rejected(genuine: SignedMessage) -> None:
    verdict = genuine.verify(name="another-taskrun")
    assert not verdict.verified
