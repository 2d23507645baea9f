"""The signing layer without a network: Tekton's wire format, the background identity fetch."""

from __future__ import annotations

import base64
import datetime as dt
import subprocess
import sys
import time
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa

from entrypoint._internal.backends import BACKENDS, get
from entrypoint._internal.backends.k8s_sat.evidence import token_identity
from entrypoint._internal.backends.spire.evidence import X509Evidence, x509_identity
from entrypoint._internal.backends.spire.fetch import SvidFetcher
from entrypoint._internal.formats.compact import SignatureValue
from entrypoint._internal.signing import background, is_reserved
from entrypoint._internal.signing.background import BackgroundSigner
from entrypoint._internal.signing.compact_format import MATERIAL_MARKER, CompactFormat
from entrypoint._internal.signing.errors import SigningError
from entrypoint._internal.signing.identity import Identity
from entrypoint._internal.signing.tekton_format import TektonFormat
from entrypoint._internal.step.context import Context
from entrypoint.termination import RunResult
from entrypoint.testing.ca import TestCA
from tests.support.paths import REPO

ID = "spiffe://example.org/ns/foo/taskrun/tr"


def identity(key_type: str = "ec-p256", ttl: dt.timedelta = dt.timedelta(hours=1)) -> Identity:
    svid = TestCA().issue_svid(ID, key_type=key_type, ttl=ttl)
    return x509_identity(svid.key, svid.chain, ID)


def verify(cert: x509.Certificate, sig_b64: str, data: bytes) -> None:
    sig = base64.b64decode(sig_b64, validate=True)
    pub = cert.public_key()
    if isinstance(pub, ec.EllipticCurvePublicKey):
        pub.verify(sig, data, ec.ECDSA(hashes.SHA256()))
    elif isinstance(pub, rsa.RSAPublicKey):
        pub.verify(sig, data, padding.PKCS1v15(), hashes.SHA256())
    else:
        assert isinstance(pub, ed25519.Ed25519PublicKey)
        pub.verify(sig, data)


# -- Tekton's wire format (§7.4-7.6) -------------------------------------------------------------------


@pytest.mark.parametrize("key_type", ["ec-p256", "rsa-2048", "ed25519"])
def test_tekton_format_layout_and_signatures(key_type: str) -> None:
    ident = identity(key_type)
    entries = [
        RunResult("foo", "abc", 1),
        RunResult("bar", '["x","y"]', 1),
        RunResult("obj", '{"b":"2","a":"1"}', 1),
    ]
    out = TektonFormat().sign(entries, ident)
    assert [e.key for e in out] == [
        "SVID",
        "foo.sig",
        "bar.sig",
        "obj.sig",
        "RESULT_MANIFEST",
        "RESULT_MANIFEST.sig",
    ]
    assert all(e.type == 1 for e in out)
    values = {e.key: e.value for e in out}
    leaf = x509.load_pem_x509_certificate(values["SVID"].encode())
    assert isinstance(ident.evidence, X509Evidence)
    assert leaf == ident.evidence.leaf
    assert values["SVID"].startswith("-----BEGIN CERTIFICATE-----\n")
    assert all(len(line) <= 64 for line in values["SVID"].splitlines())
    assert values["RESULT_MANIFEST"] == "foo,bar,obj"
    verify(leaf, values["foo.sig"], b"abc")
    verify(leaf, values["bar.sig"], b"x,y")  # arrays are joined with commas (canonical value)
    verify(leaf, values["obj.sig"], b"a,1,b,2")  # objects as sorted key,value pairs
    verify(leaf, values["RESULT_MANIFEST.sig"], b"foo,bar,obj")
    with pytest.raises(InvalidSignature):
        verify(leaf, values["foo.sig"], b"abd")


def test_tekton_format_step_phase_does_not_supersede_task_manifest() -> None:
    fmt = TektonFormat()
    ident = identity()
    assert fmt.sign([RunResult("a", "1", 1)], ident)[-2] == RunResult("RESULT_MANIFEST", "a", 1)
    assert fmt.sign([RunResult("s", "v", 4)], ident) == []


def test_tekton_format_step_results_only_still_gets_a_block() -> None:
    out = TektonFormat().sign([RunResult("s", "v", 4)], identity())
    assert [e.key for e in out] == ["SVID", "RESULT_MANIFEST", "RESULT_MANIFEST.sig"]
    assert out[1].value == ""


def test_reserved_names() -> None:
    for name in ("SVID", "RESULT_MANIFEST", "RESULT_MANIFEST.sig", "foo.sig", ".sig"):
        assert is_reserved(name)
    for name in ("svid", "foo", "sig", "foo.sig.txt", "MANIFEST"):
        assert not is_reserved(name)


# -- the background fetch --------------------------------------------------------------------------------


class FakeBackend:
    name = "fake"

    def __init__(
        self, budget: float, fail_until: float = 0.0, ttl: dt.timedelta = dt.timedelta(hours=1)
    ) -> None:
        self.budget = budget
        self.fail_until = time.monotonic() + fail_until
        self.ttl = ttl
        self.fetches = 0

    def fetch(self, budget: float | None = None) -> Identity:
        self.fetches += 1
        deadline = time.monotonic() + (self.budget if budget is None else budget)
        while time.monotonic() < self.fail_until:
            if time.monotonic() >= deadline:
                raise SigningError("failed to fetch SVID: no identity issued: context deadline exceeded")
            time.sleep(0.02)
        return identity(ttl=self.ttl)


def signer_with(backend: FakeBackend) -> BackgroundSigner:
    return BackgroundSigner(lambda: (backend, TektonFormat()), backend.budget, "fake").start()


def test_identity_is_fetched_before_signing_is_asked_for() -> None:
    backend = FakeBackend(budget=5)
    signer = signer_with(backend)
    for _ in range(200):
        if backend.fetches:
            break
        time.sleep(0.01)
    assert backend.fetches == 1
    out = signer.sign(Context.background(), [RunResult("a", "1", 1)])
    assert out[0].key == "SVID"
    assert backend.fetches == 1  # the prefetched identity was used


def test_signing_works_with_an_ended_run_context() -> None:
    ctx = Context()
    ctx.cancel()
    out = signer_with(FakeBackend(budget=5)).sign(ctx, [RunResult("a", "1", 1)])
    assert out[0].key == "SVID"


def test_late_identity_is_waited_for_within_the_budget() -> None:
    signer = signer_with(FakeBackend(budget=5, fail_until=0.5))
    assert signer.sign(Context.background(), [])[0].key == "SVID"


def test_identity_that_never_comes_fails_with_the_fetch_error() -> None:
    signer = signer_with(FakeBackend(budget=0.3, fail_until=60))
    with pytest.raises(SigningError, match="context deadline exceeded"):
        signer.sign(Context.background(), [])


class SlowAnswer:
    """A backend whose answer (here: its failure) comes well after the budget and the late
    attempt, as a helper process's does on a machine whose cores are both busy."""

    name = "slow"

    def __init__(self, budget: float, answer_after: float) -> None:
        self.budget = budget
        self.answer_after = answer_after
        self.calls: list[float | None] = []

    def fetch(self, budget: float | None = None) -> Identity:
        self.calls.append(budget)
        if len(self.calls) == 1:
            time.sleep(self.answer_after)
            raise SigningError(
                "oidc-sa-token: no token within the signing budget of 0.2s: 503 from TokenRequest"
            )
        raise SigningError("oidc-sa-token: no token within the signing budget of 0.05s: connection refused")


def test_a_late_prefetch_failure_is_the_error_reported(monkeypatch: pytest.MonkeyPatch) -> None:
    # Regression: the wait gave up before the prefetch recorded its error, and the step failed
    # with a bare "no identity" that named no cause.
    monkeypatch.setattr(background, "LATE_ATTEMPT", 0.05)
    backend = SlowAnswer(budget=0.2, answer_after=0.6)
    signer = BackgroundSigner(lambda: (backend, TektonFormat()), backend.budget, "slow").start()
    with pytest.raises(SigningError) as caught:
        signer.sign(Context.background(), [])
    assert (
        str(caught.value)
        == "oidc-sa-token: no token within the signing budget of 0.2s: 503 from TokenRequest"
    )
    # The late attempt ran only after the prefetch had answered: never two fetches at once.
    assert backend.calls == [None, 0.05]


def test_a_prefetch_that_never_ends_fails_naming_the_budget(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(background, "LATE_ATTEMPT", 0.05)
    monkeypatch.setattr(background, "PREFETCH_SLACK", 0.1)
    backend = SlowAnswer(budget=0.2, answer_after=30)
    signer = BackgroundSigner(lambda: (backend, TektonFormat()), backend.budget, "slow").start()
    with pytest.raises(
        SigningError, match=r"^no identity within the signing budget of 0.2s: fetching the identity had not"
    ):
        signer.sign(Context.background(), [])


def test_identity_about_to_expire_is_fetched_again() -> None:
    backend = FakeBackend(budget=5, ttl=dt.timedelta(seconds=5))  # inside the 30 s margin
    signer = signer_with(backend)
    signer.sign(Context.background(), [])
    assert backend.fetches == 2


def test_setup_failure_is_a_signing_error() -> None:
    def setup() -> tuple[FakeBackend, TektonFormat]:
        raise RuntimeError("no such library")

    signer = BackgroundSigner(setup, 1.0).start()
    with pytest.raises(SigningError, match="preparing to sign: no such library"):
        signer.sign(Context.background(), [])


def test_spire_backend_without_agent_fails_inside_its_budget() -> None:
    backend = SvidFetcher("unix:///tmp/no-such-agent.sock", budget=0.6, interval=0.1)
    start = time.monotonic()
    with pytest.raises(SigningError, match=r"failed to fetch SVID: .*: context deadline exceeded"):
        backend.fetch()
    assert time.monotonic() - start < 10  # bounded: never hangs


# -- backends, evidence and the signer's hooks ---------------------------------------------------------


def test_every_backend_package_has_the_modules_the_registry_promises() -> None:
    for backend in BACKENDS:
        assert callable(backend.module("config").fetcher_args), backend
        assert callable(backend.module("fetch").Fetcher), backend
        assert callable(backend.module("evidence").decode), backend
    with pytest.raises(KeyError, match="unknown signing backend 'nope'"):
        get("nope")


def test_evidence_crosses_the_helper_pipe_as_opaque_bytes_and_decodes_alike() -> None:
    ident = identity()
    data = ident.evidence.to_bytes()
    again = get(ident.evidence.backend).module("evidence").decode(data)
    assert isinstance(again, X509Evidence) and isinstance(ident.evidence, X509Evidence)
    assert again.chain == ident.evidence.chain
    assert again.not_after == ident.not_after
    token = token_identity(ec.generate_private_key(ec.SECP256R1()), "a.b.c", dt.datetime.now(dt.UTC), "t")
    decoded = get("oidc-sa-token").module("evidence").decode(token.evidence.to_bytes())
    assert (decoded.token, decoded.not_after) == ("a.b.c", token.not_after)


def test_reserved_names_cover_every_backends_tekton_entries() -> None:
    for backend in BACKENDS:
        for name in backend.tekton_entries:
            assert is_reserved(name), name


class LogRecord:
    """A post-sign hook that records what it saw and adds one entry (as a log upload would)."""

    def __init__(self) -> None:
        self.seen: list[list[RunResult]] = []

    def __call__(self, signed: list[RunResult], identity: Identity) -> list[RunResult]:
        self.seen.append(signed)
        return [RunResult("LOG_RECORD", f"entry-{len(self.seen)}", 1)]


@pytest.mark.parametrize("fmt", ["tekton", "compact"])
def test_post_sign_hooks_see_what_was_signed_and_add_beside_it(fmt: str) -> None:
    backend = FakeBackend(5.0)
    wire: TektonFormat | CompactFormat = TektonFormat() if fmt == "tekton" else CompactFormat("0")
    signer = BackgroundSigner(lambda: (backend, wire), backend.budget, "hooked", seals=fmt == "compact")
    hook = LogRecord()
    signer.post_sign.append(hook)
    signer.start()
    if fmt == "tekton":
        out = signer.sign(Context.background(), [RunResult("a", "1", 1)])
        assert [e.key for e in out][-1] == "LOG_RECORD"
        assert "RESULT_MANIFEST.sig" in [e.key for e in hook.seen[0]]
    else:
        [option] = signer.seal_options([RunResult("a", "1", 1)])
        assert [e.key for e in option][-2:] == ["SIGNATURE", "LOG_RECORD"]
        assert hook.seen[0][-1].key == "SIGNATURE"


def test_a_failing_post_sign_hook_fails_the_signing() -> None:
    backend = FakeBackend(5.0)
    signer = BackgroundSigner(lambda: (backend, TektonFormat()), backend.budget, "hooked").start()

    def refuse(signed: list[RunResult], identity: Identity) -> list[RunResult]:
        raise SigningError("transparency log https://log.example: HTTP 503: try later")

    signer.post_sign.append(refuse)
    with pytest.raises(SigningError, match="HTTP 503"):
        signer.sign(Context.background(), [RunResult("a", "1", 1)])


def test_the_compact_format_leaves_its_marker_for_later_steps_and_reads_theirs(tmp_path: Path) -> None:
    ident = identity()
    status0, status1 = tmp_path / "0" / "status", tmp_path / "1" / "status"
    status0.mkdir(parents=True)
    status1.mkdir(parents=True)
    first = CompactFormat("0", metadata_dir=str(status0))
    [embedded] = first.seal_options([RunResult("a", "1", 1)], ident)
    first.after_write(embedded)
    assert (status0 / MATERIAL_MARKER).is_file()
    # The next step of the pod, same SVID: it may now refer to the chain instead of embedding it.
    second = CompactFormat("1", metadata_dir=str(status1))
    options = second.seal_options([RunResult("b", "2", 1)], ident)
    kinds = [SignatureValue.decode(o[-1].value).material_kind for o in options]
    assert kinds == ["x509", "x509-ref"]
    # Without the marker there is nothing to refer to.
    (status0 / MATERIAL_MARKER).unlink()
    third = CompactFormat("1", metadata_dir=str(status1))
    assert len(third.seal_options([RunResult("b", "2", 1)], ident)) == 1


def test_the_evidence_decoder_loads_while_the_helper_is_still_fetching(tmp_path: Path) -> None:
    # The X.509 parser's imports take ~40 ms; loaded only once the helper answers, they land after
    # the command on any step shorter than the helper's start-up.  An agent that never answers keeps
    # the helper fetching for the whole check.
    code = (
        "import sys, time\n"
        "from entrypoint._internal.signing import background_signer\n"
        f"s = background_signer('spire', spire_socket='unix://{tmp_path}/absent.sock', budget=30)\n"
        "assert 'entrypoint._internal.backends.spire.evidence' not in sys.modules\n"
        "s.start()\n"
        "for _ in range(500):\n"
        "    if 'entrypoint._internal.backends.spire.evidence' in sys.modules: break\n"
        "    time.sleep(0.01)\n"
        "print('loaded' if 'entrypoint._internal.backends.spire.evidence' in sys.modules else 'missing',\n"
        "      'answered' if s._done.is_set() else 'fetching', flush=True)\n"
        # As the entrypoint ends (cli.py): at once.  A normal exit would finalise the interpreter
        # under the prefetch thread's imports, which CPython may abort (SIGABRT) for.
        "import os; os._exit(0)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=REPO)
    assert out.stdout.split() == ["loaded", "fetching"]
