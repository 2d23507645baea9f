"""The ``sigstore-keyless`` backend: an ephemeral key certified by Fulcio for the step's OIDC token.

It runs in the identity helper process, like the other backends, while the step's command runs:
the token (a projected file, a TokenRequest, or a SPIFFE JWT-SVID), the key, Fulcio's answer, and
the checks of that answer against the trusted root (the SCT, the chain) before the certificate is
used.  The same process later logs each signature to Rekor (:meth:`KeylessFetcher.call`), with the
HTTP client it already loaded, so the step's own process never imports httpx.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import threading
import time
from typing import Any

from entrypoint._internal.backends.k8s_sat.common import json_object, unverified_claims
from entrypoint._internal.backends.k8s_sat.fetch import RetryableSigningError
from entrypoint._internal.backends.sigstore import common as c
from entrypoint._internal.backends.sigstore.evidence import CertEvidence
from entrypoint._internal.backends.sigstore.http import JsonClient, SigstoreServerError
from entrypoint._internal.bounded import TOKEN_FILE_LIMIT, read_file
from entrypoint._internal.signing.errors import SigningError
from entrypoint._internal.signing.identity import Identity

MIN_INTERVAL = 0.01
_FIRST_PAUSE = 0.25
_MAX_ATTEMPT_SECONDS = 10.0
_JWT_CHARS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.")
NAME = "sigstore-keyless"


class _Retry(SigningError):
    """A failure another attempt may not meet (no answer, 429, 5xx)."""


class KeylessFetcher:
    """Gets a Fulcio certificate for a fresh key, retrying transient failures within a budget."""

    name = NAME

    def __init__(
        self,
        fulcio_url: str = "",
        issuer: str = "",
        provider: str = "filesystem",
        token_file: str = c.DEFAULT_TOKEN_FILE,
        audience: str = c.DEFAULT_AUDIENCE,
        proof: str = "csr",
        trusted_root: str = "",
        tls_ca_file: str = "",
        rekor_url: str = "",
        transparency: str = "false",
        taskrun: str = "",
        step: str = "",
        spire_socket: str = "",
        budget: float = 20.0,
        interval: float = 2.0,
        **kube: Any,
    ) -> None:
        if not fulcio_url:
            raise SigningError(f"{NAME}: no Fulcio address: set {c.ENV_FULCIO_ADDRESS}")
        if provider not in c.PROVIDERS:
            raise SigningError(
                f"{NAME}: {c.ENV_FULCIO_PROVIDER}={provider!r} is not one of {', '.join(c.PROVIDERS)}"
            )
        if proof not in c.PROOFS:
            raise SigningError(f"{NAME}: {c.ENV_PROOF}={proof!r} is not one of {', '.join(c.PROOFS)}")
        if not trusted_root:
            raise SigningError(
                f"{NAME}: no trusted root: set {c.ENV_TRUSTED_ROOT} (the SCT and the log's answer are "
                "checked against it before the certificate is used)"
            )
        logging = transparency.lower() in ("true", "1", "yes")
        if logging and not rekor_url:
            raise SigningError(f"{NAME}: the transparency log is on but {c.ENV_TRANSPARENCY_URL} is not set")
        self.fulcio = JsonClient(fulcio_url, ca_file=tls_ca_file, what="fulcio")
        self.rekor = JsonClient(rekor_url, ca_file=tls_ca_file, what="rekor") if logging else None
        self.issuer, self.provider, self.token_file = issuer, provider, token_file
        self.audience, self.proof, self.trusted_root_path = audience, proof, trusted_root
        self.taskrun, self.step, self.spire_socket = taskrun, step, spire_socket
        self.kube = {k.removeprefix("kube_"): str(v) for k, v in kube.items() if k.startswith("kube_")}
        self.budget = budget
        self.interval = max(interval, MIN_INTERVAL)
        self._root: Any = None
        self._log_warm = False
        self._lock = threading.Lock()

    # -- the identity --------------------------------------------------------------------------------

    def fetch(self, budget: float | None = None) -> Identity:
        total = self.budget if budget is None else budget
        deadline = time.monotonic() + total
        pause = min(_FIRST_PAUSE, self.interval)
        last = "no attempt made"
        with self._lock:
            while True:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                try:
                    identity = self._attempt(min(remaining, _MAX_ATTEMPT_SECONDS))
                    self._warm_log(deadline)
                    return identity
                except SigstoreServerError as exc:
                    if not exc.retryable:
                        raise SigningError(f"{NAME}: {exc}") from exc
                    last = str(exc)
                except (_Retry, RetryableSigningError) as exc:
                    last = str(exc)
                time.sleep(max(0.0, min(pause, deadline - time.monotonic())))
                pause = min(pause * 2, self.interval)
        raise SigningError(f"{NAME}: no certificate within the signing budget of {total:g}s: {last}")

    def root(self) -> Any:
        from entrypoint._internal.backends.sigstore.trust import SigstoreTrustError, TrustedRoot

        if self._root is None:
            try:
                self._root = TrustedRoot.from_file(self.trusted_root_path)
            except SigstoreTrustError as exc:
                raise SigningError(f"{NAME}: {exc}") from exc
        return self._root

    def _attempt(self, timeout: float) -> Identity:
        from cryptography.hazmat.primitives.asymmetric import ec
        from cryptography.hazmat.primitives.serialization import Encoding

        from entrypoint._internal.backends.sigstore.certs import CertificateProblem, check_chain, identity_of
        from entrypoint._internal.backends.sigstore.fulcio import signing_certificate
        from entrypoint._internal.backends.sigstore.sct import check_embedded_sct

        root = self.root()
        token, pod = self._token(timeout)
        try:
            claims = unverified_claims(token)
        except ValueError as exc:
            raise SigningError(f"{NAME}: the identity token ({self._source()}) is not a JWT") from exc
        issued_by = str(claims.get("iss", ""))
        if self.issuer and issued_by != self.issuer:
            raise SigningError(
                f"{NAME}: the identity token ({self._source()}) is from issuer {issued_by!r}, "
                f"but {c.ENV_FULCIO_ISSUER} is {self.issuer!r}"
            )
        binding = self._binding(claims, pod)
        key = ec.generate_private_key(ec.SECP256R1())
        chain = signing_certificate(
            self.fulcio, key, token, proof=self.proof, subject=str(claims.get("sub", "")), timeout=timeout
        )
        leaf = chain[0]
        url = self.fulcio.base_url
        now = dt.datetime.now(dt.UTC)
        try:
            ca = check_chain(leaf, root, max(now, leaf.not_valid_before_utc))
            check_embedded_sct(leaf, ca.chain[0], root)
            who = identity_of(leaf)
        except (CertificateProblem, ValueError) as exc:
            raise SigningError(f"{NAME}: fulcio {url}: refused its certificate: {exc}") from exc
        evidence = CertEvidence(leaf.public_bytes(Encoding.DER), binding, leaf.not_valid_after_utc)
        return Identity(key, evidence, who)

    def _source(self) -> str:
        if self.provider == "filesystem":
            return f"file {self.token_file}"
        return "TokenRequest" if self.provider == "kubernetes" else f"JWT-SVID from {self.spire_socket}"

    def _token(self, timeout: float) -> tuple[str, Any]:
        if self.provider == "kubernetes":
            from entrypoint._internal.backends.k8s_sat.fetch import TokenFetcher

            fetcher = TokenFetcher(
                api=self.kube.get("api", ""),
                token_file=self.kube.get("token_file", ""),
                ca_file=self.kube.get("ca_file", ""),
                namespace_file=self.kube.get("namespace_file", ""),
                pod_name=self.kube.get("pod_name", ""),
                pod_uid=self.kube.get("pod_uid", ""),
                namespace=self.kube.get("namespace", ""),
                service_account=self.kube.get("service_account", ""),
            )
            if not fetcher.api:
                raise SigningError(
                    f"{NAME}: provider kubernetes needs the API server: KUBERNETES_SERVICE_HOST and "
                    "KUBERNETES_SERVICE_PORT are not set (or set SIGNED_ENTRYPOINT_KUBE_API)"
                )
            token, _, pod = fetcher.token_for(self.audience, timeout, NAME)
            return token, pod
        if self.provider == "spiffe":
            return self._jwt_svid(timeout), None
        try:
            token = read_file(self.token_file, TOKEN_FILE_LIMIT).decode("ascii").strip()
            if not token or not set(token) <= _JWT_CHARS:
                raise ValueError("not a JWT")
        except (OSError, ValueError) as exc:
            why = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
            # A projected token appears when the kubelet has written it: worth another look.
            error = _Retry if isinstance(exc, FileNotFoundError) else SigningError
            raise error(f"{NAME}: identity token file {self.token_file}: {why}") from exc
        return token, None

    def _jwt_svid(self, timeout: float) -> str:
        if not self.spire_socket:
            raise SigningError(f"{NAME}: provider spiffe needs the Workload API socket (-spire_socket_path)")
        from spiffe import WorkloadApiClient
        from spiffe.errors import PySpiffeError

        try:
            with WorkloadApiClient(socket_path=self.spire_socket, default_timeout=timeout) as client:
                svid = client.fetch_jwt_svid(audience={self.audience})
        except PySpiffeError as exc:
            raise _Retry(f"{NAME}: JWT-SVID from the Workload API ({self.spire_socket}): {exc}") from exc
        return str(svid.token)

    def _binding(self, claims: dict[str, Any], pod: Any) -> c.Binding:
        """The pod from the downward API, else from the TokenRequest or the token's own claims."""
        kube = json_object(claims.get("kubernetes.io"))
        claimed = json_object(kube.get("pod"))
        namespace = (
            self.kube.get("namespace") or (pod.namespace if pod else "") or str(kube.get("namespace") or "")
        )
        name = self.kube.get("pod_name") or (pod.name if pod else "") or str(claimed.get("name") or "")
        uid = self.kube.get("pod_uid") or (pod.uid if pod else "") or str(claimed.get("uid") or "")
        # Tekton names a TaskRun's pod "<taskrun>-pod"; TASKRUN_NAME says it when that does not hold.
        taskrun = self.taskrun or (name.removesuffix("-pod") if name.endswith("-pod") else "")
        missing = [
            env
            for env, value in (
                ("POD_NAMESPACE", namespace),
                ("POD_NAME", name),
                ("POD_UID", uid),
                (c.ENV_TASKRUN, taskrun),
            )
            if not value
        ]
        if missing:
            raise SigningError(
                f"{NAME}: cannot tell which TaskRun and pod this is: set {', '.join(missing)} (downward API: "
                "metadata.namespace, metadata.name, metadata.uid, metadata.labels['tekton.dev/taskRun'])"
            )
        return c.Binding(namespace, taskrun, name, uid, self.step)

    def _warm_log(self, deadline: float) -> None:
        """While the command still runs: load the upload's code and open the connection to Rekor,
        so that the upload after signing is one request on a warm connection.  Best effort."""
        if self.rekor is None or self._log_warm:
            return
        self._log_warm = True
        from entrypoint._internal.backends.sigstore import rekor

        with contextlib.suppress(SigningError):  # the upload itself will say what is wrong
            self.rekor.request(
                "GET", rekor.LOG_PATH, timeout=max(min(deadline - time.monotonic(), 2.0), 0.001)
            )

    # -- after signing -------------------------------------------------------------------------------

    def call(self, op: str, payload: bytes, budget: float) -> bytes:
        """``log``: upload a signature to Rekor and answer its record (:func:`log_request`)."""
        if op != "log" or self.rekor is None:
            raise SigningError(f"{NAME}: unknown helper call {op!r}")
        from cryptography import x509

        from entrypoint._internal.backends.sigstore.rekor import upload

        try:
            digest, signature, leaf_der, keep = c.split_log_request(payload)
        except ValueError as exc:
            raise SigningError(f"{NAME}: log: {exc}") from exc
        leaf = x509.load_der_x509_certificate(leaf_der)
        deadline = time.monotonic() + budget
        pause = _FIRST_PAUSE
        while True:
            remaining = deadline - time.monotonic()
            try:
                record = upload(
                    self.rekor,
                    digest,
                    signature,
                    leaf,
                    self.root(),
                    timeout=max(min(remaining, _MAX_ATTEMPT_SECONDS), 0.001),
                    keep_signature=keep,
                )
                return record.encode().encode("ascii")
            except SigstoreServerError as exc:
                if not exc.retryable or deadline - time.monotonic() <= pause:
                    raise SigningError(f"{NAME}: transparency log: {exc}") from exc
            time.sleep(pause)
            pause = min(pause * 2, self.interval)

    def close(self) -> None:
        self.fulcio.close()
        if self.rekor is not None:
            self.rekor.close()


Fetcher = KeylessFetcher  # the name the backend registry looks up
