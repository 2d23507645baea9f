"""The sigstore-keyless backend's codecs and trust: the binding, the log record, the rebuilt Rekor
body and SET payload, the trusted root and the identity policy (docs/sigstore.md)."""

from __future__ import annotations

import base64
import datetime as dt
import json
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from entrypoint._internal.backends.sigstore import common as c
from entrypoint._internal.backends.sigstore.policy import SigstoreTrust
from entrypoint._internal.backends.sigstore.trust import SigstoreTrustError, TrustedRoot
from entrypoint.testing.sigstore_root import log_instance, trusted_root


def test_a_binding_round_trips_and_names_each_part() -> None:
    b = c.Binding("ns", "build", "build-pod", "0b6f-uid", "1", 1700000000)
    assert b.encode() == "sb1/ns/build/build-pod/0b6f-uid/1/1700000000"
    assert c.Binding.decode(b.encode()) == b
    bare = c.Binding("ns", "build", "build-pod", "uid")
    assert c.Binding.decode(bare.encode()).step == "" and c.Binding.decode(bare.encode()).signed_at is None


@pytest.mark.parametrize(
    ("text", "why"),
    [
        ("sb2/ns/tr/pod/uid//", "a binding is"),
        ("sb1/ns/tr/pod/uid/", "a binding is"),
        ("sb1//tr/pod/uid//", "names the namespace"),
        ("sb1/ns/tr/pod/uid/01/", "step '01'"),
        ("sb1/ns/tr/pod/uid/1/+5", r"signedAt '\+5'"),
    ],
)
def test_a_malformed_binding_is_refused(text: str, why: str) -> None:
    with pytest.raises(ValueError, match=why):
        c.Binding.decode(text)


def test_the_compact_material_keeps_step_and_time_to_the_statement() -> None:
    der = b"\x30\x03\x02\x01\x00"
    binding, leaf = c.split_material(c.compact_material(c.Binding("ns", "tr", "p", "u"), der))
    assert (binding.namespace, leaf) == ("ns", der)
    with pytest.raises(ValueError, match="leaves the step"):
        c.split_material(c.compact_material(c.Binding("ns", "tr", "p", "u", "0"), der))
    with pytest.raises(ValueError, match="NUL"):
        c.split_material(b"sb1/ns/tr/p/u//")


def test_a_log_record_round_trips_and_is_strict() -> None:
    record = c.LogRecord(25, 1700000000, bytes(range(32)), b"set-bytes", b"sig")
    assert c.LogRecord.decode(record.encode()).encode() == record.encode()
    no_sig = c.LogRecord(0, 1, bytes(32), b"s")
    assert no_sig.encode().endswith(".") and c.LogRecord.decode(no_sig.encode()).signature == b""
    text = record.encode()
    for bad, why in (
        (text.replace("rk1.", "rk2."), "a log record is"),
        (text.replace(".25.", ".025."), "logIndex"),
        (text.replace(".25.", ".-1."), "logIndex"),
        (text + ".x", "a log record is"),
        (".".join([*text.split(".")[:3], c.b64url(bytes(31)), *text.split(".")[4:]]), "32 bytes"),
        (text[:-1] + "=", "base64url"),
    ):
        with pytest.raises(ValueError, match=why):
            c.LogRecord.decode(bad)


def test_the_rekor_body_and_set_payload_are_rekors_canonical_json() -> None:
    body = c.hashedrekord_body(
        bytes(32), b"\x30\x00", b"-----BEGIN CERTIFICATE-----\nAA==\n-----END CERTIFICATE-----\n"
    )
    doc = json.loads(body)
    assert list(doc) == ["apiVersion", "kind", "spec"] and b" " not in body
    assert doc["spec"]["data"]["hash"] == {"algorithm": "sha256", "value": "00" * 32}
    assert base64.b64decode(doc["spec"]["signature"]["publicKey"]["content"]).startswith(b"-----BEGIN")
    payload = json.loads(c.set_payload(body, 7, b"\x01" * 32, 3))
    assert payload == {
        "body": base64.b64encode(body).decode(),
        "integratedTime": 7,
        "logID": "01" * 32,
        "logIndex": 3,
    }


def test_the_tekton_payload_commits_to_every_logged_value() -> None:
    values = {"a": "1", "b": "2", c.BINDING_ENTRY: "sb1/ns/tr/p/u/0/1", "RESULT_MANIFEST": "a,b"}
    names = c.tekton_logged_names("a,b")
    assert names == sorted(["a", "b", c.BINDING_ENTRY, "RESULT_MANIFEST"])
    payload = c.tekton_log_payload(values, names)
    for key, value in values.items():
        changed = dict(values, **{key: value + "x"})
        assert c.tekton_log_payload(changed, names) != payload, key
    with pytest.raises(KeyError):
        c.tekton_log_payload({"a": "1"}, names)


def _root_file(tmp_path: Path, **overrides: object) -> Path:
    key = (
        ec.generate_private_key(ec.SECP256R1())
        .public_key()
        .public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)
    )
    start = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
    root = trusted_root(
        certificate_authorities=[
            {
                "subject": {},
                "uri": "https://fulcio.example",
                "certChain": {"certificates": [{"rawBytes": base64.b64encode(_der()).decode()}]},
                "validFor": {"start": "2026-01-01T00:00:00Z"},
            }
        ],
        tlogs=[log_instance("https://rekor.example", key, start=start)],
        ctlogs=[log_instance("https://ct.example", key, start=start, end=start + dt.timedelta(days=1))],
    )
    root.update(overrides)
    path = tmp_path / "trusted_root.json"
    path.write_text(json.dumps(root))
    return path


def _der() -> bytes:
    from entrypoint.testing.ca import TestCA

    return TestCA().bundle[0].public_bytes(Encoding.DER)


def test_a_trusted_root_is_read_with_its_windows(tmp_path: Path) -> None:
    root = TrustedRoot.from_file(str(_root_file(tmp_path)))
    assert len(root.authorities) == 1 and len(root.tlogs) == 1 and len(root.ctlogs) == 1
    ct = root.ctlogs[0]
    assert root.ctlog(ct.log_id, dt.datetime(2026, 1, 1, 12, tzinfo=dt.UTC)) is ct
    # validFor is inclusive at both ends, and nothing is trusted outside it.
    assert root.ctlog(ct.log_id, dt.datetime(2026, 1, 2, tzinfo=dt.UTC)) is ct
    assert root.ctlog(ct.log_id, dt.datetime(2026, 1, 2, 0, 0, 1, tzinfo=dt.UTC)) is None
    assert root.ctlog(ct.log_id, dt.datetime(2025, 12, 31, tzinfo=dt.UTC)) is None
    assert root.tlog(bytes(32), dt.datetime(2026, 6, 1, tzinfo=dt.UTC)) is None


@pytest.mark.parametrize(
    ("override", "why"),
    [
        ({"mediaType": "application/vnd.dev.sigstore.trustedroot+json;version=9"}, "unsupported mediaType"),
        ({"certificateAuthorities": []}, "no certificateAuthorities"),
        (
            {"tlogs": [{"publicKey": {"rawBytes": "AAAA", "validFor": {"start": "2026-01-01T00:00:00Z"}}}]},
            "not a DER public key",
        ),
        ({"tlogs": [{"publicKey": {"rawBytes": "!!", "validFor": {"start": "x"}}}]}, "not base64"),
        ({"ctlogs": "x"}, "ctlogs is not a list"),
    ],
)
def test_a_bad_trusted_root_names_the_field(tmp_path: Path, override: dict[str, object], why: str) -> None:
    path = _root_file(tmp_path, **override)
    with pytest.raises(SigstoreTrustError, match=why) as caught:
        TrustedRoot.from_file(str(path))
    assert str(path) in str(caught.value)


def test_a_key_without_a_start_is_refused(tmp_path: Path) -> None:
    path = _root_file(tmp_path)
    doc = json.loads(path.read_text())
    del doc["tlogs"][0]["publicKey"]["validFor"]["start"]
    path.write_text(json.dumps(doc))
    with pytest.raises(SigstoreTrustError, match=r"tlogs\[0\].publicKey.validFor.start is missing"):
        TrustedRoot.from_file(str(path))


def test_a_missing_trusted_root_names_the_file(tmp_path: Path) -> None:
    with pytest.raises(SigstoreTrustError, match=r"nope\.json"):
        TrustedRoot.from_file(str(tmp_path / "nope.json"))


def test_the_identity_policy_needs_an_issuer_and_exactly_one_identity(tmp_path: Path) -> None:
    root = TrustedRoot.from_file(str(_root_file(tmp_path)))
    with pytest.raises(ValueError, match="OIDC issuer"):
        SigstoreTrust(root, "", identity="x")
    with pytest.raises(ValueError, match="exactly one"):
        SigstoreTrust(root, "https://iss")
    with pytest.raises(ValueError, match="exactly one"):
        SigstoreTrust(root, "https://iss", identity="a", identity_regexp="a")
    with pytest.raises(ValueError, match="regexp"):
        SigstoreTrust(root, "https://iss", identity_regexp="(")
    exact = SigstoreTrust(
        root, "https://iss", identity="https://kubernetes.io/namespaces/a/serviceaccounts/b"
    )
    assert exact.allows("https://kubernetes.io/namespaces/a/serviceaccounts/b")
    assert not exact.allows("https://kubernetes.io/namespaces/a/serviceaccounts/bb")
    pattern = SigstoreTrust(
        root, "https://iss", identity_regexp=r"https://kubernetes\.io/namespaces/[a-z]+/serviceaccounts/b"
    )
    assert pattern.allows("https://kubernetes.io/namespaces/a/serviceaccounts/b")
    # A full match: a prefix or a suffix is not enough.
    assert not pattern.allows("https://kubernetes.io/namespaces/a/serviceaccounts/bx")
    assert not pattern.allows("xhttps://kubernetes.io/namespaces/a/serviceaccounts/b")
