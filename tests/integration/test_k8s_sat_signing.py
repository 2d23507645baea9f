"""The ``oidc-sa-token`` backend (issue 5) through the real processes: ``entrypoint`` signing a step's results
against a real HTTPS Kubernetes API server (KubeAPIServer), then ``entrypoint save-jwks`` and
``entrypoint verify`` checking them online (TokenReview) and offline (a JWKS snapshot).

Library-level checks with crafted tokens and messages are in tests/unit/test_k8s_sat_verify.py.
"""

from __future__ import annotations

import base64
import contextlib
import datetime as dt
import hashlib
import json
import secrets
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat, load_pem_public_key

from entrypoint._internal.formats.compact import SignatureValue
from entrypoint.termination import RunResult
from entrypoint.testing.ca import TestCA
from entrypoint.testing.kube import OWN_POD_POLICY
from entrypoint.verify import KubeJwks, verify_entries
from tests.support.k8s_sat import (
    ALGS,
    AUDIENCE_PREFIX,
    FORMATS,
    NS,
    POD,
    POD_UID,
    SA,
    TASKRUN,
    Cluster,
    cluster,
    entries,
    jwt_part,
    message_token,
    new_root,
    sa_flags,
    save_jwks,
    sh,
    sign_step,
    step_env,
    values,
    verify,
    write_entries,
)
from tests.support.k8s_sat import entrypoint as run_entrypoint
from tests.support.tekton import TektonRoot

IDENTITY = f"system:serviceaccount:{NS}:{SA} (pod {POD}, uid {POD_UID})"
RESULTS = {"commit": "abc123", "platforms": '["linux/amd64","linux/arm64"]', "url": "https://x.example/a"}


def post_file(root: TektonRoot, failed: bool = False) -> Path:
    return root.run_dir(0) / ("out.err" if failed else "out")


def exit_code_file(root: TektonRoot) -> Path:
    return root.run_dir(0) / "status" / "exitCode"


def assert_no_secrets(p: subprocess.CompletedProcess[str], *secrets_: str) -> None:
    for secret in secrets_:
        assert secret
        assert secret not in p.stdout and secret not in p.stderr


def new_public_key() -> ec.EllipticCurvePublicKey:
    return ec.generate_private_key(ec.SECP256R1()).public_key()


def pem_of(key: ec.EllipticCurvePublicKey) -> str:
    return key.public_bytes(Encoding.PEM, PublicFormat.SubjectPublicKeyInfo).decode()


def point_of(key: ec.EllipticCurvePublicKey) -> bytes:
    """The uncompressed point, as the compact format's k8s-sat material carries the key."""
    return key.public_bytes(Encoding.X962, PublicFormat.UncompressedPoint)


def b64(data: bytes) -> str:
    """Unpadded base64url, the compact format's encoding."""
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def audience_of(key: ec.EllipticCurvePublicKey | bytes) -> str:
    """The audience naming a key: the SHA-256 of its DER SubjectPublicKeyInfo."""
    der = key if isinstance(key, bytes) else key.public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)
    return AUDIENCE_PREFIX + hashlib.sha256(der).hexdigest()


def rfc3339(seconds: int) -> str:
    return dt.datetime.fromtimestamp(seconds, dt.UTC).isoformat().replace("+00:00", "Z")


# -- 1. sign, then verify online and offline ----------------------------------------------------------------


@pytest.mark.parametrize("alg", ALGS)
@pytest.mark.parametrize("fmt", FORMATS)
def test_signed_step_verifies_online_and_offline(
    root: TektonRoot, tmp_path: Path, fmt: str, alg: str
) -> None:
    with cluster(tmp_path / "cluster", alg) as c:
        p = sign_step(root, c, RESULTS, sa_flags(fmt))
        assert p.returncode == 0, p.stderr
        token = message_token(root.termination)
        assert_no_secrets(p, token, c.caller_token())
        assert p.stderr == ""

        # What the signer asked for: a token bound to this pod, naming its key, living >= 10 minutes.
        [request] = c.server.token_requests
        spec = request["spec"]
        assert spec["expirationSeconds"] >= 600
        assert spec["boundObjectRef"] == {"apiVersion": "v1", "kind": "Pod", "name": POD, "uid": POD_UID}
        [audience] = spec["audiences"]
        assert audience.startswith(AUDIENCE_PREFIX)
        assert jwt_part(token, 0)["alg"] == alg
        assert jwt_part(token, 1)["aud"] == [audience]

        found = values(root.termination)
        if fmt == "tekton":
            assert {
                "SA_TOKEN_KEY",
                "SA_TOKEN",
                "SA_TOKEN.sig",
                "RESULT_MANIFEST",
                "RESULT_MANIFEST.sig",
            } <= set(found)
            assert audience == audience_of(_pem_to_der(found["SA_TOKEN_KEY"]))
        else:
            assert ".k8s-sat:" in found["SIGNATURE"]
            assert not {"SA_TOKEN", "SA_TOKEN_KEY", "SVID", "RESULT_MANIFEST"} & set(found)

        snapshot = save_jwks(c, tmp_path / "jwks.json")
        offline = verify(root.termination, "--jwks", str(snapshot))
        online = verify(
            root.termination, *c.kube_args(), "--pod-uid", POD_UID, "--service-account", SA, "--pod-name", POD
        )
    for verdict in (offline, online):
        assert verdict["verified"], verdict["message"]
        assert verdict["reason"] == "Verified"
        assert verdict["format"] == fmt
        assert verdict["identity"] == IDENTITY
        assert verdict["condition"]["status"] == "True"
        shown = {r["key"]: r["value"] for r in verdict["results"] if r["type"] == 1}
        assert shown == RESULTS
        assert not {"SA_TOKEN", "SA_TOKEN_KEY", "SIGNATURE"} & {r["key"] for r in verdict["results"]}


def _pem_to_der(pem: str) -> bytes:
    from cryptography.hazmat.primitives.serialization import load_pem_public_key

    return load_pem_public_key(pem.encode()).public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)


def test_save_jwks_writes_the_issuer_and_keys(tmp_path: Path) -> None:
    import json

    with cluster(tmp_path / "cluster", "RS256") as c:
        c.server.rotate_signing_key(keep_old=True, alg="ES256")
        path = save_jwks(c, tmp_path / "snap.json")
        doc = json.loads(path.read_text())
        assert doc["kind"] == "signed-entrypoint/jwks-snapshot/v1"
        assert doc["issuer"] == c.server.issuer
        assert doc["jwks"] == c.server.jwks()
        assert {k["alg"] for k in doc["jwks"]["keys"]} == {"RS256", "ES256"}


def test_save_jwks_failure_is_one_line(tmp_path: Path) -> None:
    with cluster(tmp_path / "cluster") as c:
        c.server.fail_status = 503
        p = run_entrypoint("save-jwks", *c.kube_args(), "-o", str(tmp_path / "snap.json"))
    assert p.returncode == 1
    assert p.stderr.count("\n") == 1 and "HTTP 503" in p.stderr
    assert not (tmp_path / "snap.json").exists()


# -- 2. rejections, each with its reason ------------------------------------------------------------------


@dataclass
class Signed:
    """One message per format, signed once for the module by the real process (ES256 cluster)."""

    cluster: Cluster
    fmt: str
    message: Path
    snapshot: Path

    def jwks(self) -> KubeJwks:
        return KubeJwks.from_file(str(self.snapshot))


@pytest.fixture(scope="module", params=FORMATS)
def signed(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Signed]:
    fmt = str(request.param)
    base = tmp_path_factory.mktemp(f"signed-{fmt}")
    root = new_root(base / "tekton")
    with cluster(base / "cluster") as c:
        p = sign_step(root, c, {"a": "1", "b": "2", "commit": "abc123"}, sa_flags(fmt))
        assert p.returncode == 0, p.stderr
        message = base / "message"
        message.write_bytes(root.termination.read_bytes())
        yield Signed(c, fmt, message, save_jwks(c, base / "jwks.json"))


OTHER_UID = "00000000-1111-2222-3333-444444444444"
LATER = rfc3339(int(time.time()) + 2 * 3600)
EARLIER = rfc3339(int(time.time()) - 2 * 3600)

# (extra verify arguments, --taskrun, trust: offline|online|none, expected reason)
VERIFY_CASES: dict[str, tuple[list[str], str, str, str]] = {
    "offline": ([], f"{NS}/{TASKRUN}", "offline", "Verified"),
    "online with pod and sa": (
        ["--pod-uid", POD_UID, "--service-account", SA],
        f"{NS}/{TASKRUN}",
        "online",
        "Verified",
    ),
    "other pod name offline": (["--pod-name", "build-2-pod"], f"{NS}/{TASKRUN}", "offline",
                               "IdentityMismatch"),
    "other taskrun": ([], f"{NS}/build-2", "offline", "IdentityMismatch"),
    "other pod uid offline": (["--pod-uid", OTHER_UID], f"{NS}/{TASKRUN}", "offline", "IdentityMismatch"),
    "other pod uid online": (["--pod-uid", OTHER_UID], f"{NS}/{TASKRUN}", "online", "IdentityMismatch"),
    "other namespace offline": ([], f"other/{TASKRUN}", "offline", "IdentityMismatch"),
    "other service account offline": (["--service-account", "deployer"], f"{NS}/{TASKRUN}", "offline",
                                       "IdentityMismatch"),
    "checked after expiry": (["--at", LATER], f"{NS}/{TASKRUN}", "offline", "TokenUntrusted"),
    "checked before issue": (["--at", EARLIER], f"{NS}/{TASKRUN}", "offline", "TokenUntrusted"),
    "SPIFFE trust only": (["--trust-domain", "example.org", "--no-chain"], f"{NS}/{TASKRUN}", "none",
                          "TrustUnavailable"),
    "missing snapshot": (["--jwks", "/nonexistent/jwks.json"], f"{NS}/{TASKRUN}", "none", "TrustUnavailable"),
    "api server down": (["--kube-api", "https://127.0.0.1:9"], f"{NS}/{TASKRUN}", "none", "TrustUnavailable"),
}  # fmt: skip


@pytest.mark.parametrize("case", list(VERIFY_CASES))
def test_verify_checks_the_binding(signed: Signed, case: str) -> None:
    args, taskrun, trust, expected = VERIFY_CASES[case]
    if trust == "offline":
        args = ["--jwks", str(signed.snapshot), *args]
    elif trust == "online":
        args = [*signed.cluster.kube_args(), *args]
    elif "--kube-api" in args:
        c = signed.cluster
        args = [*args, "--kube-token-file", str(c.verifier_token_file), "--kube-ca-file", str(c.ca_file)]
    verdict = verify(signed.message, *args, taskrun=taskrun)
    assert verdict["reason"] == expected, verdict["message"]
    assert verdict["format"] == signed.fmt
    if expected == "Verified":
        assert verdict["identity"] == IDENTITY
    elif expected == "IdentityMismatch":
        assert verdict["identity"] == IDENTITY  # who presented the message is still reported
    if case == "missing snapshot":
        assert "/nonexistent/jwks.json" in verdict["message"]
    if case == "SPIFFE trust only":
        assert "--jwks" in verdict["message"]
    if case == "api server down":
        # The verdict says what failed (the TokenReview call), not that some other trust is missing.
        assert "127.0.0.1:9" in verdict["message"], verdict["message"]


def test_api_server_with_an_untrusted_certificate(signed: Signed, tmp_path: Path) -> None:
    other_ca = tmp_path / "other-ca.crt"
    other_ca.write_bytes(TestCA("example.org").bundle_pem())
    c = signed.cluster
    verdict = verify(
        signed.message,
        "--kube-api",
        c.server.url,
        "--kube-token-file",
        str(c.verifier_token_file),
        "--kube-ca-file",
        str(other_ca),
    )
    assert verdict["reason"] == "TrustUnavailable"
    # The verdict names the TLS failure, not a missing SPIFFE trust bundle.
    assert "TokenReview" in verdict["message"] and "certificate" in verdict["message"].lower(), verdict[
        "message"
    ]


# -- the identity material replaced ----------------------------------------------------------------


def with_material(
    signed: Signed, *, key: ec.EllipticCurvePublicKey | None = None, token: str | None = None
) -> list[RunResult]:
    """The signed message with its public key and/or token replaced, nothing re-signed."""
    out = []
    for e in entries(signed.message):
        if e.key == "SA_TOKEN_KEY" and key is not None:
            e = RunResult(e.key, pem_of(key), e.type)
        elif e.key == "SA_TOKEN" and token is not None:
            e = RunResult(e.key, token, e.type)
        elif e.key == "SIGNATURE":
            # cs2.<step>.<signedAt>.<exitCode>.<startedAt>.<alg>.<signature>.k8s-sat:<point>:<JWT>,
            # edited as text.
            *head, material = e.value.split(".", 7)
            kind, old_point, old_token = material.split(":", 2)
            point = b64(point_of(key)) if key is not None else old_point
            e = RunResult(e.key, ".".join([*head, f"{kind}:{point}:{token or old_token}"]), e.type)
        out.append(e)
    return out


def signing_key(signed: Signed) -> ec.EllipticCurvePublicKey:
    found = values(signed.message)
    if "SA_TOKEN_KEY" in found:
        key = load_pem_public_key(found["SA_TOKEN_KEY"].encode())
        assert isinstance(key, ec.EllipticCurvePublicKey)
        return key
    point = found["SIGNATURE"].split(".", 7)[7].split(":")[1]
    return ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), unb64(point))


MaterialCase = Callable[[Signed], tuple[list[RunResult], str]]


def _token_for_another_key(s: Signed) -> tuple[list[RunResult], str]:
    # Someone allowed to create tokens for the pod's service account, for a key of their own.
    token = s.cluster.server.issue_token(
        NS, SA, POD, audiences=[audience_of(new_public_key())], expires_in=600
    )
    return with_material(s, token=token), "KeyMismatch"


def _swapped_public_key(s: Signed) -> tuple[list[RunResult], str]:
    return with_material(s, key=new_public_key()), "KeyMismatch"


def _swapped_key_with_a_token_for_it(s: Signed) -> tuple[list[RunResult], str]:
    # A genuine token naming the swapped-in key: only the signatures (made with the real key) are left.
    # (Issued seconds after the signing time, within the 60 s allowed before a token's nbf.)
    key = new_public_key()
    token = s.cluster.server.issue_token(NS, SA, POD, audiences=[audience_of(key)], expires_in=600)
    return with_material(s, key=key, token=token), "SignatureInvalid"


def _token_bound_to_another_pod(s: Signed) -> tuple[list[RunResult], str]:
    # A genuine token naming the very signing key, but bound to another pod of the service account.
    s.cluster.server.add_pod(NS, "intruder-pod", "9e9e9e9e-0000-0000-0000-000000000000", SA)
    token = s.cluster.server.issue_token(NS, SA, "intruder-pod", audiences=[audience_of(signing_key(s))])
    return with_material(s, token=token), "IdentityMismatch"


def _token_with_the_same_key_and_pod_but_reissued(s: Signed) -> tuple[list[RunResult], str]:
    # The same key and pod, a different (genuine) token: SA_TOKEN.sig / the statement bind the token itself.
    token = s.cluster.server.issue_token(NS, SA, POD, audiences=[audience_of(signing_key(s))])
    return with_material(s, token=token), "SignatureInvalid"


MATERIAL_CASES: dict[str, MaterialCase] = {
    "token for another key": _token_for_another_key,
    "swapped public key": _swapped_public_key,
    "swapped key with a token for it": _swapped_key_with_a_token_for_it,
    "token of another pod naming the key": _token_bound_to_another_pod,
    "another token for the same key and pod": _token_with_the_same_key_and_pod_but_reissued,
}


@pytest.mark.parametrize("trust", ["offline", "online"])
@pytest.mark.parametrize("case", list(MATERIAL_CASES))
def test_replaced_identity_material_is_rejected(
    signed: Signed, tmp_path: Path, case: str, trust: str
) -> None:
    tampered, expected = MATERIAL_CASES[case](signed)
    path = write_entries(tmp_path / "tampered", tampered)
    args = ["--jwks", str(signed.snapshot)] if trust == "offline" else signed.cluster.kube_args()
    verdict = verify(path, *args)
    assert verdict["reason"] == expected, verdict["message"]


# -- tampering with the results (the other backends' cases) -------------------------------------------------


Mutation = Callable[[list[RunResult]], list[RunResult]]


def _set(key: str, value: str) -> Mutation:
    return lambda es: [RunResult(e.key, value, e.type) if e.key == key else e for e in es]


def _drop(key: str) -> Mutation:
    return lambda es: [e for e in es if e.key != key]


def _swap(a: str, b: str, *, with_sigs: bool) -> Mutation:
    def swap(es: list[RunResult]) -> list[RunResult]:
        by = {e.key: e for e in es}
        pairs = {a: b, b: a}
        if with_sigs:
            pairs |= {a + ".sig": b + ".sig", b + ".sig": a + ".sig"}
        return [RunResult(e.key, by[pairs[e.key]].value, e.type) if e.key in pairs else e for e in es]

    return swap


def _retype(key: str, new_type: int) -> Mutation:
    return lambda es: [RunResult(e.key, e.value, new_type) if e.key == key else e for e in es]


def _add(key: str, value: str, type_: int = 1) -> Mutation:
    return lambda es: [*es, RunResult(key, value, type_)]


def _copy(source: str, target: str) -> Mutation:
    """``target`` gets ``source``'s value: a genuine signature moved onto another entry."""

    def copy(es: list[RunResult]) -> list[RunResult]:
        value = next(e.value for e in es if e.key == source)
        return [RunResult(e.key, value, e.type) if e.key == target else e for e in es]

    return copy


# The SIGNATURE value's fields: cs2.<step>.<signedAt>.<exitCode>.<startedAt>.<alg>.<signature>.<material>.
STEP, SIGNED_AT, EXIT_CODE, STARTED_AT, ALG, SIG = 1, 2, 3, 4, 5, 6


def _signature_field(index: int, change: Callable[[str], str]) -> Mutation:
    """The compact SIGNATURE with one field rewritten as text, nothing re-signed."""

    def rewrite(es: list[RunResult]) -> list[RunResult]:
        out = []
        for e in es:
            if e.key == "SIGNATURE":
                fields = e.value.split(".", 7)
                fields[index] = change(fields[index])
                e = RunResult(e.key, ".".join(fields), e.type)
            out.append(e)
        return out

    return rewrite


def _signed_at(delta: int) -> Mutation:
    return _signature_field(SIGNED_AT, lambda t: str(int(t) + delta))


def _flip_last_byte(text: str) -> str:
    raw = bytearray(unb64(text))
    raw[-1] ^= 1
    return b64(bytes(raw))


GARBLED_PEM = "-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n"
NOT_BASE64 = "not*base64!"
TEKTON_TAMPERING: dict[str, tuple[Mutation, str]] = {
    "changed value": (_set("a", "evil"), "SignatureInvalid"),
    "dropped result signature": (_drop("a.sig"), "SignatureMissing"),
    "changed result signature": (_set("a.sig", "AAAA"), "SignatureInvalid"),
    "result signature of another result": (_copy("b.sig", "a.sig"), "SignatureInvalid"),
    "non-base64 result signature": (_set("a.sig", NOT_BASE64), "SignatureInvalid"),
    "manifest lists a missing result": (_drop("a"), "ManifestIncomplete"),
    "manifest names an extra result": (_set("RESULT_MANIFEST", "a,b,commit,ghost"), "ManifestIncomplete"),
    "manifest shortened": (_set("RESULT_MANIFEST", "b,commit"), "SignatureInvalid"),
    "manifest dropped": (_drop("RESULT_MANIFEST"), "ManifestMissing"),
    "manifest signature dropped": (_drop("RESULT_MANIFEST.sig"), "SignatureMissing"),
    "changed manifest signature": (_set("RESULT_MANIFEST.sig", "AAAA"), "SignatureInvalid"),
    "manifest signature of a result": (_copy("a.sig", "RESULT_MANIFEST.sig"), "SignatureInvalid"),
    "added unsigned result": (_add("injected", "x"), "SignatureMissing"),
    "token signature dropped": (_drop("SA_TOKEN.sig"), "SignatureMissing"),
    "changed token signature": (_set("SA_TOKEN.sig", "AAAA"), "SignatureInvalid"),
    "token signature of a result": (_copy("a.sig", "SA_TOKEN.sig"), "SignatureInvalid"),
    "public key dropped": (_drop("SA_TOKEN_KEY"), "TokenInvalid"),
    "public key garbled": (_set("SA_TOKEN_KEY", GARBLED_PEM), "TokenInvalid"),
    "token garbled": (_set("SA_TOKEN", "not-a-jwt"), "TokenInvalid"),
}  # fmt: skip

COMPACT_TAMPERING: dict[str, tuple[Mutation, str]] = {
    "changed value": (_set("a", "evil"), "SignatureInvalid"),
    "values swapped between results": (_swap("a", "b", with_sigs=False), "SignatureInvalid"),
    "type changed": (_retype("a", 2), "SignatureInvalid"),
    "added entry": (_add("injected", "x"), "SignatureInvalid"),
    # Internal entries are not in cs2's statement (the TaskRun drops them); what Tekton reads from
    # them, the exit code and start time, is bound and checked against them.
    "added internal entry": (_add("ExitCode", "1", 3), "ExitCodeMismatch"),
    "dropped entry": (_drop("a"), "SignatureInvalid"),
    "start time changed": (_set("StartedAt", "2020-01-01T00:00:00.000Z"), "StartTimeMismatch"),
    "exit code field changed": (_signature_field(EXIT_CODE, lambda _: "1"), "SignatureInvalid"),
    "start time field changed": (_signature_field(STARTED_AT, lambda t: str(int(t) + 1)), "SignatureInvalid"),
    # Inside the SIGNATURE value: each field is part of what is signed or checked.
    "signedAt a second earlier": (_signed_at(-1), "SignatureInvalid"),
    "signedAt before the token": (_signed_at(-3600), "TokenUntrusted"),  # beyond the 60 s before nbf
    "signedAt after the token": (_signed_at(3600), "TokenUntrusted"),
    # An algorithm the P-256 key cannot have signed with is refused before any signature check.
    "alg ES384": (_signature_field(ALG, lambda _: "ES384"), "UnsupportedKey"),
    "alg RS256": (_signature_field(ALG, lambda _: "RS256"), "UnsupportedKey"),
    "alg HS256": (_signature_field(ALG, lambda _: "HS256"), "MessageInvalid"),
    "step changed": (_signature_field(STEP, lambda _: "1"), "SignatureInvalid"),
    "step removed": (_signature_field(STEP, lambda _: ""), "SignatureInvalid"),
    "signature bit flipped": (_signature_field(SIG, _flip_last_byte), "SignatureInvalid"),
    "non-base64 signature": (_signature_field(SIG, lambda _: NOT_BASE64), "MessageInvalid"),
    "signature dropped": (_drop("SIGNATURE"), "UnknownFormat"),  # an unsigned message
}  # fmt: skip


def _check_tampering(signed: Signed, mutate: Mutation, expected: str, tmp_path: Path) -> None:
    """Rejected by the library and by the ``entrypoint verify`` process (offline), with ``expected``."""
    original = entries(signed.message)
    tampered = mutate(original)
    assert tampered != original
    jwks = signed.jwks()
    assert verify_entries(original, namespace=NS, name=TASKRUN, trust=None, kube=jwks).verified
    verdict = verify_entries(tampered, namespace=NS, name=TASKRUN, trust=None, kube=jwks)
    assert not verdict.verified
    assert verdict.reason == expected, verdict.message

    path = write_entries(tmp_path / "tampered", tampered)
    args = ("verify", "--taskrun", f"{NS}/{TASKRUN}", "--jwks", str(signed.snapshot))
    p = run_entrypoint(*args, "--json", str(path))
    assert p.returncode == 1, p.stdout + p.stderr
    shown = json.loads(p.stdout)
    assert shown["verified"] is False
    assert shown["reason"] == expected, shown["message"]
    assert shown["message"] == verdict.message  # the process says what the library says
    human = run_entrypoint(*args, str(path))
    assert human.returncode == 1
    assert f"NOT VERIFIED {expected}" in human.stdout + human.stderr


@pytest.mark.parametrize("signed", ["tekton"], indirect=True)
@pytest.mark.parametrize("case", list(TEKTON_TAMPERING))
def test_tampering_is_rejected_tekton(signed: Signed, case: str, tmp_path: Path) -> None:
    _check_tampering(signed, *TEKTON_TAMPERING[case], tmp_path)


@pytest.mark.parametrize("signed", ["compact"], indirect=True)
@pytest.mark.parametrize("case", list(COMPACT_TAMPERING))
def test_tampering_is_rejected_compact(signed: Signed, case: str, tmp_path: Path) -> None:
    _check_tampering(signed, *COMPACT_TAMPERING[case], tmp_path)


@pytest.mark.parametrize("signed", ["tekton"], indirect=True)
def test_values_swapped_with_their_signatures_verify_in_tekton_format(signed: Signed, tmp_path: Path) -> None:
    """Tekton's format signs each value, not its name: two results swapped together with their
    signatures still verify (as with SPIRE, tests/integration/test_spire_signing.py).  The compact
    format closes this ("values swapped between results" above); this documents the gap."""
    swapped = _swap("a", "b", with_sigs=True)(entries(signed.message))
    verdict = verify(write_entries(tmp_path / "swapped", swapped), "--jwks", str(signed.snapshot))
    assert verdict["reason"] == "Verified", verdict["message"]
    assert {r["key"]: r["value"] for r in verdict["results"]}["a"] == "2"


@pytest.mark.parametrize("signed", ["compact"], indirect=True)
def test_compact_message_replayed_as_another_step_is_rejected(signed: Signed, tmp_path: Path) -> None:
    assert verify(signed.message, "--jwks", str(signed.snapshot), "--step", "0")["reason"] == "Verified"
    verdict = verify(signed.message, "--jwks", str(signed.snapshot), "--step", "1")
    assert verdict["reason"] == "StepMismatch", verdict["message"]
    # The step index is part of the signed statement: rewriting it breaks the signature.
    found = entries(signed.message)
    sig = next(e for e in found if e.key == "SIGNATURE")
    value = SignatureValue.decode(sig.value)
    moved = SignatureValue(
        "1", value.signed_at, value.alg, value.signature, value.material_kind, value.material
    )
    forged = [RunResult(e.key, moved.encode(), e.type) if e.key == "SIGNATURE" else e for e in found]
    verdict = verify(
        write_entries(tmp_path / "forged", forged), "--jwks", str(signed.snapshot), "--step", "1"
    )
    assert verdict["reason"] == "SignatureInvalid", verdict["message"]


@pytest.mark.parametrize("signed", ["tekton"], indirect=True)
def test_tampered_message_through_the_cli(signed: Signed, tmp_path: Path) -> None:
    tampered = write_entries(tmp_path / "tampered", _set("a", "evil")(entries(signed.message)))
    for args in (["--jwks", str(signed.snapshot)], signed.cluster.kube_args()):
        verdict = verify(tampered, *args)
        assert verdict["reason"] == "SignatureInvalid", verdict["message"]
        assert {r["key"]: r["value"] for r in verdict["results"]}["a"] == "evil"  # shown, not vouched for


# -- expiry, key rotation, deleted pods -------------------------------------------------------------------


@dataclass
class ShortLived:
    message: Path
    snapshot: Path
    token: str


@pytest.fixture(scope="module")
def short_lived(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, ShortLived]]:
    """One message per format whose token lives 2 s (the server caps lifetimes, as
    --service-account-max-token-expiration does), signed by the real process."""
    base = tmp_path_factory.mktemp("short")
    out: dict[str, ShortLived] = {}
    with cluster(base / "cluster", max_token_seconds=2) as c:
        for fmt in FORMATS:
            root = new_root(base / fmt)
            p = sign_step(root, c, {"a": "1"}, sa_flags(fmt))
            assert p.returncode == 0, p.stderr
            token = message_token(root.termination)
            out[fmt] = ShortLived(root.termination, save_jwks(c, base / f"{fmt}.json"), token)
        yield out


@pytest.mark.parametrize("fmt", FORMATS)
def test_expired_token_needs_the_completion_time(short_lived: dict[str, ShortLived], fmt: str) -> None:
    signed = short_lived[fmt]
    claims = jwt_part(signed.token, 1)
    assert claims["exp"] - claims["nbf"] == 2
    while time.time() < claims["exp"]:  # at most the token's 2 s
        time.sleep(0.1)
    expired = verify(signed.message, "--jwks", str(signed.snapshot))
    assert expired["reason"] == "TokenUntrusted", expired["message"]
    assert "valid from" in expired["message"]
    inside = verify(signed.message, "--jwks", str(signed.snapshot), "--at", rfc3339(claims["nbf"]))
    assert inside["reason"] == "Verified", inside["message"]
    assert inside["checkedAt"] == rfc3339(claims["nbf"])
    after = verify(signed.message, "--jwks", str(signed.snapshot), "--at", rfc3339(claims["exp"]))
    assert after["reason"] == "TokenUntrusted"  # exp itself is outside


@pytest.mark.parametrize("fmt", FORMATS)
def test_token_signed_by_a_key_no_longer_in_the_jwks(root: TektonRoot, tmp_path: Path, fmt: str) -> None:
    with cluster(tmp_path / "cluster", "RS256") as c:
        assert sign_step(root, c, {"a": "1"}, sa_flags(fmt)).returncode == 0
        before = save_jwks(c, tmp_path / "before.json")
        c.server.rotate_signing_key()  # the old key leaves the JWKS
        c.refresh()  # the kubelet remounts, the verifier gets a new token
        after = save_jwks(c, tmp_path / "after.json")
        offline = verify(root.termination, "--jwks", str(after))
        online = verify(root.termination, *c.kube_args())
        archived = verify(root.termination, "--jwks", str(before))
    assert offline["reason"] == "TokenUntrusted", offline["message"]
    assert "not in the JWKS snapshot" in offline["message"]
    assert online["reason"] == "TokenUntrusted", online["message"]
    assert archived["reason"] == "Verified", archived["message"]  # the snapshot of its day still vouches


@pytest.mark.parametrize("fmt", FORMATS)
def test_snapshot_older_than_the_signing_key(root: TektonRoot, tmp_path: Path, fmt: str) -> None:
    with cluster(tmp_path / "cluster") as c:
        old = save_jwks(c, tmp_path / "old.json")
        c.server.rotate_signing_key(keep_old=True)
        c.refresh()
        assert sign_step(root, c, {"a": "1"}, sa_flags(fmt)).returncode == 0
        new = save_jwks(c, tmp_path / "new.json")
    stale = verify(root.termination, "--jwks", str(old))
    assert stale["reason"] == "TokenUntrusted", stale["message"]
    assert verify(root.termination, "--jwks", str(new))["reason"] == "Verified"


@pytest.mark.parametrize("fmt", FORMATS)
def test_deleted_pod_fails_online_but_verifies_offline(root: TektonRoot, tmp_path: Path, fmt: str) -> None:
    with cluster(tmp_path / "cluster") as c:
        assert sign_step(root, c, {"a": "1"}, sa_flags(fmt)).returncode == 0
        snapshot = save_jwks(c, tmp_path / "jwks.json")
        assert verify(root.termination, *c.kube_args())["reason"] == "Verified"
        c.server.delete_pod(NS, POD)
        gone = verify(root.termination, *c.kube_args())
        # Recreated under the same name: a new UID, and the old pod's tokens stay dead.
        c.server.add_pod(NS, POD, OTHER_UID, SA)
        recreated = verify(root.termination, *c.kube_args())
    assert gone["reason"] == "TokenUntrusted", gone["message"]
    assert recreated["reason"] == "TokenUntrusted", recreated["message"]
    archived = verify(root.termination, "--jwks", str(snapshot), "--pod-uid", POD_UID)
    assert archived["reason"] == "Verified", archived["message"]
    assert verify(root.termination, "--jwks", str(snapshot), "--pod-uid", OTHER_UID)["reason"] == (
        "IdentityMismatch"
    )


# -- a step cannot forge the signing entries ------------------------------------------------------------


@pytest.mark.parametrize("name", ["SA_TOKEN", "SA_TOKEN_KEY", "SA_TOKEN.sig"])
@pytest.mark.parametrize("fmt", FORMATS)
def test_result_named_like_a_token_entry_fails_the_signing(
    root: TektonRoot, tmp_path: Path, fmt: str, name: str
) -> None:
    with cluster(tmp_path / "cluster") as c:
        forged = c.server.issue_token(NS, SA, POD)
        p = sign_step(root, c, {"a": "1", name: forged}, sa_flags(fmt))
    assert p.returncode == 1
    assert p.stderr.count("\n") == 1, p.stderr  # one clear line, no traceback
    assert f"result '{name}'" in p.stderr and "reserved" in p.stderr
    assert_no_secrets(p, forged)
    assert post_file(root).exists() and not post_file(root, failed=True).exists()
    assert exit_code_file(root).read_text() == "0"  # what the command did is recorded
    found = values(root.termination)
    assert name not in found and "a" not in found  # the phase's results are not written
    assert forged not in root.termination.read_text()
    if fmt == "tekton":
        assert not {"SA_TOKEN", "SA_TOKEN_KEY", "SA_TOKEN.sig", "RESULT_MANIFEST"} & set(found)


# -- 3. the API server failing --------------------------------------------------------------------------

FAILING_BUDGET = ("-signing_timeout", "1s", "-signing_retry_interval", "200ms")
LATE_ATTEMPT = 2.0  # the signer's one more try after the budget (signing/background.py)


def _down(c: Cluster) -> None:
    c.server.stop()  # its port is known and nothing listens there any more


def _unauthorized(c: Cluster) -> None:
    c.server.unauthorized = True


def _forbidden(c: Cluster) -> None:
    c.server.deny_token_requests = True


def _unavailable(c: Cluster) -> None:
    c.server.fail_status = 503


def _slow(c: Cluster) -> None:
    c.server.delay = 6.0  # beyond the budget and the late attempt


# mode -> (set the fault, what the one-line error must say)
FAULTS: dict[str, tuple[Callable[[Cluster], None], tuple[str, ...]]] = {
    "down": (_down, ("ConnectError", "refused")),
    "401": (_unauthorized, ("HTTP 401", "Unauthorized")),
    "403": (_forbidden, ("HTTP 403", 'cannot create resource "serviceaccounts/token"')),
    "503": (_unavailable, ("HTTP 503", "service unavailable")),
    "slow": (_slow, ("timed out",)),
}


FAILING_COMMAND = "401-and-command-exits-3"


@dataclass
class Failed:
    root: TektonRoot
    process: subprocess.CompletedProcess[str]
    elapsed: float
    caller_token: str


@pytest.fixture(scope="module")
def failures(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[tuple[str, str], Failed]]:
    """Every fault x format at once, each against its own server: each run waits out the budget, so
    running them side by side keeps the suite fast."""
    base = tmp_path_factory.mktemp("faults")
    with contextlib.ExitStack() as stack:
        running: dict[tuple[str, str], tuple[TektonRoot, subprocess.Popen[str], float, str]] = {}
        runs = [(mode, fault, fmt, "") for mode, (fault, _) in FAULTS.items() for fmt in FORMATS]
        runs += [(FAILING_COMMAND, _unauthorized, fmt, "; exit 3") for fmt in FORMATS]
        for mode, fault, fmt, tail in runs:
            c = stack.enter_context(cluster(base / f"{mode}-{fmt}" / "cluster"))
            root = new_root(base / f"{mode}-{fmt}" / "tekton")
            fault(c)
            script = f"printf 1 > '{root / 'results' / 'a'}'{tail}"
            args = [*root.step_args(0), *sa_flags(fmt, *FAILING_BUDGET), "-results", "a", *sh(script)]
            proc = root.popen(args, env=step_env(c))
            running[(mode, fmt)] = (root, proc, time.monotonic(), c.caller_token())
        done = {}
        for key, (root, proc, start, caller) in running.items():
            out, err = proc.communicate(timeout=60)
            completed = subprocess.CompletedProcess(proc.args, proc.returncode, out, err)
            done[key] = Failed(root, completed, time.monotonic() - start, caller)
        yield done


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("mode", list(FAULTS))
def test_api_server_failure_fails_the_signing_clearly(
    failures: dict[tuple[str, str], Failed], mode: str, fmt: str
) -> None:
    failed = failures[(mode, fmt)]
    p = failed.process
    assert p.returncode == 1  # Tekton: a signing failure fails the step, whatever the command did
    assert p.stderr.count("\n") == 1, p.stderr  # one line, no traceback
    assert "oidc-sa-token: no token within the signing budget of 1s" in p.stderr
    assert "TokenRequest" in p.stderr
    for expected in FAULTS[mode][1]:
        assert expected in p.stderr, p.stderr
    assert_no_secrets(p, failed.caller_token)
    # Bounded: the budget, the signer's late attempt, process start-up (10 processes on 2 cores,
    # which a loaded machine slows by seconds), and well short of the signer's 30 s prefetch cap.
    assert failed.elapsed < 1 + LATE_ATTEMPT + 15
    root = failed.root
    assert post_file(root).exists() and not post_file(root, failed=True).exists()
    assert exit_code_file(root).read_text() == "0"
    found = values(root.termination)
    assert "StartedAt" in found
    assert not {"SA_TOKEN", "SA_TOKEN_KEY", "SIGNATURE", "RESULT_MANIFEST"} & set(found)
    # Kept, unsigned, in both formats (Tekton's own entrypoint loses them): a verifier rejects them.
    assert found["a"] == "1"


@pytest.mark.parametrize("fmt", FORMATS)
def test_transient_failures_are_retried(root: TektonRoot, tmp_path: Path, fmt: str) -> None:
    with cluster(tmp_path / "cluster") as c:
        c.server.fail_next(2, 503)
        start = time.monotonic()
        # A 10 s retry interval: were the first retries not quick, the pauses alone would take 20 s.
        p = sign_step(
            root, c, {"a": "1"}, sa_flags(fmt, "-signing_timeout", "60s", "-signing_retry_interval", "10s")
        )
        elapsed = time.monotonic() - start
        snapshot = save_jwks(c, tmp_path / "jwks.json")
        posts = [r for r in c.server.requests if r[0] == "POST" and r[1].endswith("/token")]
    assert p.returncode == 0, p.stderr
    assert len(posts) == 3  # two refused, then issued
    assert elapsed < 10  # quick first retries (0.25 s, then doubling), whatever the machine's load
    assert_no_secrets(p, message_token(root.termination))
    assert verify(root.termination, "--jwks", str(snapshot))["reason"] == "Verified"


def test_configuration_errors_are_not_retried(root: TektonRoot, tmp_path: Path) -> None:
    with cluster(tmp_path / "cluster") as c:
        flags = sa_flags("tekton", "-signing_timeout", "60s")
        start = time.monotonic()
        # The downward API names a pod UID the API server does not know: 409, a configuration error.
        p = sign_step(root, c, {"a": "1"}, flags, env={"POD_UID": OTHER_UID})
        elapsed = time.monotonic() - start
        caller = c.caller_token()
    assert p.returncode == 1
    assert p.stderr.count("\n") == 1, p.stderr
    assert "HTTP 409" in p.stderr and OTHER_UID in p.stderr
    assert elapsed < 20  # not the 60 s budget, even on a loaded machine
    assert_no_secrets(p, caller)
    assert post_file(root).exists() and exit_code_file(root).read_text() == "0"


@pytest.mark.parametrize("fmt", FORMATS)
def test_failing_command_keeps_its_post_file_when_signing_fails(
    failures: dict[tuple[str, str], Failed], fmt: str
) -> None:
    failed = failures[(FAILING_COMMAND, fmt)]
    assert failed.process.returncode == 1  # the signing failure, as Tekton (the child exited 3)
    assert "HTTP 401" in failed.process.stderr
    assert post_file(failed.root, failed=True).exists() and not post_file(failed.root).exists()
    assert not exit_code_file(failed.root).exists()


# -- the trust boundary: every pod of the service account ---------------------------------------------------

SIBLING_POD, SIBLING_UID = "build-2-pod", "2b2b2b2b-0000-4000-8000-000000000002"


def _as_the_victim(c: Cluster) -> dict[str, str]:
    """A step of another TaskRun's pod (same service account, its own mounted token) that claims, through
    the downward-API variables it controls, to be build-1's pod."""
    sibling = c.server.add_pod(NS, SIBLING_POD, SIBLING_UID, SA)
    c.server.write_in_cluster_files(c.sa_dir, sibling)
    return {"POD_NAME": POD, "POD_UID": POD_UID, "POD_NAMESPACE": NS, "POD_SERVICE_ACCOUNT": SA}


@pytest.mark.parametrize("fmt", FORMATS)
def test_a_sibling_pod_of_the_service_account_signs_as_another_taskrun(
    root: TektonRoot, tmp_path: Path, fmt: str
) -> None:
    """KNOWN LIMITATION of this backend, asserted so that a change in behaviour is noticed: the trust
    boundary is every workload of the TaskRun's service account (docs/oidc-sa-token.md §6).

    TokenRequest checks that the bound pod exists, has that UID and runs as that service account, not
    that the caller is that pod.  So a step of TaskRun build-2 (same service account) obtains a token
    bound to build-1's pod that names build-2's own key, and its results verify as build-1's, online
    and offline: the verifier cannot tell.  The admission policy of the next test closes this."""
    with cluster(tmp_path / "cluster") as c:
        p = sign_step(root, c, {"commit": "forged-by-build-2"}, sa_flags(fmt), env=_as_the_victim(c))
        assert p.returncode == 0, p.stderr
        [request] = c.server.token_requests
        snapshot = save_jwks(c, tmp_path / "jwks.json")
        online = verify(root.termination, *c.kube_args(), "--pod-uid", POD_UID, "--service-account", SA)
    assert request["spec"]["boundObjectRef"] == {
        "apiVersion": "v1",
        "kind": "Pod",
        "name": POD,
        "uid": POD_UID,
    }
    offline = verify(root.termination, "--jwks", str(snapshot), "--pod-uid", POD_UID, "--service-account", SA)
    for verdict in (offline, online):
        assert verdict["reason"] == "Verified", verdict["message"]
        assert verdict["identity"] == IDENTITY  # build-1's pod, though build-2's pod signed
        assert {r["key"]: r["value"] for r in verdict["results"]}["commit"] == "forged-by-build-2"


@pytest.mark.parametrize("fmt", FORMATS)
def test_own_pod_admission_policy_stops_a_sibling_pod_and_not_an_honest_step(
    root: TektonRoot, tmp_path: Path, fmt: str
) -> None:
    """With docs/oidc-sa-token.md §6's admission policy (simulated by ``own_pod_tokens_only``), the
    attack above fails at signing, and a step signing for its own pod is unaffected."""
    with cluster(tmp_path / "cluster", own_pod_tokens_only=True) as c:
        caller = c.caller_token()
        attack = sign_step(root, c, {"commit": "forged"}, sa_flags(fmt), env=_as_the_victim(c))
        attempts = sum(
            1 for method, path in c.server.requests if method == "POST" and path.endswith("/token")
        )
        sibling_caller = c.caller_token()

        honest_root = new_root(tmp_path / "honest")
        c.refresh()  # build-1's own mounted token again; no POD_* variables
        honest = sign_step(honest_root, c, {"commit": "abc123"}, sa_flags(fmt))
        assert honest.returncode == 0, honest.stderr
        snapshot = save_jwks(c, tmp_path / "jwks.json")
        online = verify(
            honest_root.termination, *c.kube_args(), "--pod-uid", POD_UID, "--service-account", SA
        )

    assert attack.returncode == 1
    # An admission denial is final: not retried through the signing budget (at most the
    # background fetch and the one made again when the results are signed).
    assert attempts <= 2, attempts
    assert attack.stderr.count("\n") == 1, attack.stderr  # one line, no traceback
    assert "HTTP 422" in attack.stderr, attack.stderr
    assert f"ValidatingAdmissionPolicy '{OWN_POD_POLICY}'" in attack.stderr
    assert (
        "denied request: signed-entrypoint tokens must be bound to the pod that requests them"
        in attack.stderr
    )
    assert_no_secrets(attack, caller, sibling_caller)
    assert post_file(root).exists() and not post_file(root, failed=True).exists()
    assert exit_code_file(root).read_text() == "0"  # what the command did is recorded
    assert not {"SA_TOKEN", "SA_TOKEN_KEY", "SIGNATURE", "RESULT_MANIFEST"} & set(values(root.termination))

    offline = verify(honest_root.termination, "--jwks", str(snapshot), "--pod-uid", POD_UID)
    for verdict in (offline, online):
        assert verdict["reason"] == "Verified", verdict["message"]
        assert verdict["identity"] == IDENTITY


# -- 4. configuration -------------------------------------------------------------------------------------


def test_pod_identity_from_the_downward_api_environment(root: TektonRoot, tmp_path: Path) -> None:
    with cluster(tmp_path / "cluster") as c:
        # The mounted token is another pod's: only the environment can name this one.
        other = c.server.add_pod(NS, "other-pod", OTHER_UID, SA)
        c.server.write_in_cluster_files(c.sa_dir, other)
        env = {"POD_NAME": POD, "POD_UID": POD_UID, "POD_NAMESPACE": NS, "POD_SERVICE_ACCOUNT": SA}
        p = sign_step(root, c, {"a": "1"}, sa_flags("tekton"), env=env)
        assert p.returncode == 0, p.stderr
        [request] = c.server.token_requests
        snapshot = save_jwks(c, tmp_path / "jwks.json")
    assert request["spec"]["boundObjectRef"]["name"] == POD
    assert request["spec"]["boundObjectRef"]["uid"] == POD_UID
    assert verify(root.termination, "--jwks", str(snapshot), "--pod-uid", POD_UID)["reason"] == "Verified"


def test_pod_identity_from_the_mounted_token(root: TektonRoot, tmp_path: Path) -> None:
    with cluster(tmp_path / "cluster") as c:
        other = c.server.add_pod(NS, "other-pod", OTHER_UID, SA)
        c.server.write_in_cluster_files(c.sa_dir, other)  # no POD_* variables: the claims decide
        p = sign_step(root, c, {"a": "1"}, sa_flags("compact"))
        assert p.returncode == 0, p.stderr
        [request] = c.server.token_requests
        snapshot = save_jwks(c, tmp_path / "jwks.json")
    assert request["spec"]["boundObjectRef"]["name"] == "other-pod"
    assert request["spec"]["boundObjectRef"]["uid"] == OTHER_UID
    # Signed for the pod it runs in: a verifier expecting build-1's pod refuses it.
    assert verify(root.termination, "--jwks", str(snapshot))["reason"] == "IdentityMismatch"
    ok = verify(root.termination, "--jwks", str(snapshot), "--pod-name", "other-pod", "--pod-uid", OTHER_UID)
    assert ok["reason"] == "Verified"


def test_token_not_bound_to_a_pod_needs_the_environment(root: TektonRoot, tmp_path: Path) -> None:
    with cluster(tmp_path / "cluster") as c:
        c.token_file.write_text(c.server.issue_token(NS, SA))  # a token bound to no pod
        p = sign_step(root, c, {"a": "1"}, sa_flags("tekton"))
    assert p.returncode == 1
    assert p.stderr.count("\n") == 1, p.stderr
    assert "cannot tell which pod this is: set POD_NAME, POD_UID" in p.stderr
    assert post_file(root).exists()


def test_missing_kubernetes_service_host_is_a_clear_error(root: TektonRoot, tmp_path: Path) -> None:
    with cluster(tmp_path / "cluster") as c:
        start = time.monotonic()
        flags = sa_flags("tekton", "-signing_timeout", "60s")
        p = sign_step(root, c, {"a": "1"}, flags, env={"KUBERNETES_SERVICE_HOST": ""})
        elapsed = time.monotonic() - start
    assert p.returncode == 1
    assert p.stderr.count("\n") == 1, p.stderr
    assert "KUBERNETES_SERVICE_HOST" in p.stderr and "not set" in p.stderr
    assert elapsed < 20  # nothing retried through the 60 s budget, even on a loaded machine
    assert post_file(root).exists() and exit_code_file(root).read_text() == "0"


def test_api_url_override(root: TektonRoot, tmp_path: Path) -> None:
    with cluster(tmp_path / "cluster") as c:
        env = {
            "KUBERNETES_SERVICE_HOST": "",
            "KUBERNETES_SERVICE_PORT": "",
            "SIGNED_ENTRYPOINT_KUBE_API": c.server.url,
        }
        p = sign_step(root, c, {"a": "1"}, sa_flags("tekton"), env=env)
        assert p.returncode == 0, p.stderr
        assert verify(root.termination, *c.kube_args())["reason"] == "Verified"


@pytest.mark.parametrize("fmt", FORMATS)
def test_backend_and_format_from_the_environment(root: TektonRoot, tmp_path: Path, fmt: str) -> None:
    env = {"SIGNED_ENTRYPOINT_SIGNING_BACKEND": "oidc-sa-token", "SIGNED_ENTRYPOINT_SIGNATURE_FORMAT": fmt}
    with cluster(tmp_path / "cluster") as c:
        p = sign_step(root, c, {"a": "1"}, [], env=env)  # no signing flags at all
        assert p.returncode == 0, p.stderr
        verdict = verify(root.termination, *c.kube_args())
        assert verdict["reason"] == "Verified" and verdict["format"] == fmt
        # A flag wins over the environment.
        root.termination.unlink()
        other = "compact" if fmt == "tekton" else "tekton"
        p = sign_step(root, c, {"a": "1"}, [f"-signature_format={other}"], env=env)
        assert p.returncode == 0, p.stderr
        assert verify(root.termination, *c.kube_args())["format"] == other


@pytest.mark.parametrize(
    ("variable", "value"),
    [("SIGNED_ENTRYPOINT_SIGNING_BACKEND", "oidc"), ("SIGNED_ENTRYPOINT_SIGNATURE_FORMAT", "jws")],
)
def test_bad_signing_configuration_in_the_environment(
    root: TektonRoot, tmp_path: Path, variable: str, value: str
) -> None:
    env = {"SIGNED_ENTRYPOINT_SIGNING_BACKEND": "oidc-sa-token", variable: value}
    with cluster(tmp_path / "cluster") as c:
        p = sign_step(root, c, {"a": "1"}, [], env=env)
        assert c.server.requests == []
    assert p.returncode == 1
    assert p.stderr.count("\n") == 1, p.stderr
    assert f"{variable}={value!r}" in p.stderr and "must be one of" in p.stderr
    # The command ran and its outcome is recorded: a later step waiting for the post file goes on.
    assert post_file(root).exists() and exit_code_file(root).read_text() == "0"


# -- 5. size ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("fmt", "count"), [("tekton", 5), ("compact", 20)])
def test_digest_results_fit_the_termination_message(
    root: TektonRoot, tmp_path: Path, fmt: str, count: int
) -> None:
    digests = {f"IMAGE{i}_DIGEST": f"sha256:{secrets.token_hex(32)}" for i in range(count)}
    with cluster(tmp_path / "cluster", "RS256") as c:  # RS256: the larger token
        p = sign_step(root, c, digests, sa_flags(fmt))
        assert p.returncode == 0, p.stderr
        snapshot = save_jwks(c, tmp_path / "jwks.json")
    size = len(root.termination.read_bytes())
    print(f"{fmt}: {count} digests, RS256 token: {size} bytes of 4096")
    assert size <= 4096
    assert jwt_part(message_token(root.termination), 0)["alg"] == "RS256"
    verdict = verify(root.termination, "--jwks", str(snapshot))
    assert verdict["reason"] == "Verified", verdict["message"]
    assert {r["key"]: r["value"] for r in verdict["results"] if r["type"] == 1} == digests
