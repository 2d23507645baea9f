"""The Kubernetes API double's server: TokenRequest, TokenReview and OIDC discovery over HTTPS, and the
routing of object requests (authenticated here) to :mod:`.rest`.

See :mod:`entrypoint.testing.kube` for what it answers and how; the HTTPS plumbing and the fault
knobs are the shared scaffold's (:mod:`entrypoint.testing._https`).
"""

from __future__ import annotations

import copy
import json
import os
import time
import uuid
from collections.abc import Mapping, Sequence
from typing import Any

import jwt

from entrypoint.testing._https import HTTPError, HTTPSDouble, Reply, serving_credentials
from entrypoint.testing.kube.cluster import ClusterObjects
from entrypoint.testing.kube.keys import SigningKey
from entrypoint.testing.kube.objects import (
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
    undecodable,
)
from entrypoint.testing.kube.resources import PODS, parse_path
from entrypoint.testing.kube.store import DEFAULT_HISTORY
from entrypoint.testing.kube.strategy import check_type
from entrypoint.testing.kube.watch import Change


class KubeAPIServer(HTTPSDouble, ClusterObjects):
    """An HTTPS Kubernetes API server on 127.0.0.1 serving TokenRequest, TokenReview, OIDC discovery and
    the objects of :mod:`.resources` (TaskRuns, Pods, Leases, Events).

    ``alg``: the token signing algorithm, ``"RS256"`` (the apiserver default) or ``"ES256"``.  ``issuer``:
    the ``iss`` of issued tokens; by default the server's URL (known once started).  ``api_audiences``: the
    audiences the API itself accepts (``--api-audiences``), by default ``[issuer]``; mounted tokens carry
    them and callers must present one.  ``max_token_seconds``: ``--service-account-max-token-expiration``.
    ``port``: 0 picks a free port, kept across restarts.  ``own_pod_tokens_only``: the admission policy
    of the module docstring (also an attribute, settable while serving).  ``history_limit``: how many
    changes watches can resume from (:attr:`ClusterObjects.history_limit`).
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
        self._nodes: dict[str, str] = {}
        self._token_requests: list[dict[str, Any]] = []
        self.unauthorized = False
        self.deny_token_requests = False
        self.own_pod_tokens_only = own_pod_tokens_only
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
            return self._service_accounts.setdefault((namespace, name), str(uuid.uuid4()))

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
    ) -> tuple[str, int]:
        now = int(time.time())
        exp = now + int(lifetime)
        private: dict[str, Any] = {
            "namespace": namespace,
            "serviceaccount": {"name": service_account, "uid": sa_uid},
        }
        if pod is not None:
            private["pod"] = {"name": pod.name, "uid": pod.uid}
            private["node"] = {"name": pod.node, "uid": pod.node_uid}
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
        return jwt.encode(claims, key.private, algorithm=key.alg, headers={"kid": key.kid}), exp

    def _verify(self, token: str) -> TokenIdentity:
        """Authenticate a token as the apiserver's service-account authenticator does; the audience is the
        caller's business.  Raises ``APIError`` whose message is the authenticator's error."""
        try:
            header = jwt.get_unverified_header(token)
        except jwt.InvalidTokenError:
            raise APIError(401, "invalid bearer token") from None
        kid = header.get("kid")
        with self._lock:
            keys = [k for k in self._keys if kid is None or k.kid == kid]
        if not keys:
            raise APIError(401, "invalid bearer token, square/go-jose: error in cryptographic primitive")
        claims: dict[str, Any] | None = None
        for key in keys:
            try:
                claims = jwt.decode(
                    token,
                    key.private.public_key(),
                    algorithms=[key.alg],
                    issuer=self.issuer,
                    leeway=LEEWAY_SECONDS,
                    options={"verify_aud": False, "require": ["exp", "iat", "iss", "sub"]},
                )
                break
            except jwt.ExpiredSignatureError:
                raise APIError(401, "invalid bearer token, service account token has expired") from None
            except jwt.ImmatureSignatureError:
                raise APIError(401, "invalid bearer token, service account token is not valid yet") from None
            except jwt.InvalidSignatureError:
                continue
            except jwt.InvalidTokenError:
                raise APIError(401, "invalid bearer token") from None
        if claims is None:
            raise APIError(401, "invalid bearer token, square/go-jose: error in cryptographic primitive")
        return self._check_bound_objects(claims)

    def _check_bound_objects(self, claims: dict[str, Any]) -> TokenIdentity:
        private = claims.get("kubernetes.io")
        sa = private.get("serviceaccount") if isinstance(private, dict) else None
        if not isinstance(private, dict) or not isinstance(sa, dict):
            raise APIError(401, "invalid bearer token, service account token claims are malformed")
        namespace, name, sa_uid = private.get("namespace"), sa.get("name"), sa.get("uid")
        if claims.get("sub") != f"system:serviceaccount:{namespace}:{name}":
            raise APIError(401, "invalid bearer token, service account token claims are malformed")
        pod_claim = private.get("pod")
        with self._lock:
            current_sa_uid = self._service_accounts.get((str(namespace), str(name)))
            pod = (
                self._pods.get((str(namespace), str(pod_claim.get("name"))))
                if isinstance(pod_claim, dict)
                else None
            )
        if current_sa_uid is None:
            raise APIError(401, "invalid bearer token, service account token has been invalidated")
        if current_sa_uid != sa_uid:
            raise APIError(
                401,
                f"invalid bearer token, service account UID ({current_sa_uid})"
                f" does not match claim ({sa_uid})",
            )
        bound_pod: tuple[str, str] | None = None
        if isinstance(pod_claim, dict):
            if pod is None:
                raise APIError(401, "invalid bearer token, service account token has been invalidated")
            if pod.uid != pod_claim.get("uid"):
                raise APIError(
                    401,
                    f"invalid bearer token, pod UID ({pod.uid})"
                    f" does not match claim ({pod_claim.get('uid')})",
                )
            bound_pod = (pod.name, pod.uid)
        node_claim = private.get("node")
        node = (
            (str(node_claim.get("name")), str(node_claim.get("uid")))
            if isinstance(node_claim, dict)
            else None
        )
        aud = claims.get("aud")
        audiences = (
            (aud,) if isinstance(aud, str) else tuple(str(a) for a in aud) if isinstance(aud, list) else ()
        )
        return TokenIdentity(
            str(namespace), str(name), str(sa_uid), audiences, str(claims.get("jti", "")), bound_pod, node
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
        headers = {"Retry-After": "1"} if err.code in (429, 503) else {}
        if err.code == 401:
            headers["WWW-Authenticate"] = 'Bearer realm="kubernetes"'
        reason = err.reason if isinstance(err, APIError) else None
        return status_body(err.code, err.message, err.details, reason), headers

    def stop(self) -> None:
        # Watches end cleanly first, as in a graceful apiserver shutdown, then connections are cut.
        self.drop_watches()
        super().stop()

    def handle(self, method: str, path: str, headers: Any, body: bytes) -> Reply:
        return self._handle(method, path, headers.get("Authorization"), headers.get("Content-Type"), body)

    def _handle(
        self, method: str, raw_path: str, authorization: str | None, content_type: str | None, body: bytes
    ) -> Reply:
        path, _, query = raw_path.partition("?")
        target = parse_path(path)
        if target is not None:
            caller = self._authenticate(authorization)
            return self._endpoints.serve(method, target, query, caller.username, content_type, body)
        token_path = TOKEN_PATH.match(path)
        if path in (OPENID_CONFIG_PATH, JWKS_PATH):
            if method != "GET":
                raise APIError(405, "the server does not allow this method on the requested resource")
            if path == JWKS_PATH:
                return 200, self.jwks(), "application/jwk-set+json", {"Cache-Control": "public, max-age=3600"}
            return (
                200,
                self.openid_configuration(),
                "application/json",
                {"Cache-Control": "public, max-age=3600"},
            )
        if token_path is None and path != TOKEN_REVIEW_PATH:
            raise APIError(404, "the server could not find the requested resource")
        caller = self._authenticate(authorization)
        if method != "POST":
            raise APIError(405, "the server does not allow this method on the requested resource")
        require_json(content_type)
        if token_path is not None:
            return (
                201,
                self._token_request(caller, token_path[1], token_path[2], body),
                "application/json",
                {},
            )
        return 201, self._token_review(body), "application/json", {}

    def _authenticate(self, authorization: str | None) -> TokenIdentity:
        scheme, _, token = (authorization or "").partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not token:
            raise APIError(401, "Unauthorized")
        try:
            identity = self._verify(token)
        except APIError:
            raise APIError(401, "Unauthorized") from None
        if not set(identity.audiences) & set(self.api_audiences):
            raise APIError(401, "Unauthorized")
        return identity

    def _token_request(self, caller: TokenIdentity, namespace: str, name: str, body: bytes) -> dict[str, Any]:
        if self.deny_token_requests or (caller.namespace, caller.service_account) != (namespace, name):
            raise APIError(
                403,
                f'serviceaccounts "{name}" is forbidden: User "{caller.username}" cannot create resource'
                f' "serviceaccounts/token" in API group "" in the namespace "{namespace}"',
                {"name": name, "kind": "serviceaccounts"},
            )
        request = _decode_object(body, "TokenRequest")
        with self._lock:
            self._token_requests.append(request)
        spec = request.get("spec", {})
        if not isinstance(spec, dict):
            raise undecodable("TokenRequest", "spec must be an object")
        audiences = spec.get("audiences")
        if audiences is None:
            audiences = []
        if not isinstance(audiences, list) or not all(isinstance(a, str) for a in audiences):
            raise undecodable("TokenRequest", "spec.audiences must be a list of strings")
        expiration = spec.get("expirationSeconds", DEFAULT_EXPIRATION_SECONDS)
        if not isinstance(expiration, int) or isinstance(expiration, bool):
            raise undecodable("TokenRequest", "spec.expirationSeconds must be an integer")
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
        if sa_uid is None:
            raise not_found("serviceaccounts", name)
        ref = spec.get("boundObjectRef")
        if ref is not None and (
            not isinstance(ref, dict) or not all(isinstance(v, str) for v in ref.values())
        ):
            raise undecodable("TokenRequest", "spec.boundObjectRef must be an object of strings")
        if not audiences:
            audiences = list(self.api_audiences)
        if self.own_pod_tokens_only:
            _admit_own_pod_token(caller, name, audiences, ref)
        pod = self._bound_pod(namespace, name, ref)
        if self.max_token_seconds is not None and expiration > self.max_token_seconds:
            expiration = self.max_token_seconds
        token, exp = self._mint(namespace, name, sa_uid, pod, tuple(audiences), expiration)
        out_spec = {**spec, "audiences": audiences, "expirationSeconds": expiration}
        return {
            "kind": "TokenRequest",
            "apiVersion": AUTH_API_VERSION,
            "metadata": {"name": name, "namespace": namespace, "creationTimestamp": None},
            "spec": out_spec,
            "status": {"token": token, "expirationTimestamp": rfc3339(exp)},
        }

    def _bound_pod(self, namespace: str, service_account: str, ref: dict[str, str] | None) -> Pod | None:
        if ref is None:
            return None
        api_version, kind = ref.get("apiVersion", ""), ref.get("kind", "")
        group = api_version.rpartition("/")[0] if "/" in api_version else ""
        name, uid = ref.get("name", ""), ref.get("uid", "")
        if group or kind not in ("Pod", "Secret"):
            version = api_version.rpartition("/")[2]
            raise APIError(400, f"cannot bind token to object of type {group}/{version}, Kind={kind}")
        if not name:
            raise APIError(400, "resource name may not be empty")
        if kind == "Secret":
            raise not_found("secrets", name)  # this server keeps no secrets
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
            raise APIError(
                409,
                f'Operation cannot be fulfilled on Pod "{name}": the UID in the bound object reference'
                f" ({uid}) does not match the UID in record."
                " The object might have been deleted and then recreated",
                {"name": name, "kind": "Pod"},
            )
        return pod

    def _token_review(self, body: bytes) -> dict[str, Any]:
        review = _decode_object(body, "TokenReview")
        spec = review.get("spec", {})
        if not isinstance(spec, dict):
            raise undecodable("TokenReview", "spec must be an object")
        token, requested = spec.get("token", ""), spec.get("audiences")
        if not isinstance(token, str):
            raise undecodable("TokenReview", "spec.token must be a string")
        if requested is not None and (
            not isinstance(requested, list) or not all(isinstance(a, str) for a in requested)
        ):
            raise undecodable("TokenReview", "spec.audiences must be a list of strings")
        if not token:
            raise APIError(400, "token is required for TokenReview in authentication")
        wanted = list(requested) if requested else list(self.api_audiences)
        # Go's encoding omits these when empty (``omitempty``); clients must treat absence as false/none.
        status: dict[str, Any] = {"user": {}}
        try:
            identity = self._verify(token)
        except APIError as err:
            status["error"] = f"[{err.message}]"
        else:
            granted = [a for a in wanted if a in identity.audiences]
            if not granted:
                status["error"] = (
                    f"[invalid bearer token, token audiences {json.dumps(list(identity.audiences))}"
                    f" is invalid for the target audiences {json.dumps(wanted)}]"
                )
            else:
                status = {"authenticated": True, "user": _user_info(identity), "audiences": granted}
        return {
            "kind": "TokenReview",
            "apiVersion": AUTH_API_VERSION,
            "metadata": {"creationTimestamp": None},
            "spec": spec,
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


def _decode_object(body: bytes, kind: str) -> dict[str, Any]:
    try:
        obj = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise undecodable(kind, f"json parse error: {err}") from None
    if not isinstance(obj, dict):
        raise undecodable(kind, "the body is not a JSON object")
    # The apiserver fills absent type fields from the URL, but refuses ones naming something else.
    api_version, got_kind = obj.get("apiVersion", AUTH_API_VERSION), obj.get("kind", kind)
    if api_version != AUTH_API_VERSION or got_kind != kind:
        raise undecodable(
            kind, f"expected {AUTH_API_VERSION}, Kind={kind}, got {api_version}, Kind={got_kind}"
        )
    return obj


def _write_atomically(path: str, data: bytes, mode: int) -> None:
    # A reader (a step, a test) must never see half a token.
    tmp = f"{path}.tmp{os.getpid()}"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    with os.fdopen(fd, "wb") as f:
        f.write(data)
    os.replace(tmp, path)
