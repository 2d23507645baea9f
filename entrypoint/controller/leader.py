"""Leader election with a coordination.k8s.io/v1 Lease, as client-go's leaderelection does: the
holder renews the Lease; another candidate takes it only once it has not been renewed for its
duration, and every write carries the resourceVersion read, so two candidates never both win."""

from __future__ import annotations

import datetime as dt
import logging
import threading
import time
from collections.abc import Callable
from typing import Any

from entrypoint._internal.kube.client import KubeError, KubeStatusError
from entrypoint.controller.api import ControllerAPI

log = logging.getLogger("entrypoint.controller")


def _micro(when: dt.datetime) -> str:
    return when.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _parse(text: object) -> dt.datetime | None:
    if not isinstance(text, str) or not text:
        return None
    try:
        return dt.datetime.fromisoformat(text)
    except ValueError:
        return None


class LeaseElector:
    """Holds, renews or waits for one Lease; ``is_leader()`` is true only while the last renewal
    is younger than the renew deadline (a leader cut off from the API server stops by itself)."""

    def __init__(
        self,
        api: ControllerAPI,
        namespace: str,
        name: str,
        identity: str,
        *,
        lease_seconds: int = 15,
        renew_deadline: float = 10.0,
        retry_period: float = 2.0,
        clock: Callable[[], dt.datetime] = lambda: dt.datetime.now(dt.UTC),
        on_change: Callable[[bool], None] = lambda leading: None,
    ) -> None:
        self.api, self.namespace, self.name, self.identity = api, namespace, name, identity
        self.lease_seconds, self.renew_deadline, self.retry_period = (
            lease_seconds,
            renew_deadline,
            retry_period,
        )
        self.clock = clock
        self.on_change = on_change
        self._renewed_at: float | None = None  # monotonic time of our last successful write
        self._leading = False

    def is_leader(self) -> bool:
        renewed = self._renewed_at
        return renewed is not None and time.monotonic() - renewed < self.renew_deadline

    def run(self, stop: threading.Event) -> None:
        while not stop.is_set():
            try:
                self.try_acquire_or_renew()
            except KubeError as exc:
                log.warning("lease %s/%s: %s", self.namespace, self.name, exc)
            self._report()
            stop.wait(self.retry_period)
        self.release()

    def _report(self) -> None:
        leading = self.is_leader()
        if leading != self._leading:
            self._leading = leading
            log.info("lease %s/%s: %s", self.namespace, self.name, "leading" if leading else "not leading")
            self.on_change(leading)

    def try_acquire_or_renew(self) -> bool:
        now = self.clock()
        spec: dict[str, Any] = {
            "holderIdentity": self.identity,
            "leaseDurationSeconds": self.lease_seconds,
            "renewTime": _micro(now),
        }
        try:
            lease = self.api.get_lease(self.namespace, self.name)
        except KubeStatusError as exc:
            if exc.status != 404:
                raise
            spec |= {"acquireTime": _micro(now), "leaseTransitions": 0}
            try:
                self.api.create_lease(
                    self.namespace,
                    {
                        "apiVersion": "coordination.k8s.io/v1",
                        "kind": "Lease",
                        "metadata": {"name": self.name, "namespace": self.namespace},
                        "spec": spec,
                    },
                )
            except KubeStatusError as create_exc:
                if create_exc.status == 409:
                    return False  # another candidate created it first
                raise
            self._renewed_at = time.monotonic()
            return True
        old = lease.get("spec") or {}
        holder = old.get("holderIdentity") or ""
        renewed = _parse(old.get("renewTime")) or _parse(old.get("acquireTime"))
        duration = old.get("leaseDurationSeconds") or self.lease_seconds
        expired = renewed is None or now >= renewed + dt.timedelta(seconds=float(duration))
        if holder and holder != self.identity and not expired:
            self._renewed_at = None
            return False
        if holder == self.identity:
            spec["acquireTime"] = old.get("acquireTime") or _micro(now)
            spec["leaseTransitions"] = old.get("leaseTransitions") or 0
        else:
            spec["acquireTime"] = _micro(now)
            spec["leaseTransitions"] = int(old.get("leaseTransitions") or 0) + 1
        updated = {**lease, "spec": spec}
        try:
            self.api.update_lease(self.namespace, self.name, updated)
        except KubeStatusError as exc:
            if exc.status == 409:  # someone else wrote since we read: not ours this round
                self._renewed_at = None
                return False
            raise
        self._renewed_at = time.monotonic()
        return True

    def release(self) -> None:
        """On shutdown, let another replica take over at once instead of after the lease expires."""
        if not self.is_leader():
            return
        try:
            lease = self.api.get_lease(self.namespace, self.name)
            spec = dict(lease.get("spec") or {})
            if spec.get("holderIdentity") != self.identity:
                return
            spec["holderIdentity"] = ""
            spec["leaseDurationSeconds"] = 1
            self.api.update_lease(self.namespace, self.name, {**lease, "spec": spec})
        except KubeError as exc:
            log.warning("lease %s/%s: could not release: %s", self.namespace, self.name, exc)
        self._renewed_at = None
