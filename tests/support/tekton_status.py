"""TaskRun and Pod objects as Tekton's controller v1.15 stores them, built from the steps' raw
termination messages: the status a verifier of whole TaskRuns reads after the pod is gone.

Written from pipeline's pkg/pod/status.go (``setTaskRunStatusBasedOnStepStatus``,
``filterResults``, ``removeDuplicateResults``, ``createMessageFromResults``); the e2e suite checks
the same verifier against the status the real controller writes (tests/e2e/test_tekton_taskrun.py).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from entrypoint._internal.formats.paramvalue import parse_param_value
from entrypoint._internal.go.json import marshal
from entrypoint.termination import RunResult, parse_message

TASKRUN_UID = "3f1d2c4b-0000-4000-8000-00000000tr01"
POD_UID = "7c4a1f0e-2b6d-4f1e-9a3c-5d8e6f7a8b9c"
_TIME_FORMAT_LEN = len("2006-01-02T15:04:05.000Z")


@dataclass(frozen=True)
class StepRun:
    """One step as the kubelet reports it: its raw message and the container's own exit."""

    name: str
    message: str
    exit_code: int = 0
    started_at: str = "2026-12-03T09:59:59Z"  # the kubelet's; Tekton prefers the StartedAt entry
    results: Sequence[Mapping[str, str]] = field(default_factory=list)  # the step's declared results

    @property
    def container(self) -> str:
        return f"step-{self.name}"


def _typed(raw: str, declared_string: bool) -> tuple[str, Any]:
    if declared_string:
        return "string", raw
    pv = parse_param_value(raw)
    if pv.kind == "array":
        return "array", list(pv.array)
    if pv.kind == "object":
        return "object", dict(pv.obj)
    return "string", pv.string


def _entry_json(e: RunResult) -> dict[str, Any]:
    out: dict[str, Any] = {"key": e.key, "value": e.value}
    if e.resource_name:
        out["resourceName"] = e.resource_name
    if e.type:
        out["type"] = e.type
    return out


def _rfc3339(text: str) -> str:
    when = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    return when.astimezone(dt.UTC).replace(microsecond=0).isoformat().replace("+00:00", "Z")


def taskrun_object(
    namespace: str,
    name: str,
    steps: Sequence[StepRun],
    *,
    task_results: Sequence[Mapping[str, str]] = (),
    succeeded: bool = True,
    done: bool = True,
    pod_name: str | None = None,
    feature_flags: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The TaskRun ``tekton.dev/v1`` object Tekton's controller would store for these steps."""
    spec_results = {r["name"]: r for r in task_results}
    status_results: list[dict[str, Any]] = []
    status_steps: list[dict[str, Any]] = []
    for s in steps:
        entries = parse_message(s.message) if s.message else []
        terminated: dict[str, Any] = {
            "exitCode": s.exit_code,
            "reason": "Completed" if s.exit_code == 0 else "Error",
            "startedAt": s.started_at,
            "finishedAt": s.started_at,
            "containerID": f"containerd://{s.name}",
        }
        by_key = {e.key: e for e in entries}
        if "StartedAt" in by_key and len(by_key["StartedAt"].value) >= _TIME_FORMAT_LEN:
            terminated["startedAt"] = _rfc3339(by_key["StartedAt"].value)
        if "ExitCode" in by_key:
            terminated["exitCode"] = int(by_key["ExitCode"].value)
        kept = [e for e in entries if e.type != 3]
        step_types = {r["name"]: r.get("type", "") for r in s.results}
        step_results = []
        for e in kept:
            if e.type == 1:
                rtype, value = _typed(e.value, spec_results.get(e.key, {}).get("type") == "string")
                if done:
                    status_results.append({"name": e.key, "type": rtype, "value": value})
            elif e.type == 4:
                rtype, value = _typed(e.value, step_types.get(e.key) == "string")
                step_results.append({"name": e.key, "type": rtype, "value": value})
                for tname, tr in spec_results.items():
                    if tr.get("value") == f"$(steps.{s.name}.results.{e.key})" and done:
                        status_results.append({"name": tname, "type": rtype, "value": value})
        if kept:
            terminated["message"] = marshal([_entry_json(e) for e in kept])
        state: dict[str, Any] = {"terminated": terminated, "name": s.name, "container": s.container}
        if step_results:
            state["results"] = step_results
        status_steps.append(state)
    # First position, last value (removeDuplicateResults).
    merged: dict[str, dict[str, Any]] = {}
    for r in status_results:
        if r["name"] in merged:
            merged[r["name"]].update(r)
        else:
            merged[r["name"]] = dict(r)
    conditions = [
        {
            "type": "Succeeded",
            "status": ("True" if succeeded else "False") if done else "Unknown",
            "reason": ("Succeeded" if succeeded else "Failed") if done else "Running",
            "message": "All Steps have completed executing",
            "lastTransitionTime": "2026-12-03T10:00:05Z",
        }
    ]
    status: dict[str, Any] = {
        "podName": pod_name or f"{name}-pod",
        "startTime": "2026-12-03T09:59:58Z",
        "conditions": conditions,
        "steps": status_steps,
        "taskSpec": {
            "results": [dict(r) for r in task_results],
            "steps": [{"name": s.name, "image": "busybox", "results": list(s.results)} for s in steps],
        },
        "provenance": {
            "featureFlags": {"resultExtractionMethod": "termination-message", **(feature_flags or {})}
        },
    }
    if done:
        status["completionTime"] = "2026-12-03T10:00:05Z"
    if merged:
        status["results"] = list(merged.values())
    return {
        "apiVersion": "tekton.dev/v1",
        "kind": "TaskRun",
        "metadata": {"namespace": namespace, "name": name, "uid": TASKRUN_UID, "resourceVersion": "1"},
        "spec": {"taskRef": {"name": "build"}},
        "status": status,
    }


def pod_object(
    namespace: str,
    taskrun: Mapping[str, Any],
    steps: Sequence[StepRun],
    *,
    uid: str = POD_UID,
    service_account: str = "default",
) -> dict[str, Any]:
    """The TaskRun's Pod while it exists: the raw messages, as the kubelet reported them."""
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "namespace": namespace,
            "name": taskrun["status"]["podName"],
            "uid": uid,
            "ownerReferences": [
                {
                    "apiVersion": "tekton.dev/v1",
                    "kind": "TaskRun",
                    "name": taskrun["metadata"]["name"],
                    "uid": taskrun["metadata"]["uid"],
                    "controller": True,
                },
            ],
        },
        "spec": {"serviceAccountName": service_account, "containers": [{"name": s.container} for s in steps]},
        "status": {
            "phase": "Succeeded",
            "containerStatuses": [
                {
                    "name": s.container,
                    "state": {
                        "terminated": {
                            "exitCode": s.exit_code,
                            "startedAt": s.started_at,
                            "message": s.message,
                        }
                    },
                }
                for s in steps
            ],
        },
    }
