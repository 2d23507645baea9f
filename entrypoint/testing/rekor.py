"""A Rekor v1 transparency log double: ``hashedrekord`` 0.0.1 entries in an RFC 6962 Merkle tree.

It answers as Rekor v1 (sigstore/rekor ``pkg/api``) does, on the shared HTTPS scaffold:

* ``POST /api/v1/log/entries`` validates a proposed ``hashedrekord`` entry (the signature must verify
  over the digest with the key or the certificate's key), canonicalizes it (the key re-encoded as PEM,
  then RFC 8785 JSON), appends it and answers 201 with the entry, its signed entry timestamp (SET), an
  inclusion proof and a signed checkpoint; 409 for an entry already in the log, 400 otherwise;
* ``GET /api/v1/log/entries?logIndex=N`` and ``GET /api/v1/log/entries/{uuid}``: the entry with a fresh
  proof against the current tree (404 with an empty body when missing);
* ``POST /api/v1/log/entries/retrieve``: a search by UUIDs, indices or proposed entries;
* ``GET /api/v1/log`` (tree size, root, signed tree head, tree ID) and ``GET /api/v1/log/publicKey`` (PEM).

The top-level ``logIndex`` is the global (virtual) index across shards and ``inclusionProof.logIndex`` the
index in the active shard; :attr:`RekorDouble.index_offset` makes them differ, as on the public instance.
Negative knobs, settable while serving, break one verifiable property each: ``bad_set``, ``wrong_root``,
``wrong_key_hint``, ``body_mismatch``; the scaffold adds ``fail_status``, ``fail_next`` and ``delay``.

Limits: Ed25519 keys and certificate chains in ``publicKey.content`` are refused (pyca cannot verify
Ed25519ph; Rekor verifies chains), and request-validation messages of go-openapi are approximated.
"""

from __future__ import annotations

import argparse
import base64
import binascii
import datetime as dt
import hashlib
import json
import os
import re
import secrets
import sys
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, urlsplit

from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.asymmetric.types import PublicKeyTypes
from cryptography.hazmat.primitives.asymmetric.utils import (
    Prehashed,
    decode_dss_signature,
    encode_dss_signature,
)

from entrypoint.testing._https import HTTPError, HTTPSDouble, Reply, StreamedAnswer, serving_credentials
from entrypoint.testing._serving import serve_until, stop_on_signals
from entrypoint.testing.sigstore_root import log_instance, merge_into

__all__ = [
    "ENTRIES_PATH",
    "LOG_PATH",
    "PUBLIC_KEY_PATH",
    "RETRIEVE_PATH",
    "RekorDouble",
    "RekorEntry",
    "canonical_json",
    "main",
]

LOG_PATH = "/api/v1/log"
PUBLIC_KEY_PATH = "/api/v1/log/publicKey"
ENTRIES_PATH = "/api/v1/log/entries"
RETRIEVE_PATH = "/api/v1/log/entries/retrieve"

KIND = "hashedrekord"
API_VERSION = "0.0.1"
# The kinds Rekor knows: proposing one of the others is "not enabled" here, an unknown one is invalid.
_OTHER_KINDS = ("alpine", "cose", "dsse", "helm", "intoto", "jar", "rekord", "rfc3161", "rpm", "tuf")
_HASHES: dict[str, hashes.HashAlgorithm] = {
    "sha256": hashes.SHA256(),
    "sha384": hashes.SHA384(),
    "sha512": hashes.SHA512(),
}
# Rekor's default --client-signing-algorithms, less Ed25519 (see the module docstring).
_EC_HASH = {"secp256r1": "sha256", "secp384r1": "sha384", "secp521r1": "sha512"}
_RSA_SIZES = (2048, 3072, 4096)

# Rekor's wording (pkg/api/error.go, pkg/types/hashedrekord/v0.0.1/entry.go, sigstore's verifiers).
_VALIDATION_ERROR = "error processing entry: {}"
_ALREADY_EXISTS = "an equivalent entry already exists in the transparency log with UUID {}"
_ALGORITHMS_NOT_ALLOWED = "entry algorithms are not allowed"
_BAD_ASN1_SIGNATURE = "invalid signature when validating ASN.1 encoded signature"
_BAD_P1363_SIGNATURE = "invalid signature when validating IEEE_P1363 encoded signature"
_BAD_P1363_BYTES = "ecdsa: Invalid IEEE_P1363 encoded bytes"
_MAX_SEARCH_QUERIES = 10
# go-openapi's parameter validation codes (errors/schema.go): answered with HTTP 422.
_INVALID_TYPE_CODE, _REQUIRED_CODE, _PATTERN_CODE, _MIN_CODE = 601, 602, 605, 609
_UUID_PATTERN = "^([0-9a-fA-F]{64}|[0-9a-fA-F]{80})$"
_UUID = re.compile(r"[0-9a-fA-F]{64}|[0-9a-fA-F]{80}")
_PEM_BLOCK = re.compile(rb"-----BEGIN ([^-\r\n]+)-----\r?\n(.*?)-----END \1-----", re.DOTALL)
_TREE_ID_HEX = 16


def canonical_json(value: Any) -> bytes:
    """``value`` as RFC 8785 (JCS) canonical JSON, for the shapes Rekor signs and stores."""
    # For objects whose keys are ASCII, strings, and integers below 2**53 (the shapes Rekor canonicalizes
    # here), sorted keys, no whitespace, no ASCII escaping and UTF-8 are exactly JCS: Python escapes the
    # same characters, with the same short forms, and writes such integers as JCS does.
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _leaf_hash(data: bytes) -> bytes:
    return hashlib.sha256(b"\x00" + data).digest()


def _node_hash(left: bytes, right: bytes) -> bytes:
    return hashlib.sha256(b"\x01" + left + right).digest()


def _split(n: int) -> int:
    """The largest power of two smaller than ``n`` (n >= 2): where RFC 6962 splits a tree."""
    return 1 << ((n - 1).bit_length() - 1)


class _MerkleTree:
    """RFC 6962 section 2.1: tree hashes and audit paths over the appended leaf hashes."""

    def __init__(self) -> None:
        self._leaves: list[bytes] = []
        # Complete subtrees never change once filled; every left subtree of a split is one, so caching
        # them makes a root or an audit path O(log^2 n) instead of O(n).
        self._complete: dict[tuple[int, int], bytes] = {}

    def __len__(self) -> int:
        return len(self._leaves)

    def append(self, leaf_hash: bytes) -> int:
        self._leaves.append(leaf_hash)
        return len(self._leaves) - 1

    def root(self, size: int) -> bytes:
        return self._hash(0, size)

    def _hash(self, start: int, n: int) -> bytes:
        if n == 0:
            return hashlib.sha256(b"").digest()
        if n == 1:
            return self._leaves[start]
        complete = n & (n - 1) == 0
        if complete and (found := self._complete.get((start, n))) is not None:
            return found
        k = _split(n)
        value = _node_hash(self._hash(start, k), self._hash(start + k, n - k))
        if complete:
            self._complete[(start, n)] = value
        return value

    def inclusion_proof(self, index: int, size: int) -> list[bytes]:
        """PATH(index, D[0:size]) of RFC 6962 section 2.1.1, the leaf's sibling first."""
        if not 0 <= index < size <= len(self._leaves):
            raise ValueError(f"no leaf {index} in a tree of {size}")
        path: list[bytes] = []
        start, n, m = 0, size, index
        while n > 1:
            k = _split(n)
            if m < k:
                path.append(self._hash(start + k, n - k))
                n = k
            else:
                path.append(self._hash(start, k))
                start, n, m = start + k, n - k, m - k
        # Walking down finds the root's children first; the path lists the leaf's sibling first.
        path.reverse()
        return path


@dataclass(frozen=True)
class RekorEntry:
    """One entry of the log: its canonical body, its place in the shard and when it was integrated."""

    index: int  # in the shard: the global logIndex adds RekorDouble.index_offset, as it is when asked
    uuid: str
    body: bytes
    integrated_time: int
    leaf_hash: bytes


@dataclass(frozen=True)
class _Knobs:
    index_offset: int
    bad_set: bool
    wrong_root: bool
    wrong_key_hint: bool
    body_mismatch: bool


class _BadEntry(Exception):
    """A proposed entry Rekor would refuse; the message is Rekor's, without its ``error processing entry``."""


class RekorDouble(HTTPSDouble):
    """A Rekor v1 transparency log on 127.0.0.1 that logs ``hashedrekord`` entries as Rekor does."""

    server_version = "rekor-double"

    def __init__(
        self,
        *,
        hostname: str = "127.0.0.1",
        tree_id: int | None = None,
        index_offset: int = 0,
        port: int = 0,
    ) -> None:
        """``hostname``: checkpoints have the origin ``"<hostname> - <tree ID>"`` and a signature line
        naming ``hostname``, as ``rekor-server --rekor_server.hostname`` writes them.  ``tree_id``: the
        Trillian tree ID (decimal in ``GET /api/v1/log`` and origins, 16 hex digits in entry UUIDs),
        random by default.  ``index_offset``: the knob's initial value.  ``port``: 0 picks a free port,
        kept across restarts.
        """
        if not hostname or any(c.isspace() for c in hostname):
            raise ValueError(f"hostname must be one word, got {hostname!r}")  # a signed-note name is one
        if tree_id is not None and not 0 < tree_id < 2**63:
            raise ValueError(f"tree_id must be a positive int64, got {tree_id}")
        super().__init__(serving_credentials("rekor", "rekor-server"), port=port, name="rekor")
        self._hostname = hostname
        # Trillian picks random positive int64 tree IDs; the top bit stays clear.
        self._tree_id = tree_id if tree_id is not None else secrets.randbits(63) | 1
        self._key = ec.generate_private_key(ec.SECP256R1())
        self._other_key = ec.generate_private_key(ec.SECP256R1())  # signs the SET under bad_set
        self._public_key_der = self._key.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        self._log_id = hashlib.sha256(self._public_key_der).hexdigest()
        self._created = dt.datetime.now(dt.UTC)
        self._log_lock = threading.Lock()
        self._tree = _MerkleTree()
        self._entries: list[RekorEntry] = []
        self._by_leaf: dict[bytes, int] = {}
        self.index_offset = index_offset
        self.bad_set = False
        self.wrong_root = False
        self.wrong_key_hint = False
        self.body_mismatch = False

    def __repr__(self) -> str:
        where = self.url if self._port else "not started"
        return f"RekorDouble({where}, tree_id={self._tree_id}, size={self.tree_size})"

    # -- knobs -------------------------------------------------------------------------------------------

    @property
    def index_offset(self) -> int:
        """Entries of inactive shards before this one: global ``logIndex`` = shard index + this."""
        return self._index_offset

    @index_offset.setter
    def index_offset(self, value: int) -> None:
        if not isinstance(value, int) or value < 0:
            raise ValueError(f"index_offset must be a non-negative integer, got {value!r}")
        self._index_offset = value

    # bad_set: the SET is signed by another key.  wrong_root: inclusion proofs, checkpoints and the log
    # info report a root that is not the tree's (the checkpoint validly signed over it).  wrong_key_hint:
    # the checkpoint's key hint is not the log ID's first 4 bytes (the signature stays valid).
    # body_mismatch: entries appended meanwhile store a body whose digest is not the one signed.

    def _knobs(self) -> _Knobs:
        return _Knobs(
            index_offset=self.index_offset,
            bad_set=self.bad_set,
            wrong_root=self.wrong_root,
            wrong_key_hint=self.wrong_key_hint,
            body_mismatch=self.body_mismatch,
        )

    # -- what clients trust and what the log holds -------------------------------------------------------

    @property
    def public_key_der(self) -> bytes:
        """The log's public key, DER SubjectPublicKeyInfo (ECDSA P-256)."""
        return self._public_key_der

    @property
    def public_key_pem(self) -> bytes:
        """The log's public key as ``GET /api/v1/log/publicKey`` serves it."""
        return self._key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )

    @property
    def log_id(self) -> str:
        """Hex SHA-256 of :attr:`public_key_der`: the ``logID`` of entries and the trusted root's key ID."""
        return self._log_id

    @property
    def tree_id(self) -> int:
        return self._tree_id

    @property
    def hostname(self) -> str:
        return self._hostname

    @property
    def origin(self) -> str:
        """The checkpoints' origin line."""
        return f"{self._hostname} - {self._tree_id}"

    @property
    def entries(self) -> list[RekorEntry]:
        """Every entry, in shard order."""
        with self._log_lock:
            return list(self._entries)

    @property
    def tree_size(self) -> int:
        with self._log_lock:
            return len(self._tree)

    @property
    def root_hash(self) -> bytes:
        """The current tree's true root (whatever ``wrong_root`` makes the double report)."""
        with self._log_lock:
            return self._tree.root(len(self._tree))

    def write_trusted_root(self, path: str | os.PathLike[str]) -> None:
        """Make this log (URL and key) the ``tlogs`` of the trusted root at ``path``, keeping the rest."""
        start = self._created - dt.timedelta(minutes=1)
        merge_into(path, tlogs=[log_instance(self.url, self._public_key_der, start=start)])

    # -- requests ----------------------------------------------------------------------------------------

    def handle(self, method: str, path: str, headers: Any, body: bytes) -> Reply:
        url = urlsplit(path)
        route = url.path.rstrip("/") or "/"
        if route == ENTRIES_PATH:
            self._allow(method, "GET", "POST")
            if method == "POST":
                return self._create(headers, body)
            return self._get_by_index(url.query)
        if route == RETRIEVE_PATH and method == "POST":
            return self._retrieve(headers, body)
        if route.startswith(ENTRIES_PATH + "/") and route.count("/") == 5:
            self._allow(method, "GET")
            return self._get_by_uuid(route.rsplit("/", 1)[1])
        if route == LOG_PATH:
            self._allow(method, "GET")
            return 200, self._log_info(), "application/json", {}
        if route == PUBLIC_KEY_PATH:
            self._allow(method, "GET")
            # The scaffold ends each streamed line with a newline: the PEM's own.
            pem = self.public_key_pem.rstrip(b"\n")
            return StreamedAnswer(200, iter([pem]), content_type="application/x-pem-file")
        raise HTTPError(404, f"path {url.path} was not found")

    def error_response(self, err: HTTPError) -> tuple[dict[str, Any], dict[str, str]]:
        details = err.details or {}
        headers = {"Location": details["location"]} if "location" in details else {}
        return {"code": details.get("code", err.code), "message": err.message}, headers

    @staticmethod
    def _allow(method: str, *methods: str) -> None:
        if method not in methods:
            raise HTTPError(405, f"method {method} is not allowed, but [{', '.join(methods)}] are")

    @staticmethod
    def _json_body(headers: Any, body: bytes, name: str) -> Any:
        # go-openapi answers by the media type before it reads the body, and treats none as octet-stream.
        media = (headers.get("Content-Type") or "application/octet-stream").split(";")[0].strip().lower()
        if media != "application/json":
            raise HTTPError(415, f'unsupported media type "{media}", only [application/json] are allowed')
        try:
            return json.loads(body)
        except (UnicodeDecodeError, json.JSONDecodeError) as err:
            raise HTTPError(400, f'parsing {name} body from "" failed, because {err}') from err

    def _create(self, headers: Any, body: bytes) -> Reply:
        proposed = self._json_body(headers, body, "proposedEntry")
        knobs = self._knobs()
        try:
            canonical = _canonicalize(proposed, mismatch=knobs.body_mismatch)
        except _BadEntry as err:
            raise HTTPError(400, _VALIDATION_ERROR.format(err)) from err
        leaf = _leaf_hash(canonical)
        uuid = self._uuid(leaf)
        location = f"{ENTRIES_PATH}/{uuid}"
        with self._log_lock:
            if leaf in self._by_leaf:
                raise HTTPError(409, _ALREADY_EXISTS.format(uuid), {"location": location})
            index = self._tree.append(leaf)
            entry = RekorEntry(index, uuid, canonical, int(time.time()), leaf)
            self._entries.append(entry)
            self._by_leaf[leaf] = index
            answer = self._entry_answer(entry, knobs)
        return 201, answer, "application/json", {"ETag": uuid, "Location": location}

    def _get_by_index(self, query: str) -> Reply:
        values = parse_qs(query, keep_blank_values=True).get("logIndex")
        if not values:
            raise HTTPError(422, "logIndex in query is required", {"code": _REQUIRED_CODE})
        try:
            log_index = int(values[0])
        except ValueError:
            raise HTTPError(
                422, f'logIndex in query must be of type int64: "{values[0]}"', {"code": _INVALID_TYPE_CODE}
            ) from None
        if log_index < 0:
            raise HTTPError(
                422, "logIndex in query should be greater than or equal to 0", {"code": _MIN_CODE}
            )
        knobs = self._knobs()
        with self._log_lock:
            index = log_index - knobs.index_offset
            if not 0 <= index < len(self._entries):
                return _not_found()
            answer = self._entry_answer(self._entries[index], knobs)
        return 200, answer, "application/json", {}

    def _get_by_uuid(self, entry_id: str) -> Reply:
        if not _UUID.fullmatch(entry_id):
            raise HTTPError(422, f"entryUUID in path should match '{_UUID_PATTERN}'", {"code": _PATTERN_CODE})
        knobs = self._knobs()
        with self._log_lock:
            entry = self._find(entry_id)
            if entry is None:
                return _not_found()
            answer = self._entry_answer(entry, knobs)
        return 200, answer, "application/json", {}

    def _retrieve(self, headers: Any, body: bytes) -> Reply:
        query = self._json_body(headers, body, "entry")
        if not isinstance(query, dict):
            raise HTTPError(400, 'parsing entry body from "" failed, because it is not a JSON object')
        uuids = query.get("entryUUIDs") or []
        indices = query.get("logIndexes") or []
        proposed = query.get("entries") or []
        if not all(isinstance(v, list) for v in (uuids, indices, proposed)):
            raise HTTPError(400, "entryUUIDs, logIndexes and entries must be arrays")
        if len(uuids) + len(indices) + len(proposed) > _MAX_SEARCH_QUERIES:
            raise HTTPError(422, f"more than max allowed {_MAX_SEARCH_QUERIES} entries in request")
        leaves: list[bytes] = []
        for entry_id in uuids:
            if not isinstance(entry_id, str) or not _UUID.fullmatch(entry_id):
                raise HTTPError(400, f"invalid entryID {entry_id}")
        for item in proposed:
            try:
                leaves.append(_leaf_hash(_canonicalize(item, mismatch=False)))
            except _BadEntry as err:
                raise HTTPError(400, str(err)) from err
        for log_index in indices:
            if not isinstance(log_index, int) or isinstance(log_index, bool) or log_index < 0:
                raise HTTPError(422, "logIndexes in body should be greater than or equal to 0")
        knobs = self._knobs()
        found: list[RekorEntry] = []
        with self._log_lock:
            for entry_id in uuids:
                if (entry := self._find(entry_id)) is not None:
                    found.append(entry)
            for leaf in leaves:
                if (index := self._by_leaf.get(leaf)) is not None:
                    found.append(self._entries[index])
            for log_index in indices:
                index = log_index - knobs.index_offset
                if 0 <= index < len(self._entries):
                    found.append(self._entries[index])
            answers = [self._entry_answer(entry, knobs) for entry in found]
        # An array, not an object: sent as one pre-encoded line (Go's encoder also ends it with a newline).
        return StreamedAnswer(200, iter([json.dumps(answers, separators=(",", ":")).encode()]))

    def _find(self, entry_id: str) -> RekorEntry | None:
        """The entry a 64-hex UUID or an 80-hex entry ID names (another tree's ID finds nothing)."""
        entry_id = entry_id.lower()
        if len(entry_id) > 64 and entry_id[:_TREE_ID_HEX] != f"{self._tree_id:0{_TREE_ID_HEX}x}":
            return None
        index = self._by_leaf.get(bytes.fromhex(entry_id[-64:]))
        return None if index is None else self._entries[index]

    def _uuid(self, leaf: bytes) -> str:
        return f"{self._tree_id:0{_TREE_ID_HEX}x}{leaf.hex()}"

    # -- signed answers (called with the log lock held, so that size, root and proof agree) --------------

    def _reported_root(self, knobs: _Knobs) -> tuple[int, bytes]:
        size = len(self._tree)
        root = self._tree.root(size)
        if knobs.wrong_root:
            root = root[:-1] + bytes([root[-1] ^ 0x01])
        return size, root

    def _entry_answer(self, entry: RekorEntry, knobs: _Knobs) -> dict[str, Any]:
        size, root = self._reported_root(knobs)
        proof = self._tree.inclusion_proof(entry.index, size)
        anon = {
            "body": _b64(entry.body),
            "integratedTime": entry.integrated_time,
            "logID": self._log_id,
            "logIndex": entry.index + knobs.index_offset,
        }
        # Rekor signs the JCS of exactly these four fields (entries.go signEntry).
        set_key = self._other_key if knobs.bad_set else self._key
        sig = set_key.sign(canonical_json(anon), ec.ECDSA(hashes.SHA256()))
        verification = {
            "inclusionProof": {
                "checkpoint": self._checkpoint(size, root, knobs),
                "hashes": [h.hex() for h in proof],
                "logIndex": entry.index,
                "rootHash": root.hex(),
                "treeSize": size,
            },
            "signedEntryTimestamp": _b64(sig),
        }
        return {entry.uuid: {**anon, "verification": verification}}

    def _checkpoint(self, size: int, root: bytes, knobs: _Knobs) -> str:
        """A C2SP signed note over the checkpoint, as rekor's util.CreateAndSignCheckpoint writes it."""
        note = f"{self.origin}\n{size}\n{_b64(root)}\n"
        sig = self._key.sign(note.encode("utf-8"), ec.ECDSA(hashes.SHA256()))
        hint = bytes.fromhex(self._log_id)[:4]
        if knobs.wrong_key_hint:
            hint = bytes(b ^ 0xFF for b in hint)
        # The signature line names the hostname, not the origin: a note's key name is one word.
        return f"{note}\n\u2014 {self._hostname} {_b64(hint + sig)}\n"

    def _log_info(self) -> dict[str, Any]:
        knobs = self._knobs()
        with self._log_lock:
            size, root = self._reported_root(knobs)
            checkpoint = self._checkpoint(size, root, knobs)
        return {
            "rootHash": root.hex(),
            "signedTreeHead": checkpoint,
            "treeID": str(self._tree_id),
            "treeSize": size,
        }


def _not_found() -> StreamedAnswer:
    # Rekor's 404 for a missing entry has no body at all (go-swagger's NotFound responder).
    return StreamedAnswer(404, iter(()))


# -- validation and canonicalization (rekor pkg/types/hashedrekord/v0.0.1/entry.go) ------------------------


def _canonicalize(proposed: Any, *, mismatch: bool) -> bytes:
    """The canonical body of a proposed ``hashedrekord`` entry; ``mismatch`` swaps in another digest."""
    if not isinstance(proposed, dict):
        raise _BadEntry("proposed entry cannot be nil")
    kind = proposed.get("kind")
    if kind != KIND:
        if kind in _OTHER_KINDS:
            raise _BadEntry(f"entry kind '{kind}' is not enabled for submission on this server")
        raise HTTPError(422, f"invalid kind value: {json.dumps(kind if isinstance(kind, str) else '')}")
    version = proposed.get("apiVersion")
    if version != API_VERSION:
        raise _BadEntry(
            f"{KIND} implementation for version '{version}' not found: "
            f"unable to locate entry for version {version}"
        )
    spec = proposed.get("spec")
    if not isinstance(spec, dict):
        raise _BadEntry("spec in body is required")
    signature, data = spec.get("signature"), spec.get("data")
    if not isinstance(signature, dict):
        raise _BadEntry("signature in body is required")
    if not isinstance(data, dict):
        raise _BadEntry("data in body is required")
    sig = _decode_b64(signature.get("content"), "signature content")
    key_field = signature.get("publicKey")
    key_pem = (
        _decode_b64(key_field.get("content"), "public key content") if isinstance(key_field, dict) else b""
    )
    digest = data.get("hash")
    if not isinstance(digest, dict):
        raise _BadEntry("missing hash")
    algorithm, value = digest.get("algorithm"), digest.get("value")
    if not isinstance(algorithm, str):
        raise _BadEntry("data.hash.algorithm in body is required")
    if algorithm not in _HASHES:
        raise _BadEntry("data.hash.algorithm in body should be one of [sha256 sha384 sha512]")
    if not isinstance(value, str):
        raise _BadEntry("data.hash.value in body is required")
    if not isinstance(key_field, dict):
        raise _BadEntry("missing public key")
    key, canonical_key = _parse_key(key_pem)
    hash_algorithm = _HASHES[algorithm]
    if len(value) != hash_algorithm.digest_size * 2:
        raise _BadEntry("invalid value for hash")
    digest_bytes = _decode_hex(value)
    _verify(sig, key, digest_bytes, hash_algorithm)
    if not _algorithm_allowed(key, algorithm):
        raise _BadEntry(_ALGORITHMS_NOT_ALLOWED)
    if mismatch:
        value = bytes([*digest_bytes[:-1], digest_bytes[-1] ^ 0x01]).hex()
    body = {
        "apiVersion": API_VERSION,
        "kind": KIND,
        "spec": {
            "data": {"hash": {"algorithm": algorithm, "value": value}},
            "signature": {"content": _b64(sig), "publicKey": {"content": _b64(canonical_key)}},
        },
    }
    return canonical_json(body)


def _decode_b64(value: Any, what: str) -> bytes:
    if value is None or value == "":
        return b""
    if not isinstance(value, str):
        raise _BadEntry(f"failed parsing base64 data for {what}: not a string")
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError) as err:
        raise _BadEntry(f"failed parsing base64 data for {what}: {err}") from err


def _decode_hex(value: str) -> bytes:
    for c in value:
        if c not in "0123456789abcdefABCDEF":
            raise _BadEntry(f"encoding/hex: invalid byte: U+{ord(c):04X} {c!r}")
    return bytes.fromhex(value)


def _parse_key(pem: bytes) -> tuple[PublicKeyTypes, bytes]:
    """The key of a PEM public key or certificate, and that PEM re-encoded as Rekor does (by pyca here)."""
    trimmed = pem.strip()
    match = _PEM_BLOCK.search(trimmed)
    if match is None:
        raise _BadEntry("invalid public key: failure decoding PEM")
    if trimmed[match.end() :].strip():
        raise _BadEntry("the Rekor double takes one certificate or one public key, not a chain")
    block_type = match.group(1).decode("ascii", "replace")
    try:
        der = base64.b64decode(b"".join(match.group(2).split()), validate=True)
    except (binascii.Error, ValueError):
        raise _BadEntry("invalid public key: failure decoding PEM") from None
    try:
        if block_type == "PUBLIC KEY":
            key = serialization.load_der_public_key(der)
            spki = key.public_bytes(
                serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
            )
            return key, spki
        if block_type == "CERTIFICATE":
            cert = x509.load_der_x509_certificate(der)
            return cert.public_key(), cert.public_bytes(serialization.Encoding.PEM)
    except (ValueError, UnsupportedAlgorithm) as err:
        raise _BadEntry(f"x509: {err}") from err
    raise _BadEntry(f"invalid public key: cannot handle type {block_type}")


def _verify(sig: bytes, key: PublicKeyTypes, digest: bytes, algorithm: hashes.HashAlgorithm) -> None:
    """Verify ``sig`` over the prehashed ``digest`` as sigstore's verifiers do, or raise _BadEntry."""
    if not sig:
        raise _BadEntry("verifying signature: X509 signature has not been initialized")
    prehashed = Prehashed(algorithm)
    if isinstance(key, ec.EllipticCurvePublicKey):
        message = _BAD_ASN1_SIGNATURE
        try:
            decode_dss_signature(sig)
        except ValueError:
            # sigstore's ECDSA verifier falls back to IEEE P1363 (r || s) when the bytes are not ASN.1.
            if len(sig) > 132 or len(sig) % 2:
                raise _BadEntry(f"verifying signature: {_BAD_P1363_BYTES}") from None
            half = len(sig) // 2
            sig = encode_dss_signature(int.from_bytes(sig[:half]), int.from_bytes(sig[half:]))
            message = _BAD_P1363_SIGNATURE
        try:
            key.verify(sig, digest, ec.ECDSA(prehashed))
        except InvalidSignature:
            raise _BadEntry(f"verifying signature: {message}") from None
        return
    if isinstance(key, rsa.RSAPublicKey):
        try:
            key.verify(sig, digest, padding.PKCS1v15(), prehashed)
        except InvalidSignature:
            raise _BadEntry("verifying signature: crypto/rsa: verification error") from None
        return
    raise _BadEntry(f"verifying signature: the Rekor double cannot verify {type(key).__name__} signatures")


def _algorithm_allowed(key: PublicKeyTypes, algorithm: str) -> bool:
    if isinstance(key, ec.EllipticCurvePublicKey):
        return _EC_HASH.get(key.curve.name) == algorithm
    if isinstance(key, rsa.RSAPublicKey):
        return key.key_size in _RSA_SIZES and algorithm == "sha256"
    return False


# -- python -m entrypoint.testing.rekor ----------------------------------------------------------------------


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m entrypoint.testing.rekor",
        description="Serve a test Rekor v1 transparency log (hashedrekord 0.0.1) until SIGTERM/SIGINT.",
    )
    parser.add_argument("--port", type=int, default=0, help="port on 127.0.0.1 (default: any free port)")
    parser.add_argument("--hostname", default="127.0.0.1", help="the checkpoints' origin host")
    parser.add_argument("--index-offset", type=int, default=0, metavar="N", help="global minus shard index")
    parser.add_argument(
        "--trusted-root",
        metavar="FILE",
        help="merge this log into the tlogs of the trusted_root.json FILE (made if missing) before 'ready'",
    )
    parser.add_argument("--ca-out", metavar="FILE", help="write the serving certificate's CA (PEM) here")
    args = parser.parse_args(argv)

    stop = stop_on_signals()

    try:
        server = RekorDouble(hostname=args.hostname, index_offset=args.index_offset, port=args.port)
        server.start()
    except (ValueError, OSError) as err:
        print(f"rekor: {err}", file=sys.stderr)
        return 2
    try:
        try:
            if args.ca_out:
                with open(args.ca_out, "wb") as f:
                    f.write(server.ca_pem)
            if args.trusted_root:
                server.write_trusted_root(args.trusted_root)
        except OSError as err:
            print(f"rekor: {err}", file=sys.stderr)
            return 2
        serve_until(stop, server.url)
    finally:
        server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
