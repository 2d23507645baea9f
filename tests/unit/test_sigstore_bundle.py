"""The Sigstore bundle of a signed message's Rekor entry (entrypoint/_internal/backends/sigstore/bundle.py):
built from real messages signed against the doubles, and refused whenever what the log answers does
not match the message's record (each check broken by one of the Rekor double's knobs, or by an
altered record or answer)."""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from entrypoint._internal.backends.sigstore import common as c
from entrypoint._internal.backends.sigstore.artifact import LoggedArtifact, logged_artifact
from entrypoint._internal.backends.sigstore.bundle import (
    MEDIA_TYPE,
    SigstoreBundleError,
    build_bundle,
    fetch_bundle,
    inclusion_root,
    leaf_hash,
    parse_checkpoint,
)
from entrypoint._internal.backends.sigstore.http import JsonClient
from entrypoint._internal.backends.sigstore.rekor import entry_by_index
from entrypoint._internal.backends.sigstore.trust import TrustedRoot
from entrypoint.termination import parse_message
from entrypoint.testing.rekor import RekorDouble, _MerkleTree
from tests.support.k8s_sat import new_root
from tests.support.sigstore import FORMATS, Stack, sign_step, stack

INDEX_OFFSET = 4000  # global logIndex minus the shard's, as on the public instance
RESULTS = {"commit": "abc123", "image": "sha256:" + "1" * 64}


@pytest.fixture(scope="module")
def sigstore(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    with stack(tmp_path_factory.mktemp("sigstore-bundle")) as s:
        s.rekor.index_offset = INDEX_OFFSET
        yield s


@pytest.fixture(scope="module")
def logged(sigstore: Stack, tmp_path_factory: pytest.TempPathFactory) -> dict[str, LoggedArtifact]:
    """One signed and logged message per wire format."""
    found = {}
    for fmt in FORMATS:
        root = new_root(tmp_path_factory.mktemp(f"root-{fmt}"))
        p = sign_step(root, sigstore, RESULTS, fmt)
        assert p.returncode == 0, p.stderr
        found[fmt] = logged_artifact(parse_message(root.termination.read_text()))
    return found


@pytest.fixture
def rekor(sigstore: Stack) -> Iterator[RekorDouble]:
    """The stack's Rekor double, its knobs reset after the test."""
    yield sigstore.rekor
    r = sigstore.rekor
    r.bad_set = r.wrong_root = r.wrong_key_hint = r.body_mismatch = False
    r.fail_status = None
    r.delay = 0.0


def _ca_file(s: Stack) -> str:
    return str(s.directory / "sigstore-ca.pem")


def _root(s: Stack) -> TrustedRoot:
    return TrustedRoot.from_file(str(s.trusted_root))


def _bundle(s: Stack, item: LoggedArtifact, *, trusted: bool = True) -> dict[str, Any]:
    return fetch_bundle(
        item, s.rekor.url, ca_file=_ca_file(s), trusted_root=_root(s) if trusted else None, timeout=10
    )


def _entry(s: Stack, item: LoggedArtifact) -> dict[str, Any]:
    client = JsonClient(s.rekor.url, ca_file=_ca_file(s), what="rekor")
    try:
        return entry_by_index(client, item.record.log_index, timeout=10)
    finally:
        client.close()


def _moved(item: LoggedArtifact, log_index: int, integrated_time: int | None = None) -> LoggedArtifact:
    r = item.record
    when = r.integrated_time if integrated_time is None else integrated_time
    return dataclasses.replace(item, record=c.LogRecord(log_index, when, r.log_id, r.set, r.signature))


def _refused(s: Stack, item: LoggedArtifact, *, trusted: bool = True) -> str:
    with pytest.raises(SigstoreBundleError) as caught:
        _bundle(s, item, trusted=trusted)
    text = str(caught.value)
    assert "\n" not in text
    return text


# -- what a bundle is --------------------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", FORMATS)
def test_the_bundle_is_exactly_what_the_message_logged(
    sigstore: Stack, logged: dict[str, LoggedArtifact], fmt: str
) -> None:
    item = logged[fmt]
    bundle = _bundle(sigstore, item)
    assert json.loads(json.dumps(bundle)) == bundle
    assert bundle["mediaType"] == MEDIA_TYPE == "application/vnd.dev.sigstore.bundle.v0.3+json"
    material = bundle["verificationMaterial"]
    assert base64.b64decode(material["certificate"]["rawBytes"]) == item.leaf_der
    [tlog] = material["tlogEntries"]
    record = item.record
    assert tlog["logIndex"] == str(record.log_index)
    assert record.log_index >= INDEX_OFFSET
    assert tlog["integratedTime"] == str(record.integrated_time)
    assert base64.b64decode(tlog["logId"]["keyId"]) == record.log_id == bytes.fromhex(sigstore.rekor.log_id)
    assert tlog["kindVersion"] == {"kind": "hashedrekord", "version": "0.0.1"}
    assert base64.b64decode(tlog["inclusionPromise"]["signedEntryTimestamp"]) == record.set
    proof = tlog["inclusionProof"]
    # The proof's index is the shard's, the entry's the global one.
    assert int(proof["logIndex"]) == record.log_index - INDEX_OFFSET
    assert int(proof["treeSize"]) == sigstore.rekor.tree_size
    assert base64.b64decode(proof["rootHash"]) == sigstore.rekor.root_hash
    body = base64.b64decode(tlog["canonicalizedBody"])
    assert sigstore.rekor.entries[int(proof["logIndex"])].body == body
    hashes = [base64.b64decode(h) for h in proof["hashes"]]
    assert inclusion_root(leaf_hash(body), int(proof["logIndex"]), int(proof["treeSize"]), hashes) == (
        base64.b64decode(proof["rootHash"])
    )
    checkpoint = parse_checkpoint(proof["checkpoint"]["envelope"])
    assert checkpoint.origin == sigstore.rekor.origin
    assert checkpoint.tree_size == int(proof["treeSize"])
    signature = bundle["messageSignature"]
    digest = hashlib.sha256(item.artifact).digest()
    assert signature == {
        "messageDigest": {"algorithm": "SHA2_256", "digest": base64.b64encode(digest).decode()},
        "signature": base64.b64encode(item.signature_der).decode(),
    }
    assert item.wire_format == fmt
    if fmt == "tekton":
        assert json.loads(item.artifact)["format"] == c.TEKTON_LOG_FORMAT


def test_without_a_trusted_root_the_log_is_still_held_to_the_record(
    sigstore: Stack, logged: dict[str, LoggedArtifact]
) -> None:
    bundle = _bundle(sigstore, logged["tekton"], trusted=False)
    assert bundle["verificationMaterial"]["tlogEntries"][0]["logIndex"] == str(
        logged["tekton"].record.log_index
    )


# -- what the log answers must be the record's -------------------------------------------------------------


@pytest.mark.parametrize("fmt", FORMATS)
def test_an_inclusion_proof_to_another_root_is_refused(
    sigstore: Stack, rekor: RekorDouble, logged: dict[str, LoggedArtifact], fmt: str
) -> None:
    rekor.wrong_root = True
    for trusted in (True, False):
        text = _refused(sigstore, logged[fmt], trusted=trusted)
        assert f"entry {logged[fmt].record.log_index}" in text
        assert "the inclusion proof leads to root" in text


def test_a_checkpoint_under_another_key_hint_is_refused(
    sigstore: Stack, rekor: RekorDouble, logged: dict[str, LoggedArtifact]
) -> None:
    rekor.wrong_key_hint = True
    for trusted in (True, False):
        text = _refused(sigstore, logged["compact"], trusted=trusted)
        assert "the checkpoint has no signature by '127.0.0.1' with the log's key hint" in text
        assert rekor.log_id[:8] in text


def test_a_fresh_set_by_another_key_is_refused_with_a_trusted_root(
    sigstore: Stack, rekor: RekorDouble, logged: dict[str, LoggedArtifact]
) -> None:
    rekor.bad_set = True
    text = _refused(sigstore, logged["tekton"])
    assert "signed entry timestamp does not verify" in text
    assert "the log's fresh" in text
    # The bundle carries the message's SET, which the log signed when the entry was made.
    _bundle(sigstore, logged["tekton"], trusted=False)


def test_another_artifact_is_not_the_logged_entry(sigstore: Stack, logged: dict[str, LoggedArtifact]) -> None:
    item = dataclasses.replace(logged["compact"], artifact=logged["compact"].artifact + b" ")
    text = _refused(sigstore, item, trusted=False)
    assert "the log's entry is not the one the message logged" in text


def test_a_record_naming_another_entry_is_refused(sigstore: Stack, logged: dict[str, LoggedArtifact]) -> None:
    mine, other = logged["tekton"], logged["compact"]
    # Another entry of the same log, its time and all: only the body tells them apart.
    moved = _moved(mine, other.record.log_index, other.record.integrated_time)
    text = _refused(sigstore, moved, trusted=False)
    assert f"entry {other.record.log_index}" in text
    assert "not the one the message logged" in text


@pytest.mark.parametrize(
    ("field", "change"),
    [
        ("integratedTime", lambda e: e | {"integratedTime": e["integratedTime"] + 1}),
        ("logIndex", lambda e: e | {"logIndex": e["logIndex"] + 1}),
        ("logID", lambda e: e | {"logID": "00" * 32}),
    ],
)
def test_an_answer_for_another_index_time_or_log_is_refused(
    sigstore: Stack, logged: dict[str, LoggedArtifact], field: str, change: Any
) -> None:
    item = logged["tekton"]
    entry = change(_entry(sigstore, item))
    with pytest.raises(SigstoreBundleError, match=f"the log answers {field} .*, the message's record"):
        build_bundle(item, entry)


def _proof(entry: dict[str, Any]) -> dict[str, Any]:
    proof: dict[str, Any] = entry["verification"]["inclusionProof"]
    return proof


def test_a_checkpoint_for_another_tree_is_refused(sigstore: Stack, logged: dict[str, LoggedArtifact]) -> None:
    item = logged["compact"]
    entry = _entry(sigstore, item)
    checkpoint = _proof(entry)["checkpoint"]
    origin, size, rest = checkpoint.split("\n", 2)
    _proof(entry)["checkpoint"] = f"{origin}\n{int(size) + 1}\n{rest}"
    with pytest.raises(SigstoreBundleError, match="the checkpoint is for tree size"):
        build_bundle(item, entry)


def test_a_checkpoint_signature_that_does_not_verify_is_refused_with_a_trusted_root(
    sigstore: Stack, logged: dict[str, LoggedArtifact]
) -> None:
    item = logged["compact"]
    entry = _entry(sigstore, item)
    note, _, line = _proof(entry)["checkpoint"].partition("\n\n")
    name, signature = line.removeprefix("\u2014 ").split()
    raw = bytearray(base64.b64decode(signature))
    raw[-1] ^= 1
    _proof(entry)["checkpoint"] = f"{note}\n\n\u2014 {name} {base64.b64encode(bytes(raw)).decode()}\n"
    build_bundle(item, entry)  # well formed: only the log's key can tell
    with pytest.raises(
        SigstoreBundleError, match="checkpoint's signature does not verify with the log's key"
    ):
        build_bundle(item, entry, trusted_root=_root(sigstore))


def test_a_proof_with_a_hash_too_many_or_too_few_is_refused(
    sigstore: Stack, logged: dict[str, LoggedArtifact]
) -> None:
    item = logged["tekton"]
    for change in (lambda h: [*h, h[0] if h else "00" * 32], lambda h: h[:-1]):
        entry = _entry(sigstore, item)
        hashes = _proof(entry)["hashes"]
        if not hashes and change(hashes) == hashes:
            continue
        _proof(entry)["hashes"] = change(hashes)
        with pytest.raises(SigstoreBundleError, match="inclusion proof"):
            build_bundle(item, entry)


def test_a_log_the_trusted_root_does_not_hold_is_refused(
    sigstore: Stack, logged: dict[str, LoggedArtifact]
) -> None:
    root = _root(sigstore)
    other = TrustedRoot(root.authorities, (), root.ctlogs, "other-root.json")
    entry = _entry(sigstore, logged["tekton"])
    with pytest.raises(SigstoreBundleError, match=r"log [0-9a-f]{64} is not in other-root\.json"):
        build_bundle(logged["tekton"], entry, trusted_root=other)


def test_an_unusable_answer_names_the_field(sigstore: Stack, logged: dict[str, LoggedArtifact]) -> None:
    item = logged["tekton"]
    entry = _entry(sigstore, item)
    del _proof(entry)["checkpoint"]
    with pytest.raises(SigstoreBundleError, match="unusable answer: no checkpoint"):
        build_bundle(item, entry)
    entry = _entry(sigstore, item) | {"body": "not base64!"}
    with pytest.raises(SigstoreBundleError, match="unusable answer"):
        build_bundle(item, entry)


# -- the log itself ----------------------------------------------------------------------------------------


def test_an_entry_the_log_does_not_have(sigstore: Stack, logged: dict[str, LoggedArtifact]) -> None:
    item = logged["tekton"]
    text = _refused(sigstore, _moved(item, 10**9))
    assert "HTTP 404" in text
    assert "no entry 1000000000 in this log" in text


def test_the_servers_reason_when_rekor_fails(
    sigstore: Stack, rekor: RekorDouble, logged: dict[str, LoggedArtifact]
) -> None:
    rekor.fail_status = 503
    text = _refused(sigstore, logged["tekton"])
    assert rekor.url in text
    assert "HTTP 503: service unavailable" in text


def test_a_rekor_that_does_not_answer_in_time(
    sigstore: Stack, rekor: RekorDouble, logged: dict[str, LoggedArtifact]
) -> None:
    rekor.delay = 2.0
    with pytest.raises(SigstoreBundleError, match="Timeout"):
        fetch_bundle(logged["tekton"], rekor.url, ca_file=_ca_file(sigstore), timeout=0.3)


def test_an_address_that_is_not_https_or_not_trusted(
    sigstore: Stack, logged: dict[str, LoggedArtifact], tmp_path: Path
) -> None:
    with pytest.raises(SigstoreBundleError, match="must be an https URL"):
        fetch_bundle(logged["tekton"], sigstore.rekor.url.replace("https", "http"))
    # The system's CAs do not know the double's.
    with pytest.raises(SigstoreBundleError, match=r"CERTIFICATE_VERIFY_FAILED|certificate verify failed"):
        fetch_bundle(logged["tekton"], sigstore.rekor.url, timeout=10)
    (tmp_path / "ca.pem").write_text("not a PEM")
    with pytest.raises(SigstoreBundleError, match="CA file"):
        fetch_bundle(logged["tekton"], sigstore.rekor.url, ca_file=str(tmp_path / "ca.pem"))


# -- RFC 9162 inclusion proofs and checkpoints -------------------------------------------------------------


def test_inclusion_proofs_of_every_leaf_of_small_trees() -> None:
    tree = _MerkleTree()
    leaves = [leaf_hash(bytes([i])) for i in range(33)]
    for leaf in leaves:
        tree.append(leaf)
    for size in range(1, len(leaves) + 1):
        root = tree.root(size)
        for index in range(size):
            path = tree.inclusion_proof(index, size)
            assert inclusion_root(leaves[index], index, size, path) == root
            if index + 1 < size:
                assert inclusion_root(leaves[index + 1], index, size, path) != root
            with pytest.raises(ValueError, match="more hashes"):
                inclusion_root(leaves[index], index, size, [*path, root])
            if path:
                with pytest.raises(ValueError, match="fewer hashes"):
                    inclusion_root(leaves[index], index, size, path[:-1])
    with pytest.raises(ValueError, match="not in a tree"):
        inclusion_root(leaves[0], 3, 3, [])


@pytest.mark.parametrize(
    ("text", "why"),
    [
        ("origin\n1\nAAAA\n", "not a signed note"),
        ("origin\n1\nAAAA\n\n\u2014 a AAAAAAA=\n\n\u2014 b AAAAAAA=\n", "not a signed note"),
        ("origin\n1\n\n\u2014 a AAAAAAA=\n", "no origin, tree size and root hash"),
        ("origin\n01\nAAAA\n\n\u2014 a AAAAAAA=\n", "tree size '01'"),
        ("origin\n1\n!!!!\n\n\u2014 a AAAAAAA=\n", "root hash is not base64"),
        ("origin\n1\nAAAA\n\n\u2014 a AAAAAAA=", "do not end with a newline"),
        ("origin\n1\nAAAA\n\n- a AAAAAAA=\n", "is not"),
        ("origin\n1\nAAAA\n\n\u2014 a !!!!\n", "not base64"),
        ("origin\n1\nAAAA\n\n\u2014 a AAAA\n", "too short"),
    ],
)
def test_malformed_checkpoints(text: str, why: str) -> None:
    with pytest.raises(ValueError, match=why):
        parse_checkpoint(text)


def test_a_checkpoint_as_rekor_writes_it() -> None:
    signature = base64.b64encode(b"\x01\x02\x03\x04sig").decode()
    checkpoint = parse_checkpoint(
        f"rekor.example - 42\n7\n{base64.b64encode(b'r' * 32).decode()}\nTimestamp: 1\n\n"
        f"\u2014 rekor.example {signature}\n"
    )
    assert checkpoint.hostname == "rekor.example"
    assert checkpoint.tree_size == 7
    assert checkpoint.root_hash == b"r" * 32
    assert checkpoint.signatures == (("rekor.example", b"\x01\x02\x03\x04", b"sig"),)
    assert checkpoint.note.endswith(b"Timestamp: 1\n")
