"""``sigstore-keyless`` end to end (issue 12): a Task whose ``stepTemplate`` and ``volumes`` are the
ones docs/sigstore.md's "In a cluster" section prints, applied with the real kubectl, reconciled by
Tekton's real controller (v1.15.1) into a pod of the real kube-apiserver (v1.37.2), run in podman by
tests/e2e/podlet.py; the API server issues the pod's projected token (audience ``sigstore``), the
Fulcio double certifies the steps' keys for it and the Rekor double logs their signatures.

The YAML is read from the document itself, so the test follows the document: only values change
(the doubles' URLs), and two variables are added: ``SIGNED_ENTRYPOINT_SIGSTORE_CA_FILE`` (the
doubles' serving CAs, a key of the trusted root's ConfigMap, so mounted with it) and the wire format.

Fulcio's ``kubernetes`` issuer is the API server itself, its URL exactly the tokens' ``iss``; it
reads the discovery document and the JWKS without credentials, as Fulcio outside the cluster does,
which the document's advice allows: ``system:service-account-issuer-discovery`` bound to
``system:unauthenticated`` (for this module only: the binding is removed at its end, and
tests/e2e/test_real_apiserver.py checks that anonymous discovery is refused otherwise).

The pods run with host networking (podlet.py), so the steps reach the doubles on 127.0.0.1 as they
reach the API server.  Per format, one TaskRun of two steps in two images, each writing one task
result; then the TaskRun as stored verifies with ``entrypoint verify --taskrun-object -`` (stdin,
from ``kubectl get -o json``), with its pod and after the pod is deleted, offline (the trusted root
and the identity policy only); a copy with a changed result, the stored TaskRun once its status is
patched (``kubectl patch --subresource=status``), and a policy naming another service account or
another issuer do not.

Without podman or the images the tests are skipped, saying so; without the real peers, conftest.py
skips them.  They share the module's two TaskRuns and run in file order.
"""

from __future__ import annotations

import base64
import copy
import json
import re
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml  # type: ignore[import-untyped]
from cryptography import x509

from entrypoint.termination import parse_message
from entrypoint.testing.fulcio import OID_ISSUER_V2, FulcioDouble, OIDCIssuer
from entrypoint.testing.rekor import RekorDouble
from tests.e2e import kubelet
from tests.e2e.conftest import Tekton
from tests.e2e.podlet import Podlet, PodRun
from tests.e2e.realkube import ControlPlane, Kube, peers
from tests.support.k8s_sat import entrypoint
from tests.support.paths import REPO
from tests.support.podman import ENTRYPOINT_IMAGE, STEP_IMAGES

NS, SA, NODE = "sigstore-taskruns", "builder", "node-sigstore"
TEKTON_API = "/apis/tekton.dev/v1"
FORMATS = ["tekton", "compact"]
COMMIT = "abc123"
DIGEST = "sha256:" + "ef" * 32
SAN = f"https://kubernetes.io/namespaces/{NS}/serviceaccounts/{SA}"
DOC = REPO / "docs" / "sigstore.md"
DISCOVERY_BINDING = "signed-entrypoint-e2e-anonymous-issuer-discovery"
DISCOVERY_PATHS = ("/.well-known/openid-configuration", "/openid/v1/jwks")
CA_KEY = "ca.pem"  # the doubles' serving CAs, beside trusted_root.json in the ConfigMap
FINISH_SECONDS = 60
# The signing entries each format adds to the results (docs/sigstore.md, "Wire formats").
SIGNING_ENTRIES = {
    "tekton": {"SIGSTORE_CERT", "SIGSTORE_BINDING", "SIGSTORE_BINDING.sig", "SIGSTORE_LOG",
               "RESULT_MANIFEST", "RESULT_MANIFEST.sig", "commit.sig", "digest.sig"},
    "compact": {"SIGNATURE", "SIGSTORE_LOG"},
}  # fmt: skip


def documented() -> dict[str, Any]:
    """The YAML of docs/sigstore.md's "In a cluster" section, as printed."""
    section = DOC.read_text().split("\n## In a cluster\n", 1)[1]
    block = re.search(r"```yaml\n(.*?)```", section, re.S)
    assert block, f"{DOC}: no yaml block in 'In a cluster'"
    loaded: dict[str, Any] = yaml.safe_load(block[1])
    return loaded


def adapted(fmt: str, fulcio_url: str, rekor_url: str) -> tuple[dict[str, Any], list[dict[str, Any]], str]:
    """The document's stepTemplate and volumes, only values changed, and the ConfigMap they mount."""
    doc = documented()
    assert set(doc) == {"stepTemplate", "volumes"}, doc
    template, volumes = copy.deepcopy(doc["stepTemplate"]), copy.deepcopy(doc["volumes"])
    env = {e["name"]: e for e in template["env"]}
    # The names the document uses, so that only values are adapted below.
    assert list(env) == [
        "SIGNED_ENTRYPOINT_SIGNING_BACKEND", "SIGNED_ENTRYPOINT_FULCIO_ADDRESS",
        "SIGNED_ENTRYPOINT_TRANSPARENCY_URL", "SIGNED_ENTRYPOINT_SIGSTORE_TRUSTED_ROOT",
        "TASKRUN_NAME", "POD_UID",
    ], env  # fmt: skip
    env["SIGNED_ENTRYPOINT_FULCIO_ADDRESS"]["value"] = fulcio_url
    env["SIGNED_ENTRYPOINT_TRANSPARENCY_URL"]["value"] = rekor_url
    [root_volume] = [v for v in volumes if "configMap" in v]
    [root_mount] = [m for m in template["volumeMounts"] if m["name"] == root_volume["name"]]
    template["env"] += [
        {"name": "SIGNED_ENTRYPOINT_SIGSTORE_CA_FILE", "value": f"{root_mount['mountPath']}/{CA_KEY}"},
        {"name": "SIGNED_ENTRYPOINT_SIGNATURE_FORMAT", "value": fmt},
    ]
    return template, volumes, str(root_volume["configMap"]["name"])


def task(fmt: str, fulcio_url: str, rekor_url: str) -> dict[str, Any]:
    template, volumes, _ = adapted(fmt, fulcio_url, rekor_url)
    return {
        "apiVersion": "tekton.dev/v1",
        "kind": "Task",
        "metadata": {"name": f"sigstore-{fmt}"},
        "spec": {
            "results": [{"name": "commit"}, {"name": "digest"}],
            "stepTemplate": template,
            "volumes": volumes,
            "steps": [
                {"name": "commit", "image": STEP_IMAGES["debian"],
                 "script": f"#!/bin/sh\nset -e\nprintf %s {COMMIT} > $(results.commit.path)\n"},
                {"name": "digest", "image": STEP_IMAGES["musl"], "command": ["/bin/steptool"],
                 "args": ["write", "$(results.digest.path)", DIGEST]},
            ],
        },
    }  # fmt: skip


def taskrun_name(fmt: str) -> str:
    return f"sigstore-{fmt}-1"


@dataclass
class Run:
    """One finished TaskRun, what the executor saw of its pod, and what the doubles saw of it."""

    fmt: str
    name: str
    run: PodRun
    pod: dict[str, Any]
    taskrun: dict[str, Any]
    token_claims: dict[str, Any]
    certificates: list[x509.Certificate]
    log_entries: int

    @property
    def pod_name(self) -> str:
        return f"{self.name}-pod"


@dataclass
class Done:
    plane: ControlPlane
    admin: Kube
    fulcio: FulcioDouble
    rekor: RekorDouble
    directory: Path
    trusted_root: Path
    runs: dict[str, Run]

    def trust(self, *, identity: str = SAN, issuer: str | None = None) -> list[str]:
        return ["--sigstore-trusted-root", str(self.trusted_root), "--certificate-identity", identity,
                "--certificate-oidc-issuer", issuer or self.plane.issuer]  # fmt: skip


def kubectl(plane: ControlPlane, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    """The real kubectl (v1.37.2, ``tools/peers.sh path kubectl``) with the control plane's kubeconfig."""
    found = peers("path", "kubectl", timeout=900)
    assert found.returncode == 0, f"tools/peers.sh path kubectl: {found.stderr}"
    binary = found.stdout.strip().splitlines()[-1]
    return subprocess.run([binary, "--kubeconfig", str(plane.run_dir / "kubeconfig"), *args], input=stdin,
                          capture_output=True, text=True, timeout=120, check=False)  # fmt: skip


def apply(plane: ControlPlane, *objects: dict[str, Any]) -> str:
    listed = {"apiVersion": "v1", "kind": "List", "items": list(objects)}
    applied = kubectl(plane, "apply", "-n", NS, "-f", "-", stdin=json.dumps(listed))
    assert applied.returncode == 0, applied.stderr
    return applied.stdout


def anonymous_discovery(plane: ControlPlane) -> list[int]:
    anonymous = plane.client(token="")
    try:
        return [anonymous.request("GET", path).status_code for path in DISCOVERY_PATHS]
    finally:
        anonymous.close()


def finished(admin: Kube, name: str) -> dict[str, Any] | None:
    tr = admin.get(f"{TEKTON_API}/namespaces/{NS}/taskruns/{name}")
    conditions = tr.get("status", {}).get("conditions", [])
    return tr if conditions and conditions[0]["status"] != "Unknown" else None


def claims(token: str) -> dict[str, Any]:
    part = token.split(".")[1]
    found: dict[str, Any] = json.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)))
    return found


@pytest.fixture(scope="module")
def done(
    images: None, control_plane: ControlPlane, tekton: Tekton, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Done]:
    assert tekton.entrypoint_image == ENTRYPOINT_IMAGE, tekton
    directory = tmp_path_factory.mktemp("sigstore-e2e")
    admin = control_plane.client()
    issuer = OIDCIssuer(control_plane.issuer, "kubernetes", ca_pem=control_plane.ca_file.read_bytes())
    binding = {
        "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding",
        "metadata": {"name": DISCOVERY_BINDING},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole",
                    "name": "system:service-account-issuer-discovery"},
        "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "Group",
                      "name": "system:unauthenticated"}],
    }  # fmt: skip
    try:
        with FulcioDouble([issuer]) as fulcio, RekorDouble() as rekor:
            trusted_root = directory / "trusted_root.json"
            fulcio.write_trusted_root(trusted_root)
            rekor.write_trusted_root(trusted_root)
            admin.namespace(NS)
            admin.service_account(NS, SA)
            admin.node(NODE)
            tasks = [task(fmt, fulcio.url, rekor.url) for fmt in FORMATS]
            _, _, config_map = adapted("tekton", fulcio.url, rekor.url)
            root = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": config_map},
                    "data": {"trusted_root.json": trusted_root.read_text(),
                             CA_KEY: (fulcio.ca_pem + rekor.ca_pem).decode()}}  # fmt: skip
            apply(control_plane, binding, root, *tasks)
            # RBAC's informer takes the binding a moment later.
            allowed = [200] * len(DISCOVERY_PATHS)
            kubelet.wait(
                "anonymous OIDC discovery",
                lambda: anonymous_discovery(control_plane) == allowed or None,
                seconds=30,
            )
            runs = {}
            for fmt in FORMATS:
                runs[fmt] = run_taskrun(control_plane, admin, fulcio, rekor, fmt, directory)
            yield Done(control_plane, admin, fulcio, rekor, directory, trusted_root, runs)
    finally:
        r = admin.request(
            "DELETE", f"/apis/rbac.authorization.k8s.io/v1/clusterrolebindings/{DISCOVERY_BINDING}"
        )
        assert r.status_code in (200, 404), r.text
        refused = [403] * len(DISCOVERY_PATHS)
        kubelet.wait(
            "anonymous discovery refused again",
            lambda: anonymous_discovery(control_plane) == refused or None,
            seconds=30,
        )
        admin.close()


def run_taskrun(
    plane: ControlPlane, admin: Kube, fulcio: FulcioDouble, rekor: RekorDouble, fmt: str, directory: Path
) -> Run:
    name = taskrun_name(fmt)
    issued, logged = len(fulcio.issued), len(rekor.entries)
    t0 = time.monotonic()
    taskrun_doc = {"apiVersion": "tekton.dev/v1", "kind": "TaskRun", "metadata": {"name": name},
                   "spec": {"serviceAccountName": SA, "taskRef": {"name": f"sigstore-{fmt}"}}}  # fmt: skip
    out = apply(plane, taskrun_doc)
    assert f"taskrun.tekton.dev/{name} created" in out, out
    work = directory / "podlet" / fmt
    run = Podlet(plane, admin, NODE, work).run(NS, f"{name}-pod")
    print(f"{name}: podlet {run.phase} after {run.timings}, {run.reports} status reports")
    print("podlet translations:\n  " + "\n  ".join(run.notes))
    taskrun = kubelet.wait(f"{name} to finish", lambda: finished(admin, name), seconds=FINISH_SECONDS)
    print(f"{name}: done in {time.monotonic() - t0:.1f} s; {len(fulcio.issued) - issued} certificates,"
          f" {len(rekor.entries) - logged} log entries")  # fmt: skip
    pod = admin.get(kubelet.pod_path(NS, f"{name}-pod"))
    # What the executor projected for the pod's sigstore-token volume: the API server's TokenRequest.
    token = (work / NS / f"{name}-pod" / "volumes" / "sigstore-token" / "oidc-token").read_text()
    return Run(
        fmt, name, run, pod, taskrun, claims(token), fulcio.issued[issued:], len(rekor.entries) - logged
    )


def verify(
    done: Done, taskrun: dict[str, Any] | None, run: Run, *extra: str
) -> tuple[int, dict[str, Any], str]:
    """``entrypoint verify --taskrun-object - --json`` of ``taskrun`` (else of ``kubectl get -o json``)."""
    if taskrun is None:
        got = kubectl(done.plane, "get", "taskrun", run.name, "-n", NS, "-o", "json")
        assert got.returncode == 0, got.stderr
        text = got.stdout
    else:
        text = json.dumps(taskrun)
    p = entrypoint("verify", "--taskrun-object", "-", "--json", *(extra or done.trust()), stdin=text)
    assert p.returncode in (0, 1), p.stdout + p.stderr
    verdict: dict[str, Any] = json.loads(p.stdout)
    return p.returncode, verdict, p.stdout + p.stderr


@pytest.mark.parametrize("fmt", FORMATS)
def test_the_documented_pod_runs_and_tekton_takes_the_signed_results(done: Done, fmt: str) -> None:
    run = done.runs[fmt]
    assert run.run.phase == "Succeeded", run.run.describe()
    [cond] = run.taskrun["status"]["conditions"]
    assert (cond["status"], cond["reason"]) == ("True", "Succeeded"), f"{cond}\n{run.run.describe()}"
    results = {r["name"]: r["value"] for r in run.taskrun["status"]["results"]}
    assert (results.pop("commit"), results.pop("digest")) == (COMMIT, DIGEST)
    assert set(results) == SIGNING_ENTRIES[fmt], sorted(results)
    # The pod Tekton made carries the document's environment and volumes; the API server took them.
    steps = [c for c in run.pod["spec"]["containers"] if c["name"].startswith("step-")]
    assert [c["name"] for c in steps] == ["step-commit", "step-digest"]
    for c in steps:
        env = {e["name"]: e for e in c["env"]}
        assert env["TASKRUN_NAME"]["valueFrom"] == {
            "fieldRef": {"apiVersion": "v1", "fieldPath": "metadata.labels['tekton.dev/taskRun']"}
        }, env
        assert env["SIGNED_ENTRYPOINT_FULCIO_ADDRESS"]["value"] == done.fulcio.url
        mounts = {m["name"]: m["mountPath"] for m in c["volumeMounts"]}
        assert (mounts["sigstore-token"], mounts["sigstore-root"]) == (
            "/var/run/sigstore/cosign",
            "/etc/sigstore",
        )
    assert run.pod["metadata"]["labels"]["tekton.dev/taskRun"] == run.name
    [token_volume] = [v for v in run.pod["spec"]["volumes"] if v["name"] == "sigstore-token"]
    assert token_volume["projected"]["sources"] == [
        {"serviceAccountToken": {"audience": "sigstore", "expirationSeconds": 600, "path": "oidc-token"}}
    ]


@pytest.mark.parametrize("fmt", FORMATS)
def test_fulcio_certified_the_api_servers_token_and_rekor_logged_every_step(done: Done, fmt: str) -> None:
    run = done.runs[fmt]
    # The projected token is the real API server's, for audience sigstore, bound to the pod.
    c = run.token_claims
    assert (c["iss"], c["aud"], c["sub"]) == (
        done.plane.issuer,
        ["sigstore"],
        f"system:serviceaccount:{NS}:{SA}",
    )
    assert c["kubernetes.io"]["pod"] == {"name": run.pod_name, "uid": run.pod["metadata"]["uid"]}
    assert c["exp"] - c["iat"] == 600
    assert done.fulcio.rejections == [], done.fulcio.rejections
    # One certificate per step, for the service account, naming the API server as the issuer.
    assert len(run.certificates) == 2, run.certificates
    for cert in run.certificates:
        [uri] = cert.extensions.get_extension_for_class(
            x509.SubjectAlternativeName
        ).value.get_values_for_type(x509.UniformResourceIdentifier)
        assert uri == SAN
        extension = cert.extensions.get_extension_for_oid(OID_ISSUER_V2).value
        assert isinstance(extension, x509.UnrecognizedExtension), extension
        # A DER UTF8String: the tag, the length, then the issuer.
        assert extension.value[2:] == done.plane.issuer.encode(), extension.value
    # Tekton's format logs once per step; the compact format once per write of the message.
    assert (run.log_entries == 2) if fmt == "tekton" else (2 <= run.log_entries <= 6), run.log_entries
    # Each step's message (as the TaskRun keeps it) names an entry of the log, at its integrated time.
    logged = {e.index + done.rekor.index_offset: e.integrated_time for e in done.rekor.entries}
    for step in run.taskrun["status"]["steps"]:
        entries = {e.key: e.value for e in parse_message(step["terminated"]["message"])}
        kind, index, integrated, *_ = entries["SIGSTORE_LOG"].split(".")
        assert kind == "rk1" and logged.get(int(index)) == int(integrated), (step["name"], entries)


@pytest.mark.parametrize("fmt", FORMATS)
def test_the_stored_taskrun_verifies_with_its_pod_and_after_the_pod_is_deleted(done: Done, fmt: str) -> None:
    run = done.runs[fmt]
    pod_file = done.directory / f"{run.pod_name}.json"
    pod_file.write_text(json.dumps(run.pod))
    code, verdict, out = verify(done, None, run, "--pod-object", str(pod_file), *done.trust())
    assert code == 0, out
    assert verdict["outcome"] == "Verified", out
    assert [s["outcome"] for s in verdict["steps"]] == ["Verified", "Verified"], out

    done.admin.delete_pod(NS, run.pod_name)
    gone = done.admin.request("GET", kubelet.pod_path(NS, run.pod_name))
    assert gone.status_code == 404, gone.text
    code, verdict, out = verify(done, None, run)
    assert code == 0, out
    assert verdict["outcome"] == "Verified", out
    print(f"{run.name}: {json.dumps(verdict['steps'])}")


@pytest.mark.parametrize("fmt", FORMATS)
def test_a_changed_result_or_another_identity_does_not_verify(done: Done, fmt: str) -> None:
    run = done.runs[fmt]
    got = kubectl(done.plane, "get", "taskrun", run.name, "-n", NS, "-o", "json")
    assert got.returncode == 0, got.stderr
    stored = json.loads(got.stdout)

    forged = copy.deepcopy(stored)
    [commit] = [r for r in forged["status"]["results"] if r["name"] == "commit"]
    commit["value"] = "evil00"
    code, verdict, out = verify(done, forged, run)
    assert (code, verdict["outcome"]) == (1, "Failed"), out
    print(f"{run.name}, a changed result: {verdict['reason']}: {verdict['message']}")

    for trust, why in (
        (done.trust(identity=f"https://kubernetes.io/namespaces/{NS}/serviceaccounts/other"), "another SA"),
        (done.trust(issuer="https://kubernetes.default.svc"), "another issuer"),
    ):
        code, verdict, out = verify(done, stored, run, *trust)
        assert (code, verdict["outcome"]) == (1, "Failed"), f"{why}: {out}"
        print(f"{run.name}, {why}: {verdict['reason']}: {verdict['message']}")

    # The stored TaskRun itself, its status patched (as anyone with update on taskruns/status can).
    index = [r["name"] for r in stored["status"]["results"]].index("digest")
    patch = [{"op": "replace", "path": f"/status/results/{index}/value", "value": "sha256:" + "00" * 32}]
    patched = kubectl(done.plane, "patch", "taskrun", run.name, "-n", NS, "--subresource=status",
                      "--type=json", "-p", json.dumps(patch))  # fmt: skip
    assert patched.returncode == 0, patched.stderr
    code, verdict, out = verify(done, None, run)
    assert (code, verdict["outcome"]) == (1, "Failed"), out
    print(f"{run.name}, its status patched: {verdict['reason']}: {verdict['message']}")
