"""List, then watch, the TaskRuns: resume from the last resourceVersion seen (events and bookmarks),
list again when the API server says it is too old (410 Gone), back off on errors."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any

from entrypoint._internal.kube.client import KubeError, KubeStatusError
from entrypoint.controller.api import ControllerAPI
from entrypoint.controller.backoff import Backoff

log = logging.getLogger("entrypoint.controller")


class WatchExpired(KubeError):
    """The watch's resourceVersion is older than the API server keeps: list again."""


class TaskRunWatcher:
    """Feeds every TaskRun it lists or sees change to ``enqueue``, until ``stop`` is set."""

    def __init__(
        self,
        api: ControllerAPI,
        namespace: str | None,
        enqueue: Callable[[dict[str, Any]], None],
        stop: threading.Event,
        *,
        on_restart: Callable[[str], None] = lambda why: None,
        on_synced: Callable[[], None] = lambda: None,
        timeout_seconds: int = 300,
        backoff: Backoff | None = None,
    ) -> None:
        self.api = api
        self.namespace = namespace
        self.enqueue = enqueue
        self.stop = stop
        self.on_restart = on_restart
        self.on_synced = on_synced
        self.timeout_seconds = timeout_seconds
        self.backoff = backoff or Backoff()
        self.resource_version: str | None = None

    def run(self) -> None:
        while not self.stop.is_set():
            try:
                if self.resource_version is None:
                    items, self.resource_version = self.api.list_taskruns(self.namespace)
                    for item in items:
                        self.enqueue(item)
                    self.on_synced()
                self._watch()
                self.backoff.reset()
                why = "ended"
            except WatchExpired:
                self.resource_version = None
                why = "expired"
            except KubeStatusError as exc:
                if exc.status == 410:
                    self.resource_version = None
                    why = "expired"
                else:
                    why = "error"
                    log.warning("watch failed: %s", exc)
                    self.stop.wait(self.backoff.next())
            except KubeError as exc:
                why = "error"
                log.warning("watch failed: %s", exc)
                self.stop.wait(self.backoff.next())
            self.on_restart(why)

    def _watch(self) -> None:
        assert self.resource_version is not None
        for event in self.api.watch_taskruns(
            self.namespace, self.resource_version, timeout_seconds=self.timeout_seconds
        ):
            kind = event.get("type")
            obj = event.get("object")
            if not isinstance(obj, dict):
                continue
            if kind == "ERROR":
                if obj.get("code") == 410:
                    raise WatchExpired(str(obj.get("message", "")))
                raise KubeError(f"watch error: {obj.get('code')}: {obj.get('message')}")
            version = (obj.get("metadata") or {}).get("resourceVersion")
            if isinstance(version, str) and version:
                self.resource_version = version
            if kind in ("ADDED", "MODIFIED"):
                self.enqueue(obj)
            if self.stop.is_set():
                return
