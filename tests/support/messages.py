"""Termination messages written by hand (spec §5.2, §6.4), for tests that feed them to a verifier or parser.

Independent of :mod:`entrypoint.termination` on purpose: agreeing with the contract, not with the
project's own encoder, is what these tests check.
"""

from __future__ import annotations

import base64
import json
import zlib
from collections.abc import Sequence

from entrypoint.termination import RunResult


def raw_deflate(data: bytes, level: int = 9) -> bytes:
    """Raw DEFLATE (no zlib header or checksum), as Go's ``compress/flate`` writes it."""
    c = zlib.compressobj(level, zlib.DEFLATED, -15)
    return c.compress(data) + c.flush()


def tknz(data: bytes, level: int = 9) -> str:
    """§6.4: ``tknz:`` and the unpadded standard base64 of the raw DEFLATE of ``data``."""
    return "tknz:" + base64.b64encode(raw_deflate(data, level)).decode().rstrip("=")


def message(entries: Sequence[RunResult], *, compressed: bool = False) -> str:
    """The termination message of ``entries`` as JSON (§5.2), optionally compressed (§6.4)."""
    objs = [
        {
            "key": e.key,
            "value": e.value,
            **({"resourceName": e.resource_name} if e.resource_name else {}),
            **({"type": e.type} if e.type else {}),
        }
        for e in entries
    ]
    text = json.dumps(objs, separators=(",", ":"), ensure_ascii=False)
    return tknz(text.encode()) if compressed else text
