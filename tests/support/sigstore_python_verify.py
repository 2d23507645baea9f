"""Run by sigstore-python's own interpreter (tests/support/sigstore_python.py), never by the project's:
verify one artifact and its Sigstore bundle with sigstore-python's public API, offline.

    python sigstore_python_verify.py --bundle B --artifact A --trusted-root FILE --identity SAN --issuer URL

Prints one JSON object, ``{"verified": true|false, "error": "...", "sigstore": "<version>"}``, and
exits 0 when verified, 1 when not (2 when the arguments are wrong).  The policy is cosign's and
``entrypoint verify``'s: the SAN, and the issuer in both of Fulcio's extensions (1.1 and 1.8).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

# This file's folder holds tests/support/sigstore.py, which would shadow the real package: the
# helper runs it with ``python -I`` (no script folder on the path), and this makes sure of it.
_HERE = str(Path(__file__).resolve().parent)
sys.path[:] = [p for p in sys.path if p and str(Path(p).resolve()) != _HERE]


def main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(prog="sigstore_python_verify")
    for name in ("--bundle", "--artifact", "--trusted-root", "--identity", "--issuer"):
        p.add_argument(name, required=True)
    args = p.parse_args(argv)

    # Only sigstore-python's environment has these; the project's mypy sees none of them.
    import sigstore  # type: ignore[import-not-found]
    from sigstore.errors import Error  # type: ignore[import-not-found]
    from sigstore.models import Bundle, TrustedRoot  # type: ignore[import-not-found]
    from sigstore.verify import Verifier, policy  # type: ignore[import-not-found]

    result: dict[str, object] = {"sigstore": sigstore.__version__}
    try:
        root = TrustedRoot.from_file(args.trusted_root)
        bundle = Bundle.from_json(Path(args.bundle).read_bytes())
        verifier = Verifier(trusted_root=root)
        verifier.verify_artifact(
            Path(args.artifact).read_bytes(),
            bundle,
            policy.AllOf(
                [
                    policy.Identity(identity=args.identity, issuer=args.issuer),
                    policy.OIDCIssuerV2(args.issuer),
                ]
            ),
        )
    except (Error, ValueError, OSError) as exc:
        # sigstore's VerificationError and InvalidBundle are Errors; pydantic's and a model's
        # validation errors are ValueErrors.  Anything else is a crash, with its traceback.
        result.update(verified=False, error=f"{type(exc).__name__}: {exc}")
        print(json.dumps(result))
        return 1
    result.update(verified=True, error="")
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
