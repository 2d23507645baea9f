"""A Sigstore bundle (v0.3, protobuf-specs JSON) of what a signed message logged to Rekor v1, for
``entrypoint sigstore-bundle`` (docs/sigstore.md): sigstore-python and cosign verify it against the
same trusted root and identity policy as ``entrypoint verify`` does the message.

The message carries only the compact record (``rk1``); the bundle also needs the entry's inclusion
proof and a signed checkpoint, which the log gives on ``GET /api/v1/log/entries?logIndex=N``.  Before
anything is written, the entry the log returns is held against the message: its body is the one
rebuilt from the artifact, the signature and the certificate; its index, time and log ID are the
record's; its inclusion proof (RFC 9162 §2.1.3.2) leads to the root hash it states; its checkpoint
names that tree size and root and is signed under the log's key hint.  With a trusted root, the
checkpoint's signature, the record's SET and the fresh SET also verify with the log's key.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import hashlib
from dataclasses import dataclass
from typing import Any

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding

from entrypoint._internal.backends.sigstore import common as c
from entrypoint._internal.backends.sigstore import rekor
from entrypoint._internal.backends.sigstore.artifact import LoggedArtifact
from entrypoint._internal.backends.sigstore.http import JsonClient, SigstoreServerError
from entrypoint._internal.backends.sigstore.trust import TrustedRoot
from entrypoint.errors import SigningError, VerificationError

MEDIA_TYPE = "application/vnd.dev.sigstore.bundle.v0.3+json"
KIND_VERSION = {"kind": "hashedrekord", "version": "0.0.1"}
DEFAULT_TIMEOUT = 30.0
# A signed note's signature line (C2SP signed-note): an em dash, the key name, base64 of the
# 4-byte key hint followed by the signature.
_SIGNATURE_PREFIX = "\u2014 "


class SigstoreBundleError(VerificationError):
    """No bundle could be made: Rekor did not answer, or its entry, inclusion proof or checkpoint
    does not match the message's record; the text names the entry and the reason."""


@dataclass(frozen=True)
class Checkpoint:
    """A Rekor checkpoint (a C2SP signed note): the signed text and what it says."""

    note: bytes  # the signed text: every line up to the blank one, each ending in a newline
    origin: str
    tree_size: int
    root_hash: bytes
    signatures: tuple[tuple[str, bytes, bytes], ...]  # (key name, 4-byte key hint, signature)

    @property
    def hostname(self) -> str:
        """The log's hostname: Rekor's origin is ``<hostname> - <tree ID>``."""
        return self.origin.split(" ", 1)[0]


def parse_checkpoint(text: str) -> Checkpoint:
    """ValueError says what is malformed."""
    note, sep, block = text.partition("\n\n")
    if not sep or "\n\n" in block:
        raise ValueError("the checkpoint is not a signed note (one blank line before the signatures)")
    lines = note.split("\n")
    if len(lines) < 3 or not lines[0]:
        raise ValueError("the checkpoint has no origin, tree size and root hash")
    origin, size, root = lines[:3]
    if not (size.isascii() and size.isdigit() and (size == "0" or size[0] != "0")):
        raise ValueError(f"the checkpoint's tree size {size!r} is not a decimal")
    try:
        root_hash = base64.b64decode(root, validate=True)
    except (binascii.Error, ValueError):
        raise ValueError("the checkpoint's root hash is not base64") from None
    if not block.endswith("\n"):
        raise ValueError("the checkpoint's signatures do not end with a newline")
    signatures = []
    for line in block[:-1].split("\n"):
        fields = line.removeprefix(_SIGNATURE_PREFIX).split(" ")
        if not line.startswith(_SIGNATURE_PREFIX) or len(fields) != 2 or not fields[0]:
            raise ValueError(f"the checkpoint's signature line {line[:80]!r} is not '\u2014 <name> <base64>'")
        try:
            raw = base64.b64decode(fields[1], validate=True)
        except (binascii.Error, ValueError):
            raise ValueError(f"the checkpoint's signature by {fields[0]!r} is not base64") from None
        if len(raw) < 5:
            raise ValueError(f"the checkpoint's signature by {fields[0]!r} is too short")
        signatures.append((fields[0], raw[:4], raw[4:]))
    return Checkpoint((note + "\n").encode("utf-8"), origin, int(size), root_hash, tuple(signatures))


def leaf_hash(body: bytes) -> bytes:
    """RFC 6962's hash of a log entry (a leaf)."""
    return hashlib.sha256(b"\x00" + body).digest()


def inclusion_root(leaf: bytes, index: int, tree_size: int, path: list[bytes]) -> bytes:
    """The root that ``path`` (the leaf's sibling first) leads to from ``leaf`` at ``index`` in a tree
    of ``tree_size`` leaves, by RFC 9162 §2.1.3.2.  ValueError when the path cannot be such a proof."""
    if not 0 <= index < tree_size:
        raise ValueError(f"leaf {index} is not in a tree of {tree_size}")
    fn, sn, r = index, tree_size - 1, leaf
    for p in path:
        if sn == 0:
            raise ValueError("the inclusion proof has more hashes than the tree has levels")
        if fn & 1 or fn == sn:
            r = hashlib.sha256(b"\x01" + p + r).digest()
            while fn and not fn & 1:
                fn, sn = fn >> 1, sn >> 1
        else:
            r = hashlib.sha256(b"\x01" + r + p).digest()
        fn, sn = fn >> 1, sn >> 1
    if sn != 0:
        raise ValueError("the inclusion proof has fewer hashes than the tree has levels")
    return r


@dataclass(frozen=True)
class _Entry:
    body: bytes
    log_index: int
    integrated_time: int
    log_id: bytes
    set_: bytes
    proof_index: int
    tree_size: int
    root_hash: bytes
    hashes: list[bytes]
    checkpoint: str


def _integer(value: object, what: str) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise ValueError(f"{what} is not a non-negative integer")
    return value


def _hex32(value: object, what: str) -> bytes:
    if not isinstance(value, str) or len(value) != 64:
        raise ValueError(f"{what} is not a hex SHA-256")
    try:
        return bytes.fromhex(value)
    except ValueError:
        raise ValueError(f"{what} is not a hex SHA-256") from None


def _parse_entry(entry: dict[str, Any]) -> _Entry:
    """ValueError names the field."""
    try:
        verification = entry["verification"]
        proof = verification["inclusionProof"]
        hashes = proof["hashes"]
        if not isinstance(hashes, list):
            raise ValueError("inclusionProof.hashes is not a list")
        checkpoint = proof["checkpoint"]
        if not isinstance(checkpoint, str):
            raise ValueError("inclusionProof.checkpoint is not a string")
        return _Entry(
            body=base64.b64decode(entry["body"], validate=True),
            log_index=_integer(entry["logIndex"], "logIndex"),
            integrated_time=_integer(entry["integratedTime"], "integratedTime"),
            log_id=_hex32(entry["logID"], "logID"),
            set_=base64.b64decode(verification["signedEntryTimestamp"], validate=True),
            proof_index=_integer(proof["logIndex"], "inclusionProof.logIndex"),
            tree_size=_integer(proof["treeSize"], "inclusionProof.treeSize"),
            root_hash=_hex32(proof["rootHash"], "inclusionProof.rootHash"),
            hashes=[_hex32(h, "inclusionProof.hashes[]") for h in hashes],
            checkpoint=checkpoint,
        )
    except KeyError as exc:
        raise ValueError(f"no {exc.args[0]}") from None
    except (TypeError, binascii.Error) as exc:
        raise ValueError(f"a field is not base64: {exc}") from None


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def build_bundle(
    logged: LoggedArtifact,
    entry: dict[str, Any],
    *,
    trusted_root: TrustedRoot | None = None,
    what: str = "rekor",
) -> dict[str, Any]:
    """The bundle of ``logged`` with the log's ``entry`` (one value of a ``GET
    /api/v1/log/entries?logIndex=N`` answer), once the entry is the record's; SigstoreBundleError
    otherwise.  ``what`` names the log in errors."""
    record = logged.record
    name = f"{what}: entry {record.log_index}"
    try:
        got = _parse_entry(entry)
    except ValueError as exc:
        raise SigstoreBundleError(f"{name}: unusable answer: {exc}") from None
    for field, mine, theirs in (
        ("logIndex", record.log_index, got.log_index),
        ("integratedTime", record.integrated_time, got.integrated_time),
        ("logID", record.log_id.hex(), got.log_id.hex()),
    ):
        if mine != theirs:
            raise SigstoreBundleError(
                f"{name}: the log answers {field} {theirs}, the message's record {mine}"
            )
    try:
        leaf = x509.load_der_x509_certificate(logged.leaf_der)
    except ValueError:
        raise SigstoreBundleError(f"{name}: the message's certificate is not DER") from None
    digest = hashlib.sha256(logged.artifact).digest()
    expected = c.hashedrekord_body(digest, logged.signature_der, leaf.public_bytes(Encoding.PEM))
    if got.body != expected:
        raise SigstoreBundleError(f"{name}: the log's entry is not the one the message logged (another body)")
    try:
        computed = inclusion_root(leaf_hash(got.body), got.proof_index, got.tree_size, got.hashes)
    except ValueError as exc:
        raise SigstoreBundleError(f"{name}: the inclusion proof is malformed: {exc}") from None
    if computed != got.root_hash:
        raise SigstoreBundleError(
            f"{name}: the inclusion proof leads to root {computed.hex()}, not to the root hash "
            f"{got.root_hash.hex()} the log states"
        )
    _check_checkpoint(got, name, trusted_root)
    if trusted_root is not None:
        _check_sets(logged, got, expected, leaf, trusted_root, name)
    return {
        "mediaType": MEDIA_TYPE,
        "verificationMaterial": {
            "certificate": {"rawBytes": _b64(logged.leaf_der)},
            "tlogEntries": [
                {
                    "logIndex": str(got.log_index),
                    "logId": {"keyId": _b64(got.log_id)},
                    "kindVersion": dict(KIND_VERSION),
                    "integratedTime": str(got.integrated_time),
                    "inclusionPromise": {"signedEntryTimestamp": _b64(record.set)},
                    "inclusionProof": {
                        "logIndex": str(got.proof_index),
                        "rootHash": _b64(got.root_hash),
                        "treeSize": str(got.tree_size),
                        "hashes": [_b64(h) for h in got.hashes],
                        "checkpoint": {"envelope": got.checkpoint},
                    },
                    "canonicalizedBody": _b64(got.body),
                }
            ],
        },
        "messageSignature": {
            "messageDigest": {"algorithm": "SHA2_256", "digest": _b64(digest)},
            "signature": _b64(logged.signature_der),
        },
    }


def _check_checkpoint(got: _Entry, name: str, trusted_root: TrustedRoot | None) -> None:
    try:
        checkpoint = parse_checkpoint(got.checkpoint)
    except ValueError as exc:
        raise SigstoreBundleError(f"{name}: {exc}") from None
    if checkpoint.tree_size != got.tree_size or checkpoint.root_hash != got.root_hash:
        raise SigstoreBundleError(
            f"{name}: the checkpoint is for tree size {checkpoint.tree_size} and root "
            f"{checkpoint.root_hash.hex()}, the inclusion proof for {got.tree_size} and {got.root_hash.hex()}"
        )
    hint = got.log_id[:4]
    signatures = [s for n, h, s in checkpoint.signatures if n == checkpoint.hostname and h == hint]
    if not signatures:
        raise SigstoreBundleError(
            f"{name}: the checkpoint has no signature by {checkpoint.hostname!r} with the log's key hint "
            f"{hint.hex()}"
        )
    if trusted_root is None:
        return
    key = _log_key(got, trusted_root, name)
    for signature in signatures:
        try:
            key.verify(signature, checkpoint.note, ec.ECDSA(hashes.SHA256()))
        except InvalidSignature:
            continue
        return
    raise SigstoreBundleError(f"{name}: the checkpoint's signature does not verify with the log's key")


def _log_key(got: _Entry, trusted_root: TrustedRoot, name: str) -> ec.EllipticCurvePublicKey:
    when = dt.datetime.fromtimestamp(got.integrated_time, dt.UTC) if got.integrated_time < 2**40 else None
    log = trusted_root.tlog(got.log_id, when) if when is not None else None
    if log is None:
        raise SigstoreBundleError(
            f"{name}: log {got.log_id.hex()} is not in {trusted_root.source} "
            "(or not trusted at its integrated time)"
        )
    if not isinstance(log.key, ec.EllipticCurvePublicKey):
        raise SigstoreBundleError(f"{name}: only ECDSA log keys are supported")
    return log.key


def _check_sets(
    logged: LoggedArtifact,
    got: _Entry,
    body: bytes,
    leaf: x509.Certificate,
    trusted_root: TrustedRoot,
    name: str,
) -> None:
    """The message's SET (the one the bundle carries) and the log's fresh one both verify."""
    fresh = c.LogRecord(got.log_index, got.integrated_time, got.log_id, got.set_)
    for which, record in (("the message's", logged.record), ("the log's fresh", fresh)):
        try:
            rekor.check_record(record, body, trusted_root, leaf, what=name)
        except SigstoreServerError as exc:
            raise SigstoreBundleError(f"{exc} ({which} signed entry timestamp)") from None


def fetch_bundle(
    logged: LoggedArtifact,
    rekor_url: str,
    *,
    ca_file: str = "",
    trusted_root: TrustedRoot | None = None,
    timeout: float = DEFAULT_TIMEOUT,
) -> dict[str, Any]:
    """Fetch the record's entry with a fresh inclusion proof from the Rekor v1 log at ``rekor_url``
    (its TLS trusting ``ca_file``, else the system's CAs) and make the bundle; SigstoreBundleError
    with the URL and the server's reason otherwise."""
    try:
        client = JsonClient(rekor_url, ca_file=ca_file, what="rekor")
    except SigningError as exc:
        raise SigstoreBundleError(str(exc)) from None
    try:
        try:
            entry = rekor.entry_by_index(client, logged.record.log_index, timeout=timeout)
        except SigstoreServerError as exc:
            if exc.status == 404:
                raise SigstoreBundleError(
                    f"{exc} (no entry {logged.record.log_index} in this log, or not a Rekor v1 log)"
                ) from None
            raise SigstoreBundleError(str(exc)) from None
        except SigningError as exc:  # e.g. an unreadable CA file
            raise SigstoreBundleError(str(exc)) from None
        return build_bundle(logged, entry, trusted_root=trusted_root, what=f"rekor {client.base_url}")
    finally:
        client.close()
