"""Verifying the signed results of a TaskRun: the half of Tekton's SPIRE design (TEP-0089) that
its controller never calls (spec §8.2, field survey §0).

A message signed in Tekton's format (§7.4) is checked in the order of Tekton's verifier, but
stricter where Tekton is lax: the SPIFFE ID's scheme is checked, the trust domain's own bundle is
used (never an arbitrary federated one), intermediates are honoured, keys are checked in a fixed
order, and the chain can be checked at a chosen time so that archived TaskRuns stay verifiable
after their short-lived SVID has expired.  A message signed in the compact format ``cs1``
(docs/compact-format.md) is checked as §6 of that document says; ``step`` and ``companions``
concern it alone.  Every failure, expected or not, yields a verdict that is *not* verified;
nothing here raises on a bad message.

    verifier = Verifier(TrustSet(spiffe=TrustBundle.from_pem_file("bundle.pem", "example.org")))
    verdict = verifier.verify_message(message, TaskRunRef("ns", "build-1"))
    if verdict.verified:
        use(verdict.results)

(``verify_message(message, namespace=..., name=..., trust=...)`` does the same in one call.)
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, TypedDict, Unpack

from cryptography import x509

from entrypoint._internal.backends.k8s_sat.kube import ApiServer, KubeJwks, KubeTokenReview, KubeTrustError
from entrypoint._internal.backends.sigstore.policy import SigstoreTrust
from entrypoint._internal.backends.sigstore.trust import SigstoreTrustError, TrustedRoot
from entrypoint._internal.backends.spire.trust import (
    TrustBundleError,
    check_trust_domain,
    roots_from_pem_file,
    roots_from_workload_api,
)
from entrypoint._internal.verification.formats import detect_format, known_formats
from entrypoint._internal.verification.reasons import Reason, VerificationFailed
from entrypoint._internal.verification.request import Request
from entrypoint._internal.verification.taskrun import (
    StepVerdict,
    TaskRunOutcome,
    TaskRunVerdict,
    verify_taskrun,
)
from entrypoint.termination import RunResult, parse_entries

__all__ = [
    "CONDITION_TYPE",
    "ApiServer",
    "KubeJwks",
    "KubeTokenReview",
    "KubeTrustError",
    "Reason",
    "SigstoreTrust",
    "SigstoreTrustError",
    "StepVerdict",
    "TaskRunOutcome",
    "TaskRunRef",
    "TaskRunVerdict",
    "TrustBundle",
    "TrustBundleError",
    "TrustSet",
    "TrustedRoot",
    "Verdict",
    "Verifier",
    "VerifyOptions",
    "verify_entries",
    "verify_message",
]

# Tekton's API constants (§8.4); nothing in Tekton sets them at this revision.
CONDITION_TYPE = "SignedResultsVerified"
CONDITION_REASON_VERIFIED = "TaskRunResultsVerified"
CONDITION_REASON_FAILED = "TaskRunResultsVerificationFailed"
VERIFIED_MESSAGE = "Successfully verified all spire signed taskrun results"
# Beyond any termination message (4 KiB kept by Kubernetes, tknz: inflated to 128 KiB at most).
MAX_MESSAGE_CHARS = 128 * 1024


@dataclass(frozen=True)
class TrustBundle:
    """The X.509 roots of one SPIFFE trust domain.

    ``roots`` may be empty only for checks that skip the chain (``check_chain=False``), which
    still need the trust domain for the SPIFFE ID.
    """

    trust_domain: str
    roots: tuple[x509.Certificate, ...] = field(default=())

    def __post_init__(self) -> None:
        check_trust_domain(self.trust_domain)
        object.__setattr__(self, "roots", tuple(self.roots))

    @classmethod
    def from_pem_file(cls, path: str, trust_domain: str) -> TrustBundle:
        """Roots from a PEM file of certificates (e.g. ``spire-server bundle show`` output)."""
        check_trust_domain(trust_domain)
        roots = roots_from_pem_file(path)
        if not roots:
            raise TrustBundleError(f"trust bundle {path}: no certificates found")
        return cls(trust_domain, roots)

    @classmethod
    def from_workload_api(cls, address: str, trust_domain: str, timeout: float = 10.0) -> TrustBundle:
        """The current bundle of ``trust_domain`` from a SPIFFE Workload API (``unix:///path``)."""
        check_trust_domain(trust_domain)
        roots = roots_from_workload_api(address, trust_domain, timeout)
        if not roots:
            raise TrustBundleError(
                f"workload API {address}: the bundle of {trust_domain} has no certificates"
            )
        return cls(trust_domain, roots)


@dataclass(frozen=True)
class Verdict:
    """The verifier's answer for one message: verified or why not, who signed, which results."""

    verified: bool
    reason: str  # "Verified" or a failure code of Reason
    message: str
    format: str  # "tekton", "compact", or "" when no known format was recognised
    # Who presented the message, when it could be read: the SPIFFE ID, or the service account and
    # pod of an oidc-sa-token message.
    identity: str | None
    checked_at: dt.datetime  # the time the chain was (or would have been) checked at, UTC
    # What users should see: the entries the signature covers, as the controller would keep them
    # (last entry per key), without the ones that carry the signature.  When not verified: all of
    # them, none of them vouched for.
    results: tuple[RunResult, ...]
    # Entries present but not covered by the signature (Tekton's format signs task results only:
    # step results, internal entries and artifacts travel unsigned beside them).
    unsigned: tuple[RunResult, ...] = ()
    # Bound by the compact format only: the signing step's index and the signing time, e.g. for
    # telling a re-run TaskRun of the same name (same SPIFFE ID) from the original.
    step: str | None = None
    signed_at: dt.datetime | None = None
    # The compact format's version ("cs2", "cs1"), and what cs2 binds of the step's end: the exit
    # code and start time the TaskRun records (None: not bound).
    version: str | None = None
    exit_code: int | None = None
    started_at: dt.datetime | None = None
    # The identity backend whose evidence verified ("spire", "oidc-sa-token", "sigstore-keyless").
    backend: str | None = None

    def condition(self) -> dict[str, str]:
        """The TaskRun condition Tekton defines for this outcome (§8.4)."""
        if self.verified:
            return {
                "type": CONDITION_TYPE,
                "status": "True",
                "reason": CONDITION_REASON_VERIFIED,
                "message": self.message,
            }
        return {
            "type": CONDITION_TYPE,
            "status": "False",
            "reason": CONDITION_REASON_FAILED,
            "message": f"{self.reason}: {self.message}",
        }

    def to_json(self) -> dict[str, Any]:
        return {
            "verified": self.verified,
            "reason": str(self.reason),
            "message": self.message,
            "format": self.format,
            "identity": self.identity,
            "checkedAt": rfc3339(self.checked_at),
            "condition": self.condition(),
            "results": [{"key": r.key, "value": r.value, "type": r.type} for r in self.results],
            "unsigned": [{"key": r.key, "value": r.value, "type": r.type} for r in self.unsigned],
            "step": self.step,
            "signedAt": rfc3339(self.signed_at) if self.signed_at is not None else None,
            "version": self.version,
            "exitCode": self.exit_code,
            "startedAt": rfc3339(self.started_at) if self.started_at is not None else None,
            "backend": self.backend,
        }


def _from_seconds(seconds: int | None) -> dt.datetime | None:
    if seconds is None:
        return None
    try:
        return dt.datetime.fromtimestamp(seconds, dt.UTC)
    except (OverflowError, OSError, ValueError):
        return None  # bound, but beyond datetime's range: shown as not bound, still checked


def rfc3339(when: dt.datetime) -> str:
    return when.astimezone(dt.UTC).isoformat().replace("+00:00", "Z")


def _utc(at: dt.datetime | None) -> dt.datetime:
    if at is None:
        return dt.datetime.now(dt.UTC)
    if at.tzinfo is None or at.utcoffset() is None:
        # A naive time is ambiguous by hours, which decides whether a short-lived SVID is valid.
        raise ValueError("at must be a timezone-aware datetime")
    return at.astimezone(dt.UTC)


def _step(step: str | None) -> str | None:
    # The signer writes the index as Tekton names the step's directory: plain decimal.  Refusing
    # other spellings here keeps "01" from silently never matching.
    if step is not None and not (step.isascii() and step.isdigit() and str(int(step)) == step):
        raise ValueError(f"step must be a step index in decimal (0, 1, ...), not {step!r}")
    return step


def _companions(companions: Sequence[str]) -> tuple[str, ...]:
    if isinstance(companions, str):  # a str is a Sequence[str] of characters: surely a mistake
        raise TypeError("companions must be a sequence of termination messages, not one string")
    return tuple(companions)


@dataclass(frozen=True)
class TaskRunRef:
    """The TaskRun a message must come from: its name, and what else the caller knows of it.

    ``pod_name`` (default Tekton's ``<name>-pod``), ``pod_uid`` and ``service_account`` bind a
    token-signed message to the TaskRun's pod (checked when given).  ``step`` is the index of the
    step the message must come from (not checked when None); only the compact format binds it, so
    a Tekton-format message fails a step check (StepMismatch) rather than pass unchecked.
    ``companions`` are the termination messages of the TaskRun's other steps, searched for the
    chain a compact message refers to (``x509-ref``).  ``exit_code`` and ``started_at`` (Unix
    seconds) are what the TaskRun records for the step (``terminated.exitCode``/``startedAt``),
    checked against what a cs2 message binds when given.
    """

    namespace: str
    name: str
    pod_name: str | None = None
    pod_uid: str | None = None
    service_account: str | None = None
    step: str | None = None
    companions: tuple[str, ...] = ()
    exit_code: int | None = None
    started_at: int | None = None

    def __post_init__(self) -> None:
        if not self.namespace or not self.name:
            raise ValueError("namespace and name must be non-empty")
        _step(self.step)
        object.__setattr__(self, "companions", _companions(self.companions))


@dataclass(frozen=True)
class TrustSet:
    """What each backend's evidence is checked against; a backend whose trust is None fails its
    messages with ``TrustUnavailable``.

    ``spiffe``: the SPIRE backend's trust bundle.  ``kube``: the oidc-sa-token backend's issuer,
    a :class:`KubeJwks` snapshot (offline, archived TaskRuns) or :class:`KubeTokenReview` (online).
    ``sigstore``: the sigstore-keyless backend's trusted root and identity policy (offline).
    """

    spiffe: TrustBundle | None = None
    kube: KubeJwks | KubeTokenReview | None = None
    sigstore: SigstoreTrust | None = None


class Verifier:
    """Verifies termination messages against one :class:`TrustSet` and one policy.

    ``check_chain=False`` skips only the SVID's chain; the SPIFFE ID and every signature are still
    checked, against the key of an SVID nobody vouched for.  ``formats``, when given, lists the
    only formats accepted (e.g. ``("compact",)``): a message in another one is rejected
    (FormatNotAllowed) even if its signature is good.  Every failure, expected or not, yields a
    verdict that is *not* verified; nothing here raises on a bad message.
    """

    def __init__(
        self, trust: TrustSet, *, check_chain: bool = True, formats: Sequence[str] | None = None
    ) -> None:
        self.trust = trust
        self.check_chain = check_chain
        self.formats = None if formats is None else tuple(formats)

    def verify_message(self, message: str, taskrun: TaskRunRef, *, at: dt.datetime | None = None) -> Verdict:
        """Parse a termination message (plain JSON or ``tknz:``) as the controller does, then
        verify it (``at``, timezone-aware, is the time the chain is checked at, default now)."""
        when = _utc(at)

        def invalid(text: str) -> Verdict:
            return Verdict(
                verified=False,
                reason=Reason.MESSAGE_INVALID,
                message=f"termination message: {text}",
                format="",
                identity=None,
                checked_at=when,
                results=(),
            )

        if len(message) > MAX_MESSAGE_CHARS:
            # Kubernetes keeps 4 KiB of a termination message and Tekton inflates tknz: to 128 KiB
            # at most; a larger input is not a termination message, and parsing it costs for nothing.
            return invalid(f"{len(message)} characters, more than any termination message")
        try:
            # As written, duplicates and empty entries included: whether the controllers agree on
            # what the message says is judged on the entries themselves, not on one parser's view.
            entries = parse_entries(message) if message else []  # an empty message has no entries
        except Exception as exc:
            return invalid(str(exc))
        return self.verify_entries(entries, taskrun, at=when)

    def verify_entries(
        self, entries: Sequence[RunResult], taskrun: TaskRunRef, *, at: dt.datetime | None = None
    ) -> Verdict:
        """Verify the entries of a TaskRun's termination message, as written or as the controller
        parsed them.  Entries that controllers of different versions would read differently (empty
        entries; one key with different values) fail with ``AmbiguousEntries``; exact repeats are
        read once."""
        when = _utc(at)
        ambiguity = _ambiguity(entries)
        # What is verified is exactly what is reported: the controller's view of the entries.
        entries = tuple(_last_per_key(entries))
        fmt = detect_format(entries)
        if ambiguity is not None:
            return Verdict(
                verified=False,
                reason=Reason.AMBIGUOUS_ENTRIES,
                message=ambiguity,
                format=fmt.name if fmt is not None else "",
                identity=None,
                checked_at=when,
                results=tuple(e for e in entries if fmt is None or not fmt.is_signing_entry(e)),
            )
        if fmt is None:
            return Verdict(
                verified=False,
                reason=Reason.UNKNOWN_FORMAT,
                message="the message has no signing entries of a known format "
                f"({', '.join(known_formats())}); it is unsigned or signed in an unsupported format",
                format="",
                identity=None,
                checked_at=when,
                results=entries,
            )
        visible = tuple(e for e in entries if not fmt.is_signing_entry(e))

        def failed(reason: str, message: str, identity: str | None = None) -> Verdict:
            return Verdict(
                verified=False,
                reason=reason,
                message=message,
                format=fmt.name,
                identity=identity,
                checked_at=when,
                results=visible,
            )

        if self.formats is not None and fmt.name not in self.formats:
            accepted = ", ".join(self.formats) or "none"
            return failed(
                Reason.FORMAT_NOT_ALLOWED,
                f"the message is signed in the {fmt.name} format; accepted: {accepted}",
            )
        spiffe = self.trust.spiffe
        request = Request(
            namespace=taskrun.namespace,
            name=taskrun.name,
            trust_domain=spiffe.trust_domain if spiffe is not None else None,
            roots=spiffe.roots if spiffe is not None else (),
            at=when,
            check_chain=self.check_chain,
            step=taskrun.step,
            companions=taskrun.companions,
            kube=self.trust.kube,
            sigstore=self.trust.sigstore,
            pod_name=taskrun.pod_name,
            pod_uid=taskrun.pod_uid,
            service_account=taskrun.service_account,
            exit_code=taskrun.exit_code,
            started_at=taskrun.started_at,
        )
        try:
            outcome = fmt.verify(entries, request)
        except VerificationFailed as exc:
            return failed(exc.reason, exc.message, exc.identity)
        except Exception as exc:  # fail closed: the format's checks already wrap their own errors
            return failed(Reason.MESSAGE_INVALID, f"unexpected error: {type(exc).__name__}: {exc}")
        signed = set(outcome.signed_keys)
        # Shown: every entry but the signing entries the check used.  An entry that looks like one
        # but took no part (a ``<name>.sig`` with no ``<name>``) is published by Tekton as a result,
        # so it is reported, as unsigned.
        visible = tuple(e for e in entries if e.key not in outcome.signing_keys)
        signed_at = None
        if outcome.signed_at is not None:
            # Within the leaf's validity (checked), so within datetime's range.
            signed_at = dt.datetime.fromtimestamp(outcome.signed_at, dt.UTC)
        return Verdict(
            verified=True,
            reason=Reason.VERIFIED,
            message=VERIFIED_MESSAGE,
            format=fmt.name,
            identity=outcome.identity,
            checked_at=when,
            results=tuple(e for e in visible if e.key in signed),
            unsigned=tuple(e for e in visible if e.key not in signed),
            step=outcome.step,
            signed_at=signed_at,
            version=outcome.version,
            exit_code=outcome.exit_code,
            started_at=_from_seconds(outcome.started_at),
            backend=outcome.backend,
        )

    def verify_taskrun(self, obj: Any, *, pod: Any = None, at: dt.datetime | None = None) -> TaskRunVerdict:
        """Verify a whole TaskRun as the API server stores it (``obj``: its JSON object, e.g.
        ``kubectl get taskrun -o json``): every step's message, and every result in its status
        traced to the verified message Tekton took it from.  ``pod``, the TaskRun's Pod object
        while it exists, supplies the raw messages and the pod's UID.  Never raises on bad input."""
        when = _utc(at)
        return verify_taskrun(
            lambda message, ref: self.verify_message(message, ref, at=when), TaskRunRef, obj, pod=pod, at=when
        )


class VerifyOptions(TypedDict, total=False):
    """The keywords of :func:`verify_message` and :func:`verify_entries` beyond the TaskRun's name
    and the SPIFFE trust: see :class:`Verifier`, :class:`TaskRunRef` and :class:`TrustSet`."""

    at: dt.datetime | None
    check_chain: bool
    step: str | None
    companions: Sequence[str]
    formats: Sequence[str] | None
    kube: KubeJwks | KubeTokenReview | None
    pod_name: str | None
    pod_uid: str | None
    service_account: str | None


def _from_keywords(
    namespace: str, name: str, trust: TrustBundle | None, options: VerifyOptions
) -> tuple[Verifier, TaskRunRef]:
    verifier = Verifier(
        TrustSet(spiffe=trust, kube=options.get("kube")),
        check_chain=options.get("check_chain", True),
        formats=options.get("formats"),
    )
    taskrun = TaskRunRef(
        namespace,
        name,
        pod_name=options.get("pod_name"),
        pod_uid=options.get("pod_uid"),
        service_account=options.get("service_account"),
        step=options.get("step"),
        companions=options.get("companions", ()),  # type: ignore[arg-type]  # checked, then a tuple
    )
    return verifier, taskrun


def verify_entries(
    entries: Sequence[RunResult],
    *,
    namespace: str,
    name: str,
    trust: TrustBundle | None,
    **options: Unpack[VerifyOptions],
) -> Verdict:
    """:meth:`Verifier.verify_entries` in one call, for one message: ``trust`` is the SPIFFE trust
    bundle (None: none could be obtained), the other keywords those of :class:`VerifyOptions`."""
    verifier, taskrun = _from_keywords(namespace, name, trust, options)
    return verifier.verify_entries(entries, taskrun, at=options.get("at"))


def verify_message(
    message: str, *, namespace: str, name: str, trust: TrustBundle | None, **options: Unpack[VerifyOptions]
) -> Verdict:
    """:meth:`Verifier.verify_message` in one call, for one message (see :func:`verify_entries`)."""
    verifier, taskrun = _from_keywords(namespace, name, trust, options)
    return verifier.verify_message(message, taskrun, at=options.get("at"))


def _last_per_key(entries: Sequence[RunResult]) -> list[RunResult]:
    by_key: dict[str, RunResult] = {}
    for e in entries:
        if not e.is_zero():
            by_key[e.key] = e
    return [by_key[k] for k in sorted(by_key, key=lambda k: k.encode("utf-8", "surrogatepass"))]


def _ambiguity(entries: Sequence[RunResult]) -> str | None:
    """Why controllers could read ``entries`` differently, or None.  Tekton before v0.68 erased an
    empty entry by moving the last one into its place, which changes which of two entries of one
    key wins (and two trailing empty entries index past its slice); only then may a repeated key
    carry different values without changing any controller's reading, so any such repeat is refused."""
    seen: dict[str, RunResult] = {}
    for index, e in enumerate(entries):
        if e.is_zero():
            return (
                f"entry {index} is empty: controllers before Tekton v0.68 read a message with empty "
                "entries differently from later ones"
            )
        first = seen.setdefault(e.key, e)
        if first != e:
            return (
                f"key {e.key!r} appears more than once with different values or types: which one "
                "a controller keeps depends on its version"
            )
    return None
