"""Faults as tests (issue 15): the identity's source failing at each point of a signed step, and
signals at each phase, through the real entrypoint process, for both backends (SPIRE through the
Workload API double, oidc-sa-token through the Kubernetes API double) and both wire formats.

Every case checks the same invariants: the post file and ``exitCode`` record what the command did;
the termination message is written whenever the process lives to write it (on a signing failure,
with the task results unsigned: docs/security.md, "Hostile input, faults and data"); stderr has one
line naming the cause and no traceback; the exit status is Tekton's; and nothing the entrypoint
started (its identity helper above all) outlives it.  The disk-full matrix is in
test_fault_matrix_disk.py.

Already covered elsewhere and not repeated here: 401/503 answers and retries (test_k8s_sat_signing.py),
an absent or unhealthy agent in the ``tekton`` format (test_spire_signing.py).
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import os
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from entrypoint.testing.ca import TestCA
from entrypoint.testing.workload_api import WorkloadAPIServer
from entrypoint.verify import KubeJwks, TaskRunRef, TrustBundle, TrustSet, Verdict, Verifier
from tests.support import faults, k8s_sat, pki
from tests.support.faults import SIGNING_ENTRIES, finish, one_clear_line, sh, start, wait_for
from tests.support.tekton import TektonRoot

FORMATS = ("tekton", "compact")
BACKENDS = ("spire", "oidc-sa-token")
RETRY = "200ms"
# The command: writes its result, says it started, then runs until the test lets it end.
SCRIPT = "printf 1 > '{results}/a'; : > '{root}/started'; until [ -e '{root}/go' ]; do sleep 0.05; done"


# -- the two identity sources, behind one interface ------------------------------------------------------


class Source:
    """An identity source a test can break: started at construction, stopped at the end."""

    backend = ""

    def flags(self, fmt: str, budget: str) -> list[str]:
        raise NotImplementedError

    def env(self) -> dict[str, str]:
        return {k: "" for k in k8s_sat._SCRUBBED}

    def calls(self) -> int:
        raise NotImplementedError

    def deny(self) -> None:
        raise NotImplementedError

    def stop(self) -> None:
        raise NotImplementedError

    def slow(self) -> None:
        raise NotImplementedError

    def verify(self, message: str, fmt: str) -> Verdict:
        raise NotImplementedError


class Spire(Source):
    backend = "spire"

    def __init__(self, stack: contextlib.ExitStack, ca: TestCA) -> None:
        directory = stack.enter_context(tempfile.TemporaryDirectory(prefix="fm-", dir="/tmp"))
        self.ca = ca
        self.server = WorkloadAPIServer(os.path.join(directory, "agent.sock"), ca, pki.SPIFFE_ID)
        self.server.start()
        stack.callback(self.server.stop)
        self.address = self.server.address
        self._stack = stack

    def flags(self, fmt: str, budget: str) -> list[str]:
        return ["-enable_spire", "-spire_socket_path", self.address, f"-signature_format={fmt}",
                "-signing_timeout", budget, "-signing_retry_interval", RETRY]  # fmt: skip

    def calls(self) -> int:
        return self.server.calls

    def deny(self) -> None:
        self.server.deny_first = 1 << 30  # never registered: PermissionDenied "no identity issued"

    def stop(self) -> None:
        self.server.stop()

    def slow(self) -> None:
        # The agent's socket takes connections and never answers.
        self.server.stop()
        self._stack.enter_context(faults.hung_agent(self.server.socket_path))

    def verify(self, message: str, fmt: str) -> Verdict:
        trust = TrustSet(spiffe=TrustBundle(pki.TD, self.ca.bundle))
        ref = TaskRunRef(pki.NS, pki.TASKRUN, step="0" if fmt == "compact" else None)
        return Verifier(trust).verify_message(message, ref)


class Kube(Source):
    backend = "oidc-sa-token"

    def __init__(self, stack: contextlib.ExitStack, directory: Path) -> None:
        self.cluster = stack.enter_context(k8s_sat.cluster(directory))
        self.server = self.cluster.server
        self.extra: dict[str, str] = {}

    def flags(self, fmt: str, budget: str) -> list[str]:
        return k8s_sat.sa_flags(fmt, "-signing_timeout", budget, "-signing_retry_interval", RETRY)

    def env(self) -> dict[str, str]:
        return k8s_sat.step_env(self.cluster, self.extra)

    def calls(self) -> int:
        return sum(1 for method, path in self.server.requests if method == "POST" and path.endswith("/token"))

    def deny(self) -> None:
        self.server.deny_token_requests = True  # RBAC without create on serviceaccounts/token: 403

    def stop(self) -> None:
        self.server.stop()

    def slow(self) -> None:
        self.server.delay = 20.0  # beyond the budget and the signer's late attempt

    def admission_denies(self) -> None:
        # docs/oidc-sa-token.md §6's policy admits only tokens bound to the caller's own pod; this
        # caller's mounted token is bound to no pod, so TokenRequest answers 422.
        self.server.own_pod_tokens_only = True
        self.cluster.token_file.write_text(self.server.issue_token(k8s_sat.NS, k8s_sat.SA))
        self.extra = {"POD_NAME": k8s_sat.POD, "POD_UID": k8s_sat.POD_UID, "POD_NAMESPACE": k8s_sat.NS,
                      "POD_SERVICE_ACCOUNT": k8s_sat.SA}  # fmt: skip

    def verify(self, message: str, fmt: str) -> Verdict:
        trust = TrustSet(kube=KubeJwks(self.server.issuer, self.server.jwks()))
        ref = TaskRunRef(k8s_sat.NS, k8s_sat.TASKRUN, pod_uid=k8s_sat.POD_UID, service_account=k8s_sat.SA,
                         step="0" if fmt == "compact" else None)  # fmt: skip
        return Verifier(trust).verify_message(message, ref)


def make_source(backend: str, stack: contextlib.ExitStack, ca: TestCA, directory: Path) -> Source:
    return Spire(stack, ca) if backend == "spire" else Kube(stack, directory / "cluster")


# -- identity faults at each point of the step ----------------------------------------------------------

Hook = Callable[[Source], None]


def _nothing(source: Source) -> None:
    pass


def _once_asked(source: Source) -> None:
    """Until the helper has asked for its identity (and had a second to get the answer)."""
    wait_for(lambda: source.calls() >= 1, description="the identity helper's first request")
    time.sleep(1.0)


@dataclass(frozen=True)
class Fault:
    """``before`` runs before the step starts, ``during`` while its command runs, ``after`` once the
    command has ended (its post file is there) and the step is waiting for its identity."""

    before: Hook = _nothing
    during: Hook = _nothing
    after: Hook = _nothing
    signs: bool = False  # the identity was held before the fault: the step still signs
    budget: str = "2s"
    # What the one error line must say, by backend.
    words: dict[str, tuple[str, ...]] = field(default_factory=dict)
    backends: tuple[str, ...] = BACKENDS


def _stop_once_asked(source: Source) -> None:
    _once_asked(source)
    source.stop()


# Each line names the backend's last failure and where it was talking to.
SPIRE_GAVE_UP = ("failed to fetch SVID", "spire workload API (unix:///", "context deadline exceeded")
KUBE_GAVE_UP = ("oidc-sa-token: no token within the signing budget", "TokenRequest https://127.0.0.1:")
KUBE_GONE = (*KUBE_GAVE_UP, "Connection refused")
FAULTS: dict[str, Fault] = {
    "stopped-before-start": Fault(
        before=lambda s: s.stop(),
        words={"spire": (*SPIRE_GAVE_UP, "does not exist"), "oidc-sa-token": KUBE_GONE},
    ),
    # The identity was fetched while the command ran; losing its source afterwards costs nothing.
    "stopped-while-the-command-runs": Fault(during=_stop_once_asked, signs=True, budget="20s"),
    "stopped-while-the-command-runs-before-the-identity-came": Fault(
        before=lambda s: s.deny(),
        during=_stop_once_asked,
        budget="4s",
        words={"spire": SPIRE_GAVE_UP, "oidc-sa-token": KUBE_GONE},
    ),
    "stopped-after-the-command-before-signing": Fault(
        before=lambda s: s.deny(),
        after=lambda s: s.stop(),
        budget="4s",
        words={"spire": SPIRE_GAVE_UP, "oidc-sa-token": KUBE_GONE},
    ),
    "slower-than-the-budget": Fault(
        before=lambda s: s.slow(),
        words={"spire": (*SPIRE_GAVE_UP, "Deadline Exceeded"), "oidc-sa-token": (*KUBE_GAVE_UP, "timed out")},
    ),
    "denying": Fault(
        before=lambda s: s.deny(),
        words={"spire": (*SPIRE_GAVE_UP, "no identity issued"), "oidc-sa-token": (*KUBE_GAVE_UP, "HTTP 403")},
    ),
    "admission-denies": Fault(
        before=lambda s: s.admission_denies() if isinstance(s, Kube) else None,
        words={"oidc-sa-token": ("HTTP 422", "denied request")},
        backends=("oidc-sa-token",),
    ),
}
IDENTITY_CASES = [
    (name, backend, fmt) for name, fault in FAULTS.items() for backend in fault.backends for fmt in FORMATS
]


@dataclass
class Outcome:
    root: TektonRoot
    process: subprocess.CompletedProcess[str]
    survivors: dict[int, str]
    verdict: Verdict | None


def run_identity_case(name: str, backend: str, fmt: str, ca: TestCA, base: Path) -> Outcome:
    fault = FAULTS[name]
    with contextlib.ExitStack() as stack:
        source = make_source(backend, stack, ca, base)
        root = k8s_sat.new_root(base / "tekton")
        fault.before(source)
        script = SCRIPT.format(results=root / "results", root=root.path)
        args = [*root.step_args(0), *source.flags(fmt, fault.budget), "-results", "a", *sh(script)]
        proc = start(root, args, env=source.env())
        stack.callback(faults.kill_session, proc.pid)
        try:
            wait_for(
                lambda: (root / "started").exists() or proc.poll() is not None, description="the command"
            )
            fault.during(source)
            (root / "go").touch()
            post = root.run_dir(0) / "out"
            wait_for(lambda: post.exists() or proc.poll() is not None, description="the post file")
            fault.after(source)
        finally:
            (root / "go").touch()
            completed, left = finish(proc)
        message = root.termination.read_text() if root.termination.exists() else None
        verdict = source.verify(message, fmt) if message is not None else None
    return Outcome(root, completed, left, verdict)


@pytest.fixture(scope="module")
def identity_outcomes(
    tmp_path_factory: pytest.TempPathFactory, ca: TestCA
) -> Iterator[dict[tuple[str, str, str], Outcome | BaseException]]:
    """Every case at once, four at a time, each with its own double: most wait out a budget."""
    base = tmp_path_factory.mktemp("identity-faults")
    with concurrent.futures.ThreadPoolExecutor(max_workers=4) as pool:
        running = {
            case: pool.submit(run_identity_case, *case, ca, base / "-".join(case)) for case in IDENTITY_CASES
        }
        done: dict[tuple[str, str, str], Outcome | BaseException] = {}
        for case, future in running.items():
            try:
                done[case] = future.result()
            except BaseException as exc:  # reported by the case's own test
                done[case] = exc
    yield done
    shutil.rmtree(base, ignore_errors=True)


@pytest.mark.parametrize(
    ("name", "backend", "fmt"), IDENTITY_CASES, ids=["/".join(c) for c in IDENTITY_CASES]
)
def test_identity_fault(
    identity_outcomes: dict[tuple[str, str, str], Outcome | BaseException], name: str, backend: str, fmt: str
) -> None:
    outcome = identity_outcomes[(name, backend, fmt)]
    if isinstance(outcome, BaseException):
        raise outcome
    fault, p, root = FAULTS[name], outcome.process, outcome.root
    # What the command did (it succeeded) is recorded, whatever happened to the identity.
    assert (root.run_dir(0) / "out").exists() and not (root.run_dir(0) / "out.err").exists()
    assert (root.run_dir(0) / "status" / "exitCode").read_text() == "0"
    assert not outcome.survivors, outcome.survivors  # nothing the entrypoint started outlives it
    values = root.values()
    assert values["a"] == ("1", 1) and "StartedAt" in values
    assert outcome.verdict is not None
    if fault.signs:
        assert p.returncode == 0, p.stderr
        assert faults.error_lines(p.stderr) == [], p.stderr
        assert outcome.verdict.verified, outcome.verdict.message
        return
    # A signing failure fails the step (Tekton's status), in one line that names the cause; the
    # results are written unsigned (a verifier rejects them), not lost.
    assert p.returncode == 1, p.stderr
    one_clear_line(p.stderr, *fault.words[backend])
    assert not SIGNING_ENTRIES & set(values), values
    assert not outcome.verdict.verified


# -- signals at each phase --------------------------------------------------------------------------------

PHASES = ("waiting-for-the-previous-step", "command-running", "waiting-for-the-identity")
SIGNALS = {"SIGTERM": signal.SIGTERM, "SIGKILL": signal.SIGKILL}
SIGNAL_CASES = [(phase, sig, backend, fmt) for phase in PHASES for sig in SIGNALS for backend in BACKENDS
                for fmt in FORMATS]  # fmt: skip


def command_of(root: TektonRoot) -> Callable[[str], bool]:
    """Whether a command line is the step's command (its shell, or the shell's ``sleep``)."""
    return lambda cmd: cmd.startswith("sleep ") or (cmd.startswith("/bin/sh -c ") and str(root.path) in cmd)


def _later_step(root: TektonRoot, index: int) -> subprocess.Popen[str]:
    """Step ``index + 1``, unsigned, waiting for step ``index``'s post file."""
    nxt = root.run_dir(index + 1)
    args = ["-wait_file", str(root.run_dir(index) / "out"), "-post_file", str(nxt / "out"),
            "-termination_path", str(root / "termination-next"), "-step_metadata_dir", str(nxt / "status"),
            *sh(f": > '{root.path}/next-ran'")]  # fmt: skip
    return start(root, args, env={k: "" for k in k8s_sat._SCRUBBED})


@pytest.mark.parametrize(
    ("phase", "sig", "backend", "fmt"), SIGNAL_CASES, ids=["/".join(c) for c in SIGNAL_CASES]
)
def test_signal(tmp_path: Path, ca: TestCA, phase: str, sig: str, backend: str, fmt: str) -> None:
    signum = SIGNALS[sig]
    with contextlib.ExitStack() as stack:
        source = make_source(backend, stack, ca, tmp_path)
        root = k8s_sat.new_root(tmp_path / "tekton")
        # Healthy only where the step must go on to sign; elsewhere the helper is kept fetching (a
        # late registration), so that one left behind would live on for its whole budget.
        healthy = phase == "command-running" and sig == "SIGTERM"
        if not healthy:
            source.deny()
        index = 1 if phase == "waiting-for-the-previous-step" else 0
        script = SCRIPT.format(results=root / "results", root=root.path)
        if phase == "waiting-for-the-identity":
            script = f"printf 1 > '{root / 'results' / 'a'}'"
        args = [*root.step_args(index), *source.flags(fmt, "60s"), "-results", "a", *sh(script)]
        proc = start(root, args, env=source.env())
        stack.callback(faults.kill_session, proc.pid)
        later = _later_step(root, index) if sig == "SIGKILL" else None
        if later is not None:
            stack.callback(faults.kill_session, later.pid)
        post = root.run_dir(index) / "out"
        if phase == "waiting-for-the-previous-step":
            wait_for(lambda: source.calls() >= 1, description="the prefetch during the wait")
        elif phase == "command-running":
            wait_for((root / "started").exists, description="the command")
            wait_for(lambda: source.calls() >= 1, description="the helper's first request")
        else:
            wait_for(post.exists, description="the end of the command")
            time.sleep(0.5)  # past the post file: waiting for the identity
        assert proc.poll() is None, proc.communicate()
        proc.send_signal(signum)
        # The command of a SIGKILLed step lives on, as under Tekton's entrypoint (in a pod, its
        # container ends with the entrypoint); nothing else may, the identity helper above all.
        p, left = finish(proc, command_of(root) if sig == "SIGKILL" else lambda _: False)
        assert not left, left
        assert "Traceback" not in p.stderr, p.stderr
        exit_code = root.run_dir(index) / "status" / "exitCode"

        if sig == "SIGKILL" or phase == "waiting-for-the-previous-step":
            # Killed where it stood: SIGKILL always, SIGTERM while waiting (Go's entrypoint has no
            # handler before the command starts: the default action ends it).
            assert p.returncode == -signum, p.stderr
            assert faults.error_lines(p.stderr) == [], p.stderr
            assert not root.termination.exists()
            if phase == "waiting-for-the-identity":
                assert post.exists() and exit_code.read_text() == "0"  # written when the command ended
            else:
                assert not post.exists() and not Path(f"{post}.err").exists() and not exit_code.exists()
            if later is not None:
                _check_later_step(root, later, runs=post.exists())
            return

        values = root.values()
        assert values["a"] == ("1", 1) and "StartedAt" in values
        if phase == "command-running":
            # Forwarded to the command's process group: the child died of it, the step failed with
            # Go's status for a signalled child, and its results are signed all the same.
            assert p.returncode == 255, p.stderr
            assert Path(f"{post}.err").exists() and not post.exists() and not exit_code.exists()
            assert faults.error_lines(p.stderr) == [], p.stderr
            verdict = source.verify(root.termination.read_text(), fmt)
            assert verdict.verified, verdict.message
        else:
            # Waiting for the identity: the wait ends, the results are written unsigned, the step fails.
            assert p.returncode == 1, p.stderr
            one_clear_line(p.stderr, "SIGTERM", "while waiting for the identity")
            assert post.exists() and exit_code.read_text() == "0"
            assert not SIGNING_ENTRIES & set(values), values


def _check_later_step(root: TektonRoot, later: subprocess.Popen[str], runs: bool) -> None:
    """The next step is not confused by what a SIGKILLed step left: it runs only on a post file that
    says the command succeeded, and otherwise goes on waiting."""
    if runs:
        p, _ = finish(later)
        assert p.returncode == 0, p.stderr
        assert (root / "next-ran").exists()
        return
    time.sleep(1.0)
    assert later.poll() is None, later.communicate()
    assert not (root / "next-ran").exists()
    later.terminate()  # still waiting: SIGTERM ends it there (Go's default action)
    assert finish(later)[0].returncode == -signal.SIGTERM
