"""Tekton termination messages: the entries a step reports, their wire form, and their parsing.

A container's termination message is a JSON array of ``{"key","value","resourceName","type"}``
entries, optionally compressed as ``tknz:`` + unpadded base64 of a raw DEFLATE stream.  Kubernetes
keeps at most 4096 bytes of it.  This module is public: the verifier and controllers use
:func:`parse_message` exactly as Tekton's controller parses the message.
"""

from __future__ import annotations

import os

# Re-exported: the entry types are public here (they live apart so the parser need not import this).
from entrypoint._internal.formats.entries import ResultType, RunResult
from entrypoint._internal.go.json import decode_go_bytes
from entrypoint.errors import MessageLengthError, TerminationMessageError

# Importing only what writing needs keeps a step's start-up short: parsing (json, re), compression
# (zlib, base64) and typing are loaded where they are used.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Sequence
    from typing import Any

__all__ = [
    "COMPRESSED_PREFIX",
    "MAX_DECOMPRESSED_BYTES",
    "MAX_MESSAGE_BYTES",
    "ResultType",
    "RunResult",
    "TerminationFile",
    "check_size",
    "compress",
    "decompress",
    "encode_entries",
    "encode_message",
    "parse_entries",
    "parse_message",
    "read_existing",
    "write_message",
]

MAX_MESSAGE_BYTES = 4096
MAX_DECOMPRESSED_BYTES = 128 * 1024
COMPRESSED_PREFIX = "tknz:"


# -- encoding ----------------------------------------------------------------------------------------


def encode_entries(entries: Iterable[RunResult]) -> bytes:
    """Compact Go JSON of the entries (``[]`` when empty)."""
    return ("[" + ",".join(e.to_json() for e in entries) + "]").encode("utf-8", "surrogatepass")


def compress(json_bytes: bytes) -> bytes:
    import base64
    import zlib

    deflate = zlib.compressobj(9, zlib.DEFLATED, -15)
    raw = deflate.compress(json_bytes) + deflate.flush()
    return COMPRESSED_PREFIX.encode() + base64.b64encode(raw).rstrip(b"=")


def encode_message(entries: Sequence[RunResult], compressed: bool = False) -> bytes:
    """The bytes Tekton would write: compressed only when strictly shorter than the JSON."""
    plain = encode_entries(entries)
    if compressed:
        packed = compress(plain)
        if len(packed) < len(plain):
            return packed
    return plain


def check_size(message: bytes) -> None:
    if len(message) > MAX_MESSAGE_BYTES:
        raise MessageLengthError()


# -- parsing -----------------------------------------------------------------------------------------


def decompress(text: str) -> str:
    """Inverse of :func:`compress` for a message with the ``tknz:`` prefix already removed."""
    import zlib

    from entrypoint._internal.go.json import Base64Error, decode_go_base64

    try:
        raw = decode_go_base64(text.encode("utf-8", "surrogatepass"), padded=False)
    except Base64Error as exc:
        raise TerminationMessageError(f"decompressing termination message: base64 decode: {exc}") from exc
    inflater = zlib.decompressobj(-15)
    try:
        out = inflater.decompress(raw, MAX_DECOMPRESSED_BYTES + 1)
    except zlib.error as exc:
        raise TerminationMessageError(f"decompressing termination message: flate decompress: {exc}") from exc
    if len(out) > MAX_DECOMPRESSED_BYTES:
        raise TerminationMessageError(
            "decompressing termination message: decompressed termination message exceeds "
            f"{MAX_DECOMPRESSED_BYTES} byte limit"
        )
    if not inflater.eof:
        raise TerminationMessageError("decompressing termination message: flate decompress: unexpected EOF")
    return decode_go_bytes(out)


def parse_entries(message: str) -> list[RunResult]:
    """Decompress (if needed) and decode the entries, keeping order and duplicates.

    This is what the entrypoint itself does before appending to an existing file.
    """
    from entrypoint._internal.formats.termparse import decode_entries

    text = message
    if text.startswith(COMPRESSED_PREFIX):
        text = decompress(text[len(COMPRESSED_PREFIX) :])
    return decode_entries(text)


def parse_message(message: str) -> list[RunResult]:
    """Parse a termination message as Tekton's controller does (``termination.ParseMessage``):
    drop all-zero entries, keep the last entry per key whatever its type, sort by key."""
    if message == "":
        return []
    by_key: dict[str, RunResult] = {}
    for entry in parse_entries(message):
        if entry.is_zero():
            continue
        by_key[entry.key] = entry
    return [by_key[k] for k in sorted(by_key, key=lambda k: k.encode("utf-8", "surrogatepass"))]


# -- writing -----------------------------------------------------------------------------------------


def read_existing(path: str, compressed: bool, log: Any = None) -> list[RunResult]:
    """Entries already in the termination file; unparsable content is dropped, as Tekton does."""
    try:
        with open(path, "rb") as f:
            content = decode_go_bytes(f.read())
    except FileNotFoundError:
        return []
    except OSError as exc:
        from entrypoint._internal.go.errors import read_file_error

        raise TerminationMessageError(read_file_error(path, exc)) from exc
    if not content.strip():
        return []
    try:
        return parse_entries(content)
    except TerminationMessageError:
        if compressed and log is not None:
            log("Failed to parse existing termination message, previous results will be lost")
        return []


def write_message(
    path: str, new_entries: Sequence[RunResult], compressed: bool = False, log: Any = None
) -> bytes:
    """Append ``new_entries`` to the termination file at ``path`` (Tekton's ``WriteMessage``).

    The file is rewritten as a whole; if the result would exceed 4096 bytes nothing is written and
    :class:`MessageLengthError` is raised.  Returns the bytes written.
    """
    file = TerminationFile(path, compressed, log)
    file.append(new_entries)
    assert file.written is not None  # append either wrote or raised
    return file.written


class TerminationFile:
    """The termination file of one step, appended to up to three times per run (spec §6.1).

    Each append re-reads the file, as Tekton does, but content this object wrote itself is not
    parsed again: the step's hot path then never loads the JSON decoder.
    """

    def __init__(self, path: str, compressed: bool = False, log: Any = None, own_only: bool = False) -> None:
        self.path = path
        self.compressed = compressed
        self.log = log
        # With a signature over the whole message, the file's content is only what this object
        # wrote: the step can write the termination file too, and whatever it put there would
        # otherwise be signed as if the entrypoint had collected it.
        self.own_only = own_only
        self._written: bytes | None = None
        self._entries: list[RunResult] = []

    @property
    def written(self) -> bytes | None:
        """The bytes of the last successful write by this object."""
        return self._written

    def _existing(self) -> list[RunResult]:
        content: bytes | None = None
        try:
            with open(self.path, "rb") as f:
                content = f.read()
        except OSError:
            content = None
        if self._written is not None and content == self._written:
            return list(self._entries)
        if self.own_only:
            if content and content.strip() and self.log is not None:
                self.log(
                    f"Discarding {len(content)} bytes in {self.path} that the entrypoint did not write: "
                    "a signed message holds only the entries the entrypoint collects"
                )
            return list(self._entries)
        return read_existing(self.path, self.compressed, self.log)

    def append(
        self,
        new_entries: Sequence[RunResult],
        seal: Callable[[list[RunResult]], list[list[RunResult]]] | None = None,
    ) -> list[RunResult]:
        """Append and write; returns the entries written.

        ``seal`` (a signer that covers the whole message) turns the full list into candidate
        lists in order of preference; the first that fits in 4096 bytes is written.
        """
        new = list(new_entries)
        # What the step left in the file loses its empty entries and the ones the new entries
        # supersede: every controller then reads the same message (Tekton before v0.68 erased an
        # empty entry by moving the last one into its place, which changed which duplicate won).
        keys = {e.key for e in new}
        entries = [e for e in self._existing() if not e.is_zero() and e.key not in keys] + new
        candidates = seal(entries) if seal is not None else [entries]
        for candidate in candidates:
            message = encode_message(candidate, self.compressed)
            if len(message) <= MAX_MESSAGE_BYTES:
                _write_file(self.path, message)
                self._written, self._entries = message, candidate
                return candidate
        raise MessageLengthError()


def _write_file(path: str, message: bytes) -> None:
    from entrypoint._internal.go.errors import path_error

    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o666)
    except OSError as exc:
        raise TerminationMessageError(path_error("open", path, exc)) from exc
    try:
        view = memoryview(message)
        while view:
            view = view[os.write(fd, view) :]
        os.fsync(fd)
    except OSError as exc:
        raise TerminationMessageError(path_error("write", path, exc)) from exc
    finally:
        os.close(fd)
