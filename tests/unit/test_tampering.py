"""Every format with every backend: a genuine message verifies, and a message changed in one place
does not.  The messages come from the ``signed_message`` factory (tests/conftest.py)."""

from __future__ import annotations

import datetime as dt

import pytest

from entrypoint.termination import RunResult
from entrypoint.verify import Verifier
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


# -- issue 15: what the attack run found -------------------------------------------------------------


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize(
    "empty",
    [RunResult("", ""), RunResult("", "", 0, "")],
    ids=["empty", "all-zero"],
)
def test_an_empty_entry_before_a_forged_duplicate_is_refused(
    signed_message: SignedMessageFactory, fmt: str, empty: RunResult
) -> None:
    # (1) Tekton before v0.68 would read commit=evil: the erase loop moves the last entry into the
    # empty entry's slot.  The empty entry is written as {} and as null.
    genuine = signed_message(fmt)
    forged = [empty, RunResult("commit", "evil", 1), *genuine.entries]
    for text in (genuine.text(forged), genuine.text(forged).replace("{}", "null", 1)):
        verdict = genuine.verifier.verify_message(text, genuine.taskrun)
        assert (verdict.verified, verdict.reason) == (False, "AmbiguousEntries"), text
        assert "evil" not in {r.value for r in verdict.results}


def test_an_unknown_field_is_an_empty_entry_too(signed_message: SignedMessageFactory) -> None:
    genuine = signed_message("tekton")
    text = '[{"unknownField":"x"},' + genuine.text()[1:]
    assert genuine.verifier.verify_message(text, genuine.taskrun).reason == "AmbiguousEntries"


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_stray_signature_entry_is_reported_as_unsigned(
    signed_message: SignedMessageFactory, backend: str
) -> None:
    # (2) Tekton publishes every type-1 entry as a result, "x.sig" included.
    genuine = signed_message("tekton", backend)
    verdict = genuine.verify([*genuine.entries, RunResult("ghost.sig", "anything", 1)])
    assert verdict.verified, verdict.message
    assert RunResult("ghost.sig", "anything", 1) in verdict.unsigned
    assert "ghost.sig" not in {r.key for r in verdict.results}
    # The genuine signatures are still hidden.
    assert not any(r.key == "commit.sig" for r in (*verdict.results, *verdict.unsigned))


def test_verify_entries_verifies_what_it_reports(signed_message: SignedMessageFactory) -> None:
    # (4) The same key twice with different types: refused, never verified under one and shown as the other.
    genuine = signed_message("tekton")
    verdict = genuine.verifier.verify_entries(
        [*genuine.entries, RunResult("commit", "0a1b2c3d", 4)], genuine.taskrun
    )
    assert (verdict.verified, verdict.reason) == (False, "AmbiguousEntries")


@pytest.mark.parametrize("fmt", FORMATS)
def test_without_the_chain_an_expired_leaf_is_still_refused(
    signed_message: SignedMessageFactory, fmt: str
) -> None:
    # (5) A 2022 SVID verified now with --no-chain.
    old = dt.datetime(2022, 3, 1, tzinfo=dt.UTC)
    genuine = signed_message(fmt, not_before=old, ttl=dt.timedelta(hours=1))
    unchained = Verifier(genuine.verifier.trust, check_chain=False)
    verdict = unchained.verify_message(genuine.text(), genuine.taskrun)
    assert (verdict.verified, verdict.reason) == (False, "ChainUntrusted")
    assert "not valid at" in verdict.message or "outside the certificate's validity" in verdict.message
    # Within its validity it verifies, still without the chain.
    at = old + dt.timedelta(minutes=30)
    if fmt == "tekton":
        assert unchained.verify_message(genuine.text(), genuine.taskrun, at=at).verified


@pytest.mark.parametrize("fmt", FORMATS)
def test_an_rsa_1024_leaf_is_refused(signed_message: SignedMessageFactory, fmt: str) -> None:
    # (9) Both formats now: a key that can be factored vouches for nothing.
    genuine = signed_message(fmt, key_type="rsa-1024")
    verdict = genuine.verify()
    assert (verdict.verified, verdict.reason) == (False, "UnsupportedKey")
    assert "1024" in verdict.message
