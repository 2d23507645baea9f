"""One TaskRun at a time: verify it once it is done, and record the verdict on it.

What is written, and how, follows what Tekton's reconciler leaves alone (docs/controller.md):
nothing while the TaskRun runs (Tekton's status update would wipe a foreign condition on a
conflict retry); once it is done, the ``SignedResultsVerified`` condition in a merge patch of the
status subresource carrying the full conditions list (the list is atomic) and the resourceVersion
read (a stale write is refused, never merged), then the project's annotations on the metadata,
which Tekton merges key by key.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import sys
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from entrypoint._internal.kube.client import KubeError, KubeStatusError
from entrypoint._internal.verification.reasons import Reason
from entrypoint._internal.verification.taskrun import (
    CONDITION_TYPE,
    REASON_FAILED,
    TaskRunOutcome,
    TaskRunVerdict,
)
from entrypoint.controller.api import ControllerAPI
from entrypoint.verify import Verifier

ANNOTATION_PREFIX = "signed-entrypoint.dev/"
VERDICT_ANNOTATION = ANNOTATION_PREFIX + "verdict"  # "<outcome> <reason> sha256:<digest>"
POD_ANNOTATION = ANNOTATION_PREFIX + "verified-pod"  # the pod (attempt) the verdict is about
COMPONENT = "signed-entrypoint-controller"
log = logging.getLogger("entrypoint.controller")


class Mode(StrEnum):
    """What the controller does with a failed verification."""

    AUDIT = "audit"  # record the verdict only
    ENFORCE = "enforce"  # also mark a succeeded TaskRun failed, and emit a Warning event


class TaskRunConflict(KubeError):
    """The TaskRun changed since it was read: read it again and retry."""


class TransientError(KubeError):
    """A transient failure (the API server, the trust source): try again later."""


@dataclass(frozen=True)
class Outcome:
    """What one reconcile did: ``action`` is "skipped", "recorded" or "enforced"."""

    action: str
    verdict: TaskRunVerdict | None = None
    why: str = ""


def _conditions(obj: Mapping[str, Any]) -> list[dict[str, Any]]:
    status = obj.get("status")
    found = status.get("conditions") if isinstance(status, Mapping) else None
    return [dict(c) for c in found or [] if isinstance(c, Mapping)]


def _field(obj: Mapping[str, Any], name: str) -> Mapping[str, Any]:
    value = obj.get(name)
    return value if isinstance(value, Mapping) else {}


def is_done(obj: Mapping[str, Any]) -> bool:
    status = _field(obj, "status")
    succeeded = [c for c in _conditions(obj) if c.get("type") == "Succeeded"]
    return (
        bool(succeeded)
        and succeeded[0].get("status") in ("True", "False")
        and bool(status.get("completionTime"))
    )


def already_recorded(obj: Mapping[str, Any]) -> bool:
    """Whether the verdict for this attempt is on the TaskRun: the condition, and the annotation
    naming the current pod (a retry has a new pod, and is verified again)."""
    annotations = _field(_field(obj, "metadata"), "annotations")
    status = _field(obj, "status")
    has_condition = any(
        c.get("type") == CONDITION_TYPE and c.get("status") in ("True", "False") for c in _conditions(obj)
    )
    return has_condition and annotations.get(POD_ANNOTATION) == status.get("podName", "")


_stdout_lock = threading.Lock()


def _write_line(line: str) -> None:
    # One write per line, under a lock: print() from two workers writes the text and the newline
    # separately, and two audit lines then share one line of the log (seen in CI).
    with _stdout_lock:
        sys.stdout.write(line + "\n")
        sys.stdout.flush()


def _now() -> str:
    return dt.datetime.now(dt.UTC).replace(microsecond=0).isoformat().replace("+00:00", "Z")


class Reconciler:
    """Verifies one done TaskRun and records the verdict on it (idempotent across restarts)."""

    def __init__(
        self,
        api: ControllerAPI,
        verifier: Verifier | Callable[[], Verifier],
        *,
        mode: Mode = Mode.AUDIT,
        is_leader: Callable[[], bool] = lambda: True,
        observe: Callable[[TaskRunVerdict, float], None] | None = None,
        audit: Callable[[str], None] | None = None,
    ) -> None:
        self.api = api
        # A callable gives the current verifier, whose trust is reloaded meanwhile (TrustSource).
        self._verifier = verifier if callable(verifier) else (lambda: verifier)
        self.mode = mode
        self.is_leader = is_leader
        self.observe = observe
        self.audit = audit or _write_line
        # The resourceVersions our own writes moved past, per TaskRun: the watch delivers them
        # after the fact, and they need no second verification.
        self._superseded: dict[tuple[str, str], set[str]] = {}
        self._superseded_lock = threading.Lock()

    def reconcile(self, obj: Mapping[str, Any]) -> Outcome:
        """Raises TaskRunConflict (re-read, retry) or TransientError (later); all else is final."""
        if not is_done(obj):
            return Outcome("skipped", why="not done")
        if already_recorded(obj):
            return Outcome("skipped", why="already recorded")
        meta = obj["metadata"]
        namespace, name = str(meta.get("namespace", "")), str(meta.get("name", ""))
        version = str(meta.get("resourceVersion", ""))
        with self._superseded_lock:
            if version and version in self._superseded.get((namespace, name), ()):
                return Outcome("skipped", why="written since")
        pod = self._pod(namespace, obj)
        started = time.perf_counter()
        verdict = self._verifier().verify_taskrun(obj, pod=pod)
        elapsed = time.perf_counter() - started
        if self._transient(verdict):
            raise TransientError(f"taskrun {namespace}/{name}: {verdict.reason}: {verdict.message}")
        if self.observe is not None:
            self.observe(verdict, elapsed)
        self.audit(self._audit_line(verdict, obj))
        if not self.is_leader():
            return Outcome("skipped", verdict, "not the leader")
        enforce = self.mode is Mode.ENFORCE and not verdict.verified
        written = [version, self._write_status(obj, verdict, enforce=enforce)]
        self._write_annotations(namespace, name, verdict)
        with self._superseded_lock:
            if len(self._superseded) > 10_000:  # bounded: an old entry only saves one verification
                self._superseded.clear()
            self._superseded[(namespace, name)] = {v for v in written if v}
        if enforce:
            self._event(obj, verdict)
            return Outcome("enforced", verdict)
        return Outcome("recorded", verdict)

    # -- reading ----------------------------------------------------------------------------------

    def _pod(self, namespace: str, obj: Mapping[str, Any]) -> dict[str, Any] | None:
        pod_name = (obj.get("status") or {}).get("podName")
        if not isinstance(pod_name, str) or not pod_name:
            return None
        try:
            pod = self.api.get_pod(namespace, pod_name)
        except KubeStatusError as exc:
            if exc.status == 404:
                return None  # gone (pruned, or deleted on timeout): the TaskRun's copy is verified
            if exc.status == 403:
                log.warning(
                    "cannot read pod %s/%s (forbidden): verifying the TaskRun alone", namespace, pod_name
                )
                return None
            raise TransientError(str(exc)) from exc
        except KubeError as exc:
            raise TransientError(str(exc)) from exc
        uid = str(_field(obj, "metadata").get("uid", ""))
        owners = _field(pod, "metadata").get("ownerReferences") or []
        if not any(isinstance(o, Mapping) and o.get("uid") == uid for o in owners):
            # Another object's pod of the same name (a TaskRun deleted and made again, or a pod
            # made by hand): its messages say nothing about this TaskRun, whose own copy is verified.
            log.warning("pod %s/%s is not owned by taskrun uid %s: verifying the TaskRun alone", namespace,
                        pod_name, uid)  # fmt: skip
            return None
        return pod

    @staticmethod
    def _transient(verdict: TaskRunVerdict) -> bool:
        # Trust that could not be reached (a TokenReview that did not get through, a Workload API
        # that did not answer) says nothing about the TaskRun: never recorded as a failure.
        return verdict.reason == Reason.TRUST_UNAVAILABLE

    # -- writing ----------------------------------------------------------------------------------

    def _write_status(self, obj: Mapping[str, Any], verdict: TaskRunVerdict, *, enforce: bool) -> str:
        """The patch of the status subresource; returns the resourceVersion it made."""
        meta = obj["metadata"]
        condition = verdict.condition()
        conditions = _conditions(obj)
        old = next((c for c in conditions if c.get("type") == CONDITION_TYPE), None)
        changed = old is None or old.get("status") != condition["status"]
        condition["lastTransitionTime"] = (
            _now() if changed or old is None else str(old.get("lastTransitionTime"))
        )
        kept = [c for c in conditions if c.get("type") != CONDITION_TYPE]
        if enforce:
            for c in kept:
                if c.get("type") == "Succeeded" and c.get("status") == "True":
                    c.update(
                        status="False",
                        reason=REASON_FAILED,
                        message=f"The TaskRun's results failed verification: "
                        f"{verdict.reason}: {verdict.message}",
                        lastTransitionTime=_now(),
                    )
        patch = {
            # The precondition: a TaskRun changed since it was read is re-read, never overwritten.
            "metadata": {"resourceVersion": meta.get("resourceVersion")},
            "status": {"conditions": sorted([*kept, condition], key=lambda c: str(c.get("type")))},
        }
        try:
            written = self.api.patch_taskrun(str(meta["namespace"]), str(meta["name"]), patch, status=True)
        except KubeStatusError as exc:
            if exc.status == 409:
                raise TaskRunConflict(str(exc)) from exc
            if exc.status == 404:
                return ""  # deleted meanwhile: nothing to record on
            raise TransientError(str(exc)) from exc
        except KubeError as exc:
            raise TransientError(str(exc)) from exc
        return str((written.get("metadata") or {}).get("resourceVersion", ""))

    def _write_annotations(self, namespace: str, name: str, verdict: TaskRunVerdict) -> None:
        patch = {
            "metadata": {
                "annotations": {
                    VERDICT_ANNOTATION: f"{verdict.outcome} {verdict.reason} sha256:{verdict.digest()}",
                    POD_ANNOTATION: verdict.pod_name,
                }
            }
        }
        try:
            self.api.patch_taskrun(namespace, name, patch)
        except KubeStatusError as exc:
            if exc.status != 404:
                raise TransientError(str(exc)) from exc
        except KubeError as exc:
            raise TransientError(str(exc)) from exc

    def _event(self, obj: Mapping[str, Any], verdict: TaskRunVerdict) -> None:
        meta = obj["metadata"]
        now = _now()
        event = {
            "apiVersion": "v1",
            "kind": "Event",
            "metadata": {"generateName": f"{meta['name']}.", "namespace": meta["namespace"]},
            "involvedObject": {
                "apiVersion": obj.get("apiVersion", "tekton.dev/v1"),
                "kind": "TaskRun",
                "namespace": meta["namespace"],
                "name": meta["name"],
                "uid": meta.get("uid", ""),
                "resourceVersion": meta.get("resourceVersion", ""),
            },
            "type": "Warning",
            "reason": REASON_FAILED,
            "message": f"{verdict.reason}: {verdict.message}"[:1024],
            "source": {"component": COMPONENT},
            "firstTimestamp": now,
            "lastTimestamp": now,
            "count": 1,
        }
        try:
            self.api.create_event(str(meta["namespace"]), event)
        except KubeError as exc:
            log.warning("could not emit the event for %s/%s: %s", meta["namespace"], meta["name"], exc)

    @staticmethod
    def _audit_line(verdict: TaskRunVerdict, obj: Mapping[str, Any]) -> str:
        identities = sorted(
            {s.verdict.identity for s in verdict.steps if s.verdict is not None and s.verdict.identity}
        )
        return json.dumps(
            {
                "time": _now(),
                "taskRun": f"{verdict.namespace}/{verdict.name}",
                "uid": verdict.uid,
                "podName": verdict.pod_name,
                "outcome": str(verdict.outcome),
                "reason": str(verdict.reason),
                "identity": identities,
                "digest": f"sha256:{verdict.digest()}",
            },
            sort_keys=True,
        )


__all__ = ["Mode", "Outcome", "Reconciler", "TaskRunConflict", "TaskRunOutcome", "TransientError", "is_done"]
