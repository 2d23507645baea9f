"""A Kubernetes API server for tests: real HTTPS on 127.0.0.1, issuing and reviewing bound SA tokens, and
storing the objects a TaskRun controller reads and writes.

It serves the four endpoints a pod-bound-token signer and its verifiers touch (field survey §3), and answers
as kube-apiserver does (``pkg/registry/core/serviceaccount/storage/token.go``,
``pkg/serviceaccount/claims.go``, ``openidmetadata.go``):

* ``POST /api/v1/namespaces/{ns}/serviceaccounts/{sa}/token`` (TokenRequest, 201).  The caller authenticates
  with a token for the API audiences and may only request tokens for its own service account (the RBAC grant
  a signer's pod would have).  Errors are ``Status`` objects with the apiserver's codes and words: 401 for a
  token that does not authenticate, 403 forbidden (also for a caller without credentials, who is
  ``system:anonymous``, and for any other verb), 400 undecodable body (Go's JSON errors), **422 Invalid**
  for ``expirationSeconds`` outside [600, 2^32], 404 for an unknown service account, pod or node, 409 when
  ``boundObjectRef.uid`` is not the object's current UID, 400 when the pod runs as another service account.
  A token may be bound to a Pod or to a Node.  Empty ``audiences`` default to the API audiences and
  ``max_token_seconds`` caps the lifetime silently, both as the apiserver does.
* ``POST /apis/authentication.k8s.io/v1/tokenreviews`` (TokenReview, 201), for callers granted it
  (:meth:`KubeAPIServer.allow_token_review`, the ``system:auth-delegator`` binding; 403 otherwise).  A token
  is authenticated only if its issuer is this server's, its signature verifies against a key still in the
  JWKS, its audiences meet the requested ones, it is within ``nbf``/``exp``/``iat`` where present (60 s
  leeway, as go-jose's default), and its service account and bound pod (or node) still exist with the same
  UIDs; its ``sub`` is not looked at.  As in Go's JSON encoding, ``authenticated``, ``audiences`` and
  ``error`` are omitted when empty.
* ``GET /.well-known/openid-configuration`` and ``GET /openid/v1/jwks``, for service accounts (the default
  ``system:service-account-issuer-discovery`` binding); callers without credentials get 403 unless
  ``anonymous_discovery`` (a cluster that binds that role to ``system:unauthenticated`` too).  Any other
  path outside ``/api`` and ``/apis`` is 403, as the RBAC authorizer answers for a URL nobody is granted.

Tokens are real JWTs (PyJWT), RS256 or ES256, ``kid`` = base64url(SHA-256(SPKI DER)) as the apiserver derives
it.  The issuer defaults to the server's own URL, so OIDC discovery from ``iss`` reaches this server.

Fault knobs, settable while serving: ``fail_status``/``fail_next`` (answer an error status), ``delay``
(bounded slow answers), ``unauthorized`` (401 for everything), ``deny_token_requests`` (RBAC not granted),
:meth:`KubeAPIServer.rotate_signing_key`.

Admission, settable while serving: ``own_pod_tokens_only`` simulates the ValidatingAdmissionPolicy that
docs/oidc-sa-token.md §6 recommends against one pod of a service account asking for a token bound to
another pod of the same service account.  A TokenRequest with an audience starting with
``signed-entrypoint:`` (after defaulting) must bind the token to the pod the caller's own token is bound
to: ``kind: Pod`` and the UID in the caller's ``userInfo.extra['authentication.kubernetes.io/pod-uid']``.
Otherwise the answer is the policy's denial, 422 Invalid (as the real one); a caller whose token is
bound to no pod is denied too.  As in kube-apiserver's TokenRequest storage, validating admission runs
after the service-account lookup (404) and the static validation (422), and before the bound object is
looked up (404/409/400).

Objects (:mod:`.resources`): ``tekton.dev/v1`` TaskRuns (a CRD with the status subresource), ``v1`` Pods,
``coordination.k8s.io/v1`` Leases, ``v1`` Events and ``v1`` ConfigMaps, namespaced, at the apiserver's
paths (list and watch also across namespaces).  Every request needs a bearer token for the API
audiences (401 for one that fails, 403 without any), and the fault knobs above apply to it as to the
token endpoints.
As kube-apiserver does:

* one resourceVersion counter, bumped by every write that changes something (a no-op write is answered
  200 and bumps nothing); create fills ``uid``, ``creationTimestamp``, ``generation`` (TaskRuns and Pods)
  and a name from ``generateName``; a write naming another ``metadata.resourceVersion`` than the current
  one is 409 Conflict; errors are ``Status`` objects in the apiserver's words (404, 409 AlreadyExists and
  Conflict, 422 Invalid, 403 Forbidden, 415);
* lists in namespace/name order, paged with ``limit`` and an opaque ``continue``;
* ``?watch=true``: newline-delimited ADDED/MODIFIED/DELETED events, chunked, each as it is written, from
  ``resourceVersion`` (absent or "0": an ADDED for every object first) until ``timeoutSeconds``; a version
  older than the bounded history (``history_limit``, or :meth:`~.cluster.ClusterObjects.compact`) gets
  one ERROR event, 410 Expired; ``allowWatchBookmarks`` adds a BOOKMARK every ``bookmark_interval`` s;
* the status subresource: ``PATCH``/``PUT .../status`` changes only ``.status``; writes to the main
  resource keep the stored status (a POST drops it); merge patch (RFC 7386) and JSON patch (RFC 6902,
  a failing ``test`` is 422), no strategic merge patch (415, as for any custom resource).

Tests reach the objects without HTTP (:class:`~.cluster.ClusterObjects`, thread-safe, copies out):
``create(obj)``, ``get_object(path)``, ``update_status(ns, name, status)``, ``delete_object(path)``,
``objects(plural, namespace=None)``, ``events(namespace=None)``, ``resource_version``; the watch knobs
``compact()``, ``drop_watches()`` (every stream ends at once, as in an apiserver restart), ``watch_count``,
``bookmark_interval``, ``history_limit``; and RBAC: ``forbid(verb, resource, namespace=None)`` (e.g.
``forbid("patch", "taskruns/status")``: 403 in the RBAC authorizer's wording), ``allow_all()``.

Pods: the token side's pods *are* the stored Pod objects.  :meth:`KubeAPIServer.add_pod` stores a minimal
one under the given UID; :meth:`KubeAPIServer.put_pod_object` stores a full one (keeping that UID unless
given another, which is a delete and recreate), as does a POST; deleting one, by any path, unbinds its
tokens.

Layers: :mod:`.objects` (paths, ``Status`` errors, pods), :mod:`.keys` (signing keys and the JWKS),
:mod:`.server` (routing, tokens, admission); for objects :mod:`.resources` (what is served, its errors),
:mod:`.store` (versions, history, watches), :mod:`.watch` (the streams), :mod:`.strategy` (what a write may
change), :mod:`.patch`, :mod:`.rbac`, :mod:`.rest` (the verbs), :mod:`.cluster` (the tests' side); all on
the shared HTTPS scaffold (:mod:`entrypoint.testing._https`).

Run standalone with ``python -m entrypoint.testing.kube_api --pod NS/NAME/UID --service-account SA``
(``--own-pod-tokens-only`` turns the admission policy on, ``--token-reviewer NS/SA`` grants TokenReview,
``--anonymous-discovery`` serves discovery to anyone).
"""

from __future__ import annotations

from entrypoint.testing._https import MAX_DELAY_SECONDS
from entrypoint.testing.kube.keys import ALGORITHMS
from entrypoint.testing.kube.objects import (
    JWKS_PATH,
    OPENID_CONFIG_PATH,
    OWN_POD_POLICY,
    OWN_POD_POLICY_AUDIENCE_PREFIX,
    OWN_POD_POLICY_MESSAGE,
    TOKEN_REVIEW_PATH,
    Pod,
    token_request_path,
)
from entrypoint.testing.kube.server import KubeAPIServer

__all__ = [
    "ALGORITHMS",
    "JWKS_PATH",
    "MAX_DELAY_SECONDS",
    "OPENID_CONFIG_PATH",
    "OWN_POD_POLICY",
    "OWN_POD_POLICY_AUDIENCE_PREFIX",
    "OWN_POD_POLICY_MESSAGE",
    "TOKEN_REVIEW_PATH",
    "KubeAPIServer",
    "Pod",
    "token_request_path",
]
