"""The object endpoints of the Kubernetes API double: a request's verb, its authorization, and the
verb done on the store (get, list, watch, create, update, patch, delete), answered as the apiserver does.
"""

from __future__ import annotations

import json
import urllib.parse
from collections.abc import Callable, Mapping
from typing import Any

from entrypoint.testing._https import Answer, Reply, StreamedAnswer
from entrypoint.testing.kube.objects import (
    ANONYMOUS,
    BUILT_IN_MEDIA_TYPES,
    CUSTOM_MEDIA_TYPES,
    media_type_of,
    require_json,
    undecodable,
    unsupported_media_type,
)
from entrypoint.testing.kube.patch import JSONPatchFailure, json_patch, merge_patch
from entrypoint.testing.kube.rbac import Denials
from entrypoint.testing.kube.resources import (
    Resource,
    Target,
    bad_request,
    forbidden,
    method_not_allowed,
    name_mismatch,
    patch_rejected,
)
from entrypoint.testing.kube.store import ObjectStore
from entrypoint.testing.kube.strategy import prepare_create, prepare_update
from entrypoint.testing.kube.watch import Watcher, WatchStream

MERGE_PATCH = "application/merge-patch+json"
JSON_PATCH = "application/json-patch+json"
# Without timeoutSeconds the apiserver picks one at random from [minRequestTimeout, 2 x that).
DEFAULT_WATCH_SECONDS = 1800
_VERBS = {"POST": "create", "PUT": "update", "PATCH": "patch", "DELETE": "delete"}


def _json(body: bytes, kind: str) -> Any:
    try:
        return json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise undecodable(kind, f"json parse error: {err}") from None


def _object(body: bytes, kind: str) -> dict[str, Any]:
    obj = _json(body, kind)
    if not isinstance(obj, dict):
        raise undecodable(kind, "the body is not a JSON object")
    return obj


def _int(query: Mapping[str, str], name: str, default: int) -> int:
    raw = query.get(name, "")
    if raw == "":
        return default
    try:
        return int(raw)
    except ValueError:
        raise bad_request(f"invalid value for {name}: {raw!r}") from None


def _resource_version(raw: str) -> int | None:
    """A watch's starting point; None for "" and "0", which mean: the current state first."""
    if raw in ("", "0"):
        return None
    if not raw.isdigit():
        raise bad_request(f"invalid resource version: {raw!r}")
    return int(raw)


class ObjectEndpoints:
    """Answers the requests a :class:`~entrypoint.testing.kube.resources.Target` names, for one caller."""

    def __init__(
        self,
        store: ObjectStore,
        denials: Denials,
        *,
        bookmark_interval: Callable[[], float],
        stopping: Callable[[], bool],
    ) -> None:
        self.store = store
        self.denials = denials
        self._bookmark_interval = bookmark_interval
        self._stopping = stopping

    def serve(
        self, method: str, target: Target, query_string: str, user: str, content_type: str | None, body: bytes
    ) -> Reply:
        query = {k: v[-1] for k, v in urllib.parse.parse_qs(query_string, keep_blank_values=True).items()}
        verb = self._verb(method, target, query)
        # The default RBAC grants system:anonymous nothing on resources.
        if user == ANONYMOUS or self.denials.denies(
            verb, target.resource.plural + _sub(target), target.namespace
        ):
            raise forbidden(
                target.resource, target.name or "", user, verb, target.subresource, target.namespace
            )
        if query.get("labelSelector") or query.get("fieldSelector"):
            raise bad_request("this test API server does not support label or field selectors")
        resource, namespace, name = target.resource, target.namespace, target.name
        if verb == "watch":
            return self._watch(resource, namespace, query)
        if verb == "list":
            return self._list(resource, namespace, query)
        assert namespace is not None
        accepted = CUSTOM_MEDIA_TYPES if resource.custom else BUILT_IN_MEDIA_TYPES
        if verb == "create":
            require_json(content_type, accepted)
            created = self.store.create(
                resource, prepare_create(resource, _object(body, resource.kind), namespace)
            )
            return 201, created, "application/json", {}
        assert name is not None
        if verb == "get":
            return _ok(self.store.get(resource, namespace, name))
        if verb == "delete":
            return _ok(self.store.delete(resource, namespace, name))
        status_only = target.subresource == "status"
        if verb == "update":
            require_json(content_type, accepted)
            new = _object(body, resource.kind)
            meta = new.get("metadata")
            url_name = meta.get("name", "") if isinstance(meta, dict) else ""
            if url_name != name:
                raise name_mismatch(url_name, name)
            return _ok(
                self.store.update(
                    resource,
                    namespace,
                    name,
                    lambda old: prepare_update(resource, old, new, status_only=status_only),
                )
            )
        patch = self._patcher(resource, content_type, body)
        return _ok(
            self.store.update(
                resource,
                namespace,
                name,
                lambda old: prepare_update(resource, old, patch(old), status_only=status_only),
            )
        )

    @staticmethod
    def _verb(method: str, target: Target, query: Mapping[str, str]) -> str:
        if target.name is None:
            if method == "GET":
                return "watch" if query.get("watch") in ("true", "1") else "list"
            if method == "POST" and target.namespace is not None:
                return "create"
            raise method_not_allowed()
        if method == "GET":
            return "get"
        if method in ("PUT", "PATCH") or (method == "DELETE" and not target.subresource):
            return _VERBS[method]
        raise method_not_allowed()

    @staticmethod
    def _patcher(
        resource: Resource, content_type: str | None, body: bytes
    ) -> Callable[[dict[str, Any]], dict[str, Any]]:
        media_type = media_type_of(content_type)
        if media_type == MERGE_PATCH:
            patch = _json(body, resource.kind)
            if not isinstance(patch, dict):
                raise bad_request("Invalid JSON Patch")

            def merged(old: dict[str, Any]) -> dict[str, Any]:
                result = merge_patch(old, patch)
                assert isinstance(result, dict)
                return result

            return merged
        if media_type == JSON_PATCH:
            operations = _json(body, resource.kind)
            if not isinstance(operations, list):
                raise bad_request("json: cannot unmarshal object into Go value of type jsonpatch.Patch")

            def patched(old: dict[str, Any]) -> dict[str, Any]:
                try:
                    result = json_patch(old, operations)
                except JSONPatchFailure as err:
                    raise patch_rejected(str(err)) from None
                if not isinstance(result, dict):
                    raise patch_rejected("the patched document is not an object")
                return result

            return patched
        # A custom resource has no Go type, so no strategic merge patch (nor does this server do one for
        # built-in types, nor server-side apply).
        raise unsupported_media_type(f"{JSON_PATCH}, {MERGE_PATCH}")

    def _list(self, resource: Resource, namespace: str | None, query: Mapping[str, str]) -> Answer:
        page = self.store.list(
            resource, namespace, limit=_int(query, "limit", 0), continue_token=query.get("continue", "")
        )
        meta: dict[str, Any] = {"resourceVersion": str(page.resource_version)}
        if page.continue_token:
            meta["continue"] = page.continue_token
            meta["remainingItemCount"] = page.remaining
        items = page.items
        if not resource.custom:
            # A built-in type's list is typed: its items carry no apiVersion and kind of their own.
            items = [{k: v for k, v in item.items() if k not in ("apiVersion", "kind")} for item in items]
        body = {
            "apiVersion": resource.api_version,
            "kind": f"{resource.kind}List",
            "metadata": meta,
            "items": items,
        }
        return 200, body, "application/json", {}

    def _watch(self, resource: Resource, namespace: str | None, query: Mapping[str, str]) -> StreamedAnswer:
        timeout = _int(query, "timeoutSeconds", 0) or DEFAULT_WATCH_SECONDS
        since = _resource_version(query.get("resourceVersion", ""))
        bookmarks = query.get("allowWatchBookmarks") in ("true", "1")
        watcher = self.store.watch(resource, namespace, since)
        stream = WatchStream(
            watcher,
            timeout=float(max(timeout, 1)),
            bookmark=self._bookmarker(watcher) if bookmarks else None,
            bookmark_interval=self._bookmark_interval,
            stopping=self._stopping,
        )
        return StreamedAnswer(200, stream, close=lambda: self.store.unwatch(watcher))

    def _bookmarker(self, watcher: Watcher) -> Callable[[], dict[str, Any] | None]:
        resource = watcher.resource

        def bookmark() -> dict[str, Any] | None:
            rv = self.store.bookmark(watcher)
            if rv is None:
                return None
            return {
                "kind": resource.kind,
                "apiVersion": resource.api_version,
                "metadata": {"resourceVersion": str(rv)},
            }

        return bookmark


def _sub(target: Target) -> str:
    return f"/{target.subresource}" if target.subresource else ""


def _ok(obj: dict[str, Any]) -> Answer:
    return 200, obj, "application/json", {}
