"""The controller's moving parts put together: lead (or wait), list and watch, verify and record.

As client-go controllers do, a replica that loses its Lease stops working at once and exits (its
Deployment restarts it as a candidate), so two replicas never both write; a replica that gains it
lists every TaskRun, so nothing a previous leader left undone is missed.
"""

from __future__ import annotations

import datetime as dt
import logging
import threading
from collections.abc import Mapping
from typing import Any

from entrypoint._internal.kube.client import KubeError, KubeStatusError
from entrypoint.controller.api import ControllerAPI
from entrypoint.controller.backoff import Backoff
from entrypoint.controller.leader import LeaseElector
from entrypoint.controller.metrics import Metrics
from entrypoint.controller.queue import Key, WorkQueue
from entrypoint.controller.reconciler import (
    Outcome,
    Reconciler,
    TaskRunConflict,
    TransientError,
    already_recorded,
    is_done,
)
from entrypoint.controller.watcher import TaskRunWatcher

log = logging.getLogger("entrypoint.controller")
CONFLICT_ATTEMPTS = 3
EXIT_LOST_LEASE = 1


def _completion(obj: Mapping[str, Any]) -> dt.datetime | None:
    status = obj.get("status")
    text = status.get("completionTime") if isinstance(status, Mapping) else None
    try:
        return dt.datetime.fromisoformat(text) if isinstance(text, str) else None
    except ValueError:
        return None


class Controller:
    """Runs the watch, ``workers`` reconcilers and (optionally) leader election until stopped."""

    def __init__(
        self,
        api: ControllerAPI,
        reconciler: Reconciler,
        metrics: Metrics,
        *,
        namespace: str | None = None,
        elector: LeaseElector | None = None,
        workers: int = 2,
        watch_timeout: int = 300,
    ) -> None:
        self.api = api
        self.reconciler = reconciler
        self.metrics = metrics
        self.namespace = namespace
        self.elector = elector
        self.workers = workers
        self.watch_timeout = watch_timeout
        self.queue = WorkQueue()
        self.synced = threading.Event()
        self._failures: dict[Key, int] = {}
        self._stop = threading.Event()
        reconciler.is_leader = self.leading

    def leading(self) -> bool:
        return self.elector is None or self.elector.is_leader()

    def ready(self) -> bool:
        """Listed once as the leader, or standing by (a standby is healthy, just not working)."""
        return self.synced.is_set() or (self.elector is not None and not self.elector.is_leader())

    def stop(self) -> None:
        self._stop.set()
        self.queue.close()

    def run(self) -> int:
        """Blocks until :meth:`stop`; returns the exit status (1: the Lease was lost)."""
        lease_stop = threading.Event()
        if self.elector is not None:
            elector = self.elector
            elector.on_change = lambda leading: self.metrics.leader.set(1 if leading else 0)
            threading.Thread(target=elector.run, args=(lease_stop,), name="lease", daemon=True).start()
            while not self._stop.is_set() and not elector.is_leader():
                self._stop.wait(0.1)
        else:
            self.metrics.leader.set(1)
        status = 0
        if not self._stop.is_set():
            log.info("leading: watching TaskRuns in %s", self.namespace or "all namespaces")
            self._start_work()
            while not self._stop.wait(0.2):
                if not self.leading():
                    log.error("lost the lease: stopping, so that the new leader is the only writer")
                    status = EXIT_LOST_LEASE
                    break
        self.stop()
        lease_stop.set()
        if self.elector is not None and status == 0:
            self.elector.release()
        return status

    def _start_work(self) -> None:
        watcher = TaskRunWatcher(
            self.api,
            self.namespace,
            self.enqueue,
            self._stop,
            on_restart=lambda why: self.metrics.watch_restarts.labels(why).inc(),
            on_synced=self.synced.set,
            timeout_seconds=self.watch_timeout,
        )
        threading.Thread(target=watcher.run, name="watch", daemon=True).start()
        for i in range(self.workers):
            threading.Thread(target=self.work, name=f"worker-{i}", daemon=True).start()

    def enqueue(self, obj: dict[str, Any]) -> None:
        # Only what is worth a verification: a running TaskRun changes many times before it is done.
        if not is_done(obj) or already_recorded(obj):
            return
        meta = obj.get("metadata") or {}
        self.queue.add((str(meta.get("namespace", "")), str(meta.get("name", ""))), obj)
        self.metrics.queue_depth.set(self.queue.depth())

    def work(self) -> None:
        while (item := self.queue.get()) is not None:
            key, obj = item
            try:
                outcome = self.process(key, obj)
                self._failures.pop(key, None)
                if outcome is not None and outcome.action in ("recorded", "enforced"):
                    completed = _completion(obj)
                    if completed is not None:
                        self.metrics.completion_to_condition.observe(
                            max(0.0, (dt.datetime.now(dt.UTC) - completed).total_seconds())
                        )
            except Exception as exc:  # a worker never dies: the TaskRun is tried again later
                cause = "transient" if isinstance(exc, TransientError) else "unexpected"
                if cause == "unexpected":
                    log.exception("taskrun %s/%s: unexpected error", *key)
                else:
                    log.warning("taskrun %s/%s: %s (will retry)", key[0], key[1], exc)
                failures = self._failures.get(key, 0)
                self._failures[key] = failures + 1
                self.metrics.retries.labels(cause).inc()
                self.queue.add_after(key, obj, Backoff.delay(failures))
            finally:
                self.queue.done(key)
                self.metrics.queue_depth.set(self.queue.depth())

    def process(self, key: Key, obj: Mapping[str, Any]) -> Outcome | None:
        """One reconcile; on a conflict, the TaskRun is read again and reconciled again."""
        for _ in range(CONFLICT_ATTEMPTS):
            try:
                return self.reconciler.reconcile(obj)
            except TaskRunConflict:
                try:
                    obj = self.api.get_taskrun(*key)
                except KubeStatusError as exc:
                    if exc.status == 404:
                        return None  # deleted meanwhile
                    raise TransientError(str(exc)) from exc
                except KubeError as exc:
                    raise TransientError(str(exc)) from exc
        raise TransientError(f"taskrun {key[0]}/{key[1]}: still changing after {CONFLICT_ATTEMPTS} attempts")
