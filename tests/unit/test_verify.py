"""The verifier (spec §8.2) against messages signed by a small signer written here from §7.4-7.6.

The signer is deliberately independent of ``entrypoint._internal.signing``: agreeing with the
spec, not with our own signer, is what these tests check.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ed448

from entrypoint._internal.verification import tekton
from entrypoint.termination import RunResult
from entrypoint.testing.ca import Svid, TestCA
from entrypoint.testing.workload_api import WorkloadAPIServer
from entrypoint.verify import (
    CONDITION_TYPE,
    Reason,
    TaskRunRef,
    TrustBundle,
    TrustBundleError,
    TrustSet,
    Verdict,
    Verifier,
    verify_entries,
    verify_message,
)
from tests.support.messages import message
from tests.support.pki import NS, TASKRUN, TD, spiffe_id
from tests.support.tekton_signer import FOO_BAR, b64sig, keys, pem, replace, sign, sign_svid

# -- helpers ----------------------------------------------------------------------------------------


def check(entries: Sequence[RunResult], trust: TrustBundle | None, name: str = TASKRUN, **kw: Any) -> Verdict:
    return verify_entries(entries, namespace=NS, name=name, trust=trust, **kw)


# -- §8.2 acceptance: sign then verify ---------------------------------------------------------------

RESULT_SETS: dict[str, list[RunResult]] = {
    "single string": [RunResult("foo", "sha256:12345", 1)],
    "array": [RunResult("foo", '["hello","world"]', 1)],
    "object": [RunResult("foo", '{"key1":"var1","key2":"var2"}', 1)],
    "multiple strings": [RunResult("foo", "abc", 1), RunResult("bar", "xyz", 1), RunResult("baz", "a\n", 1)],
    "mixed": [
        RunResult("foo", "abc", 1),
        RunResult("arr", '["x","y",null]', 1),
        RunResult("obj", '{"b":"2","a":"1"}', 1),
        RunResult("quoted", '  "a\\nb"  ', 1),
    ],
    "no type-1 entries": [RunResult("step-out", "v", 4), RunResult("StartedAt", "2024-01-01T00:00:00Z", 3)],
    "empty set": [],
}
TASKRUN_NAMES = [
    "taskrun-example",
    "taskrun-example-populated",
    "taskrun-example-with-objmeta",
    "taskrun-example-with-objmeta-annotations",
]


def shown(verdict: Verdict) -> list[RunResult]:
    """Everything a verified verdict shows, covered or not, in the controller's order."""
    return sorted([*verdict.results, *verdict.unsigned], key=lambda e: e.key.encode())


def controller_order(entries: list[RunResult]) -> list[RunResult]:
    last = {e.key: e for e in entries}
    return [last[k] for k in sorted(last, key=str.encode)]


@pytest.mark.parametrize("set_name", RESULT_SETS)
@pytest.mark.parametrize("name", TASKRUN_NAMES)
def test_sign_then_verify_succeeds(ca: TestCA, trust: TrustBundle, set_name: str, name: str) -> None:
    entries = RESULT_SETS[set_name]
    svid = ca.issue_svid(spiffe_id(name))
    verdict = check(sign_svid(entries, svid), trust, name=name)
    assert verdict.verified, verdict.message
    assert verdict.reason == "Verified"
    assert verdict.format == "tekton"
    assert verdict.identity == spiffe_id(name)
    # The signing entries are hidden; task results are covered, anything else is shown apart.
    assert shown(verdict) == controller_order(entries)
    assert all(e.type == 1 for e in verdict.results)
    assert all(e.type != 1 for e in verdict.unsigned)


@pytest.mark.parametrize("set_name", RESULT_SETS)
def test_wrong_identity_fails_for_every_set(ca: TestCA, trust: TrustBundle, set_name: str) -> None:
    bogus = ca.issue_svid("spiffe://example.org/bogus")
    verdict = check(sign_svid(RESULT_SETS[set_name], bogus), trust)
    assert not verdict.verified
    assert verdict.reason == Reason.IDENTITY_MISMATCH
    assert "/bogus does not match taskrun: /ns/foo/taskrun/taskrun-example" in verdict.message
    assert verdict.identity == "spiffe://example.org/bogus"


# -- §8.2 acceptance: tampering ----------------------------------------------------------------------


def delete(entries: list[RunResult], key: str) -> list[RunResult]:
    assert key in keys(entries)
    return [e for e in entries if e.key != key]


def value_of(entries: list[RunResult], key: str) -> str:
    return next(e.value for e in entries if e.key == key)


@pytest.fixture(scope="module")
def signed(svid: Svid) -> list[RunResult]:
    return sign_svid(FOO_BAR, svid)


def test_untampered_verifies(signed: list[RunResult], trust: TrustBundle) -> None:
    assert check(signed, trust).verified


def test_appending_an_untyped_entry_still_verifies(signed: list[RunResult], trust: TrustBundle) -> None:
    extra = RunResult("untyped", "anything", 0)
    verdict = check([*signed, extra], trust)
    assert verdict.verified, verdict.message
    assert extra in verdict.unsigned and extra not in verdict.results
    assert verify_message(message([*signed, extra]), namespace=NS, name=TASKRUN, trust=trust).verified


def other_svid(ca: TestCA) -> str:
    return pem(ca.issue_svid(spiffe_id()).leaf)  # same identity and CA, different key


Tamper = Callable[[list[RunResult], TestCA], list[RunResult]]
TAMPERING: dict[str, tuple[Tamper, Reason, str]] = {
    "change SVID to another valid SVID": (
        lambda s, ca: replace(s, "SVID", other_svid(ca)),
        Reason.SIGNATURE_INVALID,
        "RESULT_MANIFEST.sig",
    ),
    "change SVID to garbage": (
        lambda s, ca: replace(s, "SVID", "not a certificate"),
        Reason.SVID_INVALID,
        "SVID",
    ),
    "change manifest": (
        lambda s, ca: replace(s, "RESULT_MANIFEST", "foo"),
        Reason.SIGNATURE_INVALID,
        "RESULT_MANIFEST.sig",
    ),
    "change manifest sig": (
        lambda s, ca: replace(s, "RESULT_MANIFEST.sig", value_of(s, "foo.sig")),
        Reason.SIGNATURE_INVALID,
        "RESULT_MANIFEST.sig",
    ),
    "change manifest sig to non-base64": (
        lambda s, ca: replace(s, "RESULT_MANIFEST.sig", "!!!"),
        Reason.SIGNATURE_INVALID,
        "illegal base64",
    ),
    "change foo value": (lambda s, ca: replace(s, "foo", "evil"), Reason.SIGNATURE_INVALID, "foo.sig"),
    "change foo.sig": (
        lambda s, ca: replace(s, "foo.sig", value_of(s, "bar.sig")),
        Reason.SIGNATURE_INVALID,
        "foo.sig",
    ),
    "delete SVID": (lambda s, ca: delete(s, "SVID"), Reason.SVID_MISSING, "SVID"),
    "delete manifest": (
        lambda s, ca: delete(s, "RESULT_MANIFEST"),
        Reason.MANIFEST_MISSING,
        "RESULT_MANIFEST",
    ),
    "delete manifest sig": (
        lambda s, ca: delete(s, "RESULT_MANIFEST.sig"),
        Reason.SIGNATURE_MISSING,
        "RESULT_MANIFEST.sig",
    ),
    "delete foo": (lambda s, ca: delete(s, "foo"), Reason.MANIFEST_INCOMPLETE, "no result found for foo"),
    "delete foo.sig": (lambda s, ca: delete(s, "foo.sig"), Reason.SIGNATURE_MISSING, "foo.sig"),
    "append ,xyz to manifest": (
        lambda s, ca: replace(s, "RESULT_MANIFEST", "foo,bar,xyz"),
        Reason.MANIFEST_INCOMPLETE,
        "no result found for xyz",
    ),
}


@pytest.mark.parametrize("case", TAMPERING)
def test_tampering_fails_with_its_reason(
    case: str, signed: list[RunResult], ca: TestCA, trust: TrustBundle
) -> None:
    tamper, reason, named = TAMPERING[case]
    tampered = tamper(list(signed), ca)
    for verdict in (
        check(tampered, trust),
        verify_message(message(tampered), namespace=NS, name=TASKRUN, trust=trust),
    ):
        assert not verdict.verified
        assert verdict.reason == reason, verdict.message
        assert named in verdict.message
        assert verdict.condition()["status"] == "False"


def test_tampered_value_is_reported_in_sorted_key_order(signed: list[RunResult], trust: TrustBundle) -> None:
    tampered = replace(replace(signed, "foo", "x"), "bar", "y")
    for _ in range(5):  # Go's map order would name either one; ours always names the first key
        verdict = check(tampered, trust)
        assert verdict.reason == Reason.SIGNATURE_INVALID
        assert verdict.message.startswith("bar.sig:")


# -- keys, chains and identities ----------------------------------------------------------------------


@pytest.mark.parametrize("key_type", ["ec-p256", "ec-p384", "rsa-2048", "ed25519"])
def test_leaf_key_types_verify(ca: TestCA, trust: TrustBundle, key_type: str) -> None:
    svid = ca.issue_svid(spiffe_id(), key_type=key_type)
    assert check(sign_svid(FOO_BAR, svid), trust).verified


@pytest.mark.parametrize("key_type", ["rsa-2048", "ed25519"])
def test_signature_by_another_key_of_the_same_type_fails(
    ca: TestCA, trust: TrustBundle, key_type: str
) -> None:
    svid = ca.issue_svid(spiffe_id(), key_type=key_type)
    impostor = ca.issue_svid(spiffe_id(), key_type=key_type)
    verdict = check(sign(FOO_BAR, impostor.key, pem(svid.leaf)), trust)
    assert verdict.reason == Reason.SIGNATURE_INVALID


@pytest.mark.parametrize("ca_key_type", ["ec-p384", "rsa-2048"])
def test_ca_key_types_verify(ca_key_type: str) -> None:
    other = TestCA(TD, key_type=ca_key_type)
    verdict = check(sign_svid(FOO_BAR, other.issue_svid(spiffe_id())), TrustBundle(TD, other.bundle))
    assert verdict.verified, verdict.message


def test_ed25519_root_is_refused_by_the_web_pki_profile() -> None:
    other = TestCA(TD, key_type="ed25519")
    verdict = check(sign_svid(FOO_BAR, other.issue_svid(spiffe_id())), TrustBundle(TD, other.bundle))
    assert verdict.reason == Reason.CHAIN_UNTRUSTED


def test_unsupported_leaf_key_fails(ca: TestCA, trust: TrustBundle) -> None:
    key = ed448.Ed448PrivateKey.generate()
    now = dt.datetime.now(dt.UTC)
    leaf = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([]))
        .issuer_name(ca.root_cert.subject)
        .public_key(key.public_key())
        .serial_number(1)
        .not_valid_before(now - dt.timedelta(minutes=1))
        .not_valid_after(now + dt.timedelta(hours=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.UniformResourceIdentifier(spiffe_id())]), critical=False
        )
        .sign(ca.root_key, hashes.SHA256())
    )
    verdict = check(sign(FOO_BAR, key, pem(leaf)), trust, check_chain=False)
    assert verdict.reason == Reason.UNSUPPORTED_KEY
    assert "Ed448" in verdict.message


def test_intermediate_chain_verifies_when_the_svid_carries_it(ca: TestCA, trust: TrustBundle) -> None:
    svid = ca.issue_svid(spiffe_id(), intermediate=True)
    assert len(svid.chain) == 2
    verdict = check(sign_svid(FOO_BAR, svid, with_chain=True), trust)
    assert verdict.verified, verdict.message
    assert keys(verdict.results) == ["bar", "foo"]


def test_intermediate_chain_without_the_intermediate_is_untrusted(ca: TestCA, trust: TrustBundle) -> None:
    svid = ca.issue_svid(spiffe_id(), intermediate=True)
    verdict = check(sign_svid(FOO_BAR, svid), trust)  # leaf only, as Tekton writes it
    assert verdict.reason == Reason.CHAIN_UNTRUSTED


def test_svid_with_trailing_text_is_invalid(svid: Svid, trust: TrustBundle) -> None:
    verdict = check(sign(FOO_BAR, svid.key, pem(svid.leaf) + "junk\n"), trust)
    assert verdict.reason == Reason.SVID_INVALID
    assert "junk" in verdict.message


def test_svid_that_is_pem_but_not_a_certificate_is_invalid(svid: Svid, trust: TrustBundle) -> None:
    bogus = "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"
    verdict = check(sign(FOO_BAR, svid.key, bogus), trust)
    assert verdict.reason == Reason.SVID_INVALID
    assert verdict.message.startswith("SVID: invalid SVID: certificate 0 does not parse")


def test_wrong_trust_domain_fails(svid: Svid, ca: TestCA) -> None:
    verdict = check(sign_svid(FOO_BAR, svid), TrustBundle("other.org", ca.bundle))
    assert verdict.reason == Reason.IDENTITY_MISMATCH
    assert "cert uri: example.org does not match trust domain: other.org" in verdict.message


def test_svid_naming_a_foreign_trust_domain_fails(ca: TestCA, trust: TrustBundle) -> None:
    svid = ca.issue_svid(spiffe_id(td="evil.org"))
    verdict = check(sign_svid(FOO_BAR, svid), trust)
    assert verdict.reason == Reason.IDENTITY_MISMATCH
    assert "evil.org does not match trust domain: example.org" in verdict.message


def test_wrong_namespace_fails(ca: TestCA, trust: TrustBundle) -> None:
    svid = ca.issue_svid(spiffe_id(namespace="other"))
    assert check(sign_svid(FOO_BAR, svid), trust).reason == Reason.IDENTITY_MISMATCH


@pytest.mark.parametrize("scheme", ["https", "SPIFFE", "spiffe+x"])
def test_non_spiffe_scheme_fails_although_tekton_accepts_it(
    ca: TestCA, trust: TrustBundle, scheme: str
) -> None:
    uri = f"{scheme}://example.org/ns/foo/taskrun/{TASKRUN}"
    svid = ca.issue_svid(uri, uri_sans=[uri])
    verdict = check(sign_svid(FOO_BAR, svid), trust)
    assert verdict.reason == Reason.IDENTITY_MISMATCH
    assert "scheme must be spiffe" in verdict.message


@pytest.mark.parametrize("suffix", ["?x=1", "#frag"])
def test_spiffe_id_with_query_or_fragment_fails(ca: TestCA, trust: TrustBundle, suffix: str) -> None:
    uri = spiffe_id() + suffix
    verdict = check(sign_svid(FOO_BAR, ca.issue_svid(uri)), trust)
    assert verdict.reason == Reason.IDENTITY_MISMATCH


def test_svid_without_uri_fails(ca: TestCA, trust: TrustBundle) -> None:
    svid = ca.issue_svid(spiffe_id(), uri_sans=[])
    verdict = check(sign_svid(FOO_BAR, svid), trust)
    assert verdict.reason == Reason.IDENTITY_MISMATCH
    assert f"cert uri missing for taskrun: {TASKRUN}" in verdict.message
    assert verdict.identity is None


def test_svid_with_several_uris_fails(ca: TestCA, trust: TrustBundle) -> None:
    svid = ca.issue_svid(spiffe_id(), uri_sans=[spiffe_id(), "spiffe://example.org/other"])
    verdict = check(sign_svid(FOO_BAR, svid), trust)
    assert verdict.reason == Reason.IDENTITY_MISMATCH
    assert "more than one URI" in verdict.message


# -- time ----------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def expired(ca: TestCA) -> tuple[list[RunResult], dt.datetime]:
    start = dt.datetime.now(dt.UTC).replace(microsecond=0) - dt.timedelta(days=2)
    svid = ca.issue_svid(spiffe_id(), not_before=start, ttl=dt.timedelta(hours=1))
    return sign_svid(FOO_BAR, svid), start


def test_expired_svid_fails_now(expired: tuple[list[RunResult], dt.datetime], trust: TrustBundle) -> None:
    entries, _ = expired
    verdict = check(entries, trust)
    assert verdict.reason == Reason.CHAIN_UNTRUSTED
    assert abs(verdict.checked_at - dt.datetime.now(dt.UTC)) < dt.timedelta(minutes=1)


def test_expired_svid_verifies_at_a_time_inside_its_validity(
    expired: tuple[list[RunResult], dt.datetime], trust: TrustBundle
) -> None:
    entries, start = expired
    at = (start + dt.timedelta(minutes=30)).astimezone(dt.timezone(dt.timedelta(hours=5)))
    verdict = check(entries, trust, at=at)
    assert verdict.verified, verdict.message
    assert verdict.checked_at == at
    assert verdict.checked_at.utcoffset() == dt.timedelta(0)
    assert verdict.to_json()["checkedAt"] == (start + dt.timedelta(minutes=30)).strftime("%Y-%m-%dT%H:%M:%SZ")


def test_a_time_before_not_before_fails(
    expired: tuple[list[RunResult], dt.datetime], trust: TrustBundle
) -> None:
    entries, start = expired
    assert check(entries, trust, at=start - dt.timedelta(seconds=1)).reason == Reason.CHAIN_UNTRUSTED
    assert check(entries, trust, at=start + dt.timedelta(hours=1, seconds=1)).reason == Reason.CHAIN_UNTRUSTED


def test_naive_time_is_refused(signed: list[RunResult], trust: TrustBundle) -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        check(signed, trust, at=dt.datetime(2024, 1, 1))


# -- trust ----------------------------------------------------------------------------------------------


def test_rotated_bundle_no_longer_trusts_old_svids() -> None:
    rotating = TestCA(TD)
    entries = sign_svid(FOO_BAR, rotating.issue_svid(spiffe_id()))
    old = TrustBundle(TD, rotating.bundle)
    rotating.rotate()
    assert check(entries, old).verified
    assert check(entries, TrustBundle(TD, rotating.bundle)).reason == Reason.CHAIN_UNTRUSTED
    fresh = sign_svid(FOO_BAR, rotating.issue_svid(spiffe_id()))
    assert check(fresh, old).reason == Reason.CHAIN_UNTRUSTED
    both = TrustBundle(TD, (*old.roots, *rotating.bundle))  # a bundle mid-rotation trusts both
    assert check(entries, both).verified and check(fresh, both).verified


def test_foreign_ca_with_the_same_trust_domain_is_untrusted(trust: TrustBundle) -> None:
    foreign = TestCA(TD)
    verdict = check(sign_svid(FOO_BAR, foreign.issue_svid(spiffe_id())), trust)
    assert verdict.reason == Reason.CHAIN_UNTRUSTED
    assert "cannot be verified by provided roots" in verdict.message
    assert verdict.identity == spiffe_id()


def test_no_trust_fails_closed_after_the_svid_checks(signed: list[RunResult]) -> None:
    assert check(signed, None).reason == Reason.TRUST_UNAVAILABLE
    assert check(signed, None, check_chain=False).reason == Reason.TRUST_UNAVAILABLE
    assert check(delete(signed, "SVID"), None).reason == Reason.SVID_MISSING  # Tekton's order


def test_empty_bundle_is_unavailable_trust(signed: list[RunResult]) -> None:
    verdict = check(signed, TrustBundle(TD))
    assert verdict.reason == Reason.TRUST_UNAVAILABLE
    assert "has no roots" in verdict.message


def test_no_chain_accepts_an_unvouched_svid_but_still_checks_identity_and_signatures() -> None:
    foreign = TestCA(TD)
    svid = foreign.issue_svid(spiffe_id())
    entries = sign_svid(FOO_BAR, svid)
    unvouched = TrustBundle(TD)
    assert check(entries, unvouched, check_chain=False).verified
    assert (
        check(replace(entries, "foo", "evil"), unvouched, check_chain=False).reason
        == Reason.SIGNATURE_INVALID
    )
    assert check(delete(entries, "bar.sig"), unvouched, check_chain=False).reason == Reason.SIGNATURE_MISSING
    bogus = sign_svid(FOO_BAR, foreign.issue_svid("spiffe://example.org/bogus"))
    assert check(bogus, unvouched, check_chain=False).reason == Reason.IDENTITY_MISMATCH


def test_trust_bundle_from_pem_file(tmp_path: Path, ca: TestCA) -> None:
    path = tmp_path / "bundle.pem"
    path.write_bytes(ca.bundle_pem() + ca.bundle_pem())
    bundle = TrustBundle.from_pem_file(str(path), TD)
    assert bundle == TrustBundle(TD, ca.bundle)  # duplicates collapse


@pytest.mark.parametrize(
    ("content", "error"), [(None, "cannot read"), (b"", "no certificates"), (b"garbage", "no certificates")]
)
def test_trust_bundle_file_errors_name_the_file(tmp_path: Path, content: bytes | None, error: str) -> None:
    path = tmp_path / "bundle.pem"
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(TrustBundleError, match=error) as info:
        TrustBundle.from_pem_file(str(path), TD)
    assert str(path) in str(info.value)
    assert "\n" not in str(info.value)


@pytest.mark.parametrize("td", ["", "Example.org", "spiffe://example.org", "a/b"])
def test_invalid_trust_domain_is_refused(td: str) -> None:
    with pytest.raises(TrustBundleError, match="invalid trust domain"):
        TrustBundle(td)


def test_trust_bundle_from_workload_api(
    agent: WorkloadAPIServer, ca: TestCA, signed: list[RunResult]
) -> None:
    bundle = TrustBundle.from_workload_api(agent.address, TD, timeout=5)
    assert bundle == TrustBundle(TD, ca.bundle)
    assert check(signed, bundle).verified


def test_workload_api_without_the_trust_domain_fails(agent: WorkloadAPIServer) -> None:
    with pytest.raises(
        TrustBundleError, match=r"no X\.509 bundle for trust domain other\.org \(bundles: example\.org\)"
    ):
        TrustBundle.from_workload_api(agent.address, "other.org", timeout=5)


def test_workload_api_absent_fails(tmp_path: Path) -> None:
    address = f"unix://{tmp_path}/none.sock"
    with pytest.raises(TrustBundleError, match="workload API unix://"):
        TrustBundle.from_workload_api(address, TD, timeout=1)


def test_workload_api_unavailable_fails(agent: WorkloadAPIServer) -> None:
    agent.down = True
    with pytest.raises(TrustBundleError, match=r"fetching X\.509 bundles"):
        TrustBundle.from_workload_api(agent.address, TD, timeout=2)


# -- the message, the format and what users see ----------------------------------------------------------


@pytest.mark.parametrize("compressed", [False, True])
def test_verify_message_plain_and_compressed(
    signed: list[RunResult], trust: TrustBundle, compressed: bool
) -> None:
    text = message(signed, compressed=compressed)
    assert text.startswith("tknz:") == compressed
    verdict = verify_message(text, namespace=NS, name=TASKRUN, trust=trust)
    assert verdict.verified, verdict.message
    assert keys(verdict.results) == ["bar", "foo"]  # parsed as the controller does: sorted by key
    tampered = message(replace(signed, "bar", "evil"), compressed=compressed)
    assert (
        verify_message(tampered, namespace=NS, name=TASKRUN, trust=trust).reason == Reason.SIGNATURE_INVALID
    )


@pytest.mark.parametrize(
    "text", ["not json", "tknz:!!!", "tknz:aGVsbG8gd29ybGQ", '[{"key":"a","type":true}]']
)
def test_unparsable_message_is_invalid(trust: TrustBundle, text: str) -> None:
    verdict = verify_message(text, namespace=NS, name=TASKRUN, trust=trust)
    assert not verdict.verified
    assert verdict.reason == Reason.MESSAGE_INVALID
    assert verdict.message.startswith("termination message: ")
    assert verdict.results == ()


def test_unsigned_message_is_of_unknown_format(trust: TrustBundle) -> None:
    entries = [RunResult("foo", "v", 1), RunResult("StartedAt", "t", 3)]
    verdict = check(entries, trust)
    assert verdict.reason == Reason.UNKNOWN_FORMAT
    assert verdict.format == ""
    assert list(verdict.results) == sorted(entries)  # as the controller keeps them: sorted by key
    assert verify_message("", namespace=NS, name=TASKRUN, trust=trust).reason == Reason.UNKNOWN_FORMAT


def test_visible_results_exclude_every_signing_entry(svid: Svid, trust: TrustBundle) -> None:
    entries = [
        RunResult("foo", "1", 1),
        RunResult("StartedAt", "t", 3),
        RunResult("step", "s", 4),
        RunResult("untyped.sig", "u", 0),  # not type 1: not a signing entry
    ]
    verdict = check(sign_svid(entries, svid), trust)
    assert verdict.verified, verdict.message
    assert shown(verdict) == controller_order(entries)
    assert keys(verdict.results) == ["foo"]  # the only task result: all the signature covers
    hidden = {"SVID", "RESULT_MANIFEST", "RESULT_MANIFEST.sig", "foo.sig"}
    assert not hidden & set(keys(shown(verdict)))


def test_signing_entries_are_hidden_from_failed_verdicts_too(
    signed: list[RunResult], trust: TrustBundle
) -> None:
    verdict = check(replace(signed, "foo", "evil"), trust)
    assert not verdict.verified
    assert keys(verdict.results) == ["bar", "foo"]


def test_type1_key_outside_the_manifest_must_be_signed(svid: Svid, trust: TrustBundle) -> None:
    extra = RunResult("late", "v", 1)
    assert check([*sign_svid(FOO_BAR, svid), extra], trust).reason == Reason.SIGNATURE_MISSING
    sig = RunResult("late.sig", b64sig(svid.key, "v"), 1)
    assert check([*sign_svid(FOO_BAR, svid), extra, sig], trust).verified


def test_a_key_repeated_with_another_value_or_type_is_ambiguous(
    signed: list[RunResult], trust: TrustBundle
) -> None:
    # Issue 15 (1, 4): which of them a controller keeps depends on its version; an exact repeat is
    # read once.
    for changed in (
        [RunResult("foo", "stale", 1), *signed],
        [*signed, RunResult("foo", "late", 1)],
        [*signed, RunResult("foo", "foo-value", 4)],
    ):
        verdict = check(changed, trust)
        assert (verdict.verified, verdict.reason) == (False, Reason.AMBIGUOUS_ENTRIES), changed
    assert check([*signed, signed[0]], trust).verified


def test_signature_value_is_canonicalised_before_decoding(
    signed: list[RunResult], trust: TrustBundle
) -> None:
    quoted = json.dumps(value_of(signed, "foo.sig"))  # a JSON string literal canonicalises to its text
    assert check(replace(signed, "foo.sig", quoted), trust).verified


def test_manifest_named_null_fails_as_in_tekton(svid: Svid, trust: TrustBundle) -> None:
    # §10 item 28: the manifest "null" canonicalises to "", so its signature cannot verify.
    verdict = check(sign_svid([RunResult("null", "x", 1)], svid), trust)
    assert verdict.reason == Reason.SIGNATURE_INVALID
    assert "RESULT_MANIFEST.sig" in verdict.message


def test_unexpected_error_inside_a_check_fails_closed(
    signed: list[RunResult], trust: TrustBundle, monkeypatch: pytest.MonkeyPatch
) -> None:
    def boom(*args: object) -> bool:
        raise RuntimeError("boom")

    monkeypatch.setattr(tekton, "is_valid", boom)
    verdict = check(signed, trust)
    assert not verdict.verified
    assert verdict.reason == Reason.SIGNATURE_INVALID
    assert "unexpected error: RuntimeError: boom" in verdict.message


def test_empty_namespace_or_name_is_a_programming_error(signed: list[RunResult], trust: TrustBundle) -> None:
    with pytest.raises(ValueError, match="non-empty"):
        verify_entries(signed, namespace="", name=TASKRUN, trust=trust)


# -- condition and JSON -------------------------------------------------------------------------------------


def test_condition_and_json_of_a_verified_message(signed: list[RunResult], trust: TrustBundle) -> None:
    verdict = check([*signed, RunResult("StartedAt", "t", 3)], trust)
    assert verdict.condition() == {
        "type": CONDITION_TYPE,
        "status": "True",
        "reason": "TaskRunResultsVerified",
        "message": "Successfully verified all spire signed taskrun results",
    }
    doc = json.loads(json.dumps(verdict.to_json()))
    assert doc["verified"] is True
    assert doc["reason"] == "Verified"
    assert doc["format"] == "tekton"
    assert doc["identity"] == spiffe_id()
    assert doc["checkedAt"].endswith("Z")
    assert doc["condition"] == verdict.condition()
    assert doc["results"] == [
        {"key": "bar", "value": "bar-value", "type": 1},
        {"key": "foo", "value": "foo-value", "type": 1},
    ]
    assert doc["unsigned"] == [{"key": "StartedAt", "value": "t", "type": 3}]


def test_condition_of_a_failed_message_carries_the_precise_reason(
    signed: list[RunResult], trust: TrustBundle
) -> None:
    verdict = check(delete(signed, "foo.sig"), trust)
    condition = verdict.condition()
    assert condition["status"] == "False"
    assert condition["reason"] == "TaskRunResultsVerificationFailed"
    assert condition["message"].startswith("SignatureMissing: foo: no signature found for foo")
    assert verdict.to_json()["reason"] == "SignatureMissing"


def test_a_forged_duplicate_never_shows_as_a_result(signed: list[RunResult], trust: TrustBundle) -> None:
    # The controller keeps the last entry per key; a forged earlier duplicate must not surface.
    verdict = check([RunResult("foo", "sha256:EVIL", 1), *signed], trust)
    assert not verdict.verified
    assert all(e.value != "sha256:EVIL" for e in [*verdict.results, *verdict.unsigned])


def test_unsigned_entries_are_never_presented_as_verified(svid: Svid, trust: TrustBundle) -> None:
    # Tekton's format covers task results only: a changed step result still verifies, so it must
    # be reported apart from what the signature vouches for.
    entries = sign_svid([RunResult("foo", "1", 1), RunResult("step", "v", 4)], svid)
    forged = [RunResult("step", "EVIL", 4) if e.key == "step" else e for e in entries]
    verdict = check(forged, trust)
    assert verdict.verified
    assert keys(verdict.results) == ["foo"]
    assert RunResult("step", "EVIL", 4) in verdict.unsigned


def test_crafted_pem_text_is_rejected_in_linear_time() -> None:
    import time

    from entrypoint._internal.backends.spire.svid import SvidDecodeError, decode_svid

    crafted = "-----BEGIN CERTIFICATE-----\n" * 4000  # a backtracking scan is quadratic here
    start = time.process_time()
    with pytest.raises(SvidDecodeError, match="no PEM certificate block found"):
        decode_svid(crafted)
    assert time.process_time() - start < 1.0  # bounded work, not a timing target: seconds before


def test_oversized_input_is_not_a_termination_message(trust: TrustBundle) -> None:
    from entrypoint.verify import MAX_MESSAGE_CHARS

    verdict = verify_message("[" + " " * MAX_MESSAGE_CHARS + "]", namespace=NS, name=TASKRUN, trust=trust)
    assert verdict.reason == Reason.MESSAGE_INVALID
    assert "more than any termination message" in verdict.message


# -- the Verifier API --------------------------------------------------------------------------------------


def test_the_verifier_and_the_one_call_form_agree(svid: Svid, trust: TrustBundle) -> None:
    signed = sign_svid([RunResult("foo", "bar", 1)], svid)
    verifier = Verifier(TrustSet(spiffe=trust))
    at = dt.datetime.now(dt.UTC)
    verdict = verifier.verify_message(message(signed), TaskRunRef(NS, TASKRUN), at=at)
    assert verdict.verified, verdict.message
    assert verdict == verify_message(message(signed), namespace=NS, name=TASKRUN, trust=trust, at=at)
    # Another TaskRun, same verifier: the identity no longer matches.
    assert verifier.verify_entries(signed, TaskRunRef(NS, "other")).reason == Reason.IDENTITY_MISMATCH


def test_a_backend_without_trust_in_the_set_fails_closed(svid: Svid) -> None:
    signed = sign_svid([RunResult("foo", "bar", 1)], svid)
    verdict = Verifier(TrustSet()).verify_entries(signed, TaskRunRef(NS, TASKRUN))
    assert not verdict.verified
    assert verdict.reason == Reason.TRUST_UNAVAILABLE


def test_the_verifier_enforces_its_format_policy(svid: Svid, trust: TrustBundle) -> None:
    signed = sign_svid([RunResult("foo", "bar", 1)], svid)
    verdict = Verifier(TrustSet(spiffe=trust), formats=("compact",)).verify_entries(
        signed, TaskRunRef(NS, TASKRUN)
    )
    assert verdict.reason == Reason.FORMAT_NOT_ALLOWED


@pytest.mark.parametrize(
    ("kwargs", "error"),
    [
        ({"namespace": "", "name": TASKRUN}, "non-empty"),
        ({"namespace": NS, "name": TASKRUN, "step": "01"}, "decimal"),
        ({"namespace": NS, "name": TASKRUN, "companions": "one message"}, "not one string"),
    ],
)
def test_a_taskrun_reference_refuses_bad_arguments_at_once(kwargs: dict[str, Any], error: str) -> None:
    with pytest.raises((ValueError, TypeError), match=error):
        TaskRunRef(**kwargs)
