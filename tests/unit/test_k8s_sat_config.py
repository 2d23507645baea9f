"""The oidc-sa-token backend's configuration and renewal, and the verifier's input checks
(review findings: token renewal before signing, flag precedence, clear-text API URLs, tokens that
would be quoted by an HTTP library, busy retries, malformed snapshots, clock skew)."""

from __future__ import annotations

import datetime as dt
import json
import time
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from entrypoint._internal.backends.k8s_sat.common import config_from_env
from entrypoint._internal.backends.k8s_sat.evidence import REFRESH_WITHIN as TOKEN_REFRESH_WITHIN
from entrypoint._internal.backends.k8s_sat.evidence import token_identity
from entrypoint._internal.backends.k8s_sat.fetch import TokenFetcher
from entrypoint._internal.backends.k8s_sat.kube import ApiServer, KubeJwks, KubeTrustError
from entrypoint._internal.backends.spire.fetch import SvidFetcher
from entrypoint._internal.signing import failing_signer
from entrypoint._internal.signing.background import BackgroundSigner
from entrypoint._internal.signing.errors import SigningError
from entrypoint._internal.signing.identity import Identity
from entrypoint._internal.signing.tekton_format import TektonFormat
from entrypoint._internal.step.context import Context
from entrypoint._internal.step.options import ConfigError, Options, signing_choice
from entrypoint.termination import RunResult

JWT_LIKE = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJ4In0.c2ln"


class TokenBackend:
    """Hands out token identities of a chosen remaining lifetime."""

    name = "fake-token"

    def __init__(self, lifetimes: list[float]) -> None:
        self.budget = 5.0
        self.lifetimes = lifetimes
        self.fetches = 0

    def fetch(self, budget: float | None = None) -> Identity:
        lifetime = self.lifetimes[min(self.fetches, len(self.lifetimes) - 1)]
        self.fetches += 1
        expires = dt.datetime.now(dt.UTC) + dt.timedelta(seconds=lifetime)
        return token_identity(ec.generate_private_key(ec.SECP256R1()), JWT_LIKE, expires, "fake")


def signer(backend: TokenBackend) -> BackgroundSigner:
    return BackgroundSigner(lambda: (backend, TektonFormat()), backend.budget, "fake").start()


@pytest.mark.parametrize(
    ("left", "fetches"), [(600, 1), (TOKEN_REFRESH_WITHIN + 60, 1), (TOKEN_REFRESH_WITHIN - 60, 2)]
)
def test_a_token_is_renewed_before_signing_unless_most_of_its_life_is_left(left: float, fetches: int) -> None:
    # Online verification (TokenReview) happens after the step: a token fetched at the start of a
    # long step would expire before the controller gets to it.
    backend = TokenBackend([left, 600])
    s = signer(backend)
    first = s.sign(Context.background(), [RunResult("a", "1", 1)])
    assert backend.fetches == fetches
    # Renewed once, then kept: a second signing (a compact step seals up to three writes) reuses it.
    second = s.sign(Context.background(), [RunResult("a", "1", 1)])
    assert backend.fetches == fetches
    key_of = {e.key: e.value for e in first}["SA_TOKEN_KEY"]
    assert {e.key: e.value for e in second}["SA_TOKEN_KEY"] == key_of


def test_an_svid_keeps_the_short_renewal_margin() -> None:
    ident = token_identity(ec.generate_private_key(ec.SECP256R1()), JWT_LIKE, dt.datetime.now(dt.UTC), "x")
    assert ident.refresh_within == TOKEN_REFRESH_WITHIN
    assert TOKEN_REFRESH_WITHIN > 300  # most of a 600 s token's life


def options(**flags: object) -> Options:
    opts = Options()
    for name, value in flags.items():
        setattr(opts, name, value)
    return opts


def test_tektons_enable_spire_flag_wins_over_the_environment() -> None:
    # A Task's own step env overrides the pod template: it must not switch a SPIRE-enforcing
    # cluster to another backend.
    env = {"SIGNED_ENTRYPOINT_SIGNING_BACKEND": "oidc-sa-token"}
    assert signing_choice(options(enable_spire=True), env) == ("spire", "tekton")
    # Nor does a bad value there matter when the flag chose.
    assert (
        signing_choice(options(enable_spire=True), {"SIGNED_ENTRYPOINT_SIGNING_BACKEND": "bogus"})[0]
        == "spire"
    )


def test_our_flag_wins_over_everything_and_the_environment_fills_in() -> None:
    env = {"SIGNED_ENTRYPOINT_SIGNING_BACKEND": "spire", "SIGNED_ENTRYPOINT_SIGNATURE_FORMAT": "compact"}
    assert signing_choice(options(signing_backend="oidc-sa-token", enable_spire=True), env) == (
        "oidc-sa-token",
        "compact",
    )
    assert signing_choice(options(), env) == ("spire", "compact")
    assert signing_choice(options(signature_format="tekton"), env) == ("spire", "tekton")
    assert signing_choice(options(), {}) == ("", "tekton")


@pytest.mark.parametrize(
    "variable", ["SIGNED_ENTRYPOINT_SIGNING_BACKEND", "SIGNED_ENTRYPOINT_SIGNATURE_FORMAT"]
)
def test_a_bad_environment_value_is_named(variable: str) -> None:
    with pytest.raises(ConfigError, match=f"{variable}='bogus': must be one of"):
        signing_choice(options(), {variable: "bogus"})


def test_a_misconfigured_signer_fails_when_signing_not_before() -> None:
    s = failing_signer(
        "SIGNED_ENTRYPOINT_SIGNING_BACKEND='bogus': must be one of spire, oidc-sa-token"
    ).start()
    started = time.monotonic()
    with pytest.raises(SigningError, match="bogus"):
        s.sign(Context.background(), [RunResult("a", "1", 1)])
    assert time.monotonic() - started < 1.0  # no budget to wait out: it is known to fail


def test_the_token_request_never_goes_out_in_clear_text() -> None:
    with pytest.raises(SigningError, match="must be https"):
        TokenFetcher(api="http://10.0.0.1:443")


def test_a_zero_retry_interval_is_clamped() -> None:
    assert TokenFetcher(api="https://x", interval=0).interval > 0
    assert SvidFetcher("unix:///nope", interval=0).interval > 0


@pytest.mark.parametrize("content", ["abc\ndef.ghi.jkl", "secret token with spaces", ""])
def test_a_token_file_that_is_not_a_jwt_is_refused_without_quoting_it(tmp_path: Path, content: str) -> None:
    token_file = tmp_path / "token"
    token_file.write_text(content)
    backend = TokenFetcher(
        api="https://127.0.0.1:1", token_file=str(token_file), ca_file=str(tmp_path / "ca.crt"), budget=0.2
    )
    with pytest.raises(SigningError) as err:
        backend.fetch()
    assert "not a JWT" in str(err.value)
    if content:
        assert content.split(maxsplit=1)[0] not in str(err.value)


def test_the_verifiers_bearer_token_is_checked_before_use(tmp_path: Path) -> None:
    token_file = tmp_path / "token"
    token_file.write_text("abc\r\ndef")
    with pytest.raises(KubeTrustError) as err:
        ApiServer("https://127.0.0.1:1", token_file=str(token_file)).get_json("/openid/v1/jwks")
    assert "abc" not in str(err.value)


@pytest.mark.parametrize("keys", [["x"], [None], [1]])
def test_a_snapshot_key_that_is_not_an_object_is_a_clear_error(tmp_path: Path, keys: list[object]) -> None:
    path = tmp_path / "jwks.json"
    path.write_text(json.dumps({"issuer": "https://kubernetes.default.svc", "jwks": {"keys": keys}}))
    with pytest.raises(KubeTrustError, match="key 0 is not a JSON object"):
        KubeJwks.from_file(str(path))


@pytest.mark.parametrize(
    ("host", "port", "url"),
    [
        ("10.96.0.1", "443", "https://10.96.0.1:443"),
        ("fd00::1", "6443", "https://[fd00::1]:6443"),
        ("", "443", ""),
    ],
)
def test_the_in_cluster_api_url_is_the_same_for_signer_and_verifier(
    host: str, port: str, url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    env = {"KUBERNETES_SERVICE_HOST": host, "KUBERNETES_SERVICE_PORT": port}
    assert config_from_env(env)["api"] == url
    monkeypatch.setenv("KUBERNETES_SERVICE_HOST", host)
    monkeypatch.setenv("KUBERNETES_SERVICE_PORT", port)
    if url:
        assert ApiServer.in_cluster().url == url
    else:
        with pytest.raises(KubeTrustError, match="not in a cluster"):
            ApiServer.in_cluster()
