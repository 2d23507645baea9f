"""The Kubernetes API double's server: TokenRequest, TokenReview and OIDC discovery over HTTPS, and the
routing of object requests (authenticated here) to :mod:`.rest`.

See :mod:`entrypoint.testing.kube` for what it answers and how; the HTTPS plumbing and the fault
knobs are the shared scaffold's (:mod:`entrypoint.testing._https`).
"""

from __future__ import annotations

import copy
import json
import os
import re
import time
import urllib.parse
import uuid
from collections.abc import Mapping, Sequence
from typing import Any

import jwt

from entrypoint.testing._https import HTTPError, HTTPSDouble, Reply, serving_credentials
from entrypoint.testing.kube.cluster import ClusterObjects
from entrypoint.testing.kube.decode import TOKEN_REQUEST, TOKEN_REVIEW, check_types, decode_object
from entrypoint.testing.kube.keys import SigningKey
from entrypoint.testing.kube.objects import (
    ANONYMOUS,
    AUTH_API_VERSION,
    DEFAULT_EXPIRATION_SECONDS,
    JWKS_PATH,
    LEEWAY_SECONDS,
    MAX_EXPIRATION_SECONDS,
    MIN_EXPIRATION_SECONDS,
    MOUNTED_TOKEN_SECONDS,
    OPENID_CONFIG_PATH,
    OWN_POD_POLICY,
    OWN_POD_POLICY_AUDIENCE_PREFIX,
    OWN_POD_POLICY_MESSAGE,
    SERVICE_ACCOUNT_GROUP,
    SERVING_DNS_NAMES,
    TOKEN_PATH,
    TOKEN_REVIEW_PATH,
    APIError,
    Pod,
    TokenIdentity,
    invalid_token_request,
    not_found,
    require_json,
    rfc3339,
    status_body,
)
from entrypoint.testing.kube.resources import PODS, Resource, forbidden, parse_path
from entrypoint.testing.kube.store import DEFAULT_HISTORY
from entrypoint.testing.kube.strategy import check_type
from entrypoint.testing.kube.watch import Change

# What the authenticators answer for a token none of them takes as its own (no JWT, another issuer):
# TokenReview reports it bare, and an authenticator's own error as "[invalid bearer token, <why>]".
INVALID_BEARER_TOKEN = "invalid bearer token"  # noqa: S105  (an error message, not a secret)
# What a token's header may name (the authenticator's allowed algorithms); others are not parsed.
_JWT_ALGORITHMS = frozenset({"RS256", "RS384", "RS512", "ES256", "ES384", "ES512", "PS256", "PS384", "PS512"})
# The resources the token endpoints are authorized as, for the RBAC authorizer's wording.
_SERVICE_ACCOUNTS = Resource("serviceaccounts", "ServiceAccount", "")
_TOKEN_REVIEWS = Resource("tokenreviews", "TokenReview", "authentication.k8s.io")
# Paths every caller may GET (the default system:public-info-viewer binding) that this server does
# not serve: 404 here, rather than a 403 that would claim a denial a real cluster does not make.
_PUBLIC_PATHS = frozenset({"/healthz", "/livez", "/readyz", "/version", "/version/"})
_FIELD_MANAGER_MAX_LENGTH = 128
# A resource request as the apiserver's RequestInfo parses one (the group and version, then the
# namespace, resource, name and subresource); shorter paths under /api and /apis are discovery.
_RESOURCE_PATH = re.compile(
    r"^/(?:api/(?P<core>[^/]+)|apis/(?P<group>[^/]+)/(?P<version>[^/]+))"
    r"(?:/namespaces/(?P<namespace>[^/]+))?/(?P<resource>[^/]+)(?:/(?P<name>[^/]+))?(?:/(?P<sub>[^/]+))?/?$"
)


class KubeAPIServer(HTTPSDouble, ClusterObjects):
    """An HTTPS Kubernetes API server on 127.0.0.1 serving TokenRequest, TokenReview, OIDC discovery and
    the objects of :mod:`.resources` (TaskRuns, Pods, Leases, Events).

    ``alg``: the token signing algorithm, ``"RS256"`` (the apiserver default) or ``"ES256"``.  ``issuer``:
    the ``iss`` of issued tokens; by default the server's URL (known once started).  ``api_audiences``: the
    audiences the API itself accepts (``--api-audiences``), by default ``[issuer]``; mounted tokens carry
    them and callers must present one.  ``max_token_seconds``: ``--service-account-max-token-expiration``.
    ``port``: 0 picks a free port, kept across restarts.  ``own_pod_tokens_only``: the admission policy
    of the module docstring (also an attribute, settable while serving).  ``history_limit``: how many
    changes watches can resume from (:attr:`ClusterObjects.history_limit`).  ``anonymous_discovery``:
    let callers without credentials read the OIDC discovery document and the JWKS, as a cluster that
    binds ``system:service-account-issuer-discovery`` to ``system:unauthenticated`` does (also an
    attribute); by default only service accounts may, as in kube-apiserver's default RBAC.
    """

    server_version = "kube-apiserver-test"

    def __init__(
        self,
        *,
        alg: str = "RS256",
        issuer: str | None = None,
        api_audiences: Sequence[str] | None = None,
        max_token_seconds: int | None = None,
        port: int = 0,
        own_pod_tokens_only: bool = False,
        history_limit: int = DEFAULT_HISTORY,
        anonymous_discovery: bool = False,
    ) -> None:
        if issuer is not None and (not issuer.startswith("https://") or any(c in issuer for c in "?#")):
            raise ValueError(f"issuer must be an https URL without query or fragment, got {issuer!r}")
        if api_audiences is not None and not api_audiences:
            raise ValueError("api_audiences, when given, must not be empty")
        super().__init__(
            serving_credentials("kubernetes", "kube-apiserver", SERVING_DNS_NAMES), port=port, name="kube-api"
        )
        self._keys = [SigningKey.generate(alg)]
        self._issuer = issuer
        self._api_audiences = tuple(api_audiences) if api_audiences is not None else None
        self.max_token_seconds = max_token_seconds
        self._pods: dict[tuple[str, str], Pod] = {}
        self._service_accounts: dict[tuple[str, str], str] = {}
        self._service_accounts_created: dict[tuple[str, str], str] = {}
        self._token_reviewers: set[tuple[str, str]] = set()
        self._nodes: dict[str, str] = {}
        self._token_requests: list[dict[str, Any]] = []
        self.unauthorized = False
        self.deny_token_requests = False
        self.own_pod_tokens_only = own_pod_tokens_only
        self.anonymous_discovery = anonymous_discovery
        self._init_objects(self._stopping, history_limit)
        # The token side's pods are the stored Pod objects: created, replaced or deleted with them.
        self._store.observe(PODS, self._sync_pod)

    def __repr__(self) -> str:
        where = self.url if self._port else "not started"
        return f"KubeAPIServer({where}, alg={self.alg!r})"

    # -- where it is and what it trusts ------------------------------------------------------------------

    @property
    def issuer(self) -> str:
        return self._issuer if self._issuer is not None else self.url

    @property
    def api_audiences(self) -> tuple[str, ...]:
        return self._api_audiences if self._api_audiences is not None else (self.issuer,)

    @property
    def alg(self) -> str:
        with self._lock:
            return self._keys[0].alg

    @property
    def signing_kid(self) -> str:
        """``kid`` of the key that signs new tokens."""
        with self._lock:
            return self._keys[0].kid

    def jwks(self) -> dict[str, Any]:
        """The JWKS served at ``/openid/v1/jwks``: the signing key and any kept by a rotation."""
        with self._lock:
            keys = list(self._keys)
        return {"keys": [key.jwk() for key in keys]}

    def openid_configuration(self) -> dict[str, Any]:
        with self._lock:
            algs = sorted({key.alg for key in self._keys})
        return {
            "issuer": self.issuer,
            # The apiserver names its own external address unless --service-account-jwks-uri overrides it.
            "jwks_uri": self.url + JWKS_PATH,
            "response_types_supported": ["id_token"],
            "subject_types_supported": ["public"],
            "id_token_signing_alg_values_supported": algs,
        }

    def write_in_cluster_files(
        self, directory: str | os.PathLike[str], pod: Pod | None = None
    ) -> dict[str, str]:
        """Write ``token``, ``ca.crt`` and ``namespace`` as the kubelet mounts them for ``pod``.

        ``pod`` may be omitted when exactly one pod is known.  Returns ``KUBERNETES_SERVICE_HOST`` and
        ``KUBERNETES_SERVICE_PORT``, the environment that makes client libraries find this server.
        """
        if pod is None:
            with self._lock:
                pods = list(self._pods.values())
            if len(pods) != 1:
                raise ValueError(f"{len(pods)} pods are known; say which one the files are for")
            pod = pods[0]
        token = self.caller_token(pod.namespace, pod.service_account, pod.name)
        os.makedirs(directory, exist_ok=True)
        _write_atomically(os.path.join(directory, "ca.crt"), self.ca_pem, 0o644)
        _write_atomically(os.path.join(directory, "namespace"), pod.namespace.encode(), 0o644)
        _write_atomically(os.path.join(directory, "token"), token.encode(), 0o600)
        return {"KUBERNETES_SERVICE_HOST": "127.0.0.1", "KUBERNETES_SERVICE_PORT": str(self.port)}

    # -- cluster state -----------------------------------------------------------------------------------

    def add_service_account(self, namespace: str, name: str) -> str:
        """Create the service account if needed; returns its UID."""
        with self._lock:
            self._service_accounts_created.setdefault((namespace, name), rfc3339(int(time.time())))
            return self._service_accounts.setdefault((namespace, name), str(uuid.uuid4()))

    def allow_token_review(self, namespace: str, service_account: str) -> None:
        """Let the service account create TokenReviews: the ClusterRoleBinding to
        ``system:auth-delegator`` a verifier needs (docs/oidc-sa-token.md).  Without it a TokenReview
        is 403 Forbidden, as in a real cluster, whose default RBAC grants it to no service account."""
        self.add_service_account(namespace, service_account)
        with self._lock:
            self._token_reviewers.add((namespace, service_account))

    def add_pod(self, namespace: str, name: str, uid: str, service_account: str, node: str = "node-1") -> Pod:
        """Schedule a pod (creating its service account and node as needed).  Re-adding a name with a new
        UID is a delete and recreate: tokens bound to the old pod stop authenticating.

        The pod is stored as a Pod object too (running ``service_account`` on ``node``), which the API
        serves and :meth:`put_pod_object` may fill in later under the same UID."""
        spec = {"serviceAccountName": service_account, "nodeName": node}
        obj = {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": name, "namespace": namespace, "uid": uid},
        }
        existing = self._stored_pod(namespace, name)
        if existing is not None and existing["metadata"]["uid"] == uid:
            obj = {**existing, "spec": {**(existing.get("spec") or {}), **spec}}
        else:
            obj |= {"spec": spec, "status": {"phase": "Running"}}
        self.put_pod_object(obj)
        return self.pod(namespace, name)

    def put_pod_object(self, obj: Mapping[str, Any]) -> dict[str, Any]:
        """Store a full Pod object, created or replacing the one of its name, status included.  Without a
        ``metadata.uid`` it keeps the UID of the pod it replaces (one :meth:`add_pod` made, say); with
        another UID than that pod's it is a delete and recreate.  Its ``spec.serviceAccountName``
        (default ``default``) and ``spec.nodeName`` (default ``node-1``) are what its tokens claim."""
        checked = check_type(PODS, copy.deepcopy(dict(obj)))
        meta = checked["metadata"]
        namespace, name = str(meta.get("namespace") or ""), str(meta.get("name") or "")
        if not namespace or not name:
            raise ValueError("the pod needs a metadata.namespace and a metadata.name")
        meta.pop("resourceVersion", None)
        old = self._stored_pod(namespace, name)
        if old is not None and meta.get("uid") not in (None, old["metadata"]["uid"]):
            self._store.delete(PODS, namespace, name)
            old = None
        if old is None:
            return copy.deepcopy(self._store.create(PODS, checked))
        kept = {k: old["metadata"][k] for k in ("uid", "creationTimestamp")}
        replacement = {**checked, "metadata": {**meta, **kept}}
        return copy.deepcopy(self._store.update(PODS, namespace, name, lambda _: replacement))

    def delete_pod(self, namespace: str, name: str) -> None:
        if self._stored_pod(namespace, name) is None:
            raise KeyError(f"no pod {namespace}/{name}")
        self._store.delete(PODS, namespace, name)

    def _stored_pod(self, namespace: str, name: str) -> dict[str, Any] | None:
        try:
            return self._store.get(PODS, namespace, name)
        except APIError:
            return None

    def _sync_pod(self, change: Change) -> None:
        meta = change.obj["metadata"]
        key = (change.namespace, str(meta["name"]))
        if change.type == "DELETED":
            with self._lock:
                self._pods.pop(key, None)
            return
        spec = change.obj.get("spec") or {}
        service_account = str(spec.get("serviceAccountName") or "default")
        node = str(spec.get("nodeName") or "node-1")
        sa_uid = self.add_service_account(change.namespace, service_account)
        with self._lock:
            node_uid = self._nodes.setdefault(node, str(uuid.uuid4()))
            self._pods[key] = Pod(key[0], key[1], str(meta["uid"]), service_account, sa_uid, node, node_uid)

    def pod(self, namespace: str, name: str) -> Pod:
        with self._lock:
            try:
                return self._pods[(namespace, name)]
            except KeyError:
                raise KeyError(f"no pod {namespace}/{name}") from None

    # -- tokens ------------------------------------------------------------------------------------------

    def issue_token(
        self,
        namespace: str,
        service_account: str,
        pod_name: str | None = None,
        *,
        audiences: Sequence[str] | None = None,
        expires_in: float = DEFAULT_EXPIRATION_SECONDS,
    ) -> str:
        """A token as TokenRequest would issue it, with any lifetime (negative: already expired)."""
        with self._lock:
            sa_uid = self._service_accounts.get((namespace, service_account))
            pod = self._pods.get((namespace, pod_name)) if pod_name is not None else None
        if sa_uid is None:
            raise KeyError(f"no service account {namespace}/{service_account}")
        if pod_name is not None and pod is None:
            raise KeyError(f"no pod {namespace}/{pod_name}")
        if pod is not None and pod.service_account != service_account:
            raise ValueError(f"pod {namespace}/{pod_name} runs as {pod.service_account!r}")
        token, _ = self._mint(
            namespace,
            service_account,
            sa_uid,
            pod,
            tuple(audiences) if audiences else self.api_audiences,
            expires_in,
        )
        return token

    def caller_token(self, namespace: str, service_account: str, pod_name: str) -> str:
        """The token the kubelet mounts into the pod: API audiences, bound to the pod, about an hour."""
        return self.issue_token(namespace, service_account, pod_name, expires_in=MOUNTED_TOKEN_SECONDS)

    def rotate_signing_key(self, *, keep_old: bool = False, alg: str | None = None) -> str:
        """Sign with a new key from now on; returns its ``kid``.  Unless ``keep_old``, the previous keys leave
        the JWKS and tokens they signed stop authenticating."""
        with self._lock:
            key = SigningKey.generate(alg or self._keys[0].alg)
            self._keys = [key, *self._keys] if keep_old else [key]
            return key.kid

    def _mint(
        self,
        namespace: str,
        service_account: str,
        sa_uid: str,
        pod: Pod | None,
        audiences: tuple[str, ...],
        lifetime: float,
        node: tuple[str, str] | None = None,
    ) -> tuple[str, int]:
        """A token bound to ``pod`` (and its node), or to ``node`` (name, UID) alone, or unbound."""
        now = int(time.time())
        exp = now + int(lifetime)
        private: dict[str, Any] = {
            "namespace": namespace,
            "serviceaccount": {"name": service_account, "uid": sa_uid},
        }
        if pod is not None:
            private["pod"] = {"name": pod.name, "uid": pod.uid}
            node = (pod.node, pod.node_uid)
        if node is not None:
            private["node"] = {"name": node[0], "uid": node[1]}
        claims = {
            "aud": list(audiences),
            "exp": exp,
            "iat": now,
            "nbf": now,
            "iss": self.issuer,
            "jti": str(uuid.uuid4()),
            "sub": f"system:serviceaccount:{namespace}:{service_account}",
            "kubernetes.io": private,
        }
        with self._lock:
            key = self._keys[0]
        # The apiserver's header is alg and kid only; PyJWT would add "typ" unless told not to.
        headers = {"kid": key.kid, "typ": None}
        return jwt.encode(claims, key.private, algorithm=key.alg, headers=headers), exp

    def _verify(self, token: str, audiences: Sequence[str]) -> TokenIdentity:
        """Authenticate a token for ``audiences`` as the apiserver's service-account authenticator
        does (``pkg/serviceaccount/jwt.go``, ``claims.go``), in its order: the issuer, the signature,
        the audiences, the validity, the bound objects.  Raises ``APIError`` whose message is the
        authenticator's error: :data:`INVALID_BEARER_TOKEN` alone when the token is not one of this
        issuer's at all."""
        try:
            header = jwt.get_unverified_header(token)
            unverified = jwt.decode(token, options={"verify_signature": False})
        except jwt.InvalidTokenError:
            raise APIError(401, INVALID_BEARER_TOKEN) from None
        if header.get("alg") not in _JWT_ALGORITHMS or unverified.get("iss") != self.issuer:
            raise APIError(401, INVALID_BEARER_TOKEN)
        kid = header.get("kid")
        with self._lock:
            keys = [k for k in self._keys if kid is None or k.kid == kid]
        claims: dict[str, Any] | None = None
        for key in keys:
            try:
                # Only the signature here: the times are checked below as go-jose checks them, and
                # sub is never looked at (the identity is the kubernetes.io claim's).
                claims = jwt.decode(
                    token,
                    key.private.public_key(),
                    algorithms=[key.alg],
                    options={
                        "verify_aud": False,
                        "verify_iss": False,
                        "verify_exp": False,
                        "verify_nbf": False,
                        "verify_iat": False,
                        "verify_sub": False,
                        "verify_jti": False,
                    },
                )
                break
            except (jwt.InvalidSignatureError, jwt.InvalidAlgorithmError):
                continue
            except jwt.InvalidTokenError:
                raise APIError(401, INVALID_BEARER_TOKEN) from None
        if claims is None:
            raise APIError(401, f"{INVALID_BEARER_TOKEN}, go-jose/go-jose: error in cryptographic primitive")
        aud = claims.get("aud")
        token_audiences = (
            [aud] if isinstance(aud, str) else [str(a) for a in aud] if isinstance(aud, list) else []
        )
        # A token without audiences is taken as one for the API's own (a legacy token's rule).
        token_audiences = token_audiences or list(self.api_audiences)
        if not set(token_audiences) & set(audiences):
            raise APIError(
                401,
                f"{INVALID_BEARER_TOKEN}, token audiences {_go_quoted(token_audiences)}"
                f" is invalid for the target audiences {_go_quoted(audiences)}",
            )
        _check_times(claims)
        return self._check_bound_objects(claims, tuple(token_audiences))

    def _check_bound_objects(self, claims: dict[str, Any], audiences: tuple[str, ...]) -> TokenIdentity:
        private = claims.get("kubernetes.io", {})
        sa = private.get("serviceaccount", {}) if isinstance(private, dict) else None
        if not isinstance(private, dict) or not isinstance(sa, dict):
            raise APIError(401, f"{INVALID_BEARER_TOKEN}, service account token claims are malformed")
        namespace, name, sa_uid = (
            str(v or "") for v in (private.get("namespace"), sa.get("name"), sa.get("uid"))
        )
        if not name:
            # The service account is looked up by the claim's name, which client-go refuses empty.
            raise APIError(401, f"{INVALID_BEARER_TOKEN}, resource name may not be empty")
        pod_claim, node_claim = private.get("pod"), private.get("node")
        with self._lock:
            current_sa_uid = self._service_accounts.get((namespace, name))
            pod = (
                self._pods.get((namespace, str(pod_claim.get("name"))))
                if isinstance(pod_claim, dict)
                else None
            )
            node_uid = self._nodes.get(str(node_claim.get("name"))) if isinstance(node_claim, dict) else None
        if current_sa_uid is None:
            raise APIError(401, f'{INVALID_BEARER_TOKEN}, serviceaccounts "{name}" not found')
        if current_sa_uid != sa_uid:
            raise APIError(
                401,
                f"{INVALID_BEARER_TOKEN}, service account UID ({current_sa_uid})"
                f" does not match claim ({sa_uid})",
            )
        bound_pod: tuple[str, str] | None = None
        if isinstance(pod_claim, dict):
            if pod is None:
                raise APIError(401, f"{INVALID_BEARER_TOKEN}, service account token has been invalidated")
            if pod.uid != pod_claim.get("uid"):
                raise APIError(
                    401,
                    f"{INVALID_BEARER_TOKEN}, pod UID ({pod.uid})"
                    f" does not match claim ({pod_claim.get('uid')})",
                )
            bound_pod = (pod.name, pod.uid)
        node: tuple[str, str] | None = None
        if isinstance(node_claim, dict):
            node = (str(node_claim.get("name")), str(node_claim.get("uid")))
            # A token bound to a node alone lives as long as that node; a pod's token only names it.
            if bound_pod is None and node_uid is None:
                raise APIError(401, f"{INVALID_BEARER_TOKEN}, service account token has been invalidated")
            if bound_pod is None and node_uid != node[1]:
                raise APIError(
                    401, f"{INVALID_BEARER_TOKEN}, node UID ({node_uid}) does not match claim ({node[1]})"
                )
        return TokenIdentity(
            namespace, name, current_sa_uid, audiences, str(claims.get("jti", "")), bound_pod, node
        )

    # -- what was asked ----------------------------------------------------------------------------------

    @property
    def token_requests(self) -> list[dict[str, Any]]:
        """Decoded bodies of TokenRequest calls that passed authentication and authorization, oldest first.

        Kept so that tests can check what a client asked for; TokenRequest bodies hold no credentials
        (TokenReview bodies do, so they are not kept)."""
        with self._lock:
            return [json.loads(json.dumps(body)) for body in self._token_requests]

    # -- request handling --------------------------------------------------------------------------------

    def check_faults(self) -> None:
        if self.unauthorized:
            raise APIError(401, "Unauthorized")
        super().check_faults()

    def error_response(self, err: HTTPError) -> tuple[dict[str, Any], dict[str, str]]:
        # No WWW-Authenticate on a 401: kube-apiserver sends none.
        headers = {"Retry-After": "1"} if err.code in (429, 503) else {}
        reason = err.reason if isinstance(err, APIError) else None
        return status_body(err.code, err.message, err.details, reason), headers

    def stop(self) -> None:
        # Watches end cleanly first, as in a graceful apiserver shutdown, then connections are cut.
        self.drop_watches()
        super().stop()

    def handle(self, method: str, path: str, headers: Any, body: bytes) -> Reply:
        return self._handle(
            method,
            path,
            headers.get("Authorization"),
            headers.get("Content-Type"),
            body,
            headers.get("User-Agent") or "",
        )

    def _handle(
        self,
        method: str,
        raw_path: str,
        authorization: str | None,
        content_type: str | None,
        body: bytes,
        user_agent: str = "",
    ) -> Reply:
        # kube-apiserver's filter order: authentication (401 only for a credential that fails; none at
        # all is the anonymous user), then authorization (403), and only then the handler (404, 405, 415).
        path, _, query = raw_path.partition("?")
        caller = self._authenticate(authorization)
        user = caller.username if caller is not None else ANONYMOUS
        target = parse_path(path)
        if target is not None:
            return self._endpoints.serve(method, target, query, user, content_type, body)
        manager = _field_manager(query, user_agent)
        token_path = TOKEN_PATH.match(path)
        if token_path is not None:
            namespace, name = token_path[1], token_path[2]
            verb = _resource_verb(method, named=True)
            own = caller is not None and (caller.namespace, caller.service_account) == (namespace, name)
            # The grant a signer's pod has: create on its own service account's token, nothing more.
            if verb != "create" or not own or self.deny_token_requests:
                raise forbidden(_SERVICE_ACCOUNTS, name, user, verb, "token", namespace)
            assert caller is not None
            require_json(content_type)
            return 201, self._token_request(caller, namespace, name, body, manager), "application/json", {}
        if path == TOKEN_REVIEW_PATH:
            verb = _resource_verb(method, named=False)
            with self._lock:
                reviewer = (
                    caller is not None and (caller.namespace, caller.service_account) in self._token_reviewers
                )
            if verb != "create" or not reviewer:
                raise forbidden(_TOKEN_REVIEWS, "", user, verb, "", None)
            require_json(content_type)
            return 201, self._token_review(body, manager), "application/json", {}
        if path in (OPENID_CONFIG_PATH, JWKS_PATH):
            # The default binding of system:service-account-issuer-discovery: GET, for service accounts.
            if method != "GET" or (caller is None and not self.anonymous_discovery):
                raise _forbidden_path(user, method, path)
            if path == JWKS_PATH:
                return 200, self.jwks(), "application/jwk-set+json", {"Cache-Control": "public, max-age=3600"}
            return (
                200,
                self.openid_configuration(),
                "application/json",
                {"Cache-Control": "public, max-age=3600"},
            )
        resource = _RESOURCE_PATH.match(path)
        if resource is not None:
            # A resource this server does not serve, so nobody is granted it: the RBAC authorizer's 403.
            raise _forbidden_resource(resource, method, query, user)
        if (
            (method == "GET" and path in _PUBLIC_PATHS)
            or path in ("/api", "/apis")
            or path.startswith(("/api/", "/apis/"))
        ):
            # Discovery, which every caller may read and this server does not serve.
            raise APIError(404, "the server could not find the requested resource")
        raise _forbidden_path(user, method, path)

    def _authenticate(self, authorization: str | None) -> TokenIdentity | None:
        """The caller, or None for the anonymous user: no bearer token at all, as kube-apiserver's
        bearer-token authenticator reads the header.  A token that does not authenticate for the API
        audiences is 401."""
        parts = (authorization or "").strip().split(" ", 2)
        if len(parts) < 2 or parts[0].lower() != "bearer" or not parts[1]:
            return None
        try:
            return self._verify(parts[1], self.api_audiences)
        except APIError:
            raise APIError(401, "Unauthorized") from None

    def _token_request(
        self, caller: TokenIdentity, namespace: str, name: str, body: bytes, manager: str
    ) -> dict[str, Any]:
        request = decode_object(body, AUTH_API_VERSION, "TokenRequest")
        with self._lock:
            self._token_requests.append(request)
        check_types(request, TOKEN_REQUEST)
        spec = request.get("spec") or {}
        # null leaves a Go field at its zero value; expirationSeconds then defaults to an hour.
        audiences = [a or "" for a in spec.get("audiences") or []]
        expiration = spec.get("expirationSeconds")
        if expiration is None:
            expiration = DEFAULT_EXPIRATION_SECONDS
        if expiration < MIN_EXPIRATION_SECONDS:
            raise invalid_token_request(
                "spec.expirationSeconds", expiration, "may not specify a duration less than 10 minutes"
            )
        if expiration > MAX_EXPIRATION_SECONDS:
            raise invalid_token_request(
                "spec.expirationSeconds", expiration, "may not specify a duration larger than 2^32 seconds"
            )
        with self._lock:
            sa_uid = self._service_accounts.get((namespace, name))
            sa_created = self._service_accounts_created.get((namespace, name))
        if sa_uid is None:
            raise not_found("serviceaccounts", name)
        given = spec.get("boundObjectRef")
        # The Go struct's fields, without the empty ones (omitempty), as the answer shows them.
        ref = (
            {k: str(given[k]) for k in ("kind", "apiVersion", "name", "uid") if given.get(k)}
            if isinstance(given, dict)
            else None
        )
        if not audiences:
            audiences = list(self.api_audiences)
        if self.own_pod_tokens_only:
            _admit_own_pod_token(caller, name, audiences, ref)
        pod, node = self._bound_object(namespace, name, ref)
        if self.max_token_seconds is not None and expiration > self.max_token_seconds:
            expiration = self.max_token_seconds
        token, exp = self._mint(namespace, name, sa_uid, pod, tuple(audiences), expiration, node)
        # What the field manager records: the spec fields the body set, and the defaulted lifetime.
        fields: dict[str, Any] = {"f:expirationSeconds": {}}
        if spec.get("audiences") is not None:
            fields["f:audiences"] = {}
        if ref is not None:
            fields["f:boundObjectRef"] = {f"f:{k}": {} for k in ref}
        # The answer's metadata is the service account's (name, namespace, uid, creationTimestamp).
        return {
            "kind": "TokenRequest",
            "apiVersion": AUTH_API_VERSION,
            "metadata": {
                "name": name,
                "namespace": namespace,
                "uid": sa_uid,
                "creationTimestamp": sa_created,
                "managedFields": [_managed_fields(manager, fields, "token")],
            },
            "spec": {"audiences": audiences, "expirationSeconds": expiration, "boundObjectRef": ref},
            "status": {"token": token, "expirationTimestamp": rfc3339(exp)},
        }

    def _bound_object(
        self, namespace: str, service_account: str, ref: dict[str, str] | None
    ) -> tuple[Pod | None, tuple[str, str] | None]:
        """The pod, or the node (name, UID), a token is to be bound to."""
        if ref is None:
            return None, None
        api_version, kind = ref.get("apiVersion", ""), ref.get("kind", "")
        group = api_version.rpartition("/")[0] if "/" in api_version else ""
        name, uid = ref.get("name", ""), ref.get("uid", "")
        if group or kind not in ("Pod", "Secret", "Node"):
            version = api_version.rpartition("/")[2]
            raise APIError(400, f"cannot bind token to object of type {group}/{version}, Kind={kind}")
        if not name:
            raise APIError(400, "Name parameter required.")  # the registry's Get of an empty name
        if kind == "Secret":
            raise not_found("secrets", name)  # this server keeps no secrets
        if kind == "Node":
            with self._lock:
                node_uid = self._nodes.get(name)
            if node_uid is None:
                raise not_found("nodes", name)
            if uid and uid != node_uid:
                raise _uid_conflict("Node", name, uid)
            return None, (name, node_uid)
        with self._lock:
            pod = self._pods.get((namespace, name))
        if pod is None:
            raise not_found("pods", name)
        if pod.service_account != service_account:
            raise APIError(
                400,
                f'cannot bind token for serviceaccount "{service_account}" to pod running with different'
                " serviceaccount name.",
            )
        if uid and uid != pod.uid:
            raise _uid_conflict("Pod", name, uid)
        return pod, None

    def _token_review(self, body: bytes, manager: str) -> dict[str, Any]:
        review = decode_object(body, AUTH_API_VERSION, "TokenReview")
        check_types(review, TOKEN_REVIEW)
        spec = review.get("spec") or {}
        token, requested = spec.get("token") or "", [a or "" for a in spec.get("audiences") or []]
        if not token:
            raise APIError(400, "token is required for TokenReview in authentication")
        wanted = requested or list(self.api_audiences)
        # Go's encoding omits these when empty (``omitempty``); clients must treat absence as false/none.
        status: dict[str, Any] = {"user": {}}
        try:
            identity = self._verify(token, wanted)
        except APIError as err:
            # The authenticators' errors aggregated: one message alone is bare, several are bracketed.
            status["error"] = err.message if err.message == INVALID_BEARER_TOKEN else f"[{err.message}]"
        else:
            granted = [a for a in wanted if a in identity.audiences]
            status = {"authenticated": True, "user": _user_info(identity), "audiences": granted}
        fields: dict[str, Any] = {f"f:{k}": {} for k in ("audiences", "token") if spec.get(k)}
        return {
            "kind": "TokenReview",
            "apiVersion": AUTH_API_VERSION,
            # No name, no creationTimestamp: the review is never stored.
            "metadata": {"managedFields": [_managed_fields(manager, fields)]},
            "spec": {k: v for k, v in (("token", token), ("audiences", requested)) if v},
            "status": status,
        }


def _admit_own_pod_token(
    caller: TokenIdentity, service_account: str, audiences: list[str], ref: dict[str, str] | None
) -> None:
    """The ``own_pod_tokens_only`` admission policy, docs/oidc-sa-token.md §6's ValidatingAdmissionPolicy:
    when ``object.spec.audiences.exists(a, a.startsWith('signed-entrypoint:'))``, admit only if::

        has(object.spec.boundObjectRef) && has(object.spec.boundObjectRef.kind) &&
        object.spec.boundObjectRef.kind == 'Pod' && has(object.spec.boundObjectRef.uid) &&
        'authentication.kubernetes.io/pod-uid' in request.userInfo.extra &&
        object.spec.boundObjectRef.uid == request.userInfo.extra['authentication.kubernetes.io/pod-uid'][0]

    The name is not compared: the TokenRequest storage then finds the pod by name and refuses a UID that
    is not its own (409).  A reference without a kind or a UID is denied (the policy checks
    ``has()`` first: without it, kube-apiserver fails closed with a CEL error instead of the
    message); so is a caller whose token is bound to no pod (no ``extra``).
    """
    if not any(a.startswith(OWN_POD_POLICY_AUDIENCE_PREFIX) for a in audiences):
        return
    if (
        caller.pod is not None
        and ref is not None
        and ref.get("kind") == "Pod"
        and ref.get("uid") is not None
        and ref.get("uid") == caller.pod[1]
    ):
        return
    # As kube-apiserver v1.37.2 answers (tests/e2e/test_admission_policy.py): admission.NewForbidden's
    # message, but a validation without a ``reason`` is Invalid, so the code is 422, not 403.
    denial = f"ValidatingAdmissionPolicy '{OWN_POD_POLICY}' with binding '{OWN_POD_POLICY}' denied request: "
    raise APIError(
        422,
        f'serviceaccounts "{service_account}" is forbidden: {denial}{OWN_POD_POLICY_MESSAGE}',
        {
            "name": service_account,
            "kind": "serviceaccounts",
            "causes": [{"message": denial + OWN_POD_POLICY_MESSAGE}],
        },
    )


def _user_info(identity: TokenIdentity) -> dict[str, Any]:
    extra: dict[str, list[str]] = {}
    if identity.pod is not None:
        extra["authentication.kubernetes.io/pod-name"] = [identity.pod[0]]
        extra["authentication.kubernetes.io/pod-uid"] = [identity.pod[1]]
    if identity.node is not None:
        extra["authentication.kubernetes.io/node-name"] = [identity.node[0]]
        extra["authentication.kubernetes.io/node-uid"] = [identity.node[1]]
    if identity.jti:
        extra["authentication.kubernetes.io/credential-id"] = [f"JTI={identity.jti}"]
    return {
        "username": identity.username,
        "uid": identity.service_account_uid,
        "groups": [
            SERVICE_ACCOUNT_GROUP,
            f"{SERVICE_ACCOUNT_GROUP}:{identity.namespace}",
            "system:authenticated",
        ],
        "extra": extra,
    }


def _check_times(claims: Mapping[str, Any]) -> None:
    """go-jose's ``Claims.Validate`` with its default leeway, as the apiserver calls it: each of nbf,
    exp and iat is optional, and checked in that order."""
    now = time.time()
    nbf, exp, iat = (claims.get(k) for k in ("nbf", "exp", "iat"))
    if any(
        v is not None and (isinstance(v, bool) or not isinstance(v, (int, float))) for v in (nbf, exp, iat)
    ):
        raise APIError(401, f"{INVALID_BEARER_TOKEN}, service account token claims are malformed")
    if nbf is not None and now + LEEWAY_SECONDS < nbf:
        raise APIError(401, f"{INVALID_BEARER_TOKEN}, service account token is not valid yet")
    if exp is not None and now - LEEWAY_SECONDS > exp:
        raise APIError(401, f"{INVALID_BEARER_TOKEN}, service account token has expired")
    if iat is not None and now + LEEWAY_SECONDS < iat:
        raise APIError(401, f"{INVALID_BEARER_TOKEN}, service account token is issued in the future")


def _go_quoted(values: Sequence[str]) -> str:
    """Go's ``%q`` of a []string: ``["a" "b"]``."""
    return "[" + " ".join(json.dumps(v) for v in values) + "]"


def _resource_verb(method: str, *, named: bool) -> str:
    """The RBAC verb of a request on a named object (or its subresource) or on a collection."""
    if method == "GET":
        return "get" if named else "list"
    if method == "DELETE" and not named:
        return "deletecollection"
    return {"POST": "create", "PUT": "update", "PATCH": "patch", "DELETE": "delete"}.get(
        method, method.lower()
    )


def _forbidden_resource(match: re.Match[str], method: str, query: str, user: str) -> APIError:
    name = match["name"] or ""
    verb = _resource_verb(method, named=bool(name))
    if verb == "list" and urllib.parse.parse_qs(query).get("watch", [""])[-1] in ("true", "1"):
        verb = "watch"
    resource = Resource(match["resource"], "", match["group"] or "")
    return forbidden(resource, name, user, verb, match["sub"] or "", match["namespace"])


def _forbidden_path(user: str, method: str, path: str) -> APIError:
    # The RBAC authorizer on a non-resource URL: its verb is the HTTP method's name.
    return APIError(403, f'forbidden: User "{user}" cannot {method.lower()} path "{path}"')


def _uid_conflict(kind: str, name: str, uid: str) -> APIError:
    return APIError(
        409,
        f'Operation cannot be fulfilled on {kind} "{name}": the UID in the bound object reference'
        f" ({uid}) does not match the UID in record. The object might have been deleted and then recreated",
        {"name": name, "kind": kind},
    )


def _field_manager(query: str, user_agent: str) -> str:
    """The ``fieldManager`` a write is recorded under: the query's, else the User-Agent's product name
    (what precedes the first "/", printable, at most 128 bytes), as the apiserver's handlers derive it."""
    given = urllib.parse.parse_qs(query).get("fieldManager")
    if given:
        return given[-1]
    manager = ""
    for char in user_agent.split("/", 1)[0]:
        if not char.isprintable():
            continue
        if len((manager + char).encode()) > _FIELD_MANAGER_MAX_LENGTH:
            break
        manager += char
    return manager or "unknown"  # what kube-apiserver v1.37.2 records for a request without one


def _managed_fields(manager: str, spec_fields: dict[str, Any], subresource: str = "") -> dict[str, Any]:
    """The one managedFields entry of a TokenRequest or TokenReview answer: an Update by ``manager``
    of the spec fields the request set."""
    entry: dict[str, Any] = {
        "manager": manager,
        "operation": "Update",
        "apiVersion": AUTH_API_VERSION,
        "time": rfc3339(int(time.time())),
        "fieldsType": "FieldsV1",
        "fieldsV1": {"f:spec": dict(sorted(spec_fields.items()))},
    }
    if subresource:
        entry["subresource"] = subresource
    return entry


def _write_atomically(path: str, data: bytes, mode: int) -> None:
    # A reader (a step, a test) must never see half a token.
    tmp = f"{path}.tmp{os.getpid()}"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    with os.fdopen(fd, "wb") as f:
        f.write(data)
    os.replace(tmp, path)
