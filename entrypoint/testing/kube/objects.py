"""The Kubernetes API double's vocabulary: paths, ``Status`` errors, and the objects it knows.

Kept apart from the server so that the token and admission logic read as kube-apiserver's does.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass
from typing import Any

from entrypoint.testing._https import HTTPError

OPENID_CONFIG_PATH = "/.well-known/openid-configuration"
JWKS_PATH = "/openid/v1/jwks"
TOKEN_REVIEW_PATH = "/apis/authentication.k8s.io/v1/tokenreviews"  # noqa: S105  (a URL path, not a secret)
AUTH_API_VERSION = "authentication.k8s.io/v1"
# The simulated admission policy (own_pod_tokens_only): its name (and its binding's), and the audiences
# it applies to.
OWN_POD_POLICY = "signed-entrypoint-own-pod-tokens"
OWN_POD_POLICY_MESSAGE = "signed-entrypoint tokens must be bound to the pod that requests them"
OWN_POD_POLICY_AUDIENCE_PREFIX = "signed-entrypoint:"

TOKEN_PATH = re.compile(r"^/api/v1/namespaces/([^/]+)/serviceaccounts/([^/]+)/token$")
# ValidateTokenRequest's bounds.
MIN_EXPIRATION_SECONDS = 600
MAX_EXPIRATION_SECONDS = 1 << 32
DEFAULT_EXPIRATION_SECONDS = 3600
# What the kubelet asks for when it projects the default kube-api-access token.
MOUNTED_TOKEN_SECONDS = 3607
# go-jose's jwt.DefaultLeeway, which the apiserver's token validator relies on.
LEEWAY_SECONDS = 60
SERVICE_ACCOUNT_GROUP = "system:serviceaccounts"
# Who a request without credentials is (the apiserver's --anonymous-auth, on by default).
ANONYMOUS = "system:anonymous"
# The body types the apiserver decodes for built-in types, and for a CRD's (which have no protobuf).
BUILT_IN_MEDIA_TYPES = "application/json, application/yaml, application/vnd.kubernetes.protobuf"
CUSTOM_MEDIA_TYPES = "application/json, application/yaml"
REASONS = {
    400: "BadRequest",
    401: "Unauthorized",
    403: "Forbidden",
    404: "NotFound",
    405: "MethodNotAllowed",
    409: "Conflict",
    411: "LengthRequired",
    413: "RequestEntityTooLarge",
    415: "UnsupportedMediaType",
    422: "Invalid",
    429: "TooManyRequests",
    500: "InternalError",
    503: "ServiceUnavailable",
    504: "Timeout",
}
SERVING_DNS_NAMES = (
    "localhost",
    "kubernetes",
    "kubernetes.default",
    "kubernetes.default.svc",
    "kubernetes.default.svc.cluster.local",
)


def token_request_path(namespace: str, service_account: str) -> str:
    return f"/api/v1/namespaces/{namespace}/serviceaccounts/{service_account}/token"


def rfc3339(epoch: int) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(epoch))


def status_body(
    code: int, message: str, details: dict[str, Any] | None = None, reason: str | None = None
) -> dict[str, Any]:
    """A ``metav1.Status`` failure, the body of every apiserver error response."""
    body: dict[str, Any] = {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": message,
        "reason": reason if reason is not None else REASONS.get(code, ""),
        "code": code,
    }
    if details:
        body["details"] = details
    return body


class APIError(HTTPError):
    """An apiserver error answer; its body is a ``Status`` object (:func:`status_body`)."""

    def __init__(
        self, code: int, message: str, details: dict[str, Any] | None = None, reason: str | None = None
    ) -> None:
        super().__init__(code, message, details)
        # Some answers share a code but not a reason (409 AlreadyExists and Conflict, 410 Expired).
        self.reason = reason


def not_found(resource: str, name: str) -> APIError:
    return APIError(404, f'{resource} "{name}" not found', {"name": name, "kind": resource})


def invalid_token_request(field: str, value: object, detail: str) -> APIError:
    # errors.NewInvalid's message layout, and its details: one cause per field error.
    error = f"Invalid value: {value}: {detail}"
    return APIError(
        422,
        f'TokenRequest.authentication.k8s.io "" is invalid: {field}: {error}',
        {
            "group": "authentication.k8s.io",
            "kind": "TokenRequest",
            "causes": [{"reason": "FieldValueInvalid", "message": error, "field": field}],
        },
    )


def undecodable(kind: str, detail: str) -> APIError:
    return APIError(400, f'{kind} in version "v1" cannot be handled as a {kind}: {detail}')


def unsupported_media_type(accepted: str) -> APIError:
    # negotiation.NewUnsupportedMediaTypeError: the types the server takes, not the one it got.
    return APIError(
        415, f"the body of the request was in an unknown format - accepted media types include: {accepted}"
    )


def media_type_of(content_type: str | None) -> str:
    return (content_type or "").split(";", 1)[0].strip().lower()


def require_json(content_type: str | None, accepted: str = BUILT_IN_MEDIA_TYPES) -> None:
    """Only JSON bodies are decoded here; ``accepted`` is what the apiserver would name instead."""
    if media_type_of(content_type) != "application/json":
        raise unsupported_media_type(accepted)


@dataclass(frozen=True)
class Pod:
    """A scheduled pod as the server knows it; the UIDs are what bound tokens carry in their claims."""

    namespace: str
    name: str
    uid: str
    service_account: str
    service_account_uid: str
    node: str
    node_uid: str

    @property
    def username(self) -> str:
        return f"system:serviceaccount:{self.namespace}:{self.service_account}"


@dataclass(frozen=True)
class TokenIdentity:
    """What a verified token says, after the bound-object checks."""

    namespace: str
    service_account: str
    service_account_uid: str
    audiences: tuple[str, ...]
    jti: str
    pod: tuple[str, str] | None
    node: tuple[str, str] | None

    @property
    def username(self) -> str:
        return f"system:serviceaccount:{self.namespace}:{self.service_account}"
