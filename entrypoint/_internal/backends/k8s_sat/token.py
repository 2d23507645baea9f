"""The identity of a message signed with the ``oidc-sa-token`` backend: an ephemeral public key,
and a pod-bound service-account token whose audience names that key (docs/oidc-sa-token.md).

Shared by both wire formats.  The checks: the key parses; some trusted source (a JWKS snapshot or
the cluster's TokenReview) vouches for the token *for this key's audience*; the token is bound to
the TaskRun's pod, in its namespace (and to the expected pod UID and service account, when
given); it was valid at the time of checking and, when the format binds one, at signing time.
"""

from __future__ import annotations

import datetime as dt

from cryptography.hazmat.primitives.asymmetric.types import PublicKeyTypes
from cryptography.hazmat.primitives.serialization import load_der_public_key

from entrypoint._internal.backends.k8s_sat.common import key_audience
from entrypoint._internal.verification.reasons import Reason, VerificationFailed
from entrypoint._internal.verification.request import Request

# Kubernetes object names are at most 63 characters here; Tekton shortens longer pod names with
# a hash (kmeta.ChildName), which the verifier is then told rather than guesses.
_MAX_NAME = 63
_POD_SUFFIX = "-pod"
# The token's nbf is the API server's clock at issue; the node signs moments later by its own
# clock, and a verifier checks by a third.  Kubernetes' own validator allows 60 s of skew; here
# only before nbf: an expired token stays expired.
NBF_LEEWAY = 60


def expected_pod_name(request: Request) -> str:
    if request.pod_name:
        return request.pod_name
    if len(request.name) + len(_POD_SUFFIX) > _MAX_NAME:
        raise VerificationFailed(
            Reason.IDENTITY_MISMATCH,
            f"the TaskRun name {request.name!r} is too long to derive its pod's name; give the pod "
            "name (status.podName) explicitly",
        )
    return request.name + _POD_SUFFIX


def check_token(
    token: str, spki_der: bytes, request: Request, *, entry: str, signed_at: int | None
) -> tuple[str, PublicKeyTypes]:
    """Returns who signed (service account and pod) and the key to check signatures with."""
    try:
        key = load_der_public_key(spki_der)
    except (ValueError, TypeError) as exc:
        raise VerificationFailed(
            Reason.TOKEN_INVALID, f"{entry}: the public key does not parse: {exc}"
        ) from exc
    if request.kube is None:
        raise VerificationFailed(
            Reason.TRUST_UNAVAILABLE,
            "no Kubernetes trust to check the service-account token with: a JWKS snapshot or the "
            "cluster's TokenReview",
        )
    facts = request.kube.review(token, key_audience(spki_der))
    who = f"system:serviceaccount:{facts.namespace}:{facts.service_account}"
    identity = f"{who} (pod {facts.pod_name or '?'}, uid {facts.pod_uid or '?'})"

    def mismatch(text: str) -> VerificationFailed:
        return VerificationFailed(Reason.IDENTITY_MISMATCH, f"{entry}: {text}", identity)

    if facts.namespace != request.namespace:
        raise mismatch(
            f"the token is for namespace {facts.namespace!r}, not the TaskRun's {request.namespace!r}"
        )
    if not facts.pod_name or not facts.pod_uid:
        raise mismatch("the token is not bound to a pod")
    pod_name = expected_pod_name(request)
    if facts.pod_name != pod_name:
        raise mismatch(f"the token is bound to pod {facts.pod_name!r}, not the TaskRun's pod {pod_name!r}")
    if request.pod_uid is not None and facts.pod_uid != request.pod_uid:
        raise mismatch(f"the token is bound to pod UID {facts.pod_uid}, not {request.pod_uid}")
    if request.service_account is not None and facts.service_account != request.service_account:
        raise mismatch(
            f"the token is for service account {facts.service_account!r}, not {request.service_account!r}"
        )
    at = int(request.at.timestamp())
    if not facts.not_before - NBF_LEEWAY <= at < facts.expires:
        raise VerificationFailed(
            Reason.TOKEN_UNTRUSTED,
            f"{entry}: the token is valid from {_rfc3339(facts.not_before)} to {_rfc3339(facts.expires)}, "
            f"not at {_rfc3339(at)} (an archived TaskRun is checked at its completion time)",
            identity,
        )
    if signed_at is not None and not facts.not_before - NBF_LEEWAY <= signed_at <= facts.expires:
        raise VerificationFailed(
            Reason.TOKEN_UNTRUSTED,
            f"{entry}: signed at {_rfc3339(signed_at)}, outside the token's validity "
            f"({_rfc3339(facts.not_before)} to {_rfc3339(facts.expires)})",
            identity,
        )
    return identity, key


def _rfc3339(seconds: int) -> str:
    try:
        return dt.datetime.fromtimestamp(seconds, dt.UTC).isoformat().replace("+00:00", "Z")
    except (OverflowError, OSError, ValueError):
        return f"{seconds} (Unix seconds)"
