"""The test side of the Kubernetes API double's objects: reading and writing them without HTTP, and the
knobs on its watches and RBAC.  Every write here is a real write (it bumps the resourceVersion and is
seen by watches), and every object handed out is a copy.
"""

from __future__ import annotations

import copy
import threading
from collections.abc import Mapping
from typing import Any

from entrypoint.testing.kube.objects import APIError
from entrypoint.testing.kube.rbac import Denials
from entrypoint.testing.kube.resources import (
    EVENTS,
    TASKRUNS,
    Resource,
    parse_path,
    resource_named,
    resource_of,
)
from entrypoint.testing.kube.rest import ObjectEndpoints
from entrypoint.testing.kube.store import DEFAULT_HISTORY, ObjectStore
from entrypoint.testing.kube.strategy import check_type

DEFAULT_BOOKMARK_SECONDS = 1.0


def _object_at(path: str) -> tuple[Resource, str, str]:
    target = parse_path(path)
    if target is None or target.namespace is None or target.name is None or target.subresource:
        raise ValueError(f"not the path of a stored object: {path!r}")
    return target.resource, target.namespace, target.name


class ClusterObjects:
    """Mixed into the API server: its object store, and the tests' hands on it."""

    bookmark_interval: float
    """Seconds between the BOOKMARK events of a watch that allows them."""

    def _init_objects(self, stopping: threading.Event, history_limit: int = DEFAULT_HISTORY) -> None:
        self._store = ObjectStore(history_limit)
        self._denials = Denials()
        self.bookmark_interval = DEFAULT_BOOKMARK_SECONDS
        self._endpoints = ObjectEndpoints(
            self._store,
            self._denials,
            bookmark_interval=lambda: self.bookmark_interval,
            stopping=stopping.is_set,
        )

    # -- objects -----------------------------------------------------------------------------------------

    def create(self, obj: Mapping[str, Any]) -> dict[str, Any]:
        """Store a new object of any served kind (by its ``apiVersion`` and ``kind``) in its
        ``metadata.namespace``.  Unlike a POST, the ``status`` and a given ``uid`` are kept: it is created
        as its controller would leave it.  409 AlreadyExists (an ``APIError``) if the name is taken."""
        resource = resource_of(obj)
        checked = check_type(resource, copy.deepcopy(dict(obj)))
        meta = checked["metadata"]
        if not meta.get("namespace"):
            raise ValueError("the object needs a metadata.namespace")
        meta.pop("resourceVersion", None)
        return copy.deepcopy(self._store.create(resource, checked))

    def get_object(self, path: str) -> dict[str, Any]:
        """The object at an API path such as ``/apis/tekton.dev/v1/namespaces/NS/taskruns/NAME``;
        KeyError if there is none."""
        try:
            return copy.deepcopy(self._store.get(*_object_at(path)))
        except APIError as err:
            raise KeyError(f"no object at {path}") from err

    def update_status(self, namespace: str, name: str, status: Mapping[str, Any]) -> dict[str, Any]:
        """Replace a TaskRun's status, as Tekton's controller writes it; a status equal to the stored one
        is not a write (the resourceVersion stays)."""
        new_status = copy.deepcopy(dict(status))
        return copy.deepcopy(
            self._store.update(TASKRUNS, namespace, name, lambda old: {**old, "status": new_status})
        )

    def delete_object(self, path: str) -> dict[str, Any]:
        """Delete the object at an API path; returns it as its DELETED event carries it."""
        return copy.deepcopy(self._store.delete(*_object_at(path)))

    def objects(self, resource: str, namespace: str | None = None) -> list[dict[str, Any]]:
        """Every object of ``resource`` (a plural: "taskruns", "pods", "leases", "events"), in
        namespace/name order."""
        return copy.deepcopy(self._store.list(resource_named(resource), namespace).items)

    def events(self, namespace: str | None = None) -> list[dict[str, Any]]:
        """The Events created, in namespace/name order."""
        return copy.deepcopy(self._store.list(EVENTS, namespace).items)

    @property
    def resource_version(self) -> str:
        """The current resourceVersion: that of the latest write."""
        return str(self._store.resource_version)

    # -- watches -----------------------------------------------------------------------------------------

    @property
    def watch_count(self) -> int:
        """How many watches are open."""
        return self._store.watch_count

    def drop_watches(self) -> int:
        """End every open watch at once, as an API server restart does; returns how many there were."""
        return self._store.close_watches()

    def compact(self) -> None:
        """Forget the change history up to now: a watch from an older resourceVersion gets 410 Expired."""
        self._store.compact()

    @property
    def history_limit(self) -> int:
        """How many changes (of all resources) the history keeps for watches to resume from."""
        return self._store.history_limit

    @history_limit.setter
    def history_limit(self, limit: int) -> None:
        if limit < 0:
            raise ValueError(f"history_limit must not be negative, got {limit}")
        self._store.history_limit = limit

    # -- RBAC --------------------------------------------------------------------------------------------

    def forbid(self, verb: str, resource: str, namespace: str | None = None) -> None:
        """Refuse requests (403) with ``verb`` on ``resource`` (e.g. ``"taskruns/status"``), in
        ``namespace`` or (None) in all of them; ``"*"`` matches any verb or resource."""
        self._denials.forbid(verb, resource, namespace)

    def allow_all(self) -> None:
        """Withdraw every :meth:`forbid`."""
        self._denials.allow_all()
