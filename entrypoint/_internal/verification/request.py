"""What a format verifier is asked to check, and what it reports back."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from cryptography import x509

TYPE_CHECKING = False
if TYPE_CHECKING:
    from entrypoint._internal.backends.k8s_sat.kube import KubeJwks, KubeTokenReview
    from entrypoint._internal.backends.sigstore.policy import SigstoreTrust


@dataclass(frozen=True)
class Request:
    """What a format verifier is asked: which TaskRun, trust, time, and the checks to make."""

    namespace: str
    name: str
    trust_domain: str | None  # None: no trust was available at all
    roots: tuple[x509.Certificate, ...]
    at: dt.datetime  # aware, UTC
    check_chain: bool
    step: str | None = None  # the step index the message must claim; None: any (compact format)
    # Other termination messages of the same TaskRun, only to resolve a chain a message refers to.
    companions: tuple[str, ...] = ()
    # The oidc-sa-token backend: who vouches for tokens (None: nobody, TrustUnavailable), and the
    # pod the token must be bound to (name default: Tekton's "<taskrun>-pod"; uid and service
    # account checked when given).
    kube: KubeJwks | KubeTokenReview | None = None
    pod_name: str | None = None
    pod_uid: str | None = None
    service_account: str | None = None
    # What the TaskRun (or the pod, read as Tekton reads it) records for the step, when the caller
    # knows it: the exit code and the start time in Unix seconds; checked against what cs2 binds.
    exit_code: int | None = None
    started_at: int | None = None
    # The sigstore-keyless backend: the trusted root and the identity policy (None: TrustUnavailable).
    sigstore: SigstoreTrust | None = None


@dataclass(frozen=True)
class Outcome:
    """What a format verifier found when every check passed: who signed, and which keys."""

    identity: str  # who signed: the SPIFFE ID, or the service account and pod of a token
    signed_keys: tuple[str, ...]  # every key whose signature was verified, in checking order
    # The entries that carried the signature and its evidence and took part in the check.
    signing_keys: frozenset[str] = frozenset()
    # What a format binds beyond the entries (compact: the step index and the signing time).
    step: str | None = None
    signed_at: int | None = None
    # The compact format's version, and what cs2 binds of the step's end (None: not bound).
    version: str | None = None
    exit_code: int | None = None
    started_at: int | None = None
    backend: str | None = None  # whose evidence it was
