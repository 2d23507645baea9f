"""What the signer and the verifiers of the ``oidc-sa-token`` backend agree on.

The backend signs with an ephemeral key and proves who holds it with a pod-bound Kubernetes
service-account token whose audience names the key: ``signed-entrypoint:spki-sha256:<hex>``, the
SHA-256 of the key's DER SubjectPublicKeyInfo.  The API server vouches for the token; the token
vouches for the key; the key signs the results.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping

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


def config_from_env(env: Mapping[str, str]) -> dict[str, str | float]:
    """The backend's arguments from the step's environment (read in the entrypoint, which passes
    them on: the helper process gets no environment of its own)."""
    api = env.get(ENV_API, "")
    if not api:
        host, port = env.get("KUBERNETES_SERVICE_HOST", ""), env.get("KUBERNETES_SERVICE_PORT", "")
        if host and port:
            api = f"https://[{host}]:{port}" if ":" in host else f"https://{host}:{port}"
    return {
        "api": api,
        "token_file": env.get(ENV_TOKEN_FILE) or f"{SA_DIR}/token",
        "ca_file": env.get(ENV_CA_FILE) or f"{SA_DIR}/ca.crt",
        "namespace_file": env.get(ENV_NAMESPACE_FILE) or f"{SA_DIR}/namespace",
        "pod_name": env.get("POD_NAME", ""),
        "pod_uid": env.get("POD_UID", ""),
        "namespace": env.get("POD_NAMESPACE", ""),
        "service_account": env.get("POD_SERVICE_ACCOUNT", ""),
    }


def key_audience(spki_der: bytes) -> str:
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
