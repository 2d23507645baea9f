"""The attack catalogue (issue 15; docs/security.md): each attack changes a genuine message, made by
the ``signed_message`` factory for every backend x format, and is run plain and ``tknz:``-compressed
against the verifier, which must give the verdict and reason the table names.

An attack's expectation is a reason, or a dict of reasons by format; ``VERIFIED`` marks changes that
do not change what any controller reads (re-encodings), or that the format does not cover (Tekton's
format signs task results only), where the test also checks that nothing unsigned is shown as signed.
"""

from __future__ import annotations

import base64
import dataclasses
import datetime as dt
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import pytest

from entrypoint.termination import RunResult
from entrypoint.testing.ca import TestCA
from entrypoint.verify import TaskRunRef, TrustBundle, TrustSet, Verdict, Verifier
from tests.support.messages import message, tknz
from tests.support.pki import TD
from tests.support.signed import BACKENDS, FORMATS, SignedMessage, SignedMessageFactory
from tests.support.tokens import NOW

VERIFIED = "Verified"


@dataclass
class Attempt:
    """What an attack presents: the entries (or raw JSON text), and what else it changes."""

    entries: Sequence[RunResult] | None = None
    text: str | None = None  # raw JSON (plain); compressed by the runner when asked
    taskrun: dict[str, Any] = field(default_factory=dict)
    verifier: Verifier | None = None
    at: dt.datetime | None = None
    shown_unsigned: str | None = None  # a key that must be reported as unsigned when verified


Mutation = Callable[[SignedMessage, SignedMessageFactory], Attempt | None]


@dataclass(frozen=True)
class Attack:
    """One kind of attack: a mutation and the expected reason (per format where they differ)."""

    name: str
    mutate: Mutation
    expect: str | dict[str, str]
    backends: tuple[str, ...] = BACKENDS
    formats: tuple[str, ...] = FORMATS

    def expected(self, fmt: str) -> str:
        return self.expect if isinstance(self.expect, str) else self.expect[fmt]


def _e(g: SignedMessage) -> list[RunResult]:
    return list(g.entries)


def _signing_key(g: SignedMessage) -> str:
    return "SIGNATURE" if g.fmt == "compact" else "RESULT_MANIFEST.sig"


def _value(g: SignedMessage, key: str) -> str:
    return next(e.value for e in g.entries if e.key == key)


def _with(g: SignedMessage, key: str, value: str) -> list[RunResult]:
    return [RunResult(e.key, value, e.type, e.resource_name) if e.key == key else e for e in g.entries]


def _json(entries: Sequence[RunResult]) -> list[dict[str, Any]]:
    return [{"key": e.key, "value": e.value, "type": e.type} for e in entries]


def _flip_base64(text: str) -> str:
    # The last characters carry padding bits; change one in the middle.
    i = len(text) // 2
    return text[:i] + ("A" if text[i] != "A" else "B") + text[i + 1 :]


def _signature_part(g: SignedMessage, change: Callable[[str], str]) -> list[RunResult]:
    """The signature itself changed: Tekton's is the whole value, cs2's the seventh of its eight
    '.'-separated fields (docs/compact-format.md §3; the others carry the tag, step, time, exit
    code, start time, algorithm and identity material)."""
    key = _signing_key(g)
    value = _value(g, key)
    if g.fmt == "tekton":
        return _with(g, key, change(value))
    assert value.startswith("cs2."), value  # what the entrypoint writes
    fields = value.split(".", 7)
    fields[6] = change(fields[6])
    return _with(g, key, ".".join(fields))


def _tamper_signature(g: SignedMessage) -> list[RunResult]:
    return _signature_part(g, _flip_base64)


def _escaped(g: SignedMessage) -> str:
    """The message with every ':' and '<' inside its strings written as Go's JSON escapes."""

    def string(text: str) -> str:
        return json.dumps(text).replace(":", "\\u003a").replace("<", "\\u003c")

    objs = (
        '{"key":' + string(e.key) + ',"value":' + string(e.value) + ',"type":' + str(e.type) + "}"
        for e in g.entries
    )
    return "[" + ",".join(objs) + "]"


def _untrusted_ca(g: SignedMessage, make: SignedMessageFactory) -> Attempt:
    # A whole second CA with the same trust domain signs the SVID; the verifier trusts the first.
    other = make(g.fmt, g.backend, ca=TestCA(TD))
    return Attempt(entries=other.entries)


def _other_taskrun_message(g: SignedMessage, make: SignedMessageFactory) -> Attempt:
    if g.backend == "spire":
        other = make(g.fmt, g.backend, spiffe_id=f"spiffe://{TD}/ns/{g.taskrun.namespace}/taskrun/other")
    else:
        other = make(g.fmt, g.backend, claims={"kubernetes.io": _k8s_claims(pod="other-pod")})
    return Attempt(entries=other.entries)


def _k8s_claims(**changes: str) -> dict[str, Any]:
    from tests.support import tokens

    pod = changes.get("pod", tokens.POD)
    return {
        "namespace": changes.get("namespace", tokens.NS),
        "serviceaccount": {"name": changes.get("sa", tokens.SA), "uid": "sa-uid"},
        "pod": {"name": pod, "uid": changes.get("uid", tokens.POD_UID)},
        "node": {"name": "node-1", "uid": "node-uid"},
    }


def _splice_signature(g: SignedMessage, make: SignedMessageFactory) -> Attempt:
    # The same identity signs other values; its signature entries are moved onto these values.
    other = make(g.fmt, g.backend, results=[RunResult("commit", "evil", 1), *g.entries[1:4]])
    sig_keys = {e.key for e in other.entries} - {e.key for e in g.entries[:4]}
    moved = [e for e in other.entries if e.key in sig_keys]
    return Attempt(entries=[*(e for e in g.entries if e.key not in sig_keys), *moved])


def _splice_values(g: SignedMessage, make: SignedMessageFactory) -> Attempt:
    # Another message of the same identity signed commit=evil; the value moves here with its own
    # signature (Tekton's format: commit.sig) or alone (compact: one signature over everything).
    made = make(g.fmt, g.backend, results=[RunResult("commit", "evil", 1), *g.entries[1:4]])
    other = {e.key: e for e in made.entries}
    moved = {"commit", "commit.sig"} if g.fmt == "tekton" else {"commit"}
    return Attempt(entries=[other[e.key] if e.key in moved else e for e in g.entries])


def _splice_manifest_of_another_step(g: SignedMessage, make: SignedMessageFactory) -> Attempt:
    """Issue 15 (3): another step of the same pod signed a manifest without ``image``; its manifest
    and signature replace this one's, and ``image`` is dropped.  With SPIRE every step of a pod
    holds the same SVID, so Tekton's format cannot tell (a documented limit, docs/security.md)."""
    kept = [e for e in g.entries[:4] if e.key != "image"]
    shared = {"svid": g.svid} if g.backend == "spire" else {}
    other = {e.key: e for e in make(g.fmt, g.backend, results=kept, step="1", **shared).entries}
    if g.fmt == "compact":
        return Attempt(entries=[*kept, other["SIGNATURE"]])
    spliced = {"RESULT_MANIFEST", "RESULT_MANIFEST.sig"}
    entries = [
        other[e.key] if e.key in spliced else e for e in g.entries if e.key not in ("image", "image.sig")
    ]
    return Attempt(entries=entries, shown_unsigned=None)


def _other_step(g: SignedMessage, make: SignedMessageFactory) -> Attempt:
    return Attempt(entries=_e(g), taskrun={"step": "1"})


def _expired(g: SignedMessage, make: SignedMessageFactory) -> Attempt | None:
    if g.backend == "spire":
        old = dt.datetime(2022, 3, 1, tzinfo=dt.UTC)
        return Attempt(entries=make(g.fmt, g.backend, not_before=old).entries)
    return Attempt(
        entries=make(
            g.fmt, g.backend, claims={"iat": NOW - 1200, "nbf": NOW - 1200, "exp": NOW - 600}
        ).entries
    )


def _at(when: dt.datetime) -> Mutation:
    return lambda g, make: Attempt(entries=_e(g), at=when)


def _no_chain_expired(g: SignedMessage, make: SignedMessageFactory) -> Attempt:
    old = dt.datetime(2022, 3, 1, tzinfo=dt.UTC)
    other = make(g.fmt, g.backend, not_before=old)
    return Attempt(entries=other.entries, verifier=Verifier(g.verifier.trust, check_chain=False))


def _no_trust(g: SignedMessage, make: SignedMessageFactory) -> Attempt:
    return Attempt(entries=_e(g), verifier=Verifier(TrustSet()))


def _other_trust_domain(g: SignedMessage, make: SignedMessageFactory) -> Attempt:
    spiffe = g.verifier.trust.spiffe
    assert spiffe is not None
    return Attempt(entries=_e(g), verifier=Verifier(TrustSet(spiffe=TrustBundle("other.org", spiffe.roots))))


def _only_other_format(g: SignedMessage, make: SignedMessageFactory) -> Attempt:
    other = "compact" if g.fmt == "tekton" else "tekton"
    return Attempt(entries=_e(g), verifier=Verifier(g.verifier.trust, formats=(other,)))


def _raw(build: Callable[[SignedMessage], str]) -> Mutation:
    return lambda g, make: Attempt(text=build(g))


def _step_result_changed(g: SignedMessage, make: SignedMessageFactory) -> Attempt:
    return Attempt(entries=_with(g, "notes", "forged"), shown_unsigned="notes")


def _ghost_sig(g: SignedMessage, make: SignedMessageFactory) -> Attempt:
    return Attempt(entries=[*g.entries, RunResult("ghost.sig", "anything", 1)], shown_unsigned="ghost.sig")


def _started_at(g: SignedMessage, make: SignedMessageFactory) -> Attempt:
    return Attempt(entries=_with(g, "StartedAt", "2020-01-01T00:00:00.000Z"), shown_unsigned="StartedAt")


def _token_claims(**claims: Any) -> Mutation:
    return lambda g, make: Attempt(entries=make(g.fmt, g.backend, claims=claims).entries)


def _token_of_another_issuer(g: SignedMessage, make: SignedMessageFactory) -> Attempt:
    from tests.support.tokens import Issuer

    return Attempt(entries=make(g.fmt, g.backend, issuer=Issuer("ES256")).entries)


ATTACKS: tuple[Attack, ...] = (
    # -- values and entries
    Attack(
        "tamper-task-result", lambda g, m: Attempt(entries=_with(g, "commit", "evil")), "SignatureInvalid"
    ),
    Attack(
        "tamper-task-result-by-one-byte",
        lambda g, m: Attempt(entries=_with(g, "commit", "0a1b2c3e")),
        "SignatureInvalid",
    ),
    Attack("empty-a-task-result", lambda g, m: Attempt(entries=_with(g, "commit", "")), "SignatureInvalid"),
    Attack(
        "drop-task-result",
        lambda g, m: Attempt(entries=[e for e in g.entries if e.key != "image"]),
        {"tekton": "ManifestIncomplete", "compact": "SignatureInvalid"},
    ),
    Attack(
        "drop-task-result-and-its-signature",
        lambda g, m: Attempt(entries=[e for e in g.entries if e.key not in ("image", "image.sig")]),
        {"tekton": "ManifestIncomplete", "compact": "SignatureInvalid"},
    ),
    Attack(
        "add-task-result",
        lambda g, m: Attempt(entries=[*g.entries, RunResult("extra", "x", 1)]),
        {"tekton": "SignatureMissing", "compact": "SignatureInvalid"},
    ),
    Attack(
        "retype-task-result-to-step-result",
        lambda g, m: Attempt(entries=[e._replace(type=4) if e.key == "commit" else e for e in g.entries]),
        {"tekton": "ManifestIncomplete", "compact": "SignatureInvalid"},
    ),
    Attack(
        "retype-step-result-to-task-result",
        lambda g, m: Attempt(entries=[e._replace(type=1) if e.key == "notes" else e for e in g.entries]),
        {"tekton": "SignatureMissing", "compact": "SignatureInvalid"},
    ),
    Attack(
        "rename-task-result",
        lambda g, m: Attempt(
            entries=[e._replace(key="commit2") if e.key == "commit" else e for e in g.entries]
        ),
        {"tekton": "ManifestIncomplete", "compact": "SignatureInvalid"},
    ),
    Attack(
        "swap-two-task-results",
        lambda g, m: Attempt(entries=_with(g, "commit", _value(g, "image"))),
        "SignatureInvalid",
    ),
    Attack(
        "resource-name-added",
        lambda g, m: Attempt(
            entries=[e._replace(resource_name="r") if e.key == "commit" else e for e in g.entries]
        ),
        "MessageInvalid",
        formats=("compact",),
    ),
    Attack("change-step-result", _step_result_changed, {"tekton": VERIFIED, "compact": "SignatureInvalid"}),
    # cs2 leaves internal entries out of the statement (the TaskRun drops them) but binds the
    # start time Tekton reads from StartedAt, and checks the entry against it.
    Attack("change-internal-entry", _started_at, {"tekton": VERIFIED, "compact": "StartTimeMismatch"}),
    Attack("stray-signature-entry", _ghost_sig, {"tekton": VERIFIED, "compact": "SignatureInvalid"}),
    # -- duplicates and empty entries (Tekton before v0.68 read them differently)
    Attack(
        "empty-entry-then-forged-duplicate",
        lambda g, m: Attempt(entries=[RunResult("", ""), RunResult("commit", "evil", 1), *g.entries]),
        "AmbiguousEntries",
    ),
    Attack("null-entry", _raw(lambda g: json.dumps([None, *_json(g.entries)])), "AmbiguousEntries"),
    Attack(
        "unknown-field-entry",
        _raw(lambda g: json.dumps([{"unknownField": "x"}, *_json(g.entries)])),
        "AmbiguousEntries",
    ),
    Attack(
        "two-trailing-empty-entries",
        _raw(lambda g: json.dumps([*_json(g.entries), {}, {}])),
        "AmbiguousEntries",
    ),
    Attack(
        "forged-duplicate-before",
        lambda g, m: Attempt(entries=[RunResult("commit", "evil", 1), *g.entries]),
        "AmbiguousEntries",
    ),
    Attack(
        "forged-duplicate-after",
        lambda g, m: Attempt(entries=[*g.entries, RunResult("commit", "evil", 1)]),
        "AmbiguousEntries",
    ),
    Attack(
        "duplicate-with-another-type",
        lambda g, m: Attempt(entries=[*g.entries, RunResult("commit", _value(g, "commit"), 4)]),
        "AmbiguousEntries",
    ),
    Attack(
        "duplicate-signature-entry",
        lambda g, m: Attempt(entries=[*g.entries, RunResult(_signing_key(g), "AAAA", 1)]),
        "AmbiguousEntries",
    ),
    Attack("exact-repeat-of-an-entry", lambda g, m: Attempt(entries=[*g.entries, g.entries[0]]), VERIFIED),
    # -- signatures
    Attack(
        "tamper-signature",
        lambda g, m: Attempt(entries=_tamper_signature(g)),
        {"tekton": "SignatureInvalid", "compact": "SignatureInvalid"},
    ),
    Attack(
        "signature-not-base64",
        lambda g, m: Attempt(entries=_signature_part(g, lambda sig: "%%%")),
        {"tekton": "SignatureInvalid", "compact": "MessageInvalid"},
    ),
    Attack(
        "drop-signature-entry",
        lambda g, m: Attempt(entries=[e for e in g.entries if e.key != _signing_key(g)]),
        {"tekton": "SignatureMissing", "compact": "UnknownFormat"},
    ),
    Attack(
        "drop-every-signing-entry",
        lambda g, m: Attempt(
            entries=[e for e in g.entries if e.key in ("commit", "image", "notes", "StartedAt")]
        ),
        "UnknownFormat",
    ),
    Attack("splice-signature-of-other-values", _splice_signature, "SignatureInvalid"),
    Attack(
        "splice-value-with-its-signature-from-another-message",
        _splice_values,
        {"tekton": "SignatureInvalid", "compact": "SignatureInvalid"},
    ),
    # -- identity, certificates and tokens
    Attack("message-of-another-taskrun", _other_taskrun_message, "IdentityMismatch"),
    Attack(
        "verified-as-another-taskrun",
        lambda g, m: Attempt(entries=_e(g), taskrun={"name": "another"}),
        "IdentityMismatch",
    ),
    Attack(
        "verified-as-another-namespace",
        lambda g, m: Attempt(entries=_e(g), taskrun={"namespace": "other"}),
        "IdentityMismatch",
    ),
    Attack("replayed-as-another-step", _other_step, "StepMismatch"),
    # A known limit of Tekton's format with SPIRE (docs/security.md); a token is per step.
    Attack(
        "splice-another-steps-manifest-to-drop-a-result",
        _splice_manifest_of_another_step,
        {"tekton": "Verified", "compact": "StepMismatch"},
        backends=("spire",),
    ),
    Attack(
        "splice-another-steps-manifest-with-tokens",
        _splice_manifest_of_another_step,
        {"tekton": "SignatureInvalid", "compact": "StepMismatch"},
        backends=("k8s_sat",),
    ),
    Attack("svid-from-an-untrusted-ca", _untrusted_ca, "ChainUntrusted", backends=("spire",)),
    Attack(
        "expired-identity",
        _expired,
        {"tekton": "ChainUntrusted", "compact": "ChainUntrusted"},
        backends=("spire",),
    ),
    Attack("expired-token", _expired, "TokenUntrusted", backends=("k8s_sat",)),
    Attack(
        "verified-before-the-identity-existed",
        _at(dt.datetime(2000, 1, 1, tzinfo=dt.UTC)),
        {"tekton": "ChainUntrusted", "compact": "ChainUntrusted"},
        backends=("spire",),
    ),
    Attack(
        "verified-long-after-expiry",
        _at(dt.datetime(9999, 1, 1, tzinfo=dt.UTC)),
        "ChainUntrusted",
        backends=("spire",),
    ),
    Attack("no-chain-expired-svid", _no_chain_expired, "ChainUntrusted", backends=("spire",)),
    Attack(
        "rsa-1024-leaf",
        lambda g, m: Attempt(entries=m(g.fmt, g.backend, key_type="rsa-1024").entries),
        "UnsupportedKey",
        backends=("spire",),
    ),
    Attack("trust-of-another-domain", _other_trust_domain, "IdentityMismatch", backends=("spire",)),
    Attack("no-trust-at-all", _no_trust, "TrustUnavailable"),
    Attack("format-not-accepted", _only_other_format, "FormatNotAllowed"),
    Attack("token-of-another-issuer", _token_of_another_issuer, "TokenUntrusted", backends=("k8s_sat",)),
    Attack(
        "token-for-another-pod-uid",
        _token_claims(**{"kubernetes.io": _k8s_claims(uid="0000")}),
        "IdentityMismatch",
        backends=("k8s_sat",),
    ),
    Attack(
        "token-for-another-service-account",
        _token_claims(**{"kubernetes.io": _k8s_claims(sa="intruder")}),
        "IdentityMismatch",
        backends=("k8s_sat",),
    ),
    Attack(
        "token-for-another-key",
        _token_claims(aud=["signed-entrypoint:spki-sha256:" + "00" * 32]),
        "KeyMismatch",
        backends=("k8s_sat",),
    ),
    # -- encodings: the same entries written otherwise read the same
    Attack(
        "go-escaped-values",
        _raw(_escaped),
        VERIFIED,
    ),
    Attack(
        "field-names-in-other-case",
        _raw(lambda g: json.dumps([{"KEY": e.key, "Value": e.value, "tYpE": e.type} for e in g.entries])),
        VERIFIED,
    ),
    Attack(
        "type-as-a-name",
        _raw(
            lambda g: json.dumps(
                [
                    {**o, "type": {1: "TaskRunResult", 3: "InternalTektonResult", 4: "StepResult"}[o["type"]]}
                    for o in _json(g.entries)
                ]
            )
        ),
        VERIFIED,
    ),
    # -- broken messages
    Attack("truncated-json", _raw(lambda g: message(g.entries)[:-7]), "MessageInvalid"),
    Attack(
        "object-instead-of-list", _raw(lambda g: json.dumps({"entries": _json(g.entries)})), "MessageInvalid"
    ),
    Attack(
        "value-of-the-wrong-type",
        _raw(lambda g: json.dumps([{"key": "commit", "value": 1, "type": 1}])),
        "MessageInvalid",
    ),
    Attack(
        "oversized-message",
        _raw(lambda g: json.dumps([{"key": "k", "value": "x" * (200 << 10), "type": 1}])),
        "MessageInvalid",
    ),
)


def _cases() -> list[Any]:
    return [
        pytest.param(
            a, fmt, backend, compressed, id=f"{a.name}-{fmt}-{backend}{'-tknz' if compressed else ''}"
        )
        for a in ATTACKS
        for fmt in a.formats
        for backend in a.backends
        for compressed in (False, True)
    ]


def _verdict(g: SignedMessage, attempt: Attempt, compressed: bool) -> Verdict:
    if attempt.text is not None:
        text = attempt.text
        if compressed and not text.startswith("tknz:"):
            text = tknz(text.encode())
    else:
        assert attempt.entries is not None
        text = message(attempt.entries, compressed=compressed)
    taskrun: TaskRunRef = dataclasses.replace(g.taskrun, **attempt.taskrun) if attempt.taskrun else g.taskrun
    verifier = attempt.verifier or g.verifier
    return verifier.verify_message(text, taskrun, at=attempt.at)


@pytest.mark.parametrize(("attack", "fmt", "backend", "compressed"), _cases())
def test_attack(
    signed_message: SignedMessageFactory, attack: Attack, fmt: str, backend: str, compressed: bool
) -> None:
    genuine = signed_message(fmt, backend)
    assert genuine.verify().verified  # the starting point is genuine
    attempt = attack.mutate(genuine, signed_message)
    assert attempt is not None
    verdict = _verdict(genuine, attempt, compressed)
    expected = attack.expected(fmt)
    assert str(verdict.reason) == expected, verdict.message
    assert verdict.verified == (expected == VERIFIED)
    if verdict.verified:
        # Whatever changed is never among the results shown as signed.
        signed = {r.key: r.value for r in verdict.results}
        genuine_values = {e.key: e.value for e in genuine.entries}
        assert all(genuine_values.get(k) == v for k, v in signed.items()), signed
        if attempt.shown_unsigned is not None:
            assert attempt.shown_unsigned in {r.key for r in verdict.unsigned}


def test_the_catalogue_is_past_forty_kinds() -> None:
    assert len({a.name for a in ATTACKS}) == len(ATTACKS) >= 40
    # Every attack runs at least once, each over both encodings.
    assert len(_cases()) >= 2 * len(ATTACKS)


def test_base64_flip_changes_the_text() -> None:
    text = base64.b64encode(b"0123456789").decode()
    assert _flip_base64(text) != text
