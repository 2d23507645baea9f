"""Write docs/compact-example-cs2.json: a complete, verifiable cs2 message (docs/compact-format.md §7,
§8), as the entrypoint signs today.  docs/compact-example.json is the same example in cs1, written by
this tool before the entrypoint moved to cs2 (commit afb775d) and kept as the version-1 fixture.

Everything an independent verifier needs is in the file: the message, the trust bundle, the
statement bytes, the digests, and the time to verify at (the example's SVID has long expired).
Run: .venv/bin/python tools/compact_example.py
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from cryptography.hazmat.primitives.serialization import Encoding  # noqa: E402

from entrypoint._internal.backends.spire.evidence import X509Evidence, x509_identity  # noqa: E402
from entrypoint._internal.formats.compact import (  # noqa: E402
    SIGNATURE_KEY,
    SignatureValue,
    controller_view,
    statement_for,
)
from entrypoint._internal.signing.compact_format import CompactFormat  # noqa: E402
from entrypoint.termination import RunResult, encode_message  # noqa: E402
from entrypoint.testing.ca import TestCA  # noqa: E402

OUT = REPO / "docs" / "compact-example-cs2.json"


def main() -> int:
    signed = dt.datetime(2026, 11, 22, 10, 0, 0, tzinfo=dt.UTC)
    ca = TestCA("example.org")
    svid = ca.issue_svid(
        "spiffe://example.org/ns/demo/taskrun/build", not_before=signed - dt.timedelta(minutes=1)
    )
    ident = x509_identity(svid.key, svid.chain, svid.spiffe_id)
    entries = [
        RunResult("IMAGE_DIGEST", "sha256:" + "0" * 62 + "42", 1),
        RunResult("StartedAt", "2026-11-22T10:00:00.000Z", 3),
    ]
    fmt = CompactFormat("1", clock=signed.timestamp)  # a fixed signing time: a reproducible document
    sealed = fmt.seal_options(entries, ident, frozenset(), exit_code=0)[0]
    sig = SignatureValue.decode(next(e.value for e in sealed if e.key == SIGNATURE_KEY))
    chain = X509Evidence(svid.chain).chain_der()
    example = {
        "description": "docs/compact-format.md sections 7 and 8 (cs2): verify with namespace demo, name "
        "build, step 1, trust domain example.org, at verifyAt",
        "namespace": "demo",
        "name": "build",
        "step": "1",
        "trustDomain": "example.org",
        "verifyAt": (signed + dt.timedelta(minutes=5)).isoformat().replace("+00:00", "Z"),
        "trustBundlePem": ca.root_cert.public_bytes(Encoding.PEM).decode(),
        "message": encode_message(sealed).decode(),
        "statement": statement_for(sig, controller_view(entries)).decode(),
        "exitCode": sig.exit_code,
        "startedAt": sig.started_at,
        "digests": {e.key: hashlib.sha256(e.value.encode()).hexdigest() for e in entries},
        "materialSha256": hashlib.sha256(chain).hexdigest(),
        "signedAt": sig.signed_at,
    }
    OUT.write_text(json.dumps(example, indent=2) + "\n")
    print(f"wrote {OUT.relative_to(REPO)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
