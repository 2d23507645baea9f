"""The controller's trust, kept current: the SPIFFE bundle (a file or the Workload API), the
cluster's service-account token keys and the Sigstore trusted root, reloaded on an interval.

Kubernetes trust comes in two kinds.  ``tokenreview`` asks the API server about every token: it
answers only while the token's pod exists, so a TaskRun whose pod was pruned before the
controller saw it cannot be verified that way.  ``jwks`` (the default) checks tokens against the
API server's published keys, as ``entrypoint verify --jwks`` does offline; every key it ever saw
is kept in a ConfigMap (a ``save-jwks`` snapshot under ``jwks.json``), so a TaskRun archived
before a key rotation still verifies later from ``kubectl get taskrun -o json`` and that
snapshot, with no live pod and no API server.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from entrypoint._internal.backends.k8s_sat.kube import SNAPSHOT_KIND, ApiServer
from entrypoint._internal.kube.client import KubeError, KubeStatusError
from entrypoint.controller.api import ControllerAPI
from entrypoint.errors import TrustError
from entrypoint.verify import KubeJwks, KubeTokenReview, SigstoreTrust, TrustBundle, TrustSet, Verifier

log = logging.getLogger("entrypoint.controller")
SNAPSHOT_DATA_KEY = "jwks.json"


@dataclass(frozen=True)
class TrustConfig:
    """Where the trust comes from: SPIFFE (trust domain with a bundle file or a Workload API) and
    Kubernetes (``jwks``, ``tokenreview``, a snapshot file, or none)."""

    trust_domain: str | None = None
    trust_bundle: str | None = None
    spire_socket: str | None = None
    kube_trust: str = "jwks"  # "jwks" | "tokenreview" | "none"
    jwks_file: str | None = None  # a fixed snapshot instead of the API server's keys
    jwks_configmap: tuple[str, str] | None = None  # (namespace, name) where seen keys are kept
    formats: Sequence[str] | None = None
    # sigstore-keyless: the trusted root file (re-read: a mounted ConfigMap) and the identity policy.
    sigstore_trusted_root: str | None = None
    sigstore_issuer: str | None = None
    sigstore_identity: str | None = None
    sigstore_identity_regexp: str | None = None
    sigstore_require_log: bool = True


class JwksStore:
    """Every token signing key the cluster published, kept in one ConfigMap (never forgotten:
    archived TaskRuns were signed with keys the API server may no longer publish)."""

    def __init__(self, api: ControllerAPI, namespace: str, name: str) -> None:
        self.api, self.namespace, self.name = api, namespace, name

    def merge(self, current: KubeJwks) -> KubeJwks:
        """The stored keys plus ``current``'s, written back when something is new."""
        try:
            stored: dict[str, Any] | None = self.api.get_configmap(self.namespace, self.name)
        except KubeStatusError as exc:
            if exc.status != 404:
                raise
            stored = None
        keys = {str(k.get("kid", "")): k for k in _stored_keys(stored, current.issuer)}
        new = [k for k in current.jwks["keys"] if str(k.get("kid", "")) not in keys]
        if not new and stored is not None:
            return KubeJwks(current.issuer, {"keys": list(keys.values())})
        for key in new:
            keys[str(key.get("kid", ""))] = key
        merged = KubeJwks(current.issuer, {"keys": list(keys.values())})
        data = {SNAPSHOT_DATA_KEY: json.dumps(merged.to_json(), indent=2, sort_keys=True) + "\n"}
        body: dict[str, Any] = {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": self.name, "namespace": self.namespace},
            "data": data,
        }
        if stored is None:
            self.api.create_configmap(self.namespace, body)
        else:
            # With the resourceVersion read: a concurrent write fails this one; the next refresh merges.
            body["metadata"]["resourceVersion"] = (stored.get("metadata") or {}).get("resourceVersion")
            self.api.update_configmap(self.namespace, self.name, body)
        log.info(
            "jwks: %d key(s) of %s kept in configmap %s/%s",
            len(keys),
            current.issuer,
            self.namespace,
            self.name,
        )
        return merged


def _stored_keys(configmap: dict[str, Any] | None, issuer: str) -> list[dict[str, Any]]:
    if configmap is None:
        return []
    text = (configmap.get("data") or {}).get(SNAPSHOT_DATA_KEY)
    try:
        doc = json.loads(text) if isinstance(text, str) else None
    except ValueError:
        doc = None
    if not isinstance(doc, dict) or doc.get("kind") != SNAPSHOT_KIND or doc.get("issuer") != issuer:
        # Another issuer's keys (the cluster was re-created) vouch for nothing here.
        return []
    keys = (doc.get("jwks") or {}).get("keys")
    return [k for k in keys if isinstance(k, dict)] if isinstance(keys, list) else []


class TrustSource:
    """Builds a :class:`Verifier` from the configured trust and reloads it every ``refresh`` seconds;
    trust that fails to load leaves the last good one in place (or none: those TaskRuns wait)."""

    def __init__(
        self,
        config: TrustConfig,
        api_server: ApiServer | None,
        api: ControllerAPI | None,
        *,
        refresh: float = 300.0,
        now: Callable[[], dt.datetime] = lambda: dt.datetime.now(dt.UTC),
    ) -> None:
        self.config = config
        self.api_server = api_server
        self.store = (
            JwksStore(api, *config.jwks_configmap) if api is not None and config.jwks_configmap else None
        )
        self.refresh = refresh
        self.now = now
        self._spiffe: TrustBundle | None = None
        self._kube: KubeJwks | KubeTokenReview | None = None
        self._sigstore: SigstoreTrust | None = None
        self._verifier = Verifier(TrustSet(), formats=config.formats)
        self._lock = threading.Lock()

    def verifier(self) -> Verifier:
        with self._lock:
            return self._verifier

    def reload(self) -> list[str]:
        """Load every configured trust once; returns what failed (one line each)."""
        errors: list[str] = []
        c = self.config
        if c.trust_domain is not None:
            try:
                if c.trust_bundle is not None:
                    self._spiffe = TrustBundle.from_pem_file(c.trust_bundle, c.trust_domain)
                elif c.spire_socket is not None:
                    self._spiffe = TrustBundle.from_workload_api(c.spire_socket, c.trust_domain)
            except TrustError as exc:
                errors.append(f"SPIFFE trust: {exc}")
        try:
            self._kube = self._load_kube() or self._kube
        except (TrustError, KubeError) as exc:
            errors.append(f"Kubernetes trust: {exc}")
        if c.sigstore_trusted_root is not None:
            try:
                self._sigstore = SigstoreTrust.from_file(
                    c.sigstore_trusted_root,
                    issuer=c.sigstore_issuer or "",
                    identity=c.sigstore_identity,
                    identity_regexp=c.sigstore_identity_regexp,
                    require_log=c.sigstore_require_log,
                )
            except (TrustError, ValueError) as exc:
                errors.append(f"Sigstore trust: {exc}")
        trust = TrustSet(spiffe=self._spiffe, kube=self._kube, sigstore=self._sigstore)
        with self._lock:
            self._verifier = Verifier(trust, formats=c.formats)
        for line in errors:
            log.warning("%s", line)
        return errors

    def _load_kube(self) -> KubeJwks | KubeTokenReview | None:
        c = self.config
        if c.jwks_file is not None:
            return KubeJwks.from_file(c.jwks_file)
        if c.kube_trust == "none" or self.api_server is None:
            return None
        if c.kube_trust == "tokenreview":
            return KubeTokenReview(self.api_server)
        current = KubeJwks.fetch(self.api_server)
        if self.store is None:
            return current
        try:
            return self.store.merge(current)
        except KubeError as exc:
            # The keys in use now still verify today's TaskRuns; only the archive misses out.
            log.warning("jwks: cannot keep the keys in configmap %s/%s: %s", self.store.namespace,
                        self.store.name, exc)  # fmt: skip
            return current

    def run(self, stop: threading.Event) -> None:
        while not stop.wait(self.refresh):
            self.reload()
