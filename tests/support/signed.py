"""Signed termination messages of any wire format and backend, made in-process by the project's own
signer, with the verifier and the TaskRun that accept them: the starting point of tests that change
one thing about a genuine message and check what the verifier makes of it.

Contract tests that must not trust the project's signer use the independent signers
(:mod:`tests.support.tekton_signer`, :mod:`tests.support.compact_signer`) instead.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from cryptography.hazmat.primitives.asymmetric import ec

from entrypoint._internal.backends.k8s_sat.evidence import token_identity
from entrypoint._internal.backends.spire.evidence import x509_identity
from entrypoint._internal.signing.compact_format import CompactFormat
from entrypoint._internal.signing.identity import Identity
from entrypoint._internal.signing.tekton_format import TektonFormat
from entrypoint.termination import RunResult
from entrypoint.testing.ca import Svid, TestCA
from entrypoint.verify import TaskRunRef, TrustBundle, TrustSet, Verdict, Verifier
from tests.support import tokens
from tests.support.messages import message
from tests.support.pki import NS, SPIFFE_ID, TASKRUN, TD

FORMATS = ("tekton", "compact")
BACKENDS = ("spire", "k8s_sat")
# Two task results, one step result and an internal entry: what a typical step writes.
RESULTS = (
    RunResult("commit", "0a1b2c3d", 1),
    RunResult("image", "sha256:" + "ab" * 32, 1),
    RunResult("notes", "built", 4),
    RunResult("StartedAt", "2026-12-03T10:00:00.000Z", 3),
)


@dataclass(frozen=True)
class SignedMessage:
    """A genuine signed message, with the verifier and the TaskRun it verifies against."""

    fmt: str
    backend: str
    entries: tuple[RunResult, ...]
    verifier: Verifier
    taskrun: TaskRunRef
    svid: Svid | None = None  # the SPIRE backend's identity, for messages of another step

    def text(self, entries: Sequence[RunResult] | None = None, *, compressed: bool = False) -> str:
        """The termination message of ``entries`` (default: the genuine ones) as a step writes it."""
        return message(self.entries if entries is None else entries, compressed=compressed)

    def verify(self, entries: Sequence[RunResult] | None = None, **taskrun: Any) -> Verdict:
        """The verdict on ``entries`` (default: the genuine ones) parsed from their message, as the
        controller would read them; ``taskrun`` changes the TaskRun they are checked against."""
        ref = dataclasses.replace(self.taskrun, **taskrun) if taskrun else self.taskrun
        return self.verifier.verify_message(self.text(entries), ref)

    def replaced(self, key: str, value: str) -> list[RunResult]:
        """The genuine entries with ``key``'s value changed (it must be there)."""
        assert key in {e.key for e in self.entries}, key
        return [RunResult(e.key, value, e.type) if e.key == key else e for e in self.entries]


SignedMessageFactory = Callable[..., SignedMessage]


def sign_entries(
    fmt: str, entries: list[RunResult], identity: Identity, step: str, exit_code: int | None
) -> tuple[RunResult, ...]:
    if fmt == "tekton":
        return (*entries, *TektonFormat().sign(entries, identity))
    [option] = CompactFormat(step).seal_options(entries, identity, frozenset(), exit_code=exit_code)
    return tuple(option)


def make_signed_message(
    ca: TestCA,
    issuer: tokens.Issuer,
    fmt: str = "tekton",
    backend: str = "spire",
    *,
    results: Sequence[RunResult] = RESULTS,
    step: str = "0",
    spiffe_id: str = SPIFFE_ID,
    key_type: str = "ec-p256",
    not_before: dt.datetime | None = None,
    ttl: dt.timedelta = dt.timedelta(hours=1),
    claims: dict[str, Any] | None = None,
    svid: Svid | None = None,
    exit_code: int | None = 0,
) -> SignedMessage:
    """A message of ``results`` signed in ``fmt`` by ``backend``'s identity: an SVID of ``spiffe_id``
    from ``ca`` (``key_type``, validity from ``not_before`` for ``ttl``), or a pod-bound token from
    ``issuer`` with ``claims`` changed.  ``exit_code``: the step's exit status, which the compact
    format binds."""
    if fmt not in FORMATS or backend not in BACKENDS:
        raise ValueError(f"no such format or backend: {fmt!r}, {backend!r}")
    entries = list(results)
    if backend == "spire":
        # ``svid``: one already issued, as every step of a pod shares its SVID.
        svid = svid or ca.issue_svid(spiffe_id, key_type=key_type, not_before=not_before, ttl=ttl)
        identity = x509_identity(svid.key, svid.chain, "test")
        trust = TrustSet(spiffe=TrustBundle(TD, ca.bundle))
        ref = TaskRunRef(NS, TASKRUN, step=step if fmt == "compact" else None)
    else:
        svid = None
        key = ec.generate_private_key(ec.SECP256R1())
        token = issuer.token(key, **(claims or {}))
        identity = token_identity(key, token, dt.datetime.now(dt.UTC), "test")
        trust = TrustSet(kube=issuer.jwks())
        ref = TaskRunRef(
            tokens.NS,
            tokens.TR,
            pod_uid=tokens.POD_UID,
            service_account=tokens.SA,
            step=step if fmt == "compact" else None,
        )
    return SignedMessage(
        fmt, backend, sign_entries(fmt, entries, identity, step, exit_code), Verifier(trust), ref, svid
    )
