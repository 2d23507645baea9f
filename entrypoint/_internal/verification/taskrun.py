"""Whole TaskRuns, as the API server stores them: every step's message verified, and every result
in the status traced to the verified step message Tekton took it from (docs/verify-taskrun.md).

Tekton's controller copies each step's parsed message into ``status.steps[i].terminated.message``
and builds ``status.results`` by appending each step's task results in step order, keeping the
first position and the last value of each name (pkg/pod/status.go ``removeDuplicateResults``).
This module recomputes that status from the verified messages and compares: a value in the status
that no verified step wrote, or wrote differently, fails the TaskRun.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from entrypoint._internal.formats.paramvalue import parse_param_value
from entrypoint._internal.verification.formats import detect_format
from entrypoint._internal.verification.reasons import Reason
from entrypoint.errors import TaskRunObjectError
from entrypoint.termination import ResultType, RunResult, parse_message

TYPE_CHECKING = False
if TYPE_CHECKING:
    from entrypoint.verify import TaskRunRef, Verdict

CONDITION_TYPE = "SignedResultsVerified"
REASON_VERIFIED = "TaskRunResultsVerified"
REASON_FAILED = "TaskRunResultsVerificationFailed"
REASON_AWAITING = "AwaitingTaskRunResults"
SIDECAR_LOGS = "sidecar-logs"
_TASK = int(ResultType.TASK_RUN_RESULT)
_STEP = int(ResultType.STEP_RESULT)
_STEP_REF_PREFIX = "$(steps."


class TaskRunOutcome(StrEnum):
    """What a whole-TaskRun verification concluded."""

    VERIFIED = "Verified"
    FAILED = "Failed"  # a check failed: tampering, a wrong identity, an unsigned result...
    UNVERIFIABLE = "Unverifiable"  # nothing signed can reach the status (e.g. sidecar-logs mode)
    AWAITING = "Awaiting"  # the TaskRun has not finished
    INVALID = "Invalid"  # not a TaskRun object this verifier can read


@dataclass(frozen=True)
class StepVerdict:
    """The verdict on one step's message, and what the TaskRun records of the step."""

    index: int
    name: str
    container: str
    # "Verified", "Failed", or "Empty" (no entries at all: nothing to vouch for).
    outcome: str
    verdict: Verdict | None
    source: str  # where the message was read: "taskrun" or "pod"
    recorded_exit_code: int | None
    recorded_started_at: int | None

    def to_json(self) -> dict[str, Any]:
        v = self.verdict
        out: dict[str, Any] = {
            "index": self.index,
            "name": self.name,
            "container": self.container,
            "outcome": self.outcome,
            "source": self.source,
            "recordedExitCode": self.recorded_exit_code,
        }
        if v is not None:
            out |= {
                "reason": str(v.reason),
                "message": v.message,
                "format": v.format,
                "version": v.version,
                "identity": v.identity,
                "signedAt": _rfc3339(v.signed_at) if v.signed_at is not None else None,
                "exitCodeBound": v.exit_code is not None,
                "results": [r.key for r in v.results],
                "unsigned": [r.key for r in v.unsigned],
            }
        return out


@dataclass(frozen=True)
class ResultCheck:
    """One result of the status and the step message that vouches for it."""

    name: str
    where: str  # "status.results" or "status.steps[<i>].results"
    step: str | None  # the name of the step whose message carries the value Tekton kept
    covered_by: str  # "signature", "signing-entry" (a format's own entry), or "" when not covered

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "in": self.where, "step": self.step, "coveredBy": self.covered_by}


@dataclass(frozen=True)
class TaskRunVerdict:
    """The verifier's answer for one TaskRun: the outcome, why, and the verdict of each step."""

    outcome: TaskRunOutcome
    reason: str
    message: str
    namespace: str
    name: str
    uid: str
    pod_name: str
    checked_at: dt.datetime
    steps: tuple[StepVerdict, ...] = ()
    results: tuple[ResultCheck, ...] = ()

    @property
    def verified(self) -> bool:
        return self.outcome is TaskRunOutcome.VERIFIED

    def condition(self) -> dict[str, str]:
        """The ``SignedResultsVerified`` condition Tekton defines for this outcome."""
        if self.outcome is TaskRunOutcome.VERIFIED:
            status, reason = "True", REASON_VERIFIED
        elif self.outcome is TaskRunOutcome.AWAITING:
            status, reason = "Unknown", REASON_AWAITING
        else:
            status, reason = "False", REASON_FAILED
        text = (
            self.message
            if self.verified or self.outcome is TaskRunOutcome.AWAITING
            else (f"{self.outcome}: {self.reason}: {self.message}")
        )
        return {"type": CONDITION_TYPE, "status": status, "reason": reason, "message": text}

    def to_json(self) -> dict[str, Any]:
        return {
            "taskRun": {
                "namespace": self.namespace,
                "name": self.name,
                "uid": self.uid,
                "podName": self.pod_name,
            },
            "outcome": str(self.outcome),
            "verified": self.verified,
            "reason": str(self.reason),
            "message": self.message,
            "checkedAt": _rfc3339(self.checked_at),
            "condition": self.condition(),
            "steps": [s.to_json() for s in self.steps],
            "results": [r.to_json() for r in self.results],
        }

    def digest(self) -> str:
        """SHA-256 of the verdict without its time: equal for equal judgements of the same TaskRun."""
        body = self.to_json()
        del body["checkedAt"]
        return hashlib.sha256(json.dumps(body, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def _rfc3339(when: dt.datetime) -> str:
    return when.astimezone(dt.UTC).isoformat().replace("+00:00", "Z")


def _get(obj: Any, path: str, kind: type | tuple[type, ...], default: Any = None) -> Any:
    """``obj`` at the dotted ``path``, checked to be of ``kind`` (absent: ``default``)."""
    node = obj
    for part in path.split("."):
        if not isinstance(node, Mapping):
            raise TaskRunObjectError(f"{path}: expected an object on the way")
        if part not in node or node[part] is None:
            return default
        node = node[part]
    if not isinstance(node, kind) or (isinstance(node, bool) and kind is int):
        raise TaskRunObjectError(
            f"{path}: expected {getattr(kind, '__name__', kind)}, found {type(node).__name__}"
        )
    return node


def _seconds(text: str, where: str) -> int:
    try:
        when = dt.datetime.fromisoformat(text)
    except ValueError as exc:
        raise TaskRunObjectError(f"{where}: not an RFC 3339 time: {text!r}") from exc
    if when.tzinfo is None:
        raise TaskRunObjectError(f"{where}: a time without a zone: {text!r}")
    return int(when.timestamp() // 1)


@dataclass
class _Step:
    index: int
    name: str
    container: str
    message: str | None  # None: the step has no terminated state
    exit_code: int | None
    started_at: int | None
    source: str
    entries: list[RunResult] = field(default_factory=list)


def verify_taskrun(
    verify_message: Callable[[str, TaskRunRef], Verdict],
    make_ref: Callable[..., TaskRunRef],
    obj: Any,
    *,
    pod: Any = None,
    at: dt.datetime,
) -> TaskRunVerdict:
    """Verify ``obj``, a TaskRun as the API server returns it (``pod``: its Pod, for the raw
    messages and the pod's UID while it exists).  Nothing here raises on bad input."""
    meta = obj.get("metadata") if isinstance(obj, Mapping) else None
    namespace = name = uid = pod_name = ""
    if isinstance(meta, Mapping):
        namespace = str(meta.get("namespace") or "")
        name = str(meta.get("name") or "")
        uid = str(meta.get("uid") or "")

    def verdict(outcome: TaskRunOutcome, reason: str, message: str, **rest: Any) -> TaskRunVerdict:
        return TaskRunVerdict(outcome, reason, message, namespace, name, uid, pod_name, at, **rest)

    try:
        if (
            not isinstance(obj, Mapping)
            or obj.get("kind") != "TaskRun"
            or not str(obj.get("apiVersion", "")).startswith("tekton.dev/")
        ):
            raise TaskRunObjectError("not a tekton.dev TaskRun object (kind and apiVersion)")
        if not namespace or not name:
            raise TaskRunObjectError("metadata.namespace and metadata.name are required")
        pod_name = _get(obj, "status.podName", str, "")
        if not _is_done(obj):
            return verdict(
                TaskRunOutcome.AWAITING,
                Reason.NOT_DONE,
                "Waiting upon TaskRun results and signatures to verify",
            )
        flags = _get(obj, "status.provenance.featureFlags", Mapping, {})
        if flags.get("resultExtractionMethod") == SIDECAR_LOGS:
            return verdict(
                TaskRunOutcome.UNVERIFIABLE,
                Reason.UNVERIFIABLE,
                "results come from the sidecar's logs (results-from: sidecar-logs), which carry no "
                "signatures; use results from the termination message to sign them",
            )
        steps = _steps(obj, pod, pod_name)
        pod_uid, service_account = _pod_identity(pod, pod_name, uid)
        if service_account is None:
            service_account = _get(obj, "spec.serviceAccountName", str, None) or None
        retries = len(_get(obj, "status.retriesStatus", list, []))
    except TaskRunObjectError as exc:
        return verdict(TaskRunOutcome.INVALID, Reason.OBJECT_INVALID, str(exc))
    # A pod-bound token names the pod, not the TaskRun: the pod must be the one Tekton names after
    # this TaskRun (pkg/pod/pod.go), or another TaskRun's messages would verify for this one.
    expected_pod = child_name(name, "-pod" + (f"-retry{retries}" if retries else ""))
    if pod_name != expected_pod:
        return verdict(
            TaskRunOutcome.FAILED,
            Reason.IDENTITY_MISMATCH,
            f"status.podName {pod_name!r} is not the pod Tekton names for this TaskRun ({expected_pod!r})",
        )

    companions = tuple(s.message for s in steps if s.message)
    step_verdicts: list[StepVerdict] = []
    failure: tuple[str, str] | None = None
    manifests: dict[str, str] = {}
    for s in steps:
        if not s.message:
            step_verdicts.append(
                StepVerdict(s.index, s.name, s.container, "Empty", None, s.source, s.exit_code, s.started_at)
            )
            continue
        try:
            s.entries = parse_message(s.message)
        except Exception:
            s.entries = []
        fmt = detect_format(s.entries)
        ref = make_ref(
            namespace,
            name,
            pod_name=pod_name or None,
            pod_uid=pod_uid,
            service_account=service_account,
            # Only the compact format binds the step; asking Tekton's to would fail it.
            step=str(s.index) if fmt is not None and fmt.name == "compact" else None,
            companions=tuple(m for m in companions if m is not s.message),
            exit_code=s.exit_code,
            started_at=s.started_at,
        )
        v = verify_message(s.message, ref)
        step_verdicts.append(
            StepVerdict(
                s.index,
                s.name,
                s.container,
                "Verified" if v.verified else "Failed",
                v,
                s.source,
                s.exit_code,
                s.started_at,
            )
        )
        if not v.verified and failure is None:
            failure = (str(v.reason), f"step {s.name}: {v.reason}: {v.message}")
        if v.verified and v.format == "tekton":
            sig = next(
                (e.value for e in s.entries if e.key == "RESULT_MANIFEST.sig" and e.type == _TASK), None
            )
            if sig is not None and sig in manifests and failure is None:
                failure = (
                    Reason.MANIFEST_REUSED,
                    f"step {s.name}: its RESULT_MANIFEST signature is step {manifests[sig]}'s: each step "
                    "signs its own manifest, so one was copied into another step's message",
                )
            manifests.setdefault(sig or "", s.name)
    if failure is not None:
        return verdict(TaskRunOutcome.FAILED, failure[0], failure[1], steps=tuple(step_verdicts))

    try:
        checks, problem = _check_results(obj, steps, step_verdicts)
    except TaskRunObjectError as exc:
        return verdict(TaskRunOutcome.INVALID, Reason.OBJECT_INVALID, str(exc), steps=tuple(step_verdicts))
    if problem is not None:
        return verdict(
            TaskRunOutcome.FAILED, problem[0], problem[1], steps=tuple(step_verdicts), results=tuple(checks)
        )
    signed = [s for s in step_verdicts if s.outcome == "Verified"]
    who = sorted({s.verdict.identity for s in signed if s.verdict is not None and s.verdict.identity})
    text = (
        f"Successfully verified all signed taskrun results: {len(checks)} result(s) from "
        f"{len(signed)} signed step message(s) of {', '.join(who) or 'no identity'}"
    )
    if not checks and not signed:
        text = "The TaskRun has no results to verify"
    return verdict(
        TaskRunOutcome.VERIFIED, Reason.VERIFIED, text, steps=tuple(step_verdicts), results=tuple(checks)
    )


def _is_done(obj: Mapping[str, Any]) -> bool:
    conditions = _get(obj, "status.conditions", list, [])
    for c in conditions:
        if isinstance(c, Mapping) and c.get("type") == "Succeeded":
            return c.get("status") in ("True", "False") and bool(_get(obj, "status.completionTime", str, ""))
    return False


def _steps(obj: Mapping[str, Any], pod: Any, pod_name: str) -> list[_Step]:
    raw: dict[str, str] = {}
    if pod is not None:
        if not isinstance(pod, Mapping) or pod.get("kind") != "Pod":
            raise TaskRunObjectError("the pod object is not a Pod")
        actual = _get(pod, "metadata.name", str, "")
        if actual != pod_name:
            raise TaskRunObjectError(f"the pod object is {actual!r}, not the TaskRun's pod {pod_name!r}")
        for i, cs in enumerate(_get(pod, "status.containerStatuses", list, [])):
            if not isinstance(cs, Mapping):
                raise TaskRunObjectError(f"pod status.containerStatuses[{i}]: expected an object")
            message = _get(cs, "state.terminated.message", str, None)
            if message is not None:
                raw[str(cs.get("name", ""))] = message
    out = []
    for i, st in enumerate(_get(obj, "status.steps", list, [])):
        where = f"status.steps[{i}]"
        if not isinstance(st, Mapping):
            raise TaskRunObjectError(f"{where}: expected an object")
        container = _get(st, "container", str, "")
        name = _get(st, "name", str, "") or container
        terminated = _get(st, "terminated", Mapping, None)
        if terminated is None:
            out.append(_Step(i, name, container, None, None, None, "taskrun"))
            continue
        exit_code = _get(terminated, "exitCode", int, None)
        started = _get(terminated, "startedAt", str, None)
        started_at = _seconds(started, f"{where}.terminated.startedAt") if started else None
        if container in raw:
            message, source = raw[container], "pod"
        else:
            message, source = _get(terminated, "message", str, ""), "taskrun"
        out.append(_Step(i, name, container, message, exit_code, started_at, source))
    return out


def _pod_identity(pod: Any, pod_name: str, taskrun_uid: str) -> tuple[str | None, str | None]:
    if pod is None:
        return None, None
    owners = _get(pod, "metadata.ownerReferences", list, [])
    if taskrun_uid and not any(isinstance(o, Mapping) and o.get("uid") == taskrun_uid for o in owners):
        raise TaskRunObjectError(f"the pod {pod_name!r} is not owned by this TaskRun (uid {taskrun_uid})")
    return _get(pod, "metadata.uid", str, None), _get(pod, "spec.serviceAccountName", str, None)


@dataclass(frozen=True)
class _Expected:
    value: str  # the raw value in the step's message
    step: _Step
    covered_by: str
    declared_string: bool


def _typed(raw: str, declared_string: bool) -> tuple[str, Any]:
    """The (type, value) Tekton stores for a raw result value (pkg/pod/status.go filterResults)."""
    if declared_string:
        return "string", raw
    pv = parse_param_value(raw)
    if pv.kind == "array":
        return "array", list(pv.array)
    if pv.kind == "object":
        return "object", dict(pv.obj)
    return "string", pv.string


def _coverage(key: str, rtype: int, step: _Step, verdict: Verdict | None) -> str:
    if verdict is None or not verdict.verified:
        return ""
    if any(r.key == key and r.type == rtype for r in verdict.results):
        return "signature"
    if any(r.key == key for r in verdict.unsigned):
        return ""
    return "signing-entry"  # verified, neither a result nor unsigned: one of the format's entries


def _check_results(
    obj: Mapping[str, Any], steps: Sequence[_Step], verdicts: Sequence[StepVerdict]
) -> tuple[list[ResultCheck], tuple[str, str] | None]:
    spec_results = {
        r.get("name"): r for r in _get(obj, "status.taskSpec.results", list, []) if isinstance(r, Mapping)
    }
    spec_steps = [s for s in _get(obj, "status.taskSpec.steps", list, []) if isinstance(s, Mapping)]
    # Task results Tekton copies from step results: value "$(steps.<step>.results.<name>)".
    copies: dict[tuple[str, str], str] = {}
    for task_name, r in spec_results.items():
        value = r.get("value")
        if isinstance(value, str) and value.startswith(_STEP_REF_PREFIX) and value.endswith(")"):
            parts = value[len(_STEP_REF_PREFIX) : -1].split(".")
            if len(parts) == 3 and parts[1] == "results":
                copies[(parts[0], parts[2])] = str(task_name)
    # What Tekton appends to status.results, step by step, and keeps (first position, last value).
    expected: dict[str, _Expected] = {}
    per_step: list[dict[str, _Expected]] = []
    for s, sv in zip(steps, verdicts, strict=True):
        own: dict[str, _Expected] = {}
        declared_step_types = _step_result_types(spec_steps, s.index)
        for e in s.entries:
            if e.type == _TASK:
                decl = (spec_results.get(e.key) or {}).get("type") == "string"
                expected[e.key] = _Expected(e.value, s, _coverage(e.key, _TASK, s, sv.verdict), decl)
        for e in s.entries:
            if e.type == _STEP:
                decl = declared_step_types.get(e.key) == "string"
                own[e.key] = _Expected(e.value, s, _coverage(e.key, _STEP, s, sv.verdict), decl)
                task_name = copies.get((s.name, e.key))
                if task_name is not None:
                    expected[task_name] = own[e.key]
        per_step.append(own)

    checks: list[ResultCheck] = []
    succeeded = any(
        isinstance(c, Mapping) and c.get("type") == "Succeeded" and c.get("status") == "True"
        for c in _get(obj, "status.conditions", list, [])
    )
    status_steps = _get(obj, "status.steps", list, [])
    sources = [("status.results", _get(obj, "status.results", list, []), expected)]
    for i, own in enumerate(per_step):
        sources.append((f"status.steps[{i}].results", _get(status_steps[i], "results", list, []), own))
    for where, listed, wanted in sources:
        seen: set[str] = set()
        for j, r in enumerate(listed):
            if not isinstance(r, Mapping) or not isinstance(r.get("name"), str):
                raise TaskRunObjectError(f"{where}[{j}]: expected an object with a name")
            rname = r["name"]
            if rname in seen:
                return checks, (Reason.RESULT_MISMATCH, f"{where}: result {rname!r} appears twice")
            seen.add(rname)
            exp = wanted.get(rname)
            if exp is None:
                return checks, (
                    Reason.RESULT_MISMATCH,
                    f"{where}: result {rname!r} is in no step's termination message",
                )
            if not exp.covered_by:
                return checks, (
                    Reason.RESULT_UNSIGNED,
                    f"{where}: result {rname!r} comes from step {exp.step.name}, whose signature does not "
                    "cover it (Tekton's format signs task results only; the compact format signs all)",
                )
            rtype, rvalue = _typed(exp.value, exp.declared_string)
            if r.get("value") != rvalue or r.get("type", rtype) != rtype:
                return checks, (
                    Reason.RESULT_MISMATCH,
                    f"{where}: result {rname!r} is not the value that step {exp.step.name}'s "
                    "signed message gives it",
                )
            checks.append(ResultCheck(rname, where, exp.step.name, exp.covered_by))
        # Tekton lists every result of a finished, successful TaskRun; a missing one was removed.
        missing = sorted(set(wanted) - seen)
        if missing and succeeded:
            return checks, (
                Reason.RESULT_MISMATCH,
                f"{where}: result {missing[0]!r} of step {wanted[missing[0]].step.name}'s "
                "signed message is missing",
            )
    return checks, None


def _step_result_types(spec_steps: Sequence[Mapping[str, Any]], index: int) -> dict[str, str]:
    if index >= len(spec_steps):
        return {}
    return {
        str(r.get("name")): str(r.get("type", ""))
        for r in spec_steps[index].get("results") or []
        if isinstance(r, Mapping)
    }


def child_name(parent: str, suffix: str) -> str:
    """knative's ``kmeta.ChildName``, which names a TaskRun's pod: ``parent + suffix``, with the
    parent cut and an MD5 of it inserted when that exceeds 63 characters."""
    import re

    longest, head = 63, 63 - 32
    if len(parent) <= longest - len(suffix):
        return parent + suffix
    if head - len(suffix) <= 0:
        digest = hashlib.md5((parent + suffix).encode(), usedforsecurity=False).hexdigest()
        out = parent[:head] + digest
        if longest - len(out) > 0:
            out += suffix[: longest - len(out)]
        while out and not re.fullmatch(r"[a-zA-Z0-9]", out[-1]):
            out = out[:-1]
        return out
    digest = hashlib.md5(parent.encode(), usedforsecurity=False).hexdigest()
    return parent[: head - len(suffix)] + digest + suffix
