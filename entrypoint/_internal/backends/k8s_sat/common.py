"""What the signer and the verifiers of the ``oidc-sa-token`` backend agree on.

The backend signs with an ephemeral key and proves who holds it with a pod-bound Kubernetes
service-account token whose audience names the key: ``signed-entrypoint:spki-sha256:<hex>``, the
SHA-256 of the key's DER SubjectPublicKeyInfo.  The API server vouches for the token; the token
vouches for the key; the key signs the results.
"""

from __future__ import annotations

from collections.abc import Mapping

TYPE_CHECKING = False
if TYPE_CHECKING:  # typing costs a signing step ~2 ms of imports before its command
    from typing import Any

BACKEND = "oidc-sa-token"
AUDIENCE_PREFIX = "signed-entrypoint:spki-sha256:"

# Signing entries of Tekton's wire format for this backend (reserved like SVID).
TOKEN_ENTRY = "SA_TOKEN"  # noqa: S105  (an entry name, not a secret)
KEY_ENTRY = "SA_TOKEN_KEY"

# The compact format's identity material kind for this backend.
MATERIAL_KIND = "k8s-sat"


SA_DIR = "/var/run/secrets/kubernetes.io/serviceaccount"

# Environment variables the entrypoint reads (documented in docs/oidc-sa-token.md).
ENV_TOKEN_FILE = "SIGNED_ENTRYPOINT_KUBE_TOKEN_FILE"  # noqa: S105  (a variable name)
ENV_CA_FILE = "SIGNED_ENTRYPOINT_KUBE_CA_FILE"
ENV_NAMESPACE_FILE = "SIGNED_ENTRYPOINT_KUBE_NAMESPACE_FILE"
ENV_API = "SIGNED_ENTRYPOINT_KUBE_API"
ENV_POD = ("POD_NAME", "POD_UID", "POD_NAMESPACE", "POD_SERVICE_ACCOUNT")


def in_cluster_api_url(env: Mapping[str, str]) -> str:
    """The API server as the kubelet tells a pod (an IPv6 host in brackets); empty outside one."""
    host, port = env.get("KUBERNETES_SERVICE_HOST", ""), env.get("KUBERNETES_SERVICE_PORT", "")
    if not host or not port:
        return ""
    return f"https://[{host}]:{port}" if ":" in host else f"https://{host}:{port}"


def config_from_env(env: Mapping[str, str]) -> dict[str, str | float]:
    """The backend's arguments from the step's environment (read in the entrypoint, which passes
    them on: the helper process gets no environment of its own)."""
    return {
        "api": env.get(ENV_API, "") or in_cluster_api_url(env),
        "token_file": env.get(ENV_TOKEN_FILE) or f"{SA_DIR}/token",
        "ca_file": env.get(ENV_CA_FILE) or f"{SA_DIR}/ca.crt",
        "namespace_file": env.get(ENV_NAMESPACE_FILE) or f"{SA_DIR}/namespace",
        "pod_name": env.get("POD_NAME", ""),
        "pod_uid": env.get("POD_UID", ""),
        "namespace": env.get("POD_NAMESPACE", ""),
        "service_account": env.get("POD_SERVICE_ACCOUNT", ""),
    }


def key_audience(spki_der: bytes) -> str:
    import hashlib  # here: the step's start-up reads this module's configuration only

    return AUDIENCE_PREFIX + hashlib.sha256(spki_der).hexdigest()


# The DER SubjectPublicKeyInfo of a P-256 key is this fixed header (id-ecPublicKey, prime256v1,
# a 66-byte BIT STRING) followed by the 65-byte uncompressed point: the compact format carries
# only the point (35 bytes fewer in base64url), the audience still names the SPKI's digest.
P256_SPKI_PREFIX = bytes.fromhex("3059301306072a8648ce3d020106082a8648ce3d030107034200")
P256_POINT_BYTES = 65


def spki_from_p256_point(point: bytes) -> bytes:
    if len(point) != P256_POINT_BYTES or point[0] != 4:
        raise ValueError(f"not an uncompressed P-256 point ({len(point)} bytes)")
    return P256_SPKI_PREFIX + point


def unverified_claims(token: str) -> dict[str, Any]:
    """A JWT's payload, *not* verified (what our own token is bound to; an authenticated token's
    validity window).  ValueError when it is not a JWT."""
    import base64
    import binascii
    import json

    try:
        payload = token.split(".")[1]
        claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    except (IndexError, ValueError, binascii.Error) as exc:
        raise ValueError("not a JWT") from exc
    if not isinstance(claims, dict):
        raise ValueError("not a JWT")
    return claims


def audiences_of(claims: Mapping[str, Any]) -> list[str]:
    """``aud`` as a list: a JWT may carry one audience as a plain string."""
    aud = claims.get("aud")
    if isinstance(aud, str):
        return [aud]
    return [a for a in aud if isinstance(a, str)] if isinstance(aud, list) else []


def json_object(value: object) -> dict[str, Any]:
    """``value`` if it is a JSON object, else an empty one (for optional nested fields)."""
    return value if isinstance(value, dict) else {}


def check_compact_material(kind: str, data: str) -> bytes:
    """A ``k8s-sat`` material as the compact format writes it: ``<base64url P-256 point>:<JWT>``
    (ASCII).  ValueError says what is wrong."""
    from entrypoint._internal.formats.compact import unb64url

    point, sep, token = data.partition(":")
    raw = unb64url(point, "k8s-sat public key")
    try:
        spki_from_p256_point(raw)
    except ValueError as exc:
        raise ValueError("a k8s-sat public key is an uncompressed P-256 point (65 bytes)") from exc
    parts = token.split(".")
    if not sep or len(parts) != 3 or not all(p and set(p) <= _B64URL for p in parts):
        raise ValueError("a k8s-sat material is <base64url P-256 point>:<JWT>")
    return data.encode("ascii")


def split_material(material: bytes) -> tuple[bytes, str]:
    """A k8s-sat material's public key (the uncompressed P-256 point) and token."""
    from entrypoint._internal.formats.compact import unb64url

    point, _, token = material.decode("ascii").partition(":")
    return unb64url(point, "k8s-sat public key"), token


_B64URL = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")
