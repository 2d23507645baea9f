"""The Kubernetes API double's object store, as etcd and the apiserver's registry keep objects.

One resourceVersion counter for every resource, bumped by each write that changes something; a table
per resource, kept in namespace/name order for paged lists; a bounded history of the changes, from
which a watch resumes (older than the history: 410 Expired); and the open watches, fed as each write
commits.  A write is a create, a delete, or an update computed from the current object under the
lock (etcd's GuaranteedUpdate), refused when it names another resourceVersion than the current one.

Stored objects are never changed in place: every write stores a new dict (sharing what it leaves
alone), so an object handed out is a snapshot however long it is kept.
"""

from __future__ import annotations

import base64
import bisect
import datetime
import json
import random
import threading
import uuid
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from entrypoint.testing.kube.objects import APIError
from entrypoint.testing.kube.resources import (
    RESOURCES,
    Resource,
    already_exists,
    bad_request,
    conflict,
    expired_status,
    object_not_found,
)
from entrypoint.testing.kube.watch import Change, Watcher

DEFAULT_HISTORY = 10_000
# names.SimpleNameGenerator: five characters from an alphabet without vowels or look-alikes.
_NAME_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"
_GENERATED_LENGTH = 5

Key = tuple[str, str]  # (namespace, name)
Observer = Callable[[Change], None]


@dataclass
class _Table:
    items: dict[Key, dict[str, Any]] = field(default_factory=dict)
    keys: list[Key] = field(default_factory=list)  # sorted
    watchers: set[Watcher] = field(default_factory=set)


@dataclass(frozen=True)
class Page:
    """One page of a list: its items, the list's resourceVersion, and what is left."""

    items: list[dict[str, Any]]
    resource_version: int
    continue_token: str
    remaining: int


def _now() -> str:
    return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _spec_changed(old: dict[str, Any], new: dict[str, Any]) -> bool:
    ignored = ("metadata", "status")
    keys = (old.keys() | new.keys()).difference(ignored)
    return any(old.get(k) != new.get(k) for k in keys)


class ObjectStore:
    """Objects of :data:`resources.RESOURCES` with their resourceVersions, history and watches."""

    def __init__(self, history_limit: int = DEFAULT_HISTORY) -> None:
        self._lock = threading.Lock()
        self._tables = {r.plural: _Table() for r in RESOURCES}
        self._rv = 0
        self._horizon = 0  # the history holds every change after this resourceVersion
        self._history: deque[Change] = deque()
        self.history_limit = history_limit
        self._observers: dict[str, list[Observer]] = {}

    # -- reading -----------------------------------------------------------------------------------------

    @property
    def resource_version(self) -> int:
        with self._lock:
            return self._rv

    def get(self, resource: Resource, namespace: str, name: str) -> dict[str, Any]:
        with self._lock:
            obj = self._tables[resource.plural].items.get((namespace, name))
        if obj is None:
            raise object_not_found(resource, name)
        return obj

    def list(
        self, resource: Resource, namespace: str | None, *, limit: int = 0, continue_token: str = ""
    ) -> Page:
        """Objects in namespace/name order; ``limit`` > 0 pages them, ``continue_token`` resumes a list."""
        start_rv, after = self._decode_continue(continue_token) if continue_token else (0, None)
        with self._lock:
            if continue_token and start_rv < self._horizon:
                raise APIError(
                    410,
                    "The provided continue parameter is too old to display a consistent list result."
                    " You can start a new list without the continue parameter.",
                    reason="Expired",
                )
            table = self._tables[resource.plural]
            lo, hi = self._range(table, namespace)
            if after is not None:
                lo = max(lo, bisect.bisect_right(table.keys, after))
            end = hi if limit <= 0 else min(hi, lo + limit)
            items = [table.items[k] for k in table.keys[lo:end]]
            # Later pages report the first page's resourceVersion, as a consistent list would.
            rv = start_rv if continue_token else self._rv
            token = self._encode_continue(rv, table.keys[end - 1]) if end < hi else ""
            return Page(items, rv, token, hi - end)

    @staticmethod
    def _range(table: _Table, namespace: str | None) -> tuple[int, int]:
        if namespace is None:
            return 0, len(table.keys)
        # Every key of the namespace sorts after (ns, "") and before (ns + "\0", "").
        return (
            bisect.bisect_left(table.keys, (namespace, "")),
            bisect.bisect_left(table.keys, (namespace + "\0", "")),
        )

    @staticmethod
    def _encode_continue(rv: int, key: Key) -> str:
        raw = json.dumps({"v": "meta.k8s.io/v1", "rv": rv, "start": f"{key[0]}/{key[1]}\0"})
        return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")

    @staticmethod
    def _decode_continue(token: str) -> tuple[int, Key]:
        try:
            raw = json.loads(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
            namespace, _, name = str(raw["start"]).rstrip("\0").partition("/")
            return int(raw["rv"]), (namespace, name)
        except (ValueError, KeyError, TypeError):
            raise bad_request(f"continue key is not valid: {token!r}") from None

    # -- writing -----------------------------------------------------------------------------------------

    def create(self, resource: Resource, obj: dict[str, Any]) -> dict[str, Any]:
        """Store a new object; fills ``uid``, ``creationTimestamp`` and ``generation`` if absent, and the
        name from ``generateName``."""
        meta = dict(obj.get("metadata") or {})
        namespace = str(meta.get("namespace", ""))
        with self._lock:
            table = self._tables[resource.plural]
            name = str(meta.get("name") or "")
            while not name:
                suffix = "".join(random.choices(_NAME_ALPHABET, k=_GENERATED_LENGTH))  # noqa: S311
                candidate = f"{meta.get('generateName', '')}{suffix}"
                name = "" if (namespace, candidate) in table.items else candidate
            key = (namespace, name)
            if key in table.items:
                raise already_exists(resource, name)
            self._rv += 1
            meta["name"] = name
            meta.setdefault("uid", str(uuid.uuid4()))
            meta.setdefault("creationTimestamp", _now())
            if resource.tracks_generation:
                meta.setdefault("generation", 1)
            meta["resourceVersion"] = str(self._rv)
            stored = {**obj, "metadata": meta}
            table.items[key] = stored
            bisect.insort(table.keys, key)
            change = self._commit(resource, "ADDED", namespace, stored)
        self._notify(change)
        return stored

    def update(
        self,
        resource: Resource,
        namespace: str,
        name: str,
        mutate: Callable[[dict[str, Any]], dict[str, Any]],
    ) -> dict[str, Any]:
        """Store ``mutate(current)``.  Its ``metadata.resourceVersion``, when set, must be the current one
        (409 Conflict otherwise); a result equal to the current object is not written."""
        key = (namespace, name)
        with self._lock:
            table = self._tables[resource.plural]
            old = table.items.get(key)
            if old is None:
                raise object_not_found(resource, name)
            new = mutate(old)
            old_meta = old["metadata"]
            meta = dict(new.get("metadata") or {})
            if meta.get("resourceVersion") not in (None, "", old_meta["resourceVersion"]):
                raise conflict(resource, name)
            meta["resourceVersion"] = old_meta["resourceVersion"]
            if resource.tracks_generation:
                generation = int(old_meta.get("generation") or 1)
                meta["generation"] = generation + 1 if _spec_changed(old, new) else generation
            candidate = {**new, "metadata": meta}
            if candidate == old:
                return old  # etcd is not written, and the resourceVersion stays
            self._rv += 1
            meta["resourceVersion"] = str(self._rv)
            table.items[key] = candidate
            change = self._commit(resource, "MODIFIED", namespace, candidate)
        self._notify(change)
        return candidate

    def delete(self, resource: Resource, namespace: str, name: str) -> dict[str, Any]:
        """Remove an object; returns it as its DELETED event carries it (the deletion's resourceVersion)."""
        key = (namespace, name)
        with self._lock:
            table = self._tables[resource.plural]
            old = table.items.pop(key, None)
            if old is None:
                raise object_not_found(resource, name)
            del table.keys[bisect.bisect_left(table.keys, key)]
            self._rv += 1
            gone = {**old, "metadata": {**old["metadata"], "resourceVersion": str(self._rv)}}
            change = self._commit(resource, "DELETED", namespace, gone)
        self._notify(change)
        return gone

    def observe(self, resource: Resource, observer: Observer) -> None:
        """Call ``observer`` after every committed change of ``resource`` (outside the lock)."""
        self._observers.setdefault(resource.plural, []).append(observer)

    def _commit(self, resource: Resource, kind: str, namespace: str, obj: dict[str, Any]) -> Change:
        change = Change(self._rv, kind, resource, namespace, obj)
        self._history.append(change)
        while len(self._history) > max(self.history_limit, 0):
            self._horizon = self._history.popleft().rv
        for watcher in self._tables[resource.plural].watchers:
            if watcher.follows(change):
                watcher.offer(change.line())
        return change

    def _notify(self, change: Change) -> None:
        for observer in self._observers.get(change.resource.plural, ()):
            observer(change)

    # -- watching ----------------------------------------------------------------------------------------

    def watch(self, resource: Resource, namespace: str | None, since: int | None) -> Watcher:
        """A watch of the changes after resourceVersion ``since``; ``None``: ADDED for every object first.

        A ``since`` older than the history gets one ERROR event (410 Expired) and the watch ends."""
        watcher = Watcher(resource, namespace)
        with self._lock:
            table = self._tables[resource.plural]
            if since is None:
                lo, hi = self._range(table, namespace)
                for key in table.keys[lo:hi]:
                    obj = table.items[key]
                    watcher.offer(Change(self._rv, "ADDED", resource, key[0], obj).line())
            elif since < self._horizon:
                status = expired_status(f"too old resource version: {since} ({self._horizon})")
                watcher.offer(json.dumps({"type": "ERROR", "object": status}).encode())
                watcher.close()
                return watcher
            else:
                missed: list[Change] = []
                for change in reversed(self._history):
                    if change.rv <= since:
                        break
                    if change.resource is resource and watcher.follows(change):
                        missed.append(change)
                for change in reversed(missed):
                    watcher.offer(change.line())
            table.watchers.add(watcher)
        return watcher

    def unwatch(self, watcher: Watcher) -> None:
        with self._lock:
            self._tables[watcher.resource.plural].watchers.discard(watcher)

    def bookmark(self, watcher: Watcher) -> int | None:
        """The resourceVersion a BOOKMARK may promise ``watcher``: the current one once everything queued for
        it is sent (None before: a resume from there would skip what is still queued)."""
        with self._lock:
            return None if watcher.queue else self._rv

    @property
    def watch_count(self) -> int:
        with self._lock:
            return sum(len(t.watchers) for t in self._tables.values())

    def close_watches(self) -> int:
        """End every open watch; returns how many there were."""
        with self._lock:
            watchers = [w for t in self._tables.values() for w in t.watchers]
            for table in self._tables.values():
                table.watchers.clear()
        for watcher in watchers:
            watcher.close()
        return len(watchers)

    def compact(self) -> None:
        """Forget the history up to now: a watch from an older resourceVersion is told 410 Expired."""
        with self._lock:
            self._history.clear()
            self._horizon = self._rv
