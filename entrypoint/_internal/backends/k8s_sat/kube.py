"""Who vouches for a pod-bound service-account token (the ``oidc-sa-token`` backend).

Online, the cluster itself: TokenReview answers whether the token is authenticated for an audience
and for which pod; it stops answering yes once the pod is deleted.  Offline, for archived TaskRuns:
a saved snapshot of the cluster's issuer and JWKS (``/openid/v1/jwks``) checks the JWT's signature
and claims without the cluster.  Both report the same :class:`TokenFacts`.
"""

from __future__ import annotations

import datetime as dt
import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from entrypoint._internal.backends.k8s_sat.common import (
    SA_DIR,
    audiences_of,
    in_cluster_api_url,
    json_object,
    unverified_claims,
)
from entrypoint._internal.kube.client import KubeClient, KubeError
from entrypoint._internal.verification.reasons import Reason, VerificationFailed
from entrypoint.errors import TrustError

OPENID_CONFIG_PATH = "/.well-known/openid-configuration"
JWKS_PATH = "/openid/v1/jwks"
TOKEN_REVIEW_PATH = "/apis/authentication.k8s.io/v1/tokenreviews"  # noqa: S105  (a URL path)
SNAPSHOT_KIND = "signed-entrypoint/jwks-snapshot/v1"
# What the API server signs with (openidmetadata.go); never "none" or an HMAC.
_ALGORITHMS = frozenset({"RS256", "RS384", "RS512", "ES256", "ES384", "ES512", "PS256", "PS384", "PS512"})
_EXTRA_POD_NAME = "authentication.kubernetes.io/pod-name"
_EXTRA_POD_UID = "authentication.kubernetes.io/pod-uid"
_SA_PREFIX = "system:serviceaccount:"


class KubeTrustError(TrustError):
    """The Kubernetes trust (a JWKS snapshot, an API server) could not be loaded or reached."""


@dataclass(frozen=True)
class TokenFacts:
    """What a trusted source says about an authenticated token."""

    issuer: str
    namespace: str
    service_account: str
    pod_name: str
    pod_uid: str
    not_before: int
    expires: int


def _claims_facts(claims: Mapping[str, Any], issuer: str) -> TokenFacts:
    private = claims.get("kubernetes.io")
    if not isinstance(private, dict):
        raise VerificationFailed(
            Reason.TOKEN_INVALID, "SA_TOKEN: not a service-account token (no kubernetes.io claim)"
        )
    pod = json_object(private.get("pod"))
    sa = json_object(private.get("serviceaccount"))
    exp, nbf = claims.get("exp"), claims.get("nbf", claims.get("iat"))
    if not isinstance(exp, int) or not isinstance(nbf, int):
        raise VerificationFailed(Reason.TOKEN_INVALID, "SA_TOKEN: the token has no integer exp and nbf/iat")
    return TokenFacts(
        issuer=issuer,
        namespace=str(private.get("namespace") or ""),
        service_account=str(sa.get("name") or ""),
        pod_name=str(pod.get("name") or ""),
        pod_uid=str(pod.get("uid") or ""),
        not_before=nbf,
        expires=exp,
    )


def _claims(token: str) -> dict[str, Any]:
    try:
        return unverified_claims(token)
    except ValueError as exc:
        raise VerificationFailed(Reason.TOKEN_INVALID, "SA_TOKEN: not a JWT") from exc


class KubeJwks:
    """The issuer and signing keys of a cluster's service-account tokens, for offline checks."""

    def __init__(self, issuer: str, jwks: Mapping[str, Any]) -> None:
        import jwt

        if not issuer.startswith("https://"):
            raise KubeTrustError(f"JWKS snapshot: issuer {issuer!r} is not an https URL")
        keys = jwks.get("keys") if isinstance(jwks, Mapping) else None
        if not isinstance(keys, list) or not keys:
            raise KubeTrustError("JWKS snapshot: no keys")
        self.issuer = issuer
        self.jwks = {"keys": list(keys)}
        self._keys: dict[str, Any] = {}
        for i, jwk in enumerate(keys):
            if not isinstance(jwk, dict):
                raise KubeTrustError(f"JWKS snapshot: key {i} is not a JSON object")
            try:
                key = jwt.PyJWK(jwk)
            except (jwt.PyJWTError, ValueError, TypeError, KeyError) as exc:
                raise KubeTrustError(f"JWKS snapshot: key {i}: {exc}") from exc
            self._keys[str(jwk.get("kid", ""))] = key

    @classmethod
    def from_file(cls, path: str) -> KubeJwks:
        try:
            with open(path, encoding="utf-8") as f:
                doc = json.load(f)
        except OSError as exc:
            raise KubeTrustError(f"JWKS snapshot {path}: cannot read: {exc.strerror or exc}") from exc
        except ValueError as exc:
            raise KubeTrustError(f"JWKS snapshot {path}: not JSON: {exc}") from exc
        if (
            not isinstance(doc, dict)
            or not isinstance(doc.get("issuer"), str)
            or not isinstance(doc.get("jwks"), dict)
        ):
            raise KubeTrustError(f"JWKS snapshot {path}: expected an object with issuer and jwks")
        try:
            return cls(doc["issuer"], doc["jwks"])
        except KubeTrustError as exc:
            raise KubeTrustError(f"{path}: {exc}") from exc

    @classmethod
    def fetch(cls, api: ApiServer) -> KubeJwks:
        """The cluster's current issuer and keys, from its OIDC discovery endpoints."""
        config = api.get_json(OPENID_CONFIG_PATH)
        issuer = config.get("issuer")
        if not isinstance(issuer, str):
            raise KubeTrustError(f"{api.url}{OPENID_CONFIG_PATH}: no issuer")
        # The API server's own JWKS path, not jwks_uri: that may name a public host unreachable here.
        return cls(issuer, api.get_json(JWKS_PATH))

    def to_json(self) -> dict[str, Any]:
        saved = dt.datetime.now(dt.UTC).isoformat().replace("+00:00", "Z")
        return {"kind": SNAPSHOT_KIND, "issuer": self.issuer, "savedAt": saved, "jwks": self.jwks}

    def save(self, path: str) -> None:
        tmp = f"{path}.tmp{os.getpid()}"
        with open(tmp, "w", encoding="utf-8") as f:
            json.dump(self.to_json(), f, indent=2)
            f.write("\n")
        os.replace(tmp, path)

    def review(self, token: str, audience: str) -> TokenFacts:
        import jwt

        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError as exc:
            raise VerificationFailed(Reason.TOKEN_INVALID, f"SA_TOKEN: not a JWT: {exc}") from exc
        alg, kid = header.get("alg"), str(header.get("kid", ""))
        if alg not in _ALGORITHMS:
            raise VerificationFailed(Reason.TOKEN_UNTRUSTED, f"SA_TOKEN: algorithm {alg!r} is not accepted")
        key = self._keys.get(kid)
        if key is None:
            raise VerificationFailed(
                Reason.TOKEN_UNTRUSTED,
                f"SA_TOKEN: signed by key {kid!r}, which is not in the JWKS snapshot of {self.issuer}",
            )
        # The algorithm the key is published for (its "alg", else its type's default), never one the
        # token picks for itself: the API server signs with exactly one per key.
        if alg != key.algorithm_name:
            raise VerificationFailed(
                Reason.TOKEN_UNTRUSTED,
                f"SA_TOKEN: algorithm {alg!r}, but key {kid!r} of {self.issuer} is for {key.algorithm_name}",
            )
        try:
            claims = jwt.decode(
                token,
                key.key,
                algorithms=[alg],
                audience=audience,
                issuer=self.issuer,
                # Validity is judged at the caller's time (archived TaskRuns), not at the clock's.
                options={"verify_exp": False, "verify_nbf": False, "verify_iat": False, "require": ["exp"]},
            )
        except jwt.InvalidAudienceError as exc:
            raise VerificationFailed(
                Reason.KEY_MISMATCH,
                f"SA_TOKEN: the token vouches for another key (its audience is not {audience}): {exc}",
            ) from exc
        except (jwt.InvalidSignatureError, jwt.InvalidIssuerError, jwt.InvalidAlgorithmError) as exc:
            raise VerificationFailed(
                Reason.TOKEN_UNTRUSTED, f"SA_TOKEN: not a token of {self.issuer}: {exc}"
            ) from exc
        except jwt.PyJWTError as exc:
            raise VerificationFailed(Reason.TOKEN_INVALID, f"SA_TOKEN: {exc}") from exc
        return _claims_facts(claims, self.issuer)


class ApiServer(KubeClient):
    """The cluster's API server as the verifier uses it: :class:`KubeClient` whose failures are
    :class:`KubeTrustError` (the trust could not be reached)."""

    def __init__(
        self, url: str, *, token_file: str | None = None, ca_file: str | None = None, timeout: float = 10.0,
        transport: Any = None,
    ) -> None:  # fmt: skip
        try:
            super().__init__(
                url, token_file=token_file, ca_file=ca_file, timeout=timeout, transport=transport
            )
        except KubeError as exc:
            raise KubeTrustError(str(exc)) from exc

    @classmethod
    def in_cluster(cls) -> ApiServer:
        url = in_cluster_api_url(os.environ)
        if not url:
            raise KubeTrustError(
                "not in a cluster: KUBERNETES_SERVICE_HOST and KUBERNETES_SERVICE_PORT are not set"
            )
        return cls(url, token_file=f"{SA_DIR}/token", ca_file=f"{SA_DIR}/ca.crt")

    def request(self, *args: Any, **kwargs: Any) -> dict[str, Any]:
        try:
            return super().request(*args, **kwargs)
        except KubeError as exc:
            raise KubeTrustError(str(exc)) from exc


class KubeTokenReview:
    """Online: the cluster's TokenReview.  It answers for live pods only (archived TaskRuns need
    :class:`KubeJwks`)."""

    def __init__(self, api: ApiServer) -> None:
        self.api = api

    def review(self, token: str, audience: str) -> TokenFacts:
        body = {
            "apiVersion": "authentication.k8s.io/v1",
            "kind": "TokenReview",
            "spec": {"token": token, "audiences": [audience]},
        }
        try:
            answer = self.api.post_json(TOKEN_REVIEW_PATH, body)
        except KubeTrustError as exc:
            raise VerificationFailed(Reason.TRUST_UNAVAILABLE, f"TokenReview: {exc}") from exc
        status = json_object(answer.get("status"))
        if status.get("authenticated") is not True:
            why = status.get("error") or "not authenticated"
            # TokenReview does not say *why* in a structured way; a token that does not even claim
            # this key's audience vouches for another key (the same reason as offline).  Either way
            # the token is rejected: only the reason reported depends on the unverified claim.
            if audience not in _audiences(token):
                raise VerificationFailed(
                    Reason.KEY_MISMATCH,
                    f"SA_TOKEN: TokenReview: the token vouches for another key (its audience is not "
                    f"{audience}): {why}",
                )
            raise VerificationFailed(Reason.TOKEN_UNTRUSTED, f"SA_TOKEN: TokenReview: {why}")
        audiences = status.get("audiences")
        if not isinstance(audiences, list) or audience not in audiences:
            raise VerificationFailed(
                Reason.KEY_MISMATCH, f"SA_TOKEN: TokenReview: the token is not for the audience {audience}"
            )
        user = json_object(status.get("user"))
        username = str(user.get("username") or "")
        extra = json_object(user.get("extra"))
        namespace, _, sa = username.removeprefix(_SA_PREFIX).partition(":")
        if not username.startswith(_SA_PREFIX) or not sa:
            raise VerificationFailed(
                Reason.IDENTITY_MISMATCH, f"SA_TOKEN: TokenReview: {username!r} is not a service account"
            )
        # The server authenticated this very token: its own claims are now the server's word, and
        # they carry the validity window TokenReview does not report.
        claims = _claims(token)
        facts = _claims_facts(claims, str(claims.get("iss", "")))
        return TokenFacts(
            issuer=facts.issuer,
            namespace=namespace,
            service_account=sa,
            pod_name=_first(extra.get(_EXTRA_POD_NAME)),
            pod_uid=_first(extra.get(_EXTRA_POD_UID)),
            not_before=facts.not_before,
            expires=facts.expires,
        )


def _audiences(token: str) -> list[str]:
    """The audiences a token claims (not verified); none if it is not a JWT."""
    try:
        return audiences_of(unverified_claims(token))
    except ValueError:
        return []


def _first(values: object) -> str:
    return str(values[0]) if isinstance(values, list) and values else ""
