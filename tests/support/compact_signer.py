"""An independent signer of the compact format (cs1, and cs2's statement), written from
docs/compact-format.md §3-§5 and §8 alone:
agreeing with the document, not with the shared codec, is what the tests check.
"""

from __future__ import annotations

import base64
import hashlib
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

from entrypoint.termination import RunResult
from entrypoint.testing.ca import Svid


def b64u(data: bytes) -> str:
    """§3: base64url without padding (RFC 4648 §5)."""
    return base64.urlsafe_b64encode(data).decode("ascii").rstrip("=")


def jcs_string(text: str) -> str:
    """§4: escape only '"', '\\' and U+0000-U+001F; everything else raw."""
    short = {'"': '\\"', "\\": "\\\\", "\b": "\\b", "\t": "\\t", "\n": "\\n", "\f": "\\f", "\r": "\\r"}
    out = []
    for ch in text:
        if ch in short:
            out.append(short[ch])
        elif ord(ch) < 0x20:
            out.append(f"\\u{ord(ch):04x}")
        else:
            out.append(ch)
    return '"' + "".join(out) + '"'


def as_controller(entries: Sequence[RunResult]) -> list[RunResult]:
    """§4: drop all-empty entries, keep the last per key, sort by key as UTF-8 bytes."""
    last: dict[str, RunResult] = {}
    for e in entries:
        if e.key or e.value or e.resource_name or e.type:
            last[e.key] = e
    return sorted(last.values(), key=lambda e: e.key.encode())


def statement_bytes(entries: Sequence[RunResult], *, step: str, signed_at: int, chain_sha256: bytes) -> bytes:
    """§4, written out by hand rather than with a JSON library."""
    listed = [
        '{"digest":"' + hashlib.sha256(e.value.encode()).hexdigest() + '","name":' + jcs_string(e.key)
        + ',"type":' + str(e.type) + "}"
        for e in as_controller(entries)
        if e.key != "SIGNATURE"
    ]  # fmt: skip
    text = (
        '{"entries":[' + ",".join(listed) + '],"format":"cs1","material":"' + chain_sha256.hex()
        + '","signedAt":' + str(signed_at) + ',"step":' + jcs_string(step) + "}"
    )  # fmt: skip
    return text.encode("utf-8")


def statement_bytes_v2(
    entries: Sequence[RunResult],
    *,
    step: str,
    signed_at: int,
    chain_sha256: bytes,
    exit_code: int | None,
    started_at: int | None,
) -> bytes:
    """§8: cs2's statement, by hand: no type-3 entries, and the exit code and start time."""
    listed = [
        '{"digest":"' + hashlib.sha256(e.value.encode()).hexdigest() + '","name":' + jcs_string(e.key)
        + ',"type":' + str(e.type) + "}"
        for e in as_controller(entries)
        if e.key != "SIGNATURE" and e.type != 3
    ]  # fmt: skip

    def number(n: int | None) -> str:
        return "null" if n is None else str(n)

    text = (
        '{"entries":[' + ",".join(listed) + '],"exitCode":' + number(exit_code) + ',"format":"cs2",'
        + '"material":"' + chain_sha256.hex() + '","signedAt":' + str(signed_at)
        + ',"startedAt":' + number(started_at) + ',"step":' + jcs_string(step) + "}"
    )  # fmt: skip
    return text.encode("utf-8")


def jose_sign(key: Any, data: bytes) -> tuple[str, bytes]:
    """§3: the JOSE algorithm for the key, ECDSA as fixed-size r || s."""
    if isinstance(key, ec.EllipticCurvePrivateKey):
        alg, digest, size = (
            ("ES256", hashes.SHA256(), 32)
            if key.curve.name == "secp256r1"
            else ("ES384", hashes.SHA384(), 48)
        )
        r, s = decode_dss_signature(key.sign(data, ec.ECDSA(digest)))
        return alg, r.to_bytes(size, "big") + s.to_bytes(size, "big")
    if isinstance(key, rsa.RSAPrivateKey):
        return "RS256", key.sign(data, padding.PKCS1v15(), hashes.SHA256())
    if isinstance(key, ed25519.Ed25519PrivateKey):
        return "EdDSA", key.sign(data)
    raise TypeError(type(key).__name__)


@dataclass(frozen=True)
class Parts:
    """The six fields of a signature value (§3), to tamper with one at a time."""

    step: str
    signed_at: str
    alg: str
    signature: str
    material: str

    def value(self) -> str:
        return ".".join(("cs1", self.step, self.signed_at, self.alg, self.signature, self.material))


def sign_parts(
    entries: Sequence[RunResult],
    svid: Svid,
    *,
    step: str = "1",
    signed_at: int | None = None,
    ref: bool = False,
    chain: bytes | None = None,
) -> Parts:
    der = svid.chain_der() if chain is None else chain
    digest = hashlib.sha256(der).digest()
    when = int(time.time()) if signed_at is None else signed_at
    alg, signature = jose_sign(
        svid.key, statement_bytes(entries, step=step, signed_at=when, chain_sha256=digest)
    )
    material = f"x509-ref:{b64u(digest)}" if ref else f"x509:{b64u(der)}"
    return Parts(step, str(when), alg, b64u(signature), material)


def sign(entries: Sequence[RunResult], svid: Svid, **kw: Any) -> list[RunResult]:
    """The entries followed by the SIGNATURE entry (§2)."""
    return [*entries, RunResult("SIGNATURE", sign_parts(entries, svid, **kw).value(), 1)]


RESULTS = [
    RunResult("IMAGE_DIGEST", "sha256:" + "0" * 62 + "42", 1),
    RunResult("IMAGE_URL", "registry.example/app", 1),
    RunResult("list", '["a,b"]', 1),
    RunResult("s", "step-value", 4),
    RunResult("StartedAt", "2026-11-22T10:00:00.000Z", 3),
]


def replace(entries: Sequence[RunResult], key: str, **changes: Any) -> list[RunResult]:
    def changed(e: RunResult) -> RunResult:
        fields = {"key": e.key, "value": e.value, "type": e.type, **changes}
        return RunResult(fields["key"], fields["value"], fields["type"])

    return [changed(e) if e.key == key else e for e in entries]
