"""The compact format's verifier (docs/compact-format.md §6) against messages signed by a small
signer written here from that document alone.

The signer does not import ``entrypoint._internal.formats.compact``: agreeing with the document, not with
the shared codec, is what these tests check.  One test compares its statement bytes with the
codec's, which cross-checks the document against the code.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import json
from collections.abc import Sequence
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from entrypoint._internal.formats import compact as codec
from entrypoint.termination import RunResult
from entrypoint.testing.ca import Svid, TestCA
from entrypoint.verify import Reason, TrustBundle, Verdict, verify_entries, verify_message
from tests.support.compact_signer import (
    RESULTS,
    Parts,
    b64u,
    replace,
    sign,
    sign_parts,
    statement_bytes,
    statement_bytes_v2,
)
from tests.support.messages import message
from tests.support.paths import REPO
from tests.support.pki import NS, TASKRUN, TD, spiffe_id
from tests.support.tekton_signer import sign_svid

# -- fixtures and helpers ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def signed(svid: Svid) -> list[RunResult]:
    return sign(RESULTS, svid)


def check(
    entries: Sequence[RunResult], trust: TrustBundle | None, *, name: str = TASKRUN, **kw: Any
) -> Verdict:
    return verify_message(message(entries), namespace=NS, name=name, trust=trust, **kw)


def with_signature(entries: Sequence[RunResult], value: str) -> list[RunResult]:
    return [RunResult("SIGNATURE", value, 1) if e.key == "SIGNATURE" else e for e in entries]


def parts_of(entries: Sequence[RunResult]) -> Parts:
    value = next(e.value for e in entries if e.key == "SIGNATURE")
    tag, step, signed_at, alg, signature, material = value.split(".")
    assert tag == "cs1"
    return Parts(step, signed_at, alg, signature, material)


def rejected(verdict: Verdict, reason: Reason) -> None:
    assert not verdict.verified
    assert verdict.reason == reason, verdict.message
    if reason not in (Reason.UNKNOWN_FORMAT, Reason.TRUST_UNAVAILABLE):
        assert verdict.message.startswith("SIGNATURE: "), verdict.message  # it names the entry


# -- the statement: the document against the shared codec --------------------------------------------


STATEMENT_CASES = {
    "plain": RESULTS,
    "duplicates, last wins whatever its type": [
        RunResult("a", "1", 1),
        RunResult("b", "x"),
        RunResult("a", "2", 4),
    ],
    "escapes and non-ASCII": [
        RunResult('q"uote\\', "\x00\x1f\b\t\n\f\r\x7f", 1),
        RunResult("é-ü-\u2028-\U0001f600", "<>&\u2029", 1),
        RunResult("\uffff", "", 0),
        RunResult("\U00010000", "v", 10),
    ],
    "empty entries dropped, signatures excluded": [
        RunResult("", ""),
        RunResult("SIGNATURE", "cs1.whatever", 1),
        RunResult("k", "", 0),
    ],
}


@pytest.mark.parametrize("case", STATEMENT_CASES)
@pytest.mark.parametrize("step", ["", "0", "12"])
def test_independent_statement_equals_the_codecs(case: str, step: str) -> None:
    entries = STATEMENT_CASES[case]
    digest = hashlib.sha256(b"chain").digest()
    mine = statement_bytes(entries, step=step, signed_at=1795341600, chain_sha256=digest)
    assert mine == codec.statement(entries, step=step, signed_at=1795341600, material_digest=digest)


@pytest.mark.parametrize("case", STATEMENT_CASES)
@pytest.mark.parametrize(("exit_code", "started_at"), [(0, 1795341600), (-1, None), (None, None), (255, 0)])
def test_independent_cs2_statement_equals_the_codecs(
    case: str, exit_code: int | None, started_at: int | None
) -> None:
    entries = [*STATEMENT_CASES[case], RunResult("StartedAt", "2026-11-22T10:00:00.000Z", 3)]
    digest = hashlib.sha256(b"chain").digest()
    mine = statement_bytes_v2(
        entries,
        step="3",
        signed_at=1795341600,
        chain_sha256=digest,
        exit_code=exit_code,
        started_at=started_at,
    )
    theirs = codec.statement_of_view(
        codec.controller_view(entries),
        step="3",
        signed_at=1795341600,
        material_digest=digest,
        tag="cs2",
        exit_code=exit_code,
        started_at=started_at,
    )
    assert mine == theirs
    assert b"StartedAt" not in mine  # internal entries are not listed: the TaskRun drops them


def test_the_entrypoints_cs2_signature_verifies_over_the_documents_statement(ca: TestCA) -> None:
    """The signer's value, decoded by §8's field layout, signs §8's statement (written by hand)."""
    from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

    from entrypoint._internal.backends.spire.evidence import x509_identity
    from entrypoint._internal.signing.compact_format import CompactFormat

    svid = ca.issue_svid(f"spiffe://{TD}/ns/{NS}/taskrun/{TASKRUN}")
    entries = [RunResult("a", "1", 1), RunResult("StartedAt", "2026-11-22T10:00:00.999Z", 3)]
    [sealed] = CompactFormat("2").seal_options(
        entries, x509_identity(svid.key, svid.chain, "t"), frozenset(), exit_code=7
    )
    value = next(e.value for e in sealed if e.key == "SIGNATURE")
    tag, step, signed_at, exit_code, started_at, alg, sig, material = value.split(".", 7)
    assert (tag, step, exit_code, started_at, alg) == ("cs2", "2", "7", "1795341600", "ES256")
    assert material == "x509:" + b64u(svid.chain_der())
    stmt = statement_bytes_v2(
        entries, step="2", signed_at=int(signed_at), chain_sha256=hashlib.sha256(svid.chain_der()).digest(),
        exit_code=7, started_at=1795341600,
    )  # fmt: skip
    raw = base64.urlsafe_b64decode(sig + "=" * (-len(sig) % 4))
    der = encode_dss_signature(int.from_bytes(raw[:32], "big"), int.from_bytes(raw[32:], "big"))
    public = svid.key.public_key()
    assert isinstance(public, ec.EllipticCurvePublicKey)
    public.verify(der, stmt, ec.ECDSA(hashes.SHA256()))


def test_the_documented_example_statement_is_reproduced_from_the_document() -> None:
    example = json.loads((REPO / "docs" / "compact-example.json").read_text())
    entries = [RunResult(o["key"], o["value"], o.get("type", 0)) for o in json.loads(example["message"])]
    chain_sha256 = bytes.fromhex(example["materialSha256"])
    rebuilt = statement_bytes(
        entries, step=example["step"], signed_at=example["signedAt"], chain_sha256=chain_sha256
    )
    assert rebuilt.decode() == example["statement"]
    der = base64.urlsafe_b64decode(parts_of(entries).material.removeprefix("x509:") + "==")
    assert hashlib.sha256(der).hexdigest() == example["materialSha256"]


def test_the_cs2_example_is_reproduced_from_the_document_and_verifies() -> None:
    example = json.loads((REPO / "docs" / "compact-example-cs2.json").read_text())
    entries = [RunResult(o["key"], o["value"], o.get("type", 0)) for o in json.loads(example["message"])]
    rebuilt = statement_bytes_v2(
        entries,
        step=example["step"],
        signed_at=example["signedAt"],
        chain_sha256=bytes.fromhex(example["materialSha256"]),
        exit_code=example["exitCode"],
        started_at=example["startedAt"],
    )
    assert rebuilt.decode() == example["statement"]
    roots = tuple(x509.load_pem_x509_certificates(example["trustBundlePem"].encode()))
    v = verify_message(
        example["message"],
        namespace=example["namespace"],
        name=example["name"],
        trust=TrustBundle(example["trustDomain"], roots),
        step=example["step"],
        at=dt.datetime.fromisoformat(example["verifyAt"]),
    )
    assert v.verified, v.message
    assert (v.version, v.exit_code) == ("cs2", 0)


def test_independent_value_decodes_with_the_codec(signed: list[RunResult], svid: Svid) -> None:
    value = codec.SignatureValue.decode(parts_of(signed).value())
    assert (value.step, value.alg, value.material_kind) == ("1", "ES256", "x509")
    assert value.material == svid.chain_der()
    assert value.encode() == parts_of(signed).value()


# -- what verifies ----------------------------------------------------------------------------------


def test_signed_message_verifies_as_compact(signed: list[RunResult], trust: TrustBundle) -> None:
    v = check(signed, trust)
    assert v.verified, v.message
    assert v.reason == Reason.VERIFIED
    assert v.format == "compact"
    assert v.identity == spiffe_id()
    assert sorted(r.key for r in v.results) == sorted(e.key for e in RESULTS)  # SIGNATURE hidden
    assert v.to_json()["format"] == "compact"


@pytest.mark.parametrize(
    ("key_type", "alg"),
    [("ec-p256", "ES256"), ("ec-p384", "ES384"), ("rsa-2048", "RS256"), ("ed25519", "EdDSA")],
)
def test_leaf_key_types_verify(ca: TestCA, trust: TrustBundle, key_type: str, alg: str) -> None:
    entries = sign(RESULTS, ca.issue_svid(spiffe_id(), key_type=key_type))
    assert parts_of(entries).alg == alg
    v = check(entries, trust)
    assert v.verified, v.message


@pytest.mark.parametrize("ca_key_type", ["ec-p384", "rsa-2048"])
def test_ca_key_types_verify(ca_key_type: str) -> None:
    other = TestCA(TD, key_type=ca_key_type)
    v = check(sign(RESULTS, other.issue_svid(spiffe_id())), TrustBundle(TD, other.bundle))
    assert v.verified, v.message


def test_intermediate_chain_verifies(ca: TestCA, trust: TrustBundle) -> None:
    svid = ca.issue_svid(spiffe_id(), intermediate=True)
    assert len(svid.chain) == 2
    v = check(sign(RESULTS, svid), trust)
    assert v.verified, v.message


def test_leaf_without_its_intermediate_is_untrusted(ca: TestCA, trust: TrustBundle) -> None:
    svid = ca.issue_svid(spiffe_id(), intermediate=True)
    leaf_only = svid.leaf.public_bytes(serialization.Encoding.DER)
    rejected(check(sign(RESULTS, svid, chain=leaf_only), trust), Reason.CHAIN_UNTRUSTED)


def test_compressed_message_verifies(signed: list[RunResult], trust: TrustBundle) -> None:
    text = message(signed, compressed=True)
    assert text.startswith("tknz:")
    v = verify_message(text, namespace=NS, name=TASKRUN, trust=trust)
    assert v.verified, v.message
    assert v.format == "compact"


def test_step_is_checked_only_when_expected(signed: list[RunResult], trust: TrustBundle) -> None:
    assert check(signed, trust).verified
    assert check(signed, trust, step="1").verified


def test_a_message_without_a_step_verifies_without_an_expected_step(svid: Svid, trust: TrustBundle) -> None:
    entries = sign(RESULTS, svid, step="")
    assert check(entries, trust).verified
    rejected(check(entries, trust, step="0"), Reason.STEP_MISMATCH)


def test_results_verified_as_entries_in_any_order(signed: list[RunResult], trust: TrustBundle) -> None:
    v = verify_entries(list(reversed(signed)), namespace=NS, name=TASKRUN, trust=trust)
    assert v.verified, v.message


def test_an_empty_entry_makes_the_message_ambiguous(signed: list[RunResult], trust: TrustBundle) -> None:
    # Issue 15 (1): controllers before Tekton v0.68 erase it by moving the last entry into its slot.
    v = verify_entries([RunResult("", ""), *signed], namespace=NS, name=TASKRUN, trust=trust)
    assert (v.verified, v.reason) == (False, Reason.AMBIGUOUS_ENTRIES)
    assert v.message.startswith("entry 0 is empty")


def test_tekton_named_results_inside_a_cs1_message_are_ordinary_entries(
    svid: Svid, trust: TrustBundle
) -> None:
    entries = sign([*RESULTS, RunResult("SVID", "x", 1), RunResult("a.sig", "y", 1)], svid)
    v = check(entries, trust)
    assert v.verified, v.message
    assert v.format == "compact"
    assert {"SVID", "a.sig"} <= {r.key for r in v.results}


def test_no_chain_skips_the_chain_but_not_the_rest() -> None:
    stranger = TestCA(TD)
    entries = sign(RESULTS, stranger.issue_svid(spiffe_id()))
    assert check(entries, TrustBundle(TD, TestCA(TD).bundle)).reason == Reason.CHAIN_UNTRUSTED
    assert check(entries, TrustBundle(TD), check_chain=False).verified
    rejected(
        check(replace(entries, "IMAGE_URL", value="x"), TrustBundle(TD), check_chain=False),
        Reason.SIGNATURE_INVALID,
    )


# -- check 6: the statement binds every entry ---------------------------------------------------------


def test_swapped_values_fail(signed: list[RunResult], trust: TrustBundle) -> None:
    a, b = (next(e.value for e in signed if e.key == k) for k in ("IMAGE_DIGEST", "IMAGE_URL"))
    swapped = replace(replace(signed, "IMAGE_DIGEST", value=b), "IMAGE_URL", value=a)
    rejected(check(swapped, trust), Reason.SIGNATURE_INVALID)


def test_array_flattening_is_not_a_collision(signed: list[RunResult], trust: TrustBundle) -> None:
    rejected(check(replace(signed, "list", value='["a","b"]'), trust), Reason.SIGNATURE_INVALID)


def test_changed_type_fails(signed: list[RunResult], trust: TrustBundle) -> None:
    rejected(check(replace(signed, "IMAGE_URL", type=4), trust), Reason.SIGNATURE_INVALID)


def test_dropped_result_fails(signed: list[RunResult], trust: TrustBundle) -> None:
    rejected(check([e for e in signed if e.key != "IMAGE_URL"], trust), Reason.SIGNATURE_INVALID)


@pytest.mark.parametrize(
    "added", [RunResult("extra", "x", 1), RunResult("ExitCode", "0", 3), RunResult("e", "")]
)
def test_added_entry_fails(signed: list[RunResult], trust: TrustBundle, added: RunResult) -> None:
    rejected(check([*signed, added], trust), Reason.SIGNATURE_INVALID)


def test_changed_value_fails(signed: list[RunResult], trust: TrustBundle) -> None:
    rejected(
        check(replace(signed, "StartedAt", value="2026-11-22T10:00:00Z"), trust), Reason.SIGNATURE_INVALID
    )


@pytest.mark.parametrize(
    "field",
    ["step", "signed_at", "signature"],
)
def test_changed_signature_fields_fail_the_statement(
    signed: list[RunResult], trust: TrustBundle, field: str
) -> None:
    parts = parts_of(signed)
    if field == "step":
        changed = Parts("2", parts.signed_at, parts.alg, parts.signature, parts.material)
    elif field == "signed_at":
        changed = Parts(parts.step, str(int(parts.signed_at) - 1), parts.alg, parts.signature, parts.material)
    else:
        sig = bytearray(base64.urlsafe_b64decode(parts.signature + "=="))
        sig[5] ^= 1
        changed = Parts(parts.step, parts.signed_at, parts.alg, b64u(bytes(sig)), parts.material)
    rejected(check(with_signature(signed, changed.value()), trust), Reason.SIGNATURE_INVALID)


def test_der_encoded_ecdsa_signature_is_refused(svid: Svid, trust: TrustBundle) -> None:
    parts = sign_parts(RESULTS, svid)
    assert check([*RESULTS, RunResult("SIGNATURE", parts.value(), 1)], trust).verified
    data = statement_bytes(
        RESULTS,
        step="1",
        signed_at=int(parts.signed_at),
        chain_sha256=hashlib.sha256(svid.chain_der()).digest(),
    )
    assert isinstance(svid.key, ec.EllipticCurvePrivateKey)
    der = svid.key.sign(data, ec.ECDSA(hashes.SHA256()))  # valid, but DER rather than JWS's r || s
    changed = Parts(parts.step, parts.signed_at, parts.alg, b64u(der), parts.material)
    rejected(check([*RESULTS, RunResult("SIGNATURE", changed.value(), 1)], trust), Reason.SIGNATURE_INVALID)


def test_signature_by_another_key_fails(ca: TestCA, trust: TrustBundle, svid: Svid) -> None:
    other = ca.issue_svid(spiffe_id())
    forged = sign_parts(RESULTS, other, chain=svid.chain_der())  # other's key, svid's chain
    rejected(check([*RESULTS, RunResult("SIGNATURE", forged.value(), 1)], trust), Reason.SIGNATURE_INVALID)


# -- checks 3-5: identity, chain and time, step ---------------------------------------------------------


def test_replay_from_another_step_fails(signed: list[RunResult], trust: TrustBundle) -> None:
    v = check(signed, trust, step="2")
    rejected(v, Reason.STEP_MISMATCH)
    assert "step 1" in v.message and "step 2" in v.message
    assert v.identity == spiffe_id()


def test_message_of_another_taskrun_fails(ca: TestCA, trust: TrustBundle) -> None:
    entries = sign(RESULTS, ca.issue_svid(spiffe_id(name="other-run")))
    v = check(entries, trust)
    rejected(v, Reason.IDENTITY_MISMATCH)
    assert v.identity == spiffe_id(name="other-run")
    assert check(entries, trust, name="other-run").verified


def test_wrong_trust_domain_fails(signed: list[RunResult], ca: TestCA) -> None:
    rejected(check(signed, TrustBundle("other.org", ca.bundle)), Reason.IDENTITY_MISMATCH)


def test_svid_of_a_foreign_trust_domain_fails(ca: TestCA, trust: TrustBundle) -> None:
    rejected(check(sign(RESULTS, ca.issue_svid(spiffe_id(td="evil.org"))), trust), Reason.IDENTITY_MISMATCH)


@pytest.mark.parametrize(
    "uris", [[], [spiffe_id(), spiffe_id(name="x")], ["https://example.org/ns/foo/taskrun/" + TASKRUN]]
)
def test_svid_without_exactly_one_spiffe_uri_fails(ca: TestCA, trust: TrustBundle, uris: list[str]) -> None:
    rejected(check(sign(RESULTS, ca.issue_svid(spiffe_id(), uri_sans=uris)), trust), Reason.IDENTITY_MISMATCH)


@pytest.fixture(scope="module")
def expired(ca: TestCA) -> tuple[list[RunResult], dt.datetime]:
    start = dt.datetime.now(dt.UTC).replace(microsecond=0) - dt.timedelta(hours=3)
    old = ca.issue_svid(spiffe_id(), not_before=start, ttl=dt.timedelta(hours=1))
    return sign(RESULTS, old, signed_at=int(start.timestamp()) + 60), start


def test_expired_identity_fails_without_at(
    expired: tuple[list[RunResult], dt.datetime], trust: TrustBundle
) -> None:
    rejected(check(expired[0], trust), Reason.CHAIN_UNTRUSTED)


def test_expired_identity_verifies_at_a_time_within_its_validity(
    expired: tuple[list[RunResult], dt.datetime], trust: TrustBundle
) -> None:
    entries, start = expired
    v = check(entries, trust, at=start + dt.timedelta(minutes=5))
    assert v.verified, v.message
    assert v.checked_at == start + dt.timedelta(minutes=5)


@pytest.mark.parametrize(
    "offset", [dt.timedelta(seconds=-1), dt.timedelta(hours=1, seconds=1), dt.timedelta(days=10**6)]
)
def test_signed_at_outside_the_leafs_validity_fails(
    ca: TestCA, trust: TrustBundle, offset: dt.timedelta
) -> None:
    start = dt.datetime.now(dt.UTC).replace(microsecond=0) - dt.timedelta(minutes=10)
    leaf = ca.issue_svid(spiffe_id(), not_before=start, ttl=dt.timedelta(hours=1))
    entries = sign(RESULTS, leaf, signed_at=int((start + offset).timestamp()))
    rejected(check(entries, trust), Reason.CHAIN_UNTRUSTED)
    # Not a matter of trust: it holds without the chain too.
    rejected(check(entries, TrustBundle(TD), check_chain=False), Reason.CHAIN_UNTRUSTED)


@pytest.mark.parametrize("offset", [dt.timedelta(0), dt.timedelta(hours=1)])
def test_signed_at_on_the_validity_bounds_verifies(
    ca: TestCA, trust: TrustBundle, offset: dt.timedelta
) -> None:
    start = dt.datetime.now(dt.UTC).replace(microsecond=0) - dt.timedelta(minutes=10)
    leaf = ca.issue_svid(spiffe_id(), not_before=start, ttl=dt.timedelta(hours=1))
    v = check(sign(RESULTS, leaf, signed_at=int((start + offset).timestamp())), trust)
    assert v.verified, v.message


def test_huge_signed_at_fails_closed(svid: Svid, trust: TrustBundle) -> None:
    # More digits than any Unix time needs is a syntax error, before any arithmetic on it.
    rejected(check(sign(RESULTS, svid, signed_at=10**40), trust), Reason.MESSAGE_INVALID)
    rejected(check(sign(RESULTS, svid, signed_at=10**17), trust), Reason.CHAIN_UNTRUSTED)


def test_foreign_ca_is_untrusted(trust: TrustBundle) -> None:
    rejected(check(sign(RESULTS, TestCA(TD).issue_svid(spiffe_id())), trust), Reason.CHAIN_UNTRUSTED)


def test_no_trust_fails_after_reading_the_chain(signed: list[RunResult]) -> None:
    v = check(signed, None)
    rejected(v, Reason.TRUST_UNAVAILABLE)
    assert v.identity == spiffe_id()
    rejected(check(signed, TrustBundle(TD)), Reason.TRUST_UNAVAILABLE)


# -- check 1: the SIGNATURE value ----------------------------------------------------------------------


def tamper(signed: list[RunResult], **changes: str) -> list[RunResult]:
    parts = parts_of(signed)
    fields = {**parts.__dict__, **changes}
    return with_signature(signed, Parts(**fields).value())


@pytest.mark.parametrize(
    "changes",
    [
        {"step": "x"},
        {"step": "-1"},
        {"signed_at": ""},
        {"signed_at": "12a"},
        {"signed_at": "+12"},
        {"signed_at": "9" * 5000},  # more digits than Python converts to an int
        {"alg": "HS256"},
        {"alg": "es256"},
        {"alg": "none"},
        {"signature": ""},
        {"signature": "AAAA="},
        {"signature": "AA+/"},
        {"signature": "AA!A"},
        {"signature": "AAB"},  # non-zero trailing bits: not how base64url writes any bytes
        {"signature": "A"},
        {"material": "pem:AAAA"},
        {"material": "x509"},
        {"material": "x509:"},
        {"material": "x509:AAAA:AAAA"},
        {"material": "x509-ref:AAAA"},  # not a 32-byte digest
    ],
)
def test_malformed_signature_value_is_invalid(
    signed: list[RunResult], trust: TrustBundle, changes: dict[str, str]
) -> None:
    rejected(check(tamper(signed, **changes), trust), Reason.MESSAGE_INVALID)


@pytest.mark.parametrize("value", ["cs1.1.2.ES256.AA.x509:AA.extra", "cs1.1", "cs1..."])
def test_wrong_number_of_fields_is_invalid(signed: list[RunResult], trust: TrustBundle, value: str) -> None:
    rejected(check(with_signature(signed, value), trust), Reason.MESSAGE_INVALID)


@pytest.mark.parametrize("tag", ["cs3", "CS1", "cs1x"])
def test_another_format_tag_is_not_recognised(signed: list[RunResult], trust: TrustBundle, tag: str) -> None:
    value = parts_of(signed).value().replace("cs1", tag, 1)
    v = check(with_signature(signed, value), trust)
    rejected(v, Reason.UNKNOWN_FORMAT)
    assert v.format == ""
    assert "compact" in v.message


@pytest.mark.parametrize("alg", ["ES384", "RS256", "EdDSA"])
def test_algorithm_not_fitting_the_key_is_unsupported(
    signed: list[RunResult], trust: TrustBundle, alg: str
) -> None:
    rejected(check(tamper(signed, alg=alg), trust), Reason.UNSUPPORTED_KEY)


@pytest.mark.parametrize(
    ("key_type", "alg"), [("ec-p384", "ES256"), ("rsa-2048", "ES256"), ("ed25519", "RS256")]
)
def test_algorithm_not_fitting_other_keys_is_unsupported(
    ca: TestCA, trust: TrustBundle, key_type: str, alg: str
) -> None:
    entries = sign(RESULTS, ca.issue_svid(spiffe_id(), key_type=key_type))
    rejected(check(tamper(entries, alg=alg), trust), Reason.UNSUPPORTED_KEY)


def test_a_repeated_signature_entry_is_read_once_and_a_different_one_is_ambiguous(
    signed: list[RunResult], trust: TrustBundle
) -> None:
    sig = next(e for e in signed if e.key == "SIGNATURE")
    assert verify_entries([*signed, sig], namespace=NS, name=TASKRUN, trust=trust).verified
    other = RunResult("SIGNATURE", sig.value[:-4] + "AAAA", 1)
    v = verify_entries([*signed, other], namespace=NS, name=TASKRUN, trust=trust)
    assert (v.verified, v.reason) == (False, Reason.AMBIGUOUS_ENTRIES)


# -- check 2: the chain --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "mangle",
    [
        lambda der: b"\x00" + der,
        lambda der: der + b"\x00",
        lambda der: der[:-1],
        lambda der: der[:2] + b"\x00" + der[3:],
        lambda der: b"\x30\x80" + der[2:],  # BER's indefinite length
        lambda der: b"\x30\x03\x02\x01\x01",  # DER, but not a certificate
    ],
)
def test_undecodable_chain_is_an_invalid_svid(svid: Svid, trust: TrustBundle, mangle: Any) -> None:
    entries = sign(RESULTS, svid, chain=mangle(svid.chain_der()))
    rejected(check(entries, trust), Reason.SVID_INVALID)


@pytest.fixture(scope="module")
def first_step(svid: Svid) -> list[RunResult]:
    return sign([RunResult("commit", "abc123", 1)], svid, step="0")


@pytest.fixture(scope="module")
def referring(svid: Svid) -> list[RunResult]:
    return sign(RESULTS, svid, step="1", ref=True)


def test_reference_without_companions_is_unresolved(referring: list[RunResult], trust: TrustBundle) -> None:
    v = check(referring, trust, step="1")
    rejected(v, Reason.MATERIAL_UNRESOLVED)
    assert "no companion message was given" in v.message


def test_reference_resolves_from_a_companion_that_embeds_the_chain(
    referring: list[RunResult], first_step: list[RunResult], trust: TrustBundle
) -> None:
    companions = ["not a message", message([RunResult("x", "y", 1)]), message(first_step, compressed=True)]
    v = check(referring, trust, step="1", companions=companions)
    assert v.verified, v.message
    assert v.identity == spiffe_id()
    assert v.format == "compact"


def test_reference_to_a_chain_no_companion_carries_is_unresolved(
    referring: list[RunResult], ca: TestCA, trust: TrustBundle
) -> None:
    other = sign([RunResult("commit", "abc123", 1)], ca.issue_svid(spiffe_id()), step="0")
    v = check(referring, trust, companions=[message(other), "garbage"])
    rejected(v, Reason.MATERIAL_UNRESOLVED)
    assert "none of the 2 companion message(s) embeds it (1 unreadable)" in v.message


def test_a_referring_companion_does_not_resolve(referring: list[RunResult], trust: TrustBundle) -> None:
    rejected(check(referring, trust, companions=[message(referring)]), Reason.MATERIAL_UNRESOLVED)


def test_resolved_chain_is_still_judged(ca: TestCA, trust: TrustBundle) -> None:
    foreign = TestCA(TD).issue_svid(spiffe_id())
    companion = sign([RunResult("a", "b", 1)], foreign, step="0")
    entries = sign(RESULTS, foreign, ref=True)
    rejected(check(entries, trust, companions=[message(companion)]), Reason.CHAIN_UNTRUSTED)


def test_companions_are_ignored_for_an_embedded_chain(signed: list[RunResult], trust: TrustBundle) -> None:
    assert check(signed, trust, companions=["garbage"]).verified


# -- the API -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("step", ["01", "x", "-1", "", " 1", "١"])
def test_expected_step_must_be_a_decimal_index(
    signed: list[RunResult], trust: TrustBundle, step: str
) -> None:
    with pytest.raises(ValueError, match="step"):
        check(signed, trust, step=step)
    with pytest.raises(ValueError, match="step"):
        verify_entries(signed, namespace=NS, name=TASKRUN, trust=trust, step=step)


def test_companions_must_not_be_a_single_string(signed: list[RunResult], trust: TrustBundle) -> None:
    with pytest.raises(TypeError, match="companions"):
        check(signed, trust, companions=message(signed))


def test_tekton_messages_cannot_satisfy_a_step_check(svid: Svid, trust: TrustBundle) -> None:
    entries = sign_svid([RunResult("foo", "bar", 1)], svid)
    assert check(entries, trust, companions=["x"]).verified  # companions are simply unused
    # Asked to check the step, a format that cannot bind it fails closed.
    v = check(entries, trust, step="7")
    assert not v.verified
    assert v.reason == Reason.STEP_MISMATCH
    assert "does not bind a message to its step" in v.message


def test_unknown_format_names_both_formats(trust: TrustBundle) -> None:
    v = check([RunResult("foo", "bar", 1), RunResult("SIGNATURE", "not-cs1", 1)], trust)
    rejected(v, Reason.UNKNOWN_FORMAT)
    assert "compact, tekton" in v.message


def test_small_rsa_keys_and_out_of_range_types_are_refused(trust: TrustBundle) -> None:

    from entrypoint._internal.verification.reasons import VerificationFailed
    from entrypoint._internal.verification.signatures import MIN_RSA_BITS, jose_checker

    small = rsa.generate_private_key(public_exponent=65537, key_size=1024).public_key()
    with pytest.raises(VerificationFailed) as exc:
        jose_checker("RS256", small, entry="SIGNATURE", identity=None)
    assert exc.value.reason == Reason.UNSUPPORTED_KEY
    assert MIN_RSA_BITS == 2048
    huge = [RunResult("a", "1", 2**60), RunResult("SIGNATURE", "cs1.0.1.ES256.AA.x509:AA", 1)]
    rejected(check(huge, trust), Reason.MESSAGE_INVALID)
