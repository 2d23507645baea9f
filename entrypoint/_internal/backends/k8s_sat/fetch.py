"""The ``oidc-sa-token`` backend: an ephemeral key vouched for by a pod-bound service-account token.

No SPIRE: the pod's own service account asks the API server (TokenRequest) for a short-lived token
bound to this pod whose audience names the SHA-256 of a key generated here, so the token vouches
for the key (docs/oidc-sa-token.md).  It runs in the identity helper process, like the SPIRE
backend: httpx's imports and the network wait stay off the step's critical path.
"""

from __future__ import annotations

import datetime as dt
import threading
import time
from typing import Any

from entrypoint._internal.backends.k8s_sat.common import (
    ENV_API,
    ENV_POD,
    SA_DIR,
    audiences_of,
    json_object,
    key_audience,
    unverified_claims,
)
from entrypoint._internal.backends.k8s_sat.evidence import token_identity
from entrypoint._internal.bounded import TOKEN_FILE_LIMIT, read_file
from entrypoint._internal.signing.errors import SigningError
from entrypoint._internal.signing.identity import Identity

# The API server refuses less ("may not specify a duration less than 10 minutes"); the shortest
# lifetime keeps a leaked token useful for the least time.
TOKEN_SECONDS = 600
# Status codes worth another attempt: the token may have just rotated (401), an RBAC grant may not
# have propagated yet (403), the server may be overloaded or restarting (429, 5xx).  Anything else
# (400, 404, 409, 422) is a configuration error that no retry will fix.
_RETRY_STATUS = frozenset({401, 403, 408, 429}) | frozenset(range(500, 600))
_FIRST_PAUSE = 0.25
MIN_INTERVAL = 0.01
_JWT_CHARS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.")
_MAX_ATTEMPT_SECONDS = 10.0


class Pod:
    """Who we are: the pod this step runs in and its service account."""

    def __init__(self, namespace: str, name: str, uid: str, service_account: str) -> None:
        self.namespace, self.name, self.uid, self.service_account = namespace, name, uid, service_account


class TokenFetcher:
    """Fetches a fresh key and a pod-bound token for it with TokenRequest, retrying within a budget."""

    name = "oidc-sa-token"

    def __init__(
        self,
        api: str = "",
        token_file: str = f"{SA_DIR}/token",
        ca_file: str = f"{SA_DIR}/ca.crt",
        namespace_file: str = f"{SA_DIR}/namespace",
        pod_name: str = "",
        pod_uid: str = "",
        namespace: str = "",
        service_account: str = "",
        budget: float = 20.0,
        interval: float = 2.0,
    ) -> None:
        self.api = api.rstrip("/")
        if self.api and not self.api.startswith("https://"):
            # The pod's own token goes in the request: never in clear text.
            raise SigningError(f"oidc-sa-token: the Kubernetes API URL {api!r} must be https")
        self.token_file = token_file
        self.ca_file = ca_file
        self.namespace_file = namespace_file
        self._given = Pod(namespace, pod_name, pod_uid, service_account)
        self.budget = budget
        self.interval = max(interval, MIN_INTERVAL)  # 0 would hammer the API server
        self._lock = threading.Lock()

    def fetch(self, budget: float | None = None) -> Identity:
        """A fresh key and a token for it, retrying transient failures until ``budget`` runs out."""
        from cryptography.hazmat.primitives.asymmetric import ec

        if not self.api:
            raise SigningError(
                "oidc-sa-token: no Kubernetes API server: KUBERNETES_SERVICE_HOST and "
                f"KUBERNETES_SERVICE_PORT are not set (or set {ENV_API})"
            )
        total = self.budget if budget is None else budget
        deadline = time.monotonic() + total
        key = ec.generate_private_key(ec.SECP256R1())
        pause = min(_FIRST_PAUSE, self.interval)
        last = "no attempt made"
        # The API server's own answer (401, 503, ...) says more than a last attempt cut short by the
        # end of the budget: keep it as the cause when the attempts that follow only time out.
        answered = ""
        with self._lock:
            while True:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                try:
                    return self._attempt(key, min(remaining, _MAX_ATTEMPT_SECONDS))
                except RetryableSigningError as exc:
                    last = str(exc)
                    if not exc.timed_out:
                        answered = last
                # Quick first retries (a rotated token, a blip), then Tekton's interval.
                time.sleep(max(0.0, min(pause, deadline - time.monotonic())))
                pause = min(pause * 2, self.interval)
        if answered and answered != last:
            last = f"{answered} (then: {last})"
        raise SigningError(f"oidc-sa-token: no token within the signing budget of {total:g}s: {last}")

    def _pod(self, caller_token: str) -> Pod:
        """The pod from the downward-API environment, else from the claims of the kubelet's own
        pod-bound token (and the namespace file): a pod needs no extra configuration."""
        given = self._given
        claims: dict[str, Any] = {}
        if not (given.namespace and given.name and given.uid and given.service_account):
            try:
                claims = unverified_claims(caller_token).get("kubernetes.io") or {}
            except ValueError:
                claims = {}
        pod = json_object(claims.get("pod"))
        sa = json_object(claims.get("serviceaccount"))
        namespace = given.namespace or str(claims.get("namespace") or "") or _read_text(self.namespace_file)
        found = Pod(
            namespace,
            given.name or str(pod.get("name") or ""),
            given.uid or str(pod.get("uid") or ""),
            given.service_account or str(sa.get("name") or ""),
        )
        values = (found.name, found.uid, found.namespace, found.service_account)
        missing = [env for env, value in zip(ENV_POD, values, strict=True) if not value]
        if missing:
            raise SigningError(
                f"oidc-sa-token: cannot tell which pod this is: set {', '.join(missing)} "
                "(downward API: metadata.name, metadata.uid, metadata.namespace, spec.serviceAccountName)"
            )
        return found

    def _attempt(self, key: Any, timeout: float) -> Identity:
        from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

        spki = key.public_key().public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)
        audience = key_audience(spki)
        answer, pod, url = self._token_request(audience, timeout, "oidc-sa-token")
        return self._identity(key, answer, audience, pod, url)

    def token_for(self, audience: str, timeout: float, what: str) -> tuple[str, dt.datetime, Pod]:
        """One TokenRequest: a token for ``audience`` bound to this pod, its expiry, and the pod
        (for the sigstore-keyless backend, whose Fulcio wants audience ``sigstore``).  Errors say
        ``what`` asked; RetryableSigningError when another attempt may pass."""
        answer, pod, url = self._token_request(audience, timeout, what)
        token, expiry = _token_of(answer, audience, url, what)
        return token, expiry, pod

    def _token_request(self, audience: str, timeout: float, what: str) -> tuple[dict[str, Any], Pod, str]:
        from entrypoint._internal.kube.client import (
            KubeClient,
            KubeConfigError,
            KubeError,
            KubeStatusError,
            KubeTransportError,
        )

        try:
            # Re-read every time: the kubelet rotates it.  Bounded: the path may be anything.
            caller_token = read_file(self.token_file, TOKEN_FILE_LIMIT).decode("ascii").strip()
            if not caller_token or not set(caller_token) <= _JWT_CHARS:
                # Checked before it reaches an HTTP header, whose errors would quote it.
                raise ValueError("not a JWT")
        except (OSError, ValueError) as exc:
            where = f"service-account token {self.token_file}"
            raise SigningError(f"{what}: {where}: {_why(exc)}") from exc
        pod = self._pod(caller_token)
        client = KubeClient(self.api, ca_file=self.ca_file, timeout=timeout)
        path = f"/api/v1/namespaces/{pod.namespace}/serviceaccounts/{pod.service_account}/token"
        url = self.api + path
        body = {
            "apiVersion": "authentication.k8s.io/v1",
            "kind": "TokenRequest",
            "spec": {
                "audiences": [audience],
                "expirationSeconds": TOKEN_SECONDS,
                "boundObjectRef": {"apiVersion": "v1", "kind": "Pod", "name": pod.name, "uid": pod.uid},
            },
        }
        try:
            answer = client.request("POST", path, body, token=caller_token)
        except KubeConfigError as exc:
            raise SigningError(f"{what}: API server CA {self.ca_file}: {exc.why}") from exc
        except KubeTransportError as exc:
            retry = RetryableSigningError(f"TokenRequest {exc}")
            retry.timed_out = exc.timed_out
            raise retry from exc
        except KubeStatusError as exc:
            text = f"TokenRequest {exc}"
            # A 403 from RBAC may pass once a new grant propagates; one from an admission policy
            # ("... denied request ...", "admission webhook ... denied the request") will not.  A
            # ValidatingAdmissionPolicy without a reason answers 422, which is never retried.
            denied = exc.status == 403 and "denied" in text
            if exc.status in _RETRY_STATUS and not denied:
                raise RetryableSigningError(text) from exc
            raise SigningError(f"{what}: {text}") from exc
        except KubeError as exc:
            raise SigningError(f"{what}: TokenRequest {url}: unusable answer: {exc}") from exc
        return answer, pod, url

    def _identity(self, key: Any, answer: dict[str, Any], audience: str, pod: Pod, url: str) -> Identity:
        token, expiry = _token_of(answer, audience, url, "oidc-sa-token")
        source = f"system:serviceaccount:{pod.namespace}:{pod.service_account} (pod {pod.name})"
        return token_identity(key, token, expiry, source)


def _token_of(answer: dict[str, Any], audience: str, url: str, what: str) -> tuple[str, dt.datetime]:
    try:
        status = answer["status"]
        token, expires = status["token"], status["expirationTimestamp"]
        if not isinstance(token, str) or not isinstance(expires, str):
            raise TypeError("status.token and status.expirationTimestamp must be strings")
        expiry = dt.datetime.fromisoformat(expires)
        if expiry.tzinfo is None:
            raise ValueError(f"expirationTimestamp {expires!r} has no time zone")
        audiences = audiences_of(unverified_claims(token))
    except (ValueError, KeyError, TypeError) as exc:
        raise SigningError(f"{what}: TokenRequest {url}: unusable answer: {exc}") from exc
    # An API server that ignored the audience would hand out a token that proves nothing about
    # our key (or that Fulcio refuses); better to fail here than at every verification.
    if audience not in audiences:
        raise SigningError(f"{what}: TokenRequest {url}: the token is not for the audience asked for")
    return token, expiry


class RetryableSigningError(SigningError):
    """A failure that another attempt may not meet."""

    timed_out = False  # no answer within the attempt's time (rather than an error status)


def _read_text(path: str) -> str:
    try:
        return read_file(path, TOKEN_FILE_LIMIT).decode("utf-8").strip()
    except (OSError, ValueError):
        return ""


def _why(exc: BaseException) -> str:
    return (exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)) or type(exc).__name__


Fetcher = TokenFetcher  # the name the backend registry looks up
