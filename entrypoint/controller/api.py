"""The few Kubernetes API calls the controller makes, over the project's one REST client."""

from __future__ import annotations

import json
import urllib.parse
from collections.abc import Iterator, Mapping
from typing import Any

from entrypoint._internal.kube.client import KubeClient

GROUP_PATH = "/apis/tekton.dev/v1"
MERGE_PATCH = "application/merge-patch+json"


def _query(**params: str | int | bool | None) -> str:
    pairs = {k: str(v).lower() if isinstance(v, bool) else str(v) for k, v in params.items() if v is not None}
    return "?" + urllib.parse.urlencode(pairs) if pairs else ""


def taskruns_path(namespace: str | None, name: str | None = None, sub: str = "") -> str:
    base = f"{GROUP_PATH}/namespaces/{namespace}/taskruns" if namespace else f"{GROUP_PATH}/taskruns"
    return base + (f"/{name}" if name else "") + (f"/{sub}" if sub else "")


class ControllerAPI:
    """TaskRuns (list, watch, get, status and metadata patches), Pods, Events and Leases."""

    def __init__(self, client: KubeClient) -> None:
        self.client = client

    def list_taskruns(self, namespace: str | None, *, limit: int = 500) -> tuple[list[dict[str, Any]], str]:
        """Every TaskRun (paged), and the list's resourceVersion to watch from."""
        items: list[dict[str, Any]] = []
        token: str | None = None
        while True:
            doc = self.client.get_json(taskruns_path(namespace) + _query(limit=limit, **{"continue": token}))
            items += [i for i in doc.get("items") or [] if isinstance(i, dict)]
            meta = doc.get("metadata") or {}
            token = meta.get("continue") or None
            if not token:
                return items, str(meta.get("resourceVersion", ""))

    def watch_taskruns(
        self, namespace: str | None, resource_version: str, *, timeout_seconds: int = 300
    ) -> Iterator[dict[str, Any]]:
        query = _query(
            watch=True,
            resourceVersion=resource_version,
            allowWatchBookmarks=True,
            timeoutSeconds=timeout_seconds,
        )
        return self.client.stream(taskruns_path(namespace) + query, read_timeout=timeout_seconds + 30)

    def get_taskrun(self, namespace: str, name: str) -> dict[str, Any]:
        return self.client.get_json(taskruns_path(namespace, name))

    def get_pod(self, namespace: str, name: str) -> dict[str, Any]:
        return self.client.get_json(f"/api/v1/namespaces/{namespace}/pods/{name}")

    def patch_taskrun(
        self, namespace: str, name: str, patch: Mapping[str, Any], *, status: bool = False
    ) -> dict[str, Any]:
        """A JSON merge patch; a ``metadata.resourceVersion`` in it makes the API server refuse a
        stale write (409 Conflict) instead of overwriting what changed since it was read."""
        return self.client.request(
            "PATCH",
            taskruns_path(namespace, name, "status" if status else ""),
            patch,
            content_type=MERGE_PATCH,
        )

    def create_event(self, namespace: str, event: Mapping[str, Any]) -> dict[str, Any]:
        return self.client.post_json(f"/api/v1/namespaces/{namespace}/events", event)

    def lease_path(self, namespace: str, name: str | None = None) -> str:
        base = f"/apis/coordination.k8s.io/v1/namespaces/{namespace}/leases"
        return base + (f"/{name}" if name else "")

    def get_lease(self, namespace: str, name: str) -> dict[str, Any]:
        return self.client.get_json(self.lease_path(namespace, name))

    def create_lease(self, namespace: str, lease: Mapping[str, Any]) -> dict[str, Any]:
        return self.client.post_json(self.lease_path(namespace), lease)

    def update_lease(self, namespace: str, name: str, lease: Mapping[str, Any]) -> dict[str, Any]:
        return self.client.request("PUT", self.lease_path(namespace, name), lease)

    def configmap_path(self, namespace: str, name: str | None = None) -> str:
        base = f"/api/v1/namespaces/{namespace}/configmaps"
        return base + (f"/{name}" if name else "")

    def get_configmap(self, namespace: str, name: str) -> dict[str, Any]:
        return self.client.get_json(self.configmap_path(namespace, name))

    def create_configmap(self, namespace: str, configmap: Mapping[str, Any]) -> dict[str, Any]:
        return self.client.post_json(self.configmap_path(namespace), configmap)

    def update_configmap(self, namespace: str, name: str, configmap: Mapping[str, Any]) -> dict[str, Any]:
        return self.client.request("PUT", self.configmap_path(namespace, name), configmap)


def compact_json(obj: Any) -> str:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"))
