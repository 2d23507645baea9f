"""Whole TaskRuns as the API server stores them (Verifier.verify_taskrun): every backend and
format verifies after the pod is gone, and every change to the stored status is caught."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest

from entrypoint.termination import RunResult, parse_message
from entrypoint.testing.ca import TestCA
from entrypoint.verify import TaskRunOutcome, TaskRunVerdict, TrustBundle, TrustSet, Verifier
from tests.support import compact_signer, tokens
from tests.support.messages import message
from tests.support.pki import NS, TASKRUN, TD
from tests.support.signed import BACKENDS, FORMATS, SignedMessage, SignedMessageFactory
from tests.support.tekton_status import StepRun, pod_object, taskrun_object

STARTED = "2026-12-03T10:00:00.250Z"
STEP0 = [
    RunResult("commit", "0a1b2c3d", 1),
    RunResult("image", "sha256:" + "ab" * 32, 1),
    RunResult("StartedAt", STARTED, 3),
]
STEP1 = [
    RunResult("commit", "ffff0000", 1),  # a later step rewrites it: Tekton keeps this value
    RunResult("list", '["a","b"]', 1),
    RunResult("StartedAt", "2026-12-03T10:00:01.500Z", 3),
]


class Run:
    """A two-step TaskRun signed by the project's signer, and the verifier that trusts it."""

    def __init__(
        self, factory: SignedMessageFactory, fmt: str, backend: str, steps: Any = (STEP0, STEP1)
    ) -> None:
        self.fmt, self.backend = fmt, backend
        first = factory(fmt, backend, results=steps[0], step="0")
        signed = [first] + [
            factory(fmt, backend, results=r, step=str(i), svid=first.svid) if backend == "spire"
            else factory(fmt, backend, results=r, step=str(i))
            for i, r in enumerate(steps[1:], start=1)
        ]  # fmt: skip
        self.signed: list[SignedMessage] = signed
        self.verifier = first.verifier
        self.namespace, self.name = (NS, TASKRUN) if backend == "spire" else (tokens.NS, tokens.TR)
        self.steps = [StepRun(f"s{i}", s.text()) for i, s in enumerate(signed)]
        self.sa = tokens.SA

    def taskrun(self, **kw: Any) -> dict[str, Any]:
        return taskrun_object(self.namespace, self.name, self.steps, pod_name=self.pod_name, **kw)

    @property
    def pod_name(self) -> str:
        return f"{self.name}-pod"

    def pod(self, taskrun: dict[str, Any], **kw: Any) -> dict[str, Any]:
        kw.setdefault("uid", tokens.POD_UID)
        kw.setdefault("service_account", self.sa)
        return pod_object(self.namespace, taskrun, self.steps, **kw)

    def verify(self, taskrun: dict[str, Any], **kw: Any) -> TaskRunVerdict:
        return self.verifier.verify_taskrun(json.loads(json.dumps(taskrun)), **kw)


CASES = [(f, b) for b in BACKENDS for f in FORMATS]


@pytest.fixture(params=CASES, ids=[f"{f}-{b}" for f, b in CASES])
def run(request: pytest.FixtureRequest, signed_message: SignedMessageFactory) -> Run:
    fmt, backend = request.param
    return Run(signed_message, fmt, backend)


def step_message(taskrun: dict[str, Any], i: int) -> str:
    return str(taskrun["status"]["steps"][i]["terminated"]["message"])


def test_a_stored_taskrun_verifies_after_its_pod_is_gone(run: Run) -> None:
    tr = run.taskrun()
    # What Tekton keeps: no internal entries, and the start time folded into the step's state.
    assert "StartedAt" not in step_message(tr, 0)
    v = run.verify(tr)
    assert v.outcome is TaskRunOutcome.VERIFIED, v.message
    assert v.condition()["status"] == "True"
    assert v.condition()["reason"] == "TaskRunResultsVerified"
    assert [s.outcome for s in v.steps] == ["Verified", "Verified"]
    covered = {(c.name, c.step) for c in v.results if c.covered_by == "signature"}
    # Last value wins: commit is vouched for by the step whose value Tekton kept.
    assert ("commit", "s1") in covered and ("image", "s0") in covered and ("list", "s1") in covered


def test_with_the_pod_the_raw_messages_are_verified(run: Run) -> None:
    tr = run.taskrun()
    v = run.verify(tr, pod=run.pod(tr))
    assert v.verified, v.message
    assert {s.source for s in v.steps} == {"pod"}


def test_a_changed_result_in_the_status_is_rejected(run: Run) -> None:
    tr = run.taskrun()
    for r in tr["status"]["results"]:
        if r["name"] == "image":
            r["value"] = "sha256:" + "00" * 32
    v = run.verify(tr)
    assert v.outcome is TaskRunOutcome.FAILED
    assert v.reason == "ResultMismatch"
    assert "'image'" in v.message
    assert v.condition() | {"message": ""} == {
        "type": "SignedResultsVerified",
        "status": "False",
        "reason": "TaskRunResultsVerificationFailed",
        "message": "",
    }


def test_an_older_steps_value_in_the_status_is_rejected(run: Run) -> None:
    # Both steps signed a commit; Tekton keeps the last one, so the first in the status is a lie.
    tr = run.taskrun()
    for r in tr["status"]["results"]:
        if r["name"] == "commit":
            r["value"] = "0a1b2c3d"
    assert run.verify(tr).reason == "ResultMismatch"


def test_a_result_added_to_the_status_is_rejected(run: Run) -> None:
    tr = run.taskrun()
    tr["status"]["results"].append({"name": "extra", "type": "string", "value": "x"})
    v = run.verify(tr)
    assert (v.reason, "'extra'" in v.message) == ("ResultMismatch", True)


def test_a_result_removed_from_a_successful_taskrun_is_rejected(run: Run) -> None:
    tr = run.taskrun()
    tr["status"]["results"] = [r for r in tr["status"]["results"] if r["name"] != "image"]
    v = run.verify(tr)
    assert v.reason == "ResultMismatch" and "missing" in v.message


def test_a_changed_step_message_is_rejected(run: Run) -> None:
    tr = run.taskrun()
    entries = parse_message(step_message(tr, 0))
    forged = [RunResult(e.key, "evil", e.type) if e.key == "image" else e for e in entries]
    tr["status"]["steps"][0]["terminated"]["message"] = message(forged)
    tr["status"]["results"] = [
        {**r, "value": "evil"} if r["name"] == "image" else r for r in tr["status"]["results"]
    ]
    v = run.verify(tr)
    assert v.outcome is TaskRunOutcome.FAILED
    assert v.steps[0].outcome == "Failed" and v.reason == "SignatureInvalid"


@pytest.mark.parametrize("backend", BACKENDS)
def test_compact_messages_swapped_between_steps_are_rejected(
    signed_message: SignedMessageFactory, backend: str
) -> None:
    run = Run(signed_message, "compact", backend)
    run.steps = [StepRun("s0", run.steps[1].message), StepRun("s1", run.steps[0].message)]
    v = run.verify(run.taskrun())
    assert v.reason == "StepMismatch", v.message


@pytest.mark.parametrize("backend", BACKENDS)
def test_compact_binds_the_exit_code_the_taskrun_records(
    signed_message: SignedMessageFactory, backend: str
) -> None:
    run = Run(signed_message, "compact", backend)
    tr = run.taskrun()
    tr["status"]["steps"][1]["terminated"]["exitCode"] = 1
    v = run.verify(tr)
    assert v.reason == "ExitCodeMismatch", v.message
    assert "signed with exit code 0" in v.message


@pytest.mark.parametrize("backend", BACKENDS)
def test_compact_binds_the_start_time_the_taskrun_records(
    signed_message: SignedMessageFactory, backend: str
) -> None:
    run = Run(signed_message, "compact", backend)
    tr = run.taskrun()
    assert tr["status"]["steps"][0]["terminated"]["startedAt"] == "2026-12-03T10:00:00Z"
    tr["status"]["steps"][0]["terminated"]["startedAt"] = "2026-12-03T10:00:07Z"
    assert run.verify(tr).reason == "StartTimeMismatch"


def test_tektons_format_does_not_bind_the_exit_code_and_says_so(signed_message: SignedMessageFactory) -> None:
    run = Run(signed_message, "tekton", "spire")
    tr = run.taskrun()
    tr["status"]["steps"][1]["terminated"]["exitCode"] = 1
    v = run.verify(tr)
    assert v.verified
    assert v.to_json()["steps"][1]["exitCodeBound"] is False


def test_a_spliced_manifest_is_refused_across_steps(signed_message: SignedMessageFactory) -> None:
    """Issue 15 item 3: with one SVID per pod, step 1's manifest in step 0's message (with step 0's
    extra result dropped) verifies on its own; the TaskRun shows the same manifest signature twice."""
    run = Run(signed_message, "tekton", "spire", steps=(STEP0, [RunResult("commit", "0a1b2c3d", 1)]))
    s0, s1 = (parse_message(s.message) for s in run.steps)
    take = {"RESULT_MANIFEST", "RESULT_MANIFEST.sig"}
    spliced = [e for e in s0 if e.key not in take | {"image", "image.sig"}] + [e for e in s1 if e.key in take]
    alone = run.verifier.verify_message(message(spliced), run.signed[0].taskrun)
    assert alone.verified  # the limit of Tekton's format for one message (docs/security.md)
    run.steps[0] = StepRun("s0", message(spliced))
    v = run.verify(run.taskrun())
    assert v.reason == "ManifestReused", v.message


def test_an_unsigned_step_result_in_tektons_format_is_not_vouched_for(
    signed_message: SignedMessageFactory,
) -> None:
    run = Run(signed_message, "tekton", "spire", steps=([*STEP0, RunResult("notes", "built", 4)],))
    v = run.verify(run.taskrun())
    assert v.reason == "ResultUnsigned", v.message
    assert "status.steps[0].results" in v.message


def test_compact_signs_step_results_and_task_results_copied_from_them(
    signed_message: SignedMessageFactory,
) -> None:
    run = Run(signed_message, "compact", "spire", steps=([*STEP0, RunResult("notes", "built", 4)],))
    task_results = [{"name": "summary", "type": "string", "value": "$(steps.s0.results.notes)"}]
    tr = run.taskrun(task_results=task_results)
    assert {"name": "summary", "type": "string", "value": "built"} in tr["status"]["results"]
    v = run.verify(tr)
    assert v.verified, v.message
    assert {(c.name, c.where) for c in v.results} >= {
        ("summary", "status.results"),
        ("notes", "status.steps[0].results"),
    }
    tr["status"]["steps"][0]["results"][0]["value"] = "forged"
    assert run.verify(tr).reason == "ResultMismatch"


def test_a_cs1_message_verifies_only_from_the_pod(ca: TestCA) -> None:
    svid = ca.issue_svid(f"spiffe://{TD}/ns/{NS}/taskrun/{TASKRUN}")
    signed = compact_signer.sign(STEP0, svid, step="0")
    steps = [StepRun("s0", message(signed))]
    tr = taskrun_object(NS, TASKRUN, steps)
    verifier = Verifier(TrustSet(spiffe=TrustBundle(TD, ca.bundle)))
    stored = verifier.verify_taskrun(tr)
    assert stored.reason == "SignatureInvalid"
    assert "verifies only from the pod" in stored.message
    live = verifier.verify_taskrun(tr, pod=pod_object(NS, tr, steps))
    assert live.verified, live.message


def test_sidecar_logs_mode_is_unverifiable_never_verified(run: Run) -> None:
    v = run.verify(run.taskrun(feature_flags={"resultExtractionMethod": "sidecar-logs"}))
    assert v.outcome is TaskRunOutcome.UNVERIFIABLE
    assert v.condition()["status"] == "False"
    assert "sidecar" in v.condition()["message"]


def test_a_running_taskrun_is_awaited(run: Run) -> None:
    v = run.verify(run.taskrun(done=False))
    assert v.outcome is TaskRunOutcome.AWAITING
    assert v.condition() == {
        "type": "SignedResultsVerified",
        "status": "Unknown",
        "reason": "AwaitingTaskRunResults",
        "message": "Waiting upon TaskRun results and signatures to verify",
    }


def test_another_taskrun_of_the_same_namespace_does_not_verify(run: Run) -> None:
    tr = run.taskrun()
    tr["metadata"]["name"] = "someone-else"
    v = run.verify(tr)
    assert v.outcome is TaskRunOutcome.FAILED
    assert v.reason in {"IdentityMismatch", "TokenUntrusted"}, v.message
    # Even naming the genuine pod: a token names its pod, and this is not Tekton's pod for it.
    tr["status"]["podName"] = run.pod_name
    v = run.verify(tr)
    assert (v.outcome, v.reason) == (TaskRunOutcome.FAILED, "IdentityMismatch"), v.message


@pytest.mark.parametrize(
    ("parent", "suffix", "expected"),
    [
        ("build-1", "-pod", "build-1-pod"),
        ("build-1", "-pod-retry2", "build-1-pod-retry2"),
        # Over 63 characters: knative cuts the parent and inserts an MD5. Expected values printed
        # by knative.dev/pkg's kmeta.ChildName (the version Tekton v1.15.1 requires).
        ("a" * 70, "-pod", "a" * 27 + "0f5c6c4e740bfcc08c3c26ccb2673d46-pod"),
        ("b" * 40, "-pod-retry12345678901234567890123", "b" * 31 + "e9e7955c40542613185339bfbd67bb3a"),
        ("x-" + "c" * 59, "-pod-retry1", "x-" + "c" * 18 + "58a24022e0ee7c3b3702315478c23893-pod-retry1"),
    ],
)
def test_pod_names_follow_knatives_child_name(parent: str, suffix: str, expected: str) -> None:
    from entrypoint._internal.verification.taskrun import child_name

    assert child_name(parent, suffix) == expected
    assert len(child_name(parent, suffix)) <= 63


@pytest.mark.parametrize("fmt", FORMATS)
def test_the_pod_uid_binds_an_sa_token(signed_message: SignedMessageFactory, fmt: str) -> None:
    run = Run(signed_message, fmt, "k8s_sat")
    tr = run.taskrun()
    assert run.verify(tr, pod=run.pod(tr)).verified
    other = run.verify(tr, pod=run.pod(tr, uid="00000000-0000-4000-8000-000000000000"))
    assert other.outcome is TaskRunOutcome.FAILED, other.message


def test_a_pod_of_another_taskrun_is_refused(run: Run) -> None:
    tr = run.taskrun()
    pod = run.pod(tr)
    pod["metadata"]["ownerReferences"][0]["uid"] = "another"
    v = run.verify(tr, pod=pod)
    assert v.outcome is TaskRunOutcome.INVALID and "not owned" in v.message


def _edit(change: Any) -> Any:
    def edit(tr: dict[str, Any]) -> Any:
        change(tr)
        return tr

    return edit


@pytest.mark.parametrize(
    "mangle",
    [
        lambda tr: None,
        lambda tr: [],
        lambda tr: {**tr, "kind": "Pod"},
        lambda tr: {**tr, "metadata": {"name": "x"}},
        _edit(lambda tr: tr["status"].update(steps="nope")),
        _edit(lambda tr: tr["status"]["steps"][0].update(terminated={"exitCode": "0", "message": "[]"})),
        _edit(lambda tr: tr["status"]["steps"][0]["terminated"].update(startedAt="yesterday")),
        _edit(lambda tr: tr["status"].update(results=[{"value": "no name"}])),
        _edit(lambda tr: tr["status"].update(provenance=[])),
    ],
)
def test_objects_it_cannot_read_are_invalid_never_a_crash(run: Run, mangle: Any) -> None:
    v = run.verifier.verify_taskrun(mangle(run.taskrun()))
    assert v.outcome is TaskRunOutcome.INVALID, v.message
    assert v.condition()["status"] == "False"


def test_an_unsigned_taskrun_with_results_is_not_verified(run: Run) -> None:
    steps = [StepRun("s0", message([RunResult("commit", "x", 1)]))]
    tr = taskrun_object(run.namespace, run.name, steps)
    v = run.verifier.verify_taskrun(tr)
    assert (v.outcome, v.reason) == (TaskRunOutcome.FAILED, "UnknownFormat")


def test_a_taskrun_without_results_or_messages_has_nothing_to_falsify(run: Run) -> None:
    tr = taskrun_object(run.namespace, run.name, [StepRun("s0", "")])
    v = run.verifier.verify_taskrun(tr)
    assert v.verified and "no results" in v.message
    assert [s.outcome for s in v.steps] == ["Empty"]


def test_the_verdict_digest_is_stable_and_changes_with_the_judgement(run: Run) -> None:
    tr = run.taskrun()
    first, second = run.verify(tr), run.verify(copy.deepcopy(tr))
    assert first.digest() == second.digest()
    tr["status"]["results"][0]["value"] = "changed"
    assert run.verify(tr).digest() != first.digest()
    body = first.to_json()
    assert body["taskRun"] == {
        "namespace": run.namespace,
        "name": run.name,
        "uid": tr["metadata"]["uid"],
        "podName": run.pod_name,
    }
    assert body["outcome"] == "Verified" and len(body["steps"]) == 2
