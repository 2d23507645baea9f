"""An independent signer of Tekton's format (spec §5.3, §7.4-7.6), written from the contract, not
from entrypoint._internal.signing: agreeing with the contract is what the verifier tests check.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Sequence
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed448, ed25519, padding, rsa

from entrypoint.termination import RunResult
from entrypoint.testing.ca import Svid


def canonical(raw: str) -> str:
    """§7.5 for the plain values these tests use (no Go-JSON corner cases)."""
    if raw == "":
        return ""
    try:
        decoded = json.loads(raw)
    except ValueError:
        return raw
    if raw[0] == "[" and isinstance(decoded, list) and all(v is None or isinstance(v, str) for v in decoded):
        return ",".join(v or "" for v in decoded)
    if (
        raw[0] == "{"
        and isinstance(decoded, dict)
        and all(v is None or isinstance(v, str) for v in decoded.values())
    ):
        return ",".join(part for k in sorted(decoded) for part in (k, decoded[k] or ""))
    if decoded is None:
        return ""
    if isinstance(decoded, str):
        return decoded
    return raw


def raw_sign(key: Any, data: bytes) -> bytes:
    if isinstance(key, ec.EllipticCurvePrivateKey):
        return key.sign(data, ec.ECDSA(hashes.SHA256()))
    if isinstance(key, rsa.RSAPrivateKey):
        return key.sign(data, padding.PKCS1v15(), hashes.SHA256())
    if isinstance(key, ed25519.Ed25519PrivateKey | ed448.Ed448PrivateKey):
        return key.sign(data)  # pure, as Tekton's verifier expects
    raise TypeError(type(key).__name__)


def pem(cert: x509.Certificate) -> str:
    body = base64.b64encode(cert.public_bytes(serialization.Encoding.DER)).decode()
    lines = "".join(body[i : i + 64] + "\n" for i in range(0, len(body), 64))
    return f"-----BEGIN CERTIFICATE-----\n{lines}-----END CERTIFICATE-----\n"


def b64sig(key: Any, text: str) -> str:
    return base64.b64encode(raw_sign(key, text.encode())).decode()


def sign(entries: Sequence[RunResult], key: Any, svid_pem: str) -> list[RunResult]:
    """The entries followed by what Tekton's Sign appends (§7.4)."""
    task = [e for e in entries if e.type == 1]
    out = [*entries, RunResult("SVID", svid_pem, 1)]
    out += [RunResult(f"{e.key}.sig", b64sig(key, canonical(e.value)), 1) for e in task]
    manifest = ",".join(e.key for e in task if not e.key.endswith(".sig") and e.key != "SVID")
    out.append(RunResult("RESULT_MANIFEST", manifest, 1))
    out.append(RunResult("RESULT_MANIFEST.sig", b64sig(key, manifest), 1))
    return out


def sign_svid(entries: Sequence[RunResult], svid: Svid, *, with_chain: bool = False) -> list[RunResult]:
    text = "".join(pem(c) for c in svid.chain) if with_chain else pem(svid.leaf)
    return sign(entries, svid.key, text)


def keys(results: Sequence[RunResult]) -> list[str]:
    return [r.key for r in results]


FOO_BAR = [RunResult("foo", "foo-value", 1), RunResult("bar", "bar-value", 1)]


def replace(entries: list[RunResult], key: str, value: str) -> list[RunResult]:
    assert key in keys(entries)
    return [RunResult(e.key, value, e.type) if e.key == key else e for e in entries]
