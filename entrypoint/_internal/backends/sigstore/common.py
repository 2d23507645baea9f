"""What the signer and the verifiers of the ``sigstore-keyless`` backend agree on (docs/sigstore.md).

The backend signs with an ephemeral P-256 key that Fulcio certified for the step's OIDC identity
(a Kubernetes service account, or a SPIFFE ID) for ten minutes.  Fulcio's certificate never names
the pod, so what is signed carries a *binding* (namespace, TaskRun, pod name and UID, and in
Tekton's format the step and signing time) that the verifier checks against the TaskRun it is
given.  A Rekor v1 ``hashedrekord`` entry, made after signing, proves the signature existed while
the certificate was valid; the message carries a compact record of it (``rk1``), never a bundle.

Light on purpose: the step's start-up reads its names (so its codecs import what they need
inside), the signer and the verifier its codecs.
"""

from __future__ import annotations

TYPE_CHECKING = False
if TYPE_CHECKING:  # typing costs a signing step ~2 ms of imports before its command
    from collections.abc import Mapping, Sequence

BACKEND = "sigstore-keyless"
# Tekton's wire format: the leaf certificate (PEM), the binding (signed like a result), and the
# transparency log's record (added after signing; its signatures are the log's and the key's).
CERT_ENTRY = "SIGSTORE_CERT"
BINDING_ENTRY = "SIGSTORE_BINDING"
LOG_ENTRY = "SIGSTORE_LOG"
# The compact format: ``fulcio:<base64url of binding NUL DER leaf>``.
MATERIAL_KIND = "fulcio"

# The names follow Tekton Chains' keys where they mean the same (signers.x509.fulcio.address,
# .issuer, .provider, signers.x509.identity.token.file, transparency.enabled, transparency.url).
ENV_FULCIO_ADDRESS = "SIGNED_ENTRYPOINT_FULCIO_ADDRESS"
ENV_FULCIO_ISSUER = "SIGNED_ENTRYPOINT_FULCIO_ISSUER"
ENV_FULCIO_PROVIDER = "SIGNED_ENTRYPOINT_FULCIO_PROVIDER"
ENV_TOKEN_FILE = "SIGNED_ENTRYPOINT_IDENTITY_TOKEN_FILE"  # noqa: S105  (a variable name)
ENV_TRANSPARENCY_ENABLED = "SIGNED_ENTRYPOINT_TRANSPARENCY_ENABLED"
ENV_TRANSPARENCY_URL = "SIGNED_ENTRYPOINT_TRANSPARENCY_URL"
# Ours: the trusted root (Fulcio's CA, the CT log's key for the SCT, Rekor's key for the SET),
# the CAs for Fulcio's and Rekor's TLS, the token's audience, and Fulcio's proof of possession.
ENV_TRUSTED_ROOT = "SIGNED_ENTRYPOINT_SIGSTORE_TRUSTED_ROOT"
ENV_TLS_CA_FILE = "SIGNED_ENTRYPOINT_SIGSTORE_CA_FILE"
ENV_AUDIENCE = "SIGNED_ENTRYPOINT_SIGSTORE_AUDIENCE"
ENV_PROOF = "SIGNED_ENTRYPOINT_FULCIO_PROOF"
# Which TaskRun: the downward API's metadata.labels['tekton.dev/taskRun'].
ENV_TASKRUN = "TASKRUN_NAME"

PROVIDERS = ("filesystem", "kubernetes", "spiffe")
PROOFS = ("csr", "public-key")
DEFAULT_AUDIENCE = "sigstore"
# cosign's (and so Chains') filesystem token path.
DEFAULT_TOKEN_FILE = "/var/run/sigstore/cosign/oidc-token"  # noqa: S105  (a path)

BINDING_TAG = "sb1"
LOG_TAG = "rk1"
TEKTON_LOG_FORMAT = "signed-entrypoint/tekton-log/v1"


def jcs(value: object) -> bytes:
    """RFC 8785 for the shapes used here (ASCII-keyed objects, strings, integers, lists): sorted
    keys, no whitespace, raw UTF-8; Python escapes exactly the characters JCS escapes."""
    import json

    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def b64url(data: bytes) -> str:
    import base64

    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def unb64url(text: str, what: str) -> bytes:
    """Strict unpadded base64url (one spelling per value); ValueError names ``what``."""
    import base64
    import binascii

    try:
        data = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (binascii.Error, ValueError) as exc:
        raise ValueError(f"{what} is not base64url") from exc
    if not text or b64url(data) != text:
        raise ValueError(f"{what} is not canonical unpadded base64url")
    return data


class Binding:
    """What a signature says it is for: the TaskRun, its pod, and (Tekton's format) step and time."""

    __slots__ = ("namespace", "pod", "pod_uid", "signed_at", "step", "taskrun")

    def __init__(
        self,
        namespace: str,
        taskrun: str,
        pod: str,
        pod_uid: str,
        step: str = "",
        signed_at: int | None = None,
    ) -> None:
        self.namespace, self.taskrun, self.pod, self.pod_uid = namespace, taskrun, pod, pod_uid
        self.step, self.signed_at = step, signed_at

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Binding) and self.encode() == other.encode()

    def __hash__(self) -> int:
        return hash(self.encode())

    def __repr__(self) -> str:
        return f"Binding({self.encode()!r})"

    def with_step(self, step: str, signed_at: int) -> Binding:
        return Binding(self.namespace, self.taskrun, self.pod, self.pod_uid, step, signed_at)

    def encode(self) -> str:
        when = "" if self.signed_at is None else str(self.signed_at)
        return "/".join((BINDING_TAG, self.namespace, self.taskrun, self.pod, self.pod_uid, self.step, when))

    @classmethod
    def decode(cls, text: str) -> Binding:
        """ValueError says what is wrong."""
        fields = text.split("/")
        if len(fields) != 7 or fields[0] != BINDING_TAG:
            raise ValueError(
                f"a binding is {BINDING_TAG}/<namespace>/<taskrun>/<pod>/<pod uid>/<step>/<signedAt>"
            )
        _, namespace, taskrun, pod, pod_uid, step, when = fields
        if not (namespace and taskrun and pod and pod_uid):
            raise ValueError("a binding names the namespace, the TaskRun, the pod and its UID")
        for what, number in (("step", step), ("signedAt", when)):
            if number and not (number.isascii() and number.isdigit() and (number == "0" or number[0] != "0")):
                raise ValueError(f"the binding's {what} {number!r} is not a canonical decimal")
        return cls(namespace, taskrun, pod, pod_uid, step, int(when) if when else None)


def compact_material(binding: Binding, leaf_der: bytes) -> bytes:
    return binding.encode().encode("ascii") + b"\0" + leaf_der


def split_material(material: bytes) -> tuple[Binding, bytes]:
    """A ``fulcio`` material's binding and leaf certificate (DER).  ValueError says what is wrong."""
    text, sep, der = material.partition(b"\0")
    if not sep or not der:
        raise ValueError("a fulcio material is <binding> NUL <DER certificate>")
    try:
        binding = Binding.decode(text.decode("ascii"))
    except UnicodeError as exc:
        raise ValueError("the binding is not ASCII") from exc
    if binding.step or binding.signed_at is not None:
        # The statement binds the step and the time; a second copy could only disagree.
        raise ValueError("a compact binding leaves the step and signing time to the statement")
    return binding, der


class LogRecord:
    """A Rekor v1 entry as a message carries it: enough to rebuild the entry and check its SET."""

    __slots__ = ("integrated_time", "log_id", "log_index", "set", "signature")

    def __init__(
        self, log_index: int, integrated_time: int, log_id: bytes, set_: bytes, signature: bytes = b""
    ) -> None:
        self.log_index, self.integrated_time, self.log_id = log_index, integrated_time, log_id
        self.set = set_
        # Tekton's format: the key's DER signature over the logged payload.  Empty in the compact
        # format, where the entry logs the SIGNATURE's own signature over the statement.
        self.signature = signature

    def encode(self) -> str:
        fields = (
            LOG_TAG,
            str(self.log_index),
            str(self.integrated_time),
            b64url(self.log_id),
            b64url(self.set),
        )
        return ".".join((*fields, b64url(self.signature) if self.signature else ""))

    @classmethod
    def decode(cls, text: str) -> LogRecord:
        """ValueError says which field is wrong."""
        fields = text.split(".")
        if len(fields) != 6 or fields[0] != LOG_TAG:
            raise ValueError(
                f"a log record is {LOG_TAG}.<logIndex>.<integratedTime>.<logID>.<SET>.<signature>"
            )
        _, index, when, log_id, set_, signature = fields
        for what, number in (("logIndex", index), ("integratedTime", when)):
            if not (0 < len(number) <= 18 and number.isascii() and number.isdigit()) or (
                number != "0" and number[0] == "0"
            ):
                raise ValueError(f"the log record's {what} {number!r} is not a canonical decimal")
        raw_id = unb64url(log_id, "the log record's logID")
        if len(raw_id) != 32:
            raise ValueError("the log record's logID is not a SHA-256 (32 bytes)")
        return cls(
            int(index),
            int(when),
            raw_id,
            unb64url(set_, "the log record's SET"),
            unb64url(signature, "the log record's signature") if signature else b"",
        )


def hashedrekord_body(digest: bytes, signature_der: bytes, cert_pem: bytes) -> bytes:
    """The canonical body Rekor stores for a ``hashedrekord`` 0.0.1 entry: the certificate as PEM,
    base64 again, the whole as JCS (rebuilt byte for byte, so the message need not carry it)."""
    import base64

    return jcs(
        {
            "apiVersion": "0.0.1",
            "kind": "hashedrekord",
            "spec": {
                "data": {"hash": {"algorithm": "sha256", "value": digest.hex()}},
                "signature": {
                    "content": base64.b64encode(signature_der).decode("ascii"),
                    "publicKey": {"content": base64.b64encode(cert_pem).decode("ascii")},
                },
            },
        }
    )


def set_payload(body: bytes, integrated_time: int, log_id: bytes, log_index: int) -> bytes:
    """What Rekor's signed entry timestamp signs: the JCS of the entry without its verification."""
    import base64

    return jcs(
        {
            "body": base64.b64encode(body).decode("ascii"),
            "integratedTime": integrated_time,
            "logID": log_id.hex(),
            "logIndex": log_index,
        }
    )


def tekton_logged_names(manifest: str) -> list[str]:
    """The entries a Tekton-format block logs: every result its manifest lists, the binding and the
    manifest itself (the certificate is in the log entry; signatures only restate the values)."""
    return sorted({*(n for n in manifest.split(",") if n), BINDING_ENTRY, "RESULT_MANIFEST"})


def tekton_log_payload(values: Mapping[str, str], names: Sequence[str]) -> bytes:
    """The bytes a Tekton-format block's log entry commits to: the SHA-256 of each canonical value.
    KeyError when a name has no value."""
    import hashlib

    entries = [
        {"digest": hashlib.sha256(values[name].encode("utf-8", "surrogatepass")).hexdigest(), "name": name}
        for name in names
    ]
    return jcs({"entries": entries, "format": TEKTON_LOG_FORMAT})


def der_signature(raw: bytes) -> bytes:
    """A JOSE ECDSA signature (r || s) as DER, which Rekor and sigstore clients verify."""
    from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

    half = len(raw) // 2
    return encode_dss_signature(int.from_bytes(raw[:half], "big"), int.from_bytes(raw[half:], "big"))


def log_request(digest: bytes, signature_der: bytes, leaf_der: bytes, keep_signature: bool) -> bytes:
    """The payload of the identity helper's ``log`` call (length-prefixed frames)."""
    parts = (digest, signature_der, leaf_der, b"1" if keep_signature else b"0")
    return b"".join(len(p).to_bytes(4, "big") + p for p in parts)


def split_log_request(data: bytes) -> tuple[bytes, bytes, bytes, bool]:
    """:func:`log_request` read back; ValueError when it is not four frames."""
    out, offset = [], 0
    for _ in range(4):
        if offset + 4 > len(data):
            raise ValueError("a log request is four length-prefixed frames")
        size = int.from_bytes(data[offset : offset + 4], "big")
        out.append(data[offset + 4 : offset + 4 + size])
        offset += 4 + size
    if offset != len(data):
        raise ValueError("a log request is four length-prefixed frames")
    return out[0], out[1], out[2], out[3] == b"1"
