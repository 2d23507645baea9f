"""The Rekor v1 double over real HTTPS, judged by verifiers written here from the RFCs, not taken from it.

The Merkle checks follow RFC 6962 (tree hash) and RFC 9162 section 2.1.3.2 (inclusion verification);
the SET, the checkpoint and the canonical body are rebuilt byte by byte from literal templates.
"""

from __future__ import annotations

import base64
import datetime
import hashlib
import json
import signal
import ssl
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.asymmetric.padding import PKCS1v15
from cryptography.hazmat.primitives.asymmetric.utils import Prehashed, decode_dss_signature
from cryptography.x509.oid import NameOID

from entrypoint.testing.rekor import ENTRIES_PATH, LOG_PATH, PUBLIC_KEY_PATH, RETRIEVE_PATH, RekorDouble
from tests.support import doubles

TIMEOUT = 5.0
EM_DASH = "\u2014"
SIGNATURE_MISMATCH = (
    "error processing entry: verifying signature: invalid signature when validating ASN.1 encoded signature"
)


# -- independent verifiers --------------------------------------------------------------------------------


def sha256(data: bytes) -> bytes:
    return hashlib.sha256(data).digest()


def mth(bodies: list[bytes]) -> bytes:
    """RFC 6962 section 2.1's Merkle Tree Hash, straight from its recursive definition."""
    n = len(bodies)
    if n == 0:
        return sha256(b"")
    if n == 1:
        return sha256(b"\x00" + bodies[0])
    k = 1
    while k * 2 < n:
        k *= 2
    return sha256(b"\x01" + mth(bodies[:k]) + mth(bodies[k:]))


def verify_inclusion(index: int, size: int, leaf: bytes, proof: list[bytes], root: bytes) -> bool:
    """RFC 9162 section 2.1.3.2, step by step."""
    if index >= size:
        return False
    fn, sn, r = index, size - 1, leaf
    for p in proof:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            r = sha256(b"\x01" + p + r)
            if not fn & 1:
                while not fn & 1 and fn != 0:
                    fn >>= 1
                    sn >>= 1
        else:
            r = sha256(b"\x01" + r + p)
        fn >>= 1
        sn >>= 1
    return sn == 0 and r == root


@dataclass(frozen=True)
class Checkpoint:
    text: str  # the signed note's text, its trailing newline included
    origin: str
    size: int
    root: bytes
    name: str
    hint: bytes
    signature: bytes


def parse_checkpoint(note: str) -> Checkpoint:
    """A C2SP signed note holding a tlog checkpoint, with exactly one signature line."""
    text, blank, signatures = note.partition("\n\n")
    assert blank and signatures.endswith("\n") and signatures.count("\n") == 1, note
    text += "\n"
    origin, size, root, rest = text.split("\n", 3)
    assert rest == "", "no extension lines expected"
    dash, name, b64 = signatures.rstrip("\n").split(" ")
    assert dash == EM_DASH
    raw = base64.b64decode(b64, validate=True)
    return Checkpoint(text, origin, int(size), base64.b64decode(root, validate=True), name, raw[:4], raw[4:])


def ecdsa_ok(public_key_der: bytes, signature: bytes, message: bytes) -> bool:
    key = serialization.load_der_public_key(public_key_der)
    assert isinstance(key, ec.EllipticCurvePublicKey)
    try:
        key.verify(signature, message, ec.ECDSA(hashes.SHA256()))
    except InvalidSignature:
        return False
    return True


def set_payload(body_b64: str, integrated_time: int, log_id: str, log_index: int) -> bytes:
    # RFC 8785 orders these keys as written: body < integratedTime < logID < logIndex.
    return (
        f'{{"body":"{body_b64}","integratedTime":{integrated_time},'
        f'"logID":"{log_id}","logIndex":{log_index}}}'
    ).encode()


def canonical_body(algorithm: str, digest_hex: str, signature: bytes, pem: bytes) -> bytes:
    """Rekor's canonical hashedrekord 0.0.1 body, written out in RFC 8785 key order."""
    sig, key = base64.b64encode(signature).decode(), base64.b64encode(pem).decode()
    return (
        '{"apiVersion":"0.0.1","kind":"hashedrekord","spec":{"data":{"hash":'
        f'{{"algorithm":"{algorithm}","value":"{digest_hex}"}}}},'
        f'"signature":{{"content":"{sig}","publicKey":{{"content":"{key}"}}}}}}}}'
    ).encode()


def checks(rekor: RekorDouble, answer: dict[str, Any], expected_body: bytes) -> dict[str, bool]:
    """Every property a verifier checks of one entry answer, by name."""
    [(uuid, entry)] = answer.items()
    body = base64.b64decode(entry["body"])
    leaf = sha256(b"\x00" + body)
    proof = entry["verification"]["inclusionProof"]
    root = bytes.fromhex(proof["rootHash"])
    checkpoint = parse_checkpoint(proof["checkpoint"])
    sct = base64.b64decode(entry["verification"]["signedEntryTimestamp"])
    payload = set_payload(entry["body"], entry["integratedTime"], entry["logID"], entry["logIndex"])
    return {
        "uuid": uuid == f"{rekor.tree_id:016x}{leaf.hex()}",
        "log id": entry["logID"] == hashlib.sha256(rekor.public_key_der).hexdigest(),
        "inclusion": verify_inclusion(
            proof["logIndex"], proof["treeSize"], leaf, [bytes.fromhex(h) for h in proof["hashes"]], root
        ),
        "set": ecdsa_ok(rekor.public_key_der, sct, payload),
        "checkpoint signature": ecdsa_ok(
            rekor.public_key_der, checkpoint.signature, checkpoint.text.encode()
        ),
        "checkpoint hint": checkpoint.hint == bytes.fromhex(entry["logID"])[:4],
        "checkpoint matches proof": (
            checkpoint.origin == f"{rekor.hostname} - {rekor.tree_id}"
            and checkpoint.name == rekor.hostname
            and checkpoint.size == proof["treeSize"]
            and checkpoint.root == root
        ),
        "body": body == expected_body,
    }


def failing(rekor: RekorDouble, answer: dict[str, Any], expected_body: bytes) -> set[str]:
    return {name for name, ok in checks(rekor, answer, expected_body).items() if not ok}


def only_entry(answer: dict[str, Any]) -> dict[str, Any]:
    [entry] = answer.values()
    assert isinstance(entry, dict)
    return entry


# -- a signer, as a keyless client would be --------------------------------------------------------------


@dataclass(frozen=True)
class Signer:
    key: ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey
    cert: x509.Certificate

    @classmethod
    def make(cls, key: ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey | None = None) -> Signer:
        key = key or ec.generate_private_key(ec.SECP256R1())
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "signer")])
        now = datetime.datetime.now(datetime.UTC)
        cert = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now)
            .not_valid_after(now + datetime.timedelta(minutes=10))
            .sign(key, hashes.SHA256())
        )
        return cls(key, cert)

    @property
    def pem(self) -> bytes:
        return self.cert.public_bytes(serialization.Encoding.PEM)

    def sign(self, digest: bytes, algorithm: hashes.HashAlgorithm) -> bytes:
        if isinstance(self.key, rsa.RSAPrivateKey):
            return self.key.sign(digest, PKCS1v15(), Prehashed(algorithm))
        return self.key.sign(digest, ec.ECDSA(Prehashed(algorithm)))

    def entry(
        self, payload: bytes, *, pem: bytes | None = None, algorithm: str = "sha256"
    ) -> tuple[dict[str, Any], bytes]:
        """A proposed entry for ``payload`` (with ``pem`` as the key's content) and its canonical body."""
        hash_algorithm = {"sha256": hashes.SHA256(), "sha384": hashes.SHA384()}[algorithm]
        h = hashes.Hash(hash_algorithm)
        h.update(payload)
        digest = h.finalize()
        signature = self.sign(digest, hash_algorithm)
        proposed = proposed_entry(digest.hex(), signature, pem or self.pem, algorithm)
        return proposed, canonical_body(algorithm, digest.hex(), signature, self.pem)


def proposed_entry(
    digest_hex: str, signature: bytes, pem: bytes, algorithm: str = "sha256"
) -> dict[str, Any]:
    return {
        "apiVersion": "0.0.1",
        "kind": "hashedrekord",
        "spec": {
            "data": {"hash": {"algorithm": algorithm, "value": digest_hex}},
            "signature": {
                "content": base64.b64encode(signature).decode(),
                "publicKey": {"content": base64.b64encode(pem).decode()},
            },
        },
    }


# -- fixtures --------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def signer() -> Signer:
    return Signer.make()


@pytest.fixture
def rekor() -> Iterator[RekorDouble]:
    with RekorDouble() as srv:
        yield srv


def https_client(url: str, ca_pem: bytes) -> httpx.Client:
    return httpx.Client(
        base_url=url, verify=ssl.create_default_context(cadata=ca_pem.decode()), timeout=TIMEOUT
    )


@pytest.fixture
def client(rekor: RekorDouble) -> Iterator[httpx.Client]:
    with https_client(rekor.url, rekor.ca_pem) as c:
        yield c


def add(client: httpx.Client, proposed: dict[str, Any]) -> httpx.Response:
    response = client.post(ENTRIES_PATH, json=proposed)
    assert response.status_code == 201, response.text
    return response


# -- the independent verifiers reject what they should (else passing them would prove nothing) -----------


def test_the_inclusion_verifier_rejects_altered_proofs() -> None:
    bodies = [b"leaf %d" % i for i in range(7)]
    root = mth(bodies)
    leaf = sha256(b"\x00" + bodies[5])
    # PATH(5, D[7]) of RFC 6962, by hand: leaf 4, then leaf 6, then the left subtree D[0:4].
    proof = [sha256(b"\x00" + bodies[4]), sha256(b"\x00" + bodies[6]), mth(bodies[:4])]
    assert verify_inclusion(5, 7, leaf, proof, root)
    assert not verify_inclusion(4, 7, leaf, proof, root)
    assert not verify_inclusion(5, 6, leaf, proof, root)
    assert not verify_inclusion(5, 7, leaf, proof[:-1], root)
    assert not verify_inclusion(5, 7, leaf, [*proof, proof[0]], root)
    assert not verify_inclusion(5, 7, leaf, [proof[1], proof[0], proof[2]], root)
    assert not verify_inclusion(5, 7, sha256(b"\x00other"), proof, root)
    assert not verify_inclusion(7, 7, leaf, proof, root)


# -- writing entries ---------------------------------------------------------------------------------------


def test_a_tree_of_every_size_proves_every_entry_then_and_later(
    rekor: RekorDouble, client: httpx.Client, signer: Signer
) -> None:
    bodies: list[bytes] = []
    first_proofs: dict[int, list[str]] = {}
    for n in range(1, 21):
        proposed, expected = signer.entry(b"artifact %d" % n)
        response = add(client, proposed)
        bodies.append(expected)
        answer = response.json()
        assert failing(rekor, answer, expected) == set()
        entry = only_entry(answer)
        proof = entry["verification"]["inclusionProof"]
        assert (entry["logIndex"], proof["logIndex"], proof["treeSize"]) == (n - 1, n - 1, n)
        assert proof["rootHash"] == mth(bodies).hex()
        first_proofs[n - 1] = proof["hashes"]
        for i in range(n):
            fetched = client.get(ENTRIES_PATH, params={"logIndex": i})
            assert fetched.status_code == 200, fetched.text
            assert failing(rekor, fetched.json(), bodies[i]) == set(), (i, n)
            proof = only_entry(fetched.json())["verification"]["inclusionProof"]
            # Fresh: against the tree as it is now, not as it was when the entry was added.
            assert (proof["logIndex"], proof["treeSize"], proof["rootHash"]) == (i, n, mth(bodies).hex())
    # Entry 0 was proved by no hash in a tree of one; in the tree of 20 it takes ceil(log2(20)) of them.
    assert first_proofs[0] == []
    latest = only_entry(client.get(ENTRIES_PATH, params={"logIndex": 0}).json())
    assert len(latest["verification"]["inclusionProof"]["hashes"]) == 5
    assert rekor.root_hash == mth(bodies)
    assert [e.body for e in rekor.entries] == bodies
    assert [e.index for e in rekor.entries] == list(range(20))


def test_a_new_entry_answers_as_rekor_does(rekor: RekorDouble, client: httpx.Client, signer: Signer) -> None:
    before = int(time.time())
    proposed, expected = signer.entry(b"hello")
    response = add(client, proposed)
    [(uuid, entry)] = response.json().items()
    leaf = sha256(b"\x00" + expected)
    assert len(uuid) == 80 and uuid == f"{rekor.tree_id:016x}{leaf.hex()}"
    assert response.headers["ETag"] == uuid
    assert response.headers["Location"] == f"/api/v1/log/entries/{uuid}"
    assert set(entry) == {"body", "integratedTime", "logID", "logIndex", "verification"}
    assert set(entry["verification"]) == {"inclusionProof", "signedEntryTimestamp"}
    assert set(entry["verification"]["inclusionProof"]) == {
        "checkpoint",
        "hashes",
        "logIndex",
        "rootHash",
        "treeSize",
    }
    assert entry["logID"] == rekor.log_id
    assert before <= entry["integratedTime"] <= int(time.time())
    sct = base64.b64decode(entry["verification"]["signedEntryTimestamp"])
    decode_dss_signature(sct)  # DER, as Rekor's ECDSA signer writes it
    assert [e.uuid for e in rekor.entries] == [uuid]


def test_the_set_signs_exactly_the_four_fields(
    rekor: RekorDouble, client: httpx.Client, signer: Signer
) -> None:
    entry = only_entry(add(client, signer.entry(b"set")[0]).json())
    sct = base64.b64decode(entry["verification"]["signedEntryTimestamp"])
    body, when, log_id, index = entry["body"], entry["integratedTime"], entry["logID"], entry["logIndex"]
    assert ecdsa_ok(rekor.public_key_der, sct, set_payload(body, when, log_id, index))
    assert not ecdsa_ok(rekor.public_key_der, sct, set_payload(body, when + 1, log_id, index))
    assert not ecdsa_ok(rekor.public_key_der, sct, set_payload(body, when, log_id, index + 1))
    # Not the JSON as received either: only the canonical form of these four fields is signed.
    assert not ecdsa_ok(
        rekor.public_key_der,
        sct,
        json.dumps({"body": body, "integratedTime": when, "logID": log_id, "logIndex": index}).encode(),
    )


def test_the_checkpoint_is_a_signed_note_with_the_log_key_hint(
    rekor: RekorDouble, client: httpx.Client, signer: Signer
) -> None:
    for n in range(3):
        add(client, signer.entry(b"checkpoint %d" % n)[0])
    note = only_entry(client.get(ENTRIES_PATH, params={"logIndex": 1}).json())["verification"][
        "inclusionProof"
    ]["checkpoint"]
    root = base64.b64encode(rekor.root_hash).decode()
    text = f"{rekor.hostname} - {rekor.tree_id}\n3\n{root}\n"
    assert note.startswith(text + "\n" + EM_DASH + " " + rekor.hostname + " ")
    assert note.endswith("\n")
    checkpoint = parse_checkpoint(note)
    assert checkpoint.text == text
    assert checkpoint.hint == hashlib.sha256(rekor.public_key_der).digest()[:4]
    assert ecdsa_ok(rekor.public_key_der, checkpoint.signature, text.encode())
    # The trailing newline is signed too.
    assert not ecdsa_ok(rekor.public_key_der, checkpoint.signature, text.rstrip("\n").encode())


@pytest.mark.parametrize(
    "reformat",
    [
        pytest.param(lambda pem: pem, id="as-is"),
        pytest.param(lambda pem: b"\n  " + pem.replace(b"\n", b"\r\n") + b"\n\n", id="crlf-and-spaces"),
        pytest.param(
            lambda pem: b"\n".join(
                [pem.splitlines()[0], b"".join(pem.splitlines()[1:-1]), pem.splitlines()[-1]]
            ),
            id="one-long-line",
        ),
    ],
)
def test_the_body_holds_the_certificate_re_encoded_as_pem(
    rekor: RekorDouble, client: httpx.Client, signer: Signer, reformat: Callable[[bytes], bytes]
) -> None:
    submitted = reformat(signer.pem)
    proposed, expected = signer.entry(b"reencoded", pem=submitted)
    body = base64.b64decode(only_entry(add(client, proposed).json())["body"])
    assert body == expected
    spec = json.loads(body)["spec"]
    assert base64.b64decode(spec["signature"]["publicKey"]["content"]) == signer.pem


def test_a_bare_public_key_is_logged_as_its_pem(
    rekor: RekorDouble, client: httpx.Client, signer: Signer
) -> None:
    spki_pem = signer.key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    digest = sha256(b"bare key")
    signature = signer.sign(digest, hashes.SHA256())
    proposed = proposed_entry(digest.hex(), signature, spki_pem.replace(b"\n", b"\r\n"))
    body = base64.b64decode(only_entry(add(client, proposed).json())["body"])
    assert body == canonical_body("sha256", digest.hex(), signature, spki_pem)


@pytest.mark.parametrize(
    ("make_key", "algorithm"),
    [
        pytest.param(lambda: ec.generate_private_key(ec.SECP384R1()), "sha384", id="p384-sha384"),
        pytest.param(lambda: rsa.generate_private_key(65537, 2048), "sha256", id="rsa2048-sha256"),
    ],
)
def test_other_permitted_algorithms_are_logged(
    rekor: RekorDouble,
    client: httpx.Client,
    make_key: Callable[[], ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey],
    algorithm: str,
) -> None:
    proposed, expected = Signer.make(make_key()).entry(b"other", algorithm=algorithm)
    assert failing(rekor, add(client, proposed).json(), expected) == set()


def test_a_duplicate_is_a_conflict_naming_the_existing_entry(
    rekor: RekorDouble, client: httpx.Client, signer: Signer
) -> None:
    proposed, _ = signer.entry(b"twice")
    uuid = add(client, proposed).headers["ETag"]
    again = client.post(ENTRIES_PATH, json=proposed)
    assert again.status_code == 409
    assert again.json() == {
        "code": 409,
        "message": f"an equivalent entry already exists in the transparency log with UUID {uuid}",
    }
    assert again.headers["Location"] == f"/api/v1/log/entries/{uuid}"
    # The same entry with its key PEM formatted otherwise canonicalizes to the same leaf.
    crlf = base64.b64encode(signer.pem.replace(b"\n", b"\r\n")).decode()
    reformatted = _mutate(proposed, "spec.signature.publicKey.content", crlf)
    assert client.post(ENTRIES_PATH, json=reformatted).status_code == 409
    assert rekor.tree_size == 1


def test_a_signature_that_does_not_verify_is_refused(
    rekor: RekorDouble, client: httpx.Client, signer: Signer
) -> None:
    digest = sha256(b"signed")
    signature = signer.sign(sha256(b"not signed"), hashes.SHA256())
    response = client.post(ENTRIES_PATH, json=proposed_entry(digest.hex(), signature, signer.pem))
    assert response.status_code == 400
    assert response.json() == {"code": 400, "message": SIGNATURE_MISMATCH}
    # Another key's certificate does not verify the signature either.
    other = Signer.make()
    response = client.post(
        ENTRIES_PATH, json=proposed_entry(digest.hex(), signer.sign(digest, hashes.SHA256()), other.pem)
    )
    assert response.json() == {"code": 400, "message": SIGNATURE_MISMATCH}
    assert rekor.tree_size == 0
    assert rekor.entries == []


def _mutate(proposed: dict[str, Any], path: str, value: Any) -> dict[str, Any]:
    doc: dict[str, Any] = json.loads(json.dumps(proposed))
    *parents, last = path.split(".")
    target: Any = doc
    for name in parents:
        target = target[name]
    if value is None:
        del target[last]
    else:
        target[last] = value
    return doc


@pytest.mark.parametrize(
    ("path", "value", "status", "message"),
    [
        ("spec.signature.publicKey.content", base64.b64encode(b"not a pem").decode(), 400,
         "error processing entry: invalid public key: failure decoding PEM"),
        ("spec.data.hash.value", "ab" * 31, 400, "error processing entry: invalid value for hash"),
        ("spec.data.hash.value", "zz" * 32, 400,
         "error processing entry: encoding/hex: invalid byte: U+007A 'z'"),
        ("spec.data.hash.algorithm", "md5", 400,
         "error processing entry: data.hash.algorithm in body should be one of [sha256 sha384 sha512]"),
        ("spec.signature.publicKey", None, 400, "error processing entry: missing public key"),
        ("kind", "dsse", 400,
         "error processing entry: entry kind 'dsse' is not enabled for submission on this server"),
        ("kind", "nonsense", 422, 'invalid kind value: "nonsense"'),
    ],
)  # fmt: skip
def test_malformed_entries_are_refused_in_rekors_words(
    rekor: RekorDouble, client: httpx.Client, signer: Signer, path: str, value: Any, status: int, message: str
) -> None:
    proposed, _ = signer.entry(b"malformed")
    response = client.post(ENTRIES_PATH, json=_mutate(proposed, path, value))
    assert (response.status_code, response.json()) == (status, {"code": status, "message": message})
    assert rekor.tree_size == 0


def test_an_algorithm_rekor_does_not_permit_is_refused(client: httpx.Client) -> None:
    # A P-256 key with a SHA-384 digest verifies, but is not one of Rekor's signing algorithms.
    proposed, _ = Signer.make().entry(b"p256 with sha384", algorithm="sha384")
    response = client.post(ENTRIES_PATH, json=proposed)
    assert response.json() == {
        "code": 400,
        "message": "error processing entry: entry algorithms are not allowed",
    }


def test_a_body_that_is_not_json_is_refused(client: httpx.Client) -> None:
    response = client.post(ENTRIES_PATH, content=b"{}", headers={"Content-Type": "text/plain"})
    assert response.status_code == 415
    assert (
        response.json()["message"]
        == 'unsupported media type "text/plain", only [application/json] are allowed'
    )
    response = client.post(ENTRIES_PATH, content=b"{", headers={"Content-Type": "application/json"})
    assert response.status_code == 400


# -- reading entries and the log ---------------------------------------------------------------------------


def test_entries_are_found_by_uuid_with_or_without_the_tree_id(
    rekor: RekorDouble, client: httpx.Client, signer: Signer
) -> None:
    proposed, expected = signer.entry(b"by uuid")
    uuid = add(client, proposed).headers["ETag"]
    add(client, signer.entry(b"a later one")[0])
    for entry_id in (uuid, uuid[16:], uuid.upper()):
        response = client.get(f"{ENTRIES_PATH}/{entry_id}")
        assert response.status_code == 200, entry_id
        assert failing(rekor, response.json(), expected) == set()
        assert only_entry(response.json())["verification"]["inclusionProof"]["treeSize"] == 2
    other_tree = f"{rekor.tree_id ^ 1:016x}{uuid[16:]}"
    for missing in (other_tree, "0" * 80, "0" * 64):
        response = client.get(f"{ENTRIES_PATH}/{missing}")
        assert (response.status_code, response.content) == (404, b"")
    response = client.get(f"{ENTRIES_PATH}/{uuid[:-1]}")
    assert response.status_code == 422


def test_missing_and_malformed_indices(rekor: RekorDouble, client: httpx.Client, signer: Signer) -> None:
    add(client, signer.entry(b"only")[0])
    response = client.get(ENTRIES_PATH, params={"logIndex": 1})
    assert (response.status_code, response.content) == (404, b"")
    for query, code in ((None, 602), ("x", 601), ("-1", 609)):
        response = client.get(ENTRIES_PATH, params={} if query is None else {"logIndex": query})
        assert response.status_code == 422
        assert response.json()["code"] == code


def test_the_log_info_and_public_key(rekor: RekorDouble, client: httpx.Client, signer: Signer) -> None:
    bodies = []
    for n in range(5):
        proposed, expected = signer.entry(b"info %d" % n)
        add(client, proposed)
        bodies.append(expected)
    info = client.get(LOG_PATH).json()
    assert set(info) == {"rootHash", "treeSize", "signedTreeHead", "treeID"}
    assert (info["rootHash"], info["treeSize"], info["treeID"]) == (mth(bodies).hex(), 5, str(rekor.tree_id))
    checkpoint = parse_checkpoint(info["signedTreeHead"])
    assert (checkpoint.size, checkpoint.root) == (5, mth(bodies))
    assert ecdsa_ok(rekor.public_key_der, checkpoint.signature, checkpoint.text.encode())
    response = client.get(PUBLIC_KEY_PATH)
    assert response.headers["Content-Type"] == "application/x-pem-file"
    key = serialization.load_pem_public_key(response.content)
    der = key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    assert der == rekor.public_key_der
    assert rekor.log_id == hashlib.sha256(der).hexdigest()


def test_an_empty_log_has_the_empty_tree_hash(rekor: RekorDouble, client: httpx.Client) -> None:
    info = client.get(LOG_PATH).json()
    assert (info["treeSize"], info["rootHash"]) == (0, sha256(b"").hex())


def test_retrieve_finds_by_uuid_index_and_proposed_entry(
    rekor: RekorDouble, client: httpx.Client, signer: Signer
) -> None:
    proposals = [signer.entry(b"search %d" % n) for n in range(3)]
    uuids = [add(client, proposed).headers["ETag"] for proposed, _ in proposals]
    response = client.post(
        RETRIEVE_PATH,
        json={"entryUUIDs": [uuids[0]], "entries": [proposals[1][0]], "logIndexes": [2, 7]},
    )
    assert response.status_code == 200
    found = response.json()
    assert [next(iter(answer)) for answer in found] == uuids
    for answer, (_, expected) in zip(found, proposals, strict=True):
        assert failing(rekor, answer, expected) == set()
    response = client.post(RETRIEVE_PATH, json={"logIndexes": list(range(11))})
    assert response.status_code == 422


# -- knobs -------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("knob", "broken"),
    [
        ("bad_set", {"set"}),
        ("wrong_root", {"inclusion"}),
        ("wrong_key_hint", {"checkpoint hint"}),
        ("body_mismatch", {"body"}),
    ],
)
def test_each_knob_breaks_exactly_the_check_it_names(
    rekor: RekorDouble, client: httpx.Client, signer: Signer, knob: str, broken: set[str]
) -> None:
    earlier, earlier_body = signer.entry(b"before the knob")
    add(client, earlier)
    setattr(rekor, knob, True)
    proposed, expected = signer.entry(b"under the knob")
    answer = add(client, proposed).json()
    assert failing(rekor, answer, expected) == broken
    fetched = client.get(ENTRIES_PATH, params={"logIndex": 0}).json()
    # body_mismatch changes what is stored, once; the others change every answer while set.
    assert failing(rekor, fetched, earlier_body) == (set() if knob == "body_mismatch" else broken)
    setattr(rekor, knob, False)
    fetched = client.get(ENTRIES_PATH, params={"logIndex": 1}).json()
    assert failing(rekor, fetched, expected) == (broken if knob == "body_mismatch" else set())


def test_wrong_root_lies_consistently_about_the_root(
    rekor: RekorDouble, client: httpx.Client, signer: Signer
) -> None:
    bodies = []
    for n in range(3):
        proposed, expected = signer.entry(b"root %d" % n)
        add(client, proposed)
        bodies.append(expected)
    rekor.wrong_root = True
    proof = only_entry(client.get(ENTRIES_PATH, params={"logIndex": 2}).json())["verification"][
        "inclusionProof"
    ]
    assert proof["rootHash"] != mth(bodies).hex()
    # The audit path itself is right: it leads to the true root, not to the one reported.
    leaf = sha256(b"\x00" + bodies[2])
    assert verify_inclusion(2, 3, leaf, [bytes.fromhex(h) for h in proof["hashes"]], mth(bodies))
    info = client.get(LOG_PATH).json()
    assert info["rootHash"] == proof["rootHash"]
    assert parse_checkpoint(info["signedTreeHead"]).root.hex() == proof["rootHash"]
    assert rekor.root_hash == mth(bodies)


def test_body_mismatch_logs_a_digest_the_signature_is_not_over(
    rekor: RekorDouble, client: httpx.Client, signer: Signer
) -> None:
    rekor.body_mismatch = True
    digest = sha256(b"mismatch")
    proposed = proposed_entry(digest.hex(), signer.sign(digest, hashes.SHA256()), signer.pem)
    body = json.loads(base64.b64decode(only_entry(add(client, proposed).json())["body"]))
    logged = bytes.fromhex(body["spec"]["data"]["hash"]["value"])
    assert logged != digest
    signature = base64.b64decode(body["spec"]["signature"]["content"])
    public_key = signer.key.public_key()
    assert isinstance(public_key, ec.EllipticCurvePublicKey)
    with pytest.raises(InvalidSignature):
        public_key.verify(signature, logged, ec.ECDSA(Prehashed(hashes.SHA256())))


def test_index_offset_separates_global_and_shard_indices(
    rekor: RekorDouble, client: httpx.Client, signer: Signer
) -> None:
    add(client, signer.entry(b"shard entry 0")[0])
    rekor.index_offset = 1000
    proposed, expected = signer.entry(b"shard entry 1")
    answer = add(client, proposed).json()
    entry = only_entry(answer)
    proof = entry["verification"]["inclusionProof"]
    assert (entry["logIndex"], proof["logIndex"]) == (1001, 1)
    assert failing(rekor, answer, expected) == set()
    # A verifier that proves inclusion at the global index, or signs the SET over the shard's, fails.
    leaf = sha256(b"\x00" + expected)
    path = [bytes.fromhex(h) for h in proof["hashes"]]
    assert not verify_inclusion(
        entry["logIndex"], proof["treeSize"], leaf, path, bytes.fromhex(proof["rootHash"])
    )
    sct = base64.b64decode(entry["verification"]["signedEntryTimestamp"])
    payload = set_payload(entry["body"], entry["integratedTime"], entry["logID"], proof["logIndex"])
    assert not ecdsa_ok(rekor.public_key_der, sct, payload)
    # Lookups take the global index; shard indices below the offset belong to no shard here.
    found = client.get(ENTRIES_PATH, params={"logIndex": 1001})
    assert next(iter(found.json())) == next(iter(answer))
    assert client.get(ENTRIES_PATH, params={"logIndex": 1}).status_code == 404
    rekor.index_offset = 5
    assert only_entry(client.get(ENTRIES_PATH, params={"logIndex": 5}).json())["logIndex"] == 5
    with pytest.raises(ValueError):
        rekor.index_offset = -1


def test_the_scaffold_fault_knobs(rekor: RekorDouble, client: httpx.Client, signer: Signer) -> None:
    proposed, _ = signer.entry(b"faults")
    rekor.fail_next(1, 503)
    response = client.post(ENTRIES_PATH, json=proposed)
    assert (response.status_code, response.json()["code"]) == (503, 503)
    assert rekor.tree_size == 0
    add(client, proposed)
    rekor.fail_status = 500
    assert client.get(LOG_PATH).status_code == 500
    assert client.get(LOG_PATH).status_code == 500
    rekor.fail_status = None
    assert client.get(LOG_PATH).status_code == 200
    rekor.delay = 0.3
    started = time.monotonic()
    assert client.get(LOG_PATH).status_code == 200
    assert time.monotonic() - started >= 0.3


# -- the trusted root and the process ---------------------------------------------------------------------


def test_write_trusted_root_merges_this_log(rekor: RekorDouble, tmp_path: Path) -> None:
    path = tmp_path / "trusted_root.json"
    ctlog = {"baseUrl": "https://ct.example", "hashAlgorithm": "SHA2_256"}
    path.write_text(json.dumps({"mediaType": "x", "ctlogs": [ctlog], "tlogs": [{"baseUrl": "old"}]}))
    rekor.write_trusted_root(str(path))
    root = json.loads(path.read_text())
    assert root["ctlogs"] == [ctlog]
    [tlog] = root["tlogs"]
    assert tlog["baseUrl"] == rekor.url
    assert tlog["hashAlgorithm"] == "SHA2_256"
    assert base64.b64decode(tlog["publicKey"]["rawBytes"]) == rekor.public_key_der
    assert tlog["publicKey"]["keyDetails"] == "PKIX_ECDSA_P256_SHA_256"
    assert base64.b64decode(tlog["logId"]["keyId"]).hex() == rekor.log_id
    start = datetime.datetime.strptime(tlog["publicKey"]["validFor"]["start"], "%Y-%m-%dT%H:%M:%SZ")
    age = datetime.datetime.now(datetime.UTC) - start.replace(tzinfo=datetime.UTC)
    assert datetime.timedelta(0) < age < datetime.timedelta(hours=1)


def test_the_process_serves_until_sigterm(tmp_path: Path, signer: Signer) -> None:
    root_file, ca_file = tmp_path / "trusted_root.json", tmp_path / "ca.pem"
    args = ("--trusted-root", str(root_file), "--ca-out", str(ca_file), "--index-offset", "7")
    with doubles.serving("entrypoint.testing.rekor", *args) as (proc, url):
        [tlog] = json.loads(root_file.read_text())["tlogs"]
        assert tlog["baseUrl"] == url
        with https_client(url, ca_file.read_bytes()) as c:
            entry = only_entry(add(c, signer.entry(b"process")[0]).json())
            assert entry["logIndex"] == 7
            key = serialization.load_pem_public_key(c.get(PUBLIC_KEY_PATH).content)
            der = key.public_bytes(
                serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
            )
            assert der == base64.b64decode(tlog["publicKey"]["rawBytes"])
            sct = base64.b64decode(entry["verification"]["signedEntryTimestamp"])
            payload = set_payload(entry["body"], entry["integratedTime"], entry["logID"], 7)
            assert ecdsa_ok(der, sct, payload)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=TIMEOUT) == 0


def test_the_process_refuses_a_bad_hostname() -> None:
    result = doubles.run("entrypoint.testing.rekor", "--hostname", "two words")
    assert result.returncode == 2
    assert "hostname" in result.stderr
