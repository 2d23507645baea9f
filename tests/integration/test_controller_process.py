"""``entrypoint controller`` as a process against the Kubernetes API double (list/watch with
bookmarks and 410, the status subresource with resourceVersion conflicts, Leases, Events,
ConfigMaps): every done TaskRun gets the right ``SignedResultsVerified`` condition, once.

TaskRuns come two ways: steps run by the real entrypoint process (each backend and format), and
many TaskRuns signed in-process by the project's signer for their own identities
(tests/support/signed_taskruns.py), for the cases that need hundreds or a fresh identity each.
"""

from __future__ import annotations

import copy
import json
import signal
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml  # type: ignore[import-untyped]

from entrypoint.testing.ca import TestCA
from entrypoint.testing.kube import KubeAPIServer
from entrypoint.testing.workload_api import WorkloadAPIServer
from tests.support import tokens
from tests.support.controller import CONTROLLER_NS, CONTROLLER_SA, FAST_LEASE, ControllerProcess, wait_for
from tests.support.k8s_sat import cluster, sa_flags, sign_step
from tests.support.paths import REPO
from tests.support.pki import NS, TASKRUN, TD
from tests.support.signed_taskruns import run_spire_steps, signed_taskrun
from tests.support.sigstore import sign_step as sigstore_sign_step
from tests.support.sigstore import stack as sigstore_stack
from tests.support.tekton import TektonRoot
from tests.support.tekton_status import StepRun, pod_object, taskrun_object

CONDITION = "SignedResultsVerified"
VERDICT = "signed-entrypoint.dev/verdict"
VERIFIED_POD = "signed-entrypoint.dev/verified-pod"
JWKS_CONFIGMAP = f"{CONTROLLER_NS}/signed-entrypoint-jwks"
TASKRUNS = "/apis/tekton.dev/v1/namespaces/{ns}/taskruns/{name}"


def taskrun_path(ns: str, name: str) -> str:
    return TASKRUNS.format(ns=ns, name=name)


def condition(tr: dict[str, Any], kind: str = CONDITION) -> dict[str, Any] | None:
    return next((c for c in tr.get("status", {}).get("conditions", []) if c.get("type") == kind), None)


@dataclass
class Harness:
    """A started API double, the controller's credentials, and a way to start replicas."""

    kube: KubeAPIServer
    directory: Path
    trust_args: list[str]

    def start(self, *extra: str, name: str = "controller") -> ControllerProcess:
        self.kube.add_service_account(CONTROLLER_NS, CONTROLLER_SA)
        token = self.directory / f"{name}.token"
        token.write_text(self.kube.issue_token(CONTROLLER_NS, CONTROLLER_SA))
        ca = self.directory / "kube-ca.crt"
        ca.write_bytes(self.kube.ca_pem)
        args = ["--kube-api", self.kube.url, "--kube-token-file", str(token), "--kube-ca-file", str(ca),
                "--lease-namespace", CONTROLLER_NS, "--jwks-configmap", JWKS_CONFIGMAP, *FAST_LEASE,
                *self.trust_args, *extra]  # fmt: skip
        return ControllerProcess(self.directory, args, name=name)

    def taskrun(self, ns: str, name: str) -> dict[str, Any]:
        return self.kube.get_object(taskrun_path(ns, name))

    def verdict(self, ns: str, name: str, seconds: float = 30) -> dict[str, Any]:
        """The TaskRun once its verdict is recorded for its current pod."""

        def recorded() -> dict[str, Any] | None:
            tr = self.taskrun(ns, name)
            annotations = tr["metadata"].get("annotations") or {}
            done = condition(tr) is not None and annotations.get(VERIFIED_POD) == tr["status"]["podName"]
            return tr if done else None

        return wait_for(f"the verdict on {ns}/{name}", recorded, seconds)

    def status_patches(self, ns: str, name: str) -> int:
        return self.kube.requests.count(("PATCH", taskrun_path(ns, name) + "/status"))


@pytest.fixture
def issuer() -> tokens.Issuer:
    return tokens.Issuer("ES256")


@pytest.fixture
def harness(tmp_path: Path, ca: TestCA, bundle: Path, issuer: tokens.Issuer) -> Iterator[Harness]:
    """For TaskRuns signed in-process: SPIFFE trust from ``ca``, Kubernetes trust from a snapshot
    of ``issuer``'s keys (the double's own keys sign only what its TokenRequest issues)."""
    jwks = tmp_path / "jwks.json"
    issuer.jwks().save(str(jwks))
    with KubeAPIServer() as kube:
        yield Harness(
            kube, tmp_path, ["--trust-domain", TD, "--trust-bundle", str(bundle), "--jwks", str(jwks)]
        )


def make(ca: TestCA, issuer: tokens.Issuer, backend: str, fmt: str, ns: str, name: str) -> dict[str, Any]:
    return signed_taskrun(ca, issuer, backend, fmt, ns, name)


# -- TaskRuns whose steps ran through the real entrypoint -------------------------------------------------


@pytest.mark.parametrize("fmt", ["tekton", "compact"])
def test_spire_signed_taskruns_are_recorded_verified_with_and_without_their_pod(
    tmp_path: Path, ca: TestCA, bundle: Path, agent: WorkloadAPIServer, root: TektonRoot, fmt: str
) -> None:
    steps = run_spire_steps(root, agent, fmt)
    with KubeAPIServer() as kube:
        # The bundle from a file, or from the Workload API as a SPIRE deployment gives it.
        source = ["--trust-bundle", str(bundle)] if fmt == "tekton" else ["--spire-socket", agent.address]
        h = Harness(kube, tmp_path, ["--trust-domain", TD, *source, "--kube-trust", "none"])
        tr = taskrun_object(NS, TASKRUN, steps)
        kube.create(tr)
        kube.put_pod_object(pod_object(NS, tr, steps))
        other = taskrun_object("elsewhere", TASKRUN, steps)  # the same messages, another TaskRun's
        kube.create(other)
        c = h.start()
        done = h.verdict(NS, TASKRUN)
        found = condition(done)
        assert found is not None and (found["status"], found["reason"]) == (
            "True",
            "TaskRunResultsVerified",
        ), found
        assert done["metadata"]["annotations"][VERDICT].startswith("Verified Verified sha256:")
        wrong = condition(h.verdict("elsewhere", TASKRUN))
        assert wrong is not None and wrong["status"] == "False" and "IdentityMismatch" in wrong["message"], (
            wrong
        )
        lines = {line["taskRun"]: line for line in c.audit_lines()}
        assert lines[f"{NS}/{TASKRUN}"]["identity"] == [f"spiffe://{TD}/ns/{NS}/taskrun/{TASKRUN}"]
        assert c.metric("signed_entrypoint_taskrun_verifications_total", outcome="Verified", backend="spire",
                        format=fmt) == 1  # fmt: skip
        assert c.stop() == 0


@pytest.mark.parametrize("fmt", ["tekton", "compact"])
def test_oidc_sa_token_taskruns_are_recorded_verified_with_the_api_servers_own_keys(
    tmp_path: Path, root: TektonRoot, fmt: str
) -> None:
    with cluster(tmp_path / "cluster") as c:
        p = sign_step(root, c, {"commit": "abc123"}, sa_flags(fmt))
        assert p.returncode == 0, p.stderr
        step = StepRun("s0", root.termination.read_text())
        tr = taskrun_object(c.pod.namespace, "build-1", [step], pod_name=c.pod.name)
        c.server.create(tr)
        h = Harness(c.server, tmp_path, [])  # the default: --kube-trust=jwks, from the API server
        replica = h.start()
        done = h.verdict(c.pod.namespace, "build-1")
        found = condition(done)
        assert found is not None and found["status"] == "True", (found, replica.log())
        # Every key it trusted is kept for archived TaskRuns, in a snapshot `verify --jwks` reads.
        cm = c.server.get_object(f"/api/v1/namespaces/{CONTROLLER_NS}/configmaps/signed-entrypoint-jwks")
        kept = json.loads(cm["data"]["jwks.json"])
        assert {k["kid"] for k in kept["jwks"]["keys"]} == {k["kid"] for k in c.server.jwks()["keys"]}
        assert replica.stop() == 0


@pytest.mark.parametrize("fmt", ["tekton", "compact"])
def test_sigstore_keyless_taskruns_are_recorded_verified_from_the_trusted_root(
    tmp_path: Path, root: TektonRoot, fmt: str
) -> None:
    with sigstore_stack(tmp_path / "sigstore") as s:
        p = sigstore_sign_step(root, s, {"commit": "abc123"}, fmt)
        assert p.returncode == 0, p.stderr
        step = StepRun("s0", root.termination.read_text())
        s.kube.create(taskrun_object(s.pod.namespace, "build-1", [step], pod_name=s.pod.name))
        # The same message in another namespace's TaskRun: the signed binding names this one.
        s.kube.create(taskrun_object("elsewhere", "build-1", [step], pod_name=s.pod.name))
        h = Harness(s.kube, tmp_path, ["--kube-trust", "none", *s.verify_args()])
        replica = h.start()
        found = condition(h.verdict(s.pod.namespace, "build-1"))
        assert found is not None and found["status"] == "True", (found, replica.log())
        wrong = condition(h.verdict("elsewhere", "build-1"))
        assert wrong is not None and wrong["status"] == "False" and "BindingMismatch" in wrong["message"], (
            wrong
        )
        assert replica.metric("signed_entrypoint_taskrun_verifications_total", outcome="Verified",
                              backend="sigstore-keyless", format=fmt) == 1  # fmt: skip
        assert replica.stop() == 0


# -- what must not verify ------------------------------------------------------------------------------


def test_tampered_swapped_and_injected_taskruns_are_recorded_failed(
    harness: Harness, ca: TestCA, issuer: tokens.Issuer
) -> None:
    genuine = make(ca, issuer, "spire", "compact", "team", "genuine")
    tampered = make(ca, issuer, "k8s_sat", "tekton", "team", "tampered")
    tampered["status"]["results"][0]["value"] = "sha256:" + "0" * 64
    swapped = make(ca, issuer, "spire", "compact", "team", "swapped")
    other = make(ca, issuer, "spire", "compact", "team", "other")
    swapped["status"]["steps"][0] = copy.deepcopy(other["status"]["steps"][0])
    unsigned = make(ca, issuer, "spire", "tekton", "team", "unsigned")
    unsigned["status"]["results"].append({"name": "EXTRA", "type": "string", "value": "x"})
    for tr in (genuine, tampered, swapped, unsigned):
        harness.kube.create(tr)
    c = harness.start()
    expect = {
        "genuine": ("True", ""),
        "tampered": ("False", "ResultMismatch"),
        "swapped": ("False", "IdentityMismatch"),
        "unsigned": ("False", "in no step's termination message"),
    }
    for name, (status, reason) in expect.items():
        found = condition(harness.verdict("team", name))
        assert found is not None and found["status"] == status and reason in found["message"], (name, found)
    assert c.metric("signed_entrypoint_taskrun_verifications_total", outcome="Failed") == 3
    assert c.stop() == 0


def test_enforce_fails_the_taskrun_and_emits_an_event(
    harness: Harness, ca: TestCA, issuer: tokens.Issuer
) -> None:
    tampered = make(ca, issuer, "spire", "tekton", "team", "forged")
    tampered["status"]["results"][0]["value"] = "sha256:" + "0" * 64
    harness.kube.create(tampered)
    harness.kube.create(make(ca, issuer, "spire", "tekton", "team", "fine"))
    c = harness.start("--mode", "enforce")
    tr = harness.verdict("team", "forged")
    succeeded = condition(tr, "Succeeded")
    assert succeeded is not None
    assert (succeeded["status"], succeeded["reason"]) == ("False", "TaskRunResultsVerificationFailed")
    fine = condition(harness.verdict("team", "fine"), "Succeeded")
    assert fine is not None and fine["status"] == "True"  # a verified TaskRun is left alone
    # The event follows the verdict's writes.
    [event] = wait_for(
        "the Warning event",
        lambda: [e for e in harness.kube.events("team") if e["involvedObject"]["name"] == "forged"] or None,
    )
    assert (event["type"], event["reason"]) == ("Warning", "TaskRunResultsVerificationFailed")
    assert "ResultMismatch" in event["message"]
    assert c.stop() == 0


# -- once per attempt, whatever happens ---------------------------------------------------------------


def test_a_retry_with_a_new_pod_is_verified_again_and_a_recorded_one_never(
    harness: Harness, ca: TestCA, issuer: tokens.Issuer
) -> None:
    harness.kube.create(make(ca, issuer, "spire", "compact", "team", "flaky"))
    c = harness.start()
    first = harness.verdict("team", "flaky")
    assert harness.status_patches("team", "flaky") == 1
    # Tekton retried it: a new pod, whose step signed again; the first attempt moves to retriesStatus.
    retry = make(ca, issuer, "spire", "compact", "team", "flaky")["status"]
    retry["podName"] = "flaky-pod-retry1"
    retry["conditions"] = [dict(cond) for cond in retry["conditions"]]
    retry["retriesStatus"] = [first["status"]]
    harness.kube.update_status("team", "flaky", retry)
    second = harness.verdict("team", "flaky")
    assert second["metadata"]["annotations"][VERIFIED_POD] == "flaky-pod-retry1"
    found = condition(second)
    assert found is not None and found["status"] == "True", found
    assert harness.status_patches("team", "flaky") == 2
    assert [line["podName"] for line in c.audit_lines()] == ["flaky-pod", "flaky-pod-retry1"]
    assert c.stop() == 0
    # A restart lists everything again: what is recorded stays recorded, with no new write.
    again = harness.start(name="again")
    wait_for("the restarted controller's list", again.ready)
    wait_for("its first verification, if any", lambda: again.metric("signed_entrypoint_queue_depth") == 0)
    assert harness.status_patches("team", "flaky") == 2 and again.audit_lines() == []
    assert again.stop() == 0


def test_a_restart_mid_queue_records_every_taskrun_exactly_once(
    harness: Harness, ca: TestCA, issuer: tokens.Issuer
) -> None:
    names = [f"tr-{i:03d}" for i in range(120)]
    for name in names:
        harness.kube.create(make(ca, issuer, "spire", "compact", "bulk", name))
    first = harness.start("--workers", "1")
    wait_for("a few verdicts", lambda: len(first.audit_lines()) >= 10 or None)
    first.stop(signal.SIGKILL)
    second = harness.start(name="second")
    for name in names:
        found = condition(harness.verdict("bulk", name))
        assert found is not None and found["status"] == "True", (name, found)
    # Killed between its status patch and its annotation, a TaskRun is verified twice at most.
    assert max(harness.status_patches("bulk", n) for n in names) <= 2
    assert sum(harness.status_patches("bulk", n) for n in names) <= len(names) + 1
    assert second.stop() == 0


def test_two_replicas_one_writer_and_a_takeover(harness: Harness, ca: TestCA, issuer: tokens.Issuer) -> None:
    a, b = harness.start(name="a"), harness.start(name="b")
    replicas = {"a": a, "b": b}

    def leader() -> str | None:
        leading = [n for n, r in replicas.items() if r.metric("signed_entrypoint_leader") == 1]
        assert len(leading) <= 1, "two replicas lead at once"
        return leading[0] if leading else None

    first = wait_for("a leader", leader)
    for i in range(30):
        harness.kube.create(make(ca, issuer, "spire", "tekton", "pair", f"tr-{i}"))
    for i in range(30):
        harness.verdict("pair", f"tr-{i}")
    assert all(harness.status_patches("pair", f"tr-{i}") == 1 for i in range(30))
    standby = "b" if first == "a" else "a"
    assert replicas[standby].audit_lines() == [] and replicas[standby].ready()
    replicas.pop(first).stop(signal.SIGKILL)
    assert wait_for("the standby to take over", leader, seconds=15) == standby
    harness.kube.create(make(ca, issuer, "spire", "tekton", "pair", "after"))
    found = condition(harness.verdict("pair", "after"))
    assert found is not None and found["status"] == "True"
    assert replicas[standby].stop() == 0


def test_an_api_server_that_fails_restarts_and_forgets_delays_nothing_for_good(
    harness: Harness, ca: TestCA, issuer: tokens.Issuer
) -> None:
    c = harness.start("--no-leader-elect")
    wait_for("the first list", c.ready)
    harness.kube.fail_next(3, 503)
    harness.kube.create(make(ca, issuer, "spire", "compact", "flaky", "during-503"))
    harness.verdict("flaky", "during-503")
    harness.kube.drop_watches()  # an API server restart: every watch cut at once
    harness.kube.create(make(ca, issuer, "spire", "compact", "flaky", "after-drop"))
    harness.verdict("flaky", "after-drop")
    # Cut off while changes happen and the history is compacted: the watch's resourceVersion is
    # then too old (410 Expired) and only a new list finds what changed meanwhile.
    harness.kube.fail_next(3, 503)
    harness.kube.drop_watches()
    for i in range(3):
        harness.kube.create(make(ca, issuer, "spire", "compact", "flaky", f"missed-{i}"))
    harness.kube.compact()
    for i in range(3):
        harness.verdict("flaky", f"missed-{i}")
    assert c.metric("signed_entrypoint_watch_restarts_total", cause="expired") >= 1
    assert c.metric("signed_entrypoint_watch_restarts_total") >= 2
    assert c.stop() == 0


def test_a_forbidden_status_write_is_retried_and_said_in_one_line(
    harness: Harness, ca: TestCA, issuer: tokens.Issuer
) -> None:
    harness.kube.forbid("patch", "taskruns/status")
    harness.kube.create(make(ca, issuer, "spire", "compact", "team", "locked"))
    c = harness.start()
    wait_for("the refusal in the log", lambda: "forbidden" in c.log() or None)
    assert 'cannot patch resource "taskruns/status"' in c.log()
    assert c.process.poll() is None  # still running, retrying with backoff
    harness.kube.allow_all()
    found = condition(harness.verdict("team", "locked"))
    assert found is not None and found["status"] == "True"
    assert c.metric("signed_entrypoint_retries_total", cause="transient") >= 1
    assert "Traceback" not in c.log()
    assert c.stop() == 0


# -- the manifests grant what the controller uses -----------------------------------------------------


def _rules() -> list[tuple[str, dict[str, Any]]]:
    """(namespace or "" for cluster-wide, rule) of deploy/controller.yaml's roles."""
    found = []
    for doc in yaml.safe_load_all((REPO / "deploy" / "controller.yaml").read_text()):
        if doc and doc["kind"] in ("ClusterRole", "Role"):
            ns = doc["metadata"].get("namespace", "") if doc["kind"] == "Role" else ""
            found += [(ns, rule) for rule in doc["rules"]]
    return found


def _allowed(method: str, path: str, rules: list[tuple[str, dict[str, Any]]]) -> bool:
    parts = path.split("?", maxsplit=1)[0].strip("/").split("/")
    query = path.partition("?")[2]
    group = "" if parts[0] == "api" else parts[1]
    rest = parts[2:] if parts[0] == "api" else parts[3:]
    namespace = ""
    if rest[:1] == ["namespaces"]:
        namespace, rest = rest[1], rest[2:]
    resource = rest[0] + (f"/{rest[2]}" if len(rest) > 2 else "")
    name = rest[1] if len(rest) > 1 else ""
    verb = {"POST": "create", "PUT": "update", "PATCH": "patch", "DELETE": "delete"}.get(method)
    if verb is None:
        verb = "watch" if "watch=true" in query else ("get" if name else "list")
    for where, rule in rules:
        if where and where != namespace:
            continue
        matches = group in rule["apiGroups"] and resource in rule["resources"] and verb in rule["verbs"]
        if matches and (not rule.get("resourceNames") or name in rule["resourceNames"]):
            return True
    return False


def test_every_request_the_controller_makes_is_granted_by_deploy(
    harness: Harness, ca: TestCA, issuer: tokens.Issuer, tmp_path: Path, root: TektonRoot
) -> None:
    rules = _rules()
    assert (
        _allowed("GET", f"/api/v1/namespaces/{CONTROLLER_NS}/secrets/x", rules) is False
    )  # the check checks
    assert _allowed("PATCH", "/apis/tekton.dev/v1/namespaces/a/taskruns/b/status", rules) is True
    with cluster(tmp_path / "cluster") as kc:
        assert sign_step(root, kc, {"commit": "abc123"}, sa_flags("compact")).returncode == 0
        forged = taskrun_object(kc.pod.namespace, "build-1", [StepRun("s0", root.termination.read_text())],
                                pod_name=kc.pod.name)  # fmt: skip
        forged["status"]["results"][0]["value"] = "forged"
        kc.server.create(forged)
        h = Harness(kc.server, tmp_path, [])
        c = h.start("--mode", "enforce")
        h.verdict(kc.pod.namespace, "build-1")
        wait_for("the event", lambda: kc.server.events(kc.pod.namespace) or None)
        assert c.stop() == 0
        made = [
            (m, p)
            for m, p in kc.server.requests
            if not p.startswith("/api/v1/namespaces/builds/serviceaccounts")
        ]
    denied = sorted({(m, p) for m, p in set(made) - _discovery(made) if not _allowed(m, p, rules)})
    assert denied == [], denied
    used = {p.split("?")[0].rsplit("/", 1)[0] for _, p in made}
    assert any("leases" in p for p in used) and any("configmaps" in p for p in used)


def _discovery(made: list[tuple[str, str]]) -> set[tuple[str, str]]:
    # OIDC discovery and the JWKS are non-resource URLs, granted by the issuer-discovery binding.
    return {(m, p) for m, p in made if p.startswith(("/.well-known/", "/openid/"))}
