"""Verifying the ``sigstore-keyless`` backend's evidence, offline (docs/sigstore.md, "Verification").

In order, each failing closed with its own reason: the certificate and the binding can be read;
the binding names the TaskRun, pod and step asked for; the Rekor record's SET verifies with a
trusted log key over the entry rebuilt from what this message signed, and its integrated time is
the time everything else is checked at (with no log, and only if the policy allows it, the
signing time the signature itself claims); the chain to a Fulcio CA trusted then; the embedded
SCT; the identity policy (SAN, issuer); the binding is one the certificate's identity may make.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Callable, Mapping, Sequence

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric.types import CertificatePublicKeyTypes
from cryptography.hazmat.primitives.serialization import Encoding

from entrypoint._internal.backends.sigstore import common as c
from entrypoint._internal.backends.sigstore.certs import (
    CertificateProblem,
    check_chain,
    identity_of,
    issuer_of,
)
from entrypoint._internal.backends.sigstore.http import SigstoreServerError
from entrypoint._internal.backends.sigstore.policy import SigstoreTrust
from entrypoint._internal.backends.sigstore.rekor import check_record
from entrypoint._internal.backends.sigstore.sct import check_embedded_sct
from entrypoint._internal.formats.compact import SIGNATURE_KEY, SignatureValue, controller_view, statement_for
from entrypoint._internal.formats.paramvalue import canonical_value
from entrypoint._internal.verification.reasons import Reason, VerificationFailed, fail_closed
from entrypoint._internal.verification.request import Request
from entrypoint._internal.verification.signatures import SignatureCheck, checker_for
from entrypoint.termination import RunResult

_K8S_SAN = "https://kubernetes.io/namespaces/"


def tekton_identity(
    results: Mapping[str, RunResult], request: Request, check_manifest: Callable[[str | None], None]
) -> tuple[str, SignatureCheck, frozenset[str]]:
    """Tekton's format: the certificate and binding entries, trust, the manifest, the log record,
    the certificate at its time, the identity.  The binding is signed like a result; the
    certificate and the log record are not (the log's SET and the key's signature cover it)."""
    leaf = _leaf_from_pem(results, request)
    trust = _require_trust(request)
    check_manifest(None)
    with fail_closed(Reason.BINDING_MISMATCH, c.BINDING_ENTRY):
        entry = results.get(c.BINDING_ENTRY)
        if entry is None:
            raise VerificationFailed(
                Reason.BINDING_MISMATCH,
                f'{c.BINDING_ENTRY}: no binding found (no type-1 entry "{c.BINDING_ENTRY}")',
            )
        binding = _decode_binding(canonical_value(entry.value))
        _check_binding(binding, request, step=binding.step)
    log = results.get(c.LOG_ENTRY)
    with fail_closed(Reason.LOG_INVALID, c.LOG_ENTRY):
        if log is not None:
            record = _record(log.value)
            if not record.signature:
                raise VerificationFailed(
                    Reason.LOG_INVALID, f"{c.LOG_ENTRY}: a Tekton-format record carries the logged signature"
                )
            values = {k: canonical_value(e.value) for k, e in results.items()}
            try:
                payload = c.tekton_log_payload(values, c.tekton_logged_names(values["RESULT_MANIFEST"]))
            except KeyError as exc:
                raise VerificationFailed(
                    Reason.LOG_INVALID,
                    f"{c.LOG_ENTRY}: no value for {exc.args[0]!r}, which the log entry covers",
                ) from exc
            # The key signed the payload: the log vouches for an entry of *this* message's values.
            _check_signature(leaf, payload, record.signature)
            at = _check_log(record, hashlib.sha256(payload).digest(), record.signature, leaf, trust)
        else:
            at = _no_log(trust, binding.signed_at, c.BINDING_ENTRY)
    identity = _check_certificate(leaf, trust, at, binding, request, c.CERT_ENTRY)
    with fail_closed(Reason.UNSUPPORTED_KEY, c.CERT_ENTRY, identity):
        check = checker_for(leaf.public_key(), entry=c.CERT_ENTRY, identity=identity)
    return identity, check, frozenset({c.CERT_ENTRY, c.LOG_ENTRY})


def compact_identity(
    value: SignatureValue, request: Request, *, message: Sequence[RunResult] = ()
) -> tuple[str, CertificatePublicKeyTypes]:
    """The compact format: the material, trust, the binding, the log record over the statement,
    the certificate at its time, the identity.  The statement's signature is checked after this."""
    with fail_closed(Reason.CERTIFICATE_INVALID, SIGNATURE_KEY):
        try:
            binding, der = c.split_material(value.material)
            leaf = x509.load_der_x509_certificate(der)
        except ValueError as exc:
            raise VerificationFailed(Reason.CERTIFICATE_INVALID, f"{SIGNATURE_KEY}: {exc}") from exc
    trust = _require_trust(request)
    with fail_closed(Reason.BINDING_MISMATCH, SIGNATURE_KEY):
        # The step is the statement's, checked with every backend's (StepMismatch).
        _check_binding(binding, request, step=None)
    logs = [e for e in message if e.key == c.LOG_ENTRY]
    with fail_closed(Reason.LOG_INVALID, c.LOG_ENTRY):
        if len(logs) > 1:
            raise VerificationFailed(
                Reason.LOG_INVALID, f"{c.LOG_ENTRY}: {len(logs)} entries; one is allowed"
            )
        if logs:
            record = _record(logs[0].value)
            if record.signature:
                raise VerificationFailed(
                    Reason.LOG_INVALID, f"{c.LOG_ENTRY}: a compact record logs the SIGNATURE's own signature"
                )
            if value.alg != "ES256":
                raise VerificationFailed(
                    Reason.LOG_INVALID, f"{c.LOG_ENTRY}: only ES256 signatures are logged"
                )
            statement = statement_for(value, controller_view(message))
            at = _check_log(
                record, hashlib.sha256(statement).digest(), c.der_signature(value.signature), leaf, trust
            )
        else:
            at = _no_log(trust, value.signed_at, SIGNATURE_KEY)
    identity = _check_certificate(leaf, trust, at, binding, request, SIGNATURE_KEY)
    if not leaf.not_valid_before_utc.timestamp() <= value.signed_at <= leaf.not_valid_after_utc.timestamp():
        raise VerificationFailed(
            Reason.CHAIN_UNTRUSTED,
            f"{SIGNATURE_KEY}: signed at Unix time {value.signed_at}, outside the certificate's validity",
            identity,
        )
    return identity, leaf.public_key()


def _leaf_from_pem(results: Mapping[str, RunResult], request: Request) -> x509.Certificate:
    with fail_closed(Reason.CERTIFICATE_INVALID, c.CERT_ENTRY):
        entry = results.get(c.CERT_ENTRY)
        if entry is None:
            raise VerificationFailed(
                Reason.CERTIFICATE_INVALID,
                f'{c.CERT_ENTRY}: no certificate found (no type-1 entry "{c.CERT_ENTRY}")',
            )
        try:
            return x509.load_pem_x509_certificate(canonical_value(entry.value).encode("ascii"))
        except (ValueError, UnicodeError) as exc:
            raise VerificationFailed(
                Reason.CERTIFICATE_INVALID, f"{c.CERT_ENTRY}: not a PEM certificate: {exc}"
            ) from exc


def _require_trust(request: Request) -> SigstoreTrust:
    if request.sigstore is None:
        raise VerificationFailed(
            Reason.TRUST_UNAVAILABLE, "no Sigstore trust (--sigstore-trusted-root and an identity policy)"
        )
    return request.sigstore


def _decode_binding(text: str) -> c.Binding:
    try:
        return c.Binding.decode(text)
    except ValueError as exc:
        raise VerificationFailed(Reason.BINDING_MISMATCH, f"{c.BINDING_ENTRY}: {exc}") from exc


def _check_binding(binding: c.Binding, request: Request, *, step: str | None) -> None:
    if step is not None and request.step is not None and step != request.step:
        raise VerificationFailed(
            Reason.STEP_MISMATCH,
            f"{c.BINDING_ENTRY}: signed as step {step!r}, but step {request.step} was expected",
        )
    pod = request.pod_name or f"{request.name}-pod"
    for what, signed, expected in (
        ("namespace", binding.namespace, request.namespace),
        ("TaskRun", binding.taskrun, request.name),
        ("pod", binding.pod, pod),
        ("pod UID", binding.pod_uid, request.pod_uid),
    ):
        if expected is not None and signed != expected:
            raise VerificationFailed(
                Reason.BINDING_MISMATCH,
                f"signed for {what} {signed!r}, but {what} {expected!r} was expected "
                "(a message moved from another TaskRun, pod or step)",
            )


def _record(text: str) -> c.LogRecord:
    try:
        return c.LogRecord.decode(canonical_value(text))
    except ValueError as exc:
        raise VerificationFailed(Reason.LOG_INVALID, f"{c.LOG_ENTRY}: {exc}") from exc


def _check_signature(leaf: x509.Certificate, payload: bytes, signature: bytes) -> None:
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec

    key = leaf.public_key()
    if not isinstance(key, ec.EllipticCurvePublicKey):
        raise VerificationFailed(Reason.UNSUPPORTED_KEY, f"{c.CERT_ENTRY}: only ECDSA keys are supported")
    try:
        key.verify(signature, payload, ec.ECDSA(hashes.SHA256()))
    except InvalidSignature:
        raise VerificationFailed(
            Reason.LOG_INVALID,
            f"{c.LOG_ENTRY}: the logged signature does not verify over this message's values",
        ) from None


def _check_log(
    record: c.LogRecord, digest: bytes, signature: bytes, leaf: x509.Certificate, trust: SigstoreTrust
) -> dt.datetime:
    body = c.hashedrekord_body(digest, signature, leaf.public_bytes(Encoding.PEM))
    try:
        check_record(record, body, trust.root, leaf, what=c.LOG_ENTRY)
    except SigstoreServerError as exc:
        # Most often: the SET covers another entry, i.e. another signature or other values.
        raise VerificationFailed(Reason.LOG_INVALID, str(exc)) from exc
    return dt.datetime.fromtimestamp(record.integrated_time, dt.UTC)


def _no_log(trust: SigstoreTrust, signed_at: int | None, entry: str) -> dt.datetime:
    if trust.require_log:
        raise VerificationFailed(
            Reason.LOG_MISSING, f"{c.LOG_ENTRY}: no transparency log record, and the policy requires one"
        )
    if signed_at is None:
        raise VerificationFailed(Reason.LOG_MISSING, f"{entry}: no log record and no signing time")
    try:
        return dt.datetime.fromtimestamp(signed_at, dt.UTC)
    except (OverflowError, ValueError, OSError) as exc:
        raise VerificationFailed(
            Reason.CHAIN_UNTRUSTED, f"{entry}: signing time {signed_at} is out of range"
        ) from exc


def _check_certificate(
    leaf: x509.Certificate,
    trust: SigstoreTrust,
    at: dt.datetime,
    binding: c.Binding,
    request: Request,
    entry: str,
) -> str:
    with fail_closed(Reason.CHAIN_UNTRUSTED, entry):
        try:
            ca = check_chain(leaf, trust.root, at)
        except CertificateProblem as exc:
            raise VerificationFailed(Reason.CHAIN_UNTRUSTED, f"{entry}: {exc}") from exc
    with fail_closed(Reason.SCT_INVALID, entry):
        try:
            check_embedded_sct(leaf, ca.chain[0], trust.root)
        except ValueError as exc:
            raise VerificationFailed(Reason.SCT_INVALID, f"{entry}: {exc}") from exc
    with fail_closed(Reason.IDENTITY_MISMATCH, entry):
        try:
            identity, issuer = identity_of(leaf), issuer_of(leaf)
        except CertificateProblem as exc:
            raise VerificationFailed(Reason.CERTIFICATE_INVALID, f"{entry}: {exc}") from exc
        if not trust.allows(identity):
            raise VerificationFailed(
                Reason.IDENTITY_MISMATCH,
                f"{entry}: the certificate is for {identity!r}, but the policy expects {trust.describe()}",
                identity,
            )
        if issuer != trust.issuer:
            raise VerificationFailed(
                Reason.IDENTITY_MISMATCH,
                f"{entry}: the certificate's OIDC issuer is {issuer!r}, "
                f"but the policy expects {trust.issuer!r}",
                identity,
            )
    _check_identity_binding(identity, binding, request)
    return identity


def _check_identity_binding(identity: str, binding: c.Binding, request: Request) -> None:
    """A service account may sign only for its own namespace's TaskRuns; a per-TaskRun SPIFFE ID
    (Tekton's ``.../ns/<ns>/taskrun/<name>``) only for that TaskRun."""
    if identity.startswith(_K8S_SAN):
        namespace, _, account = identity[len(_K8S_SAN) :].partition("/serviceaccounts/")
        if namespace != binding.namespace:
            raise VerificationFailed(
                Reason.BINDING_MISMATCH,
                f"the certificate's service account is in namespace {namespace!r}, but the binding names "
                f"namespace {binding.namespace!r}",
                identity,
            )
        if request.service_account is not None and account != request.service_account:
            raise VerificationFailed(
                Reason.BINDING_MISMATCH,
                f"the certificate is for service account {account!r}, "
                f"but {request.service_account!r} was expected",
                identity,
            )
        return
    if identity.startswith("spiffe://") and "/taskrun/" in identity:
        path = identity.partition("//")[2].partition("/")[2]
        if path != f"ns/{binding.namespace}/taskrun/{binding.taskrun}":
            raise VerificationFailed(
                Reason.BINDING_MISMATCH,
                "the certificate's SPIFFE ID is for another TaskRun than "
                f"{binding.namespace}/{binding.taskrun}",
                identity,
            )
