"""Create or replace Kubernetes objects from YAML files, as ``kubectl apply`` would for a fresh
cluster, without kubectl: tools/peers.sh uses it to load Tekton's CRDs and ConfigMaps (read from the
Go module cache, never copied here) into the local control plane.

    python tools/kube_apply.py --server URL --ca-file CA --token-file TOKEN FILE_OR_DIR...

Each document is POSTed to its collection (found through the API's discovery documents, so CRDs made
by an earlier document are usable by a later one, once established); one that exists is replaced
(PUT with its current resourceVersion).  Directories are read in name order, ``*.yaml`` only.  Fails
with one line naming the object and the API server's message.
"""

from __future__ import annotations

import argparse
import ssl
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import yaml  # type: ignore[import-untyped]  # PyYAML (locked, via cel-python); no stubs locked

# How long a kind may stay unknown to discovery (a CRD just made is not served at once).
DISCOVERY_WAIT_SECONDS = 60.0


class ApplyError(Exception):
    """An object could not be applied; the message says which and why."""


class Cluster:
    """The API server, with the kinds its discovery documents list."""

    def __init__(self, server: str, ca_file: str, token: str) -> None:
        self.http = httpx.Client(
            base_url=server,
            verify=ssl.create_default_context(cafile=ca_file),
            headers={"Authorization": f"Bearer {token}"},
            timeout=30,
        )
        # apiVersion -> kind -> (resource, namespaced)
        self._kinds: dict[str, dict[str, tuple[str, bool]]] = {}

    def _discover(self, api_version: str) -> dict[str, tuple[str, bool]]:
        path = "/api/v1" if api_version == "v1" else f"/apis/{api_version}"
        r = self.http.get(path)
        if r.status_code == 404:
            return {}
        if r.status_code != 200:
            raise ApplyError(f"discovery {path}: HTTP {r.status_code}: {_message(r)}")
        kinds = {}
        for res in r.json().get("resources", []):
            if "/" not in res["name"]:  # subresources (pods/status) are not collections
                kinds[res["kind"]] = (res["name"], bool(res["namespaced"]))
        return kinds

    def resource(self, api_version: str, kind: str) -> tuple[str, bool]:
        deadline = time.monotonic() + DISCOVERY_WAIT_SECONDS
        while True:
            known = self._kinds.get(api_version, {})
            if kind in known:
                return known[kind]
            self._kinds[api_version] = self._discover(api_version)
            if kind in self._kinds[api_version]:
                return self._kinds[api_version][kind]
            if time.monotonic() > deadline:
                raise ApplyError(f"the API server serves no {kind} in {api_version}")
            time.sleep(0.5)

    def apply(self, obj: dict[str, Any], default_namespace: str) -> str:
        api_version, kind = obj.get("apiVersion"), obj.get("kind")
        meta = obj.get("metadata") or {}
        name = meta.get("name")
        if not isinstance(api_version, str) or not isinstance(kind, str) or not isinstance(name, str):
            raise ApplyError(f"not a Kubernetes object (apiVersion, kind, metadata.name): {str(obj)[:80]}")
        resource, namespaced = self.resource(api_version, kind)
        base = "/api/v1" if api_version == "v1" else f"/apis/{api_version}"
        if namespaced:
            namespace = meta.get("namespace") or default_namespace
            meta["namespace"] = namespace
            base = f"{base}/namespaces/{namespace}"
        what = f"{kind} {meta.get('namespace', '') + '/' if namespaced else ''}{name}"
        r = self.http.post(f"{base}/{resource}", json=obj)
        if r.status_code == 409:
            current = self.http.get(f"{base}/{resource}/{name}")
            if current.status_code != 200:
                raise ApplyError(f"{what}: HTTP {current.status_code}: {_message(current)}")
            meta["resourceVersion"] = current.json()["metadata"]["resourceVersion"]
            r = self.http.put(f"{base}/{resource}/{name}", json=obj)
            verb = "replaced"
        else:
            verb = "created"
        if r.status_code not in (200, 201):
            raise ApplyError(f"{what}: HTTP {r.status_code}: {_message(r)}")
        if kind == "CustomResourceDefinition":
            self._wait_established(name)
        return f"{what} {verb}"

    def _wait_established(self, name: str) -> None:
        path = f"/apis/apiextensions.k8s.io/v1/customresourcedefinitions/{name}"
        deadline = time.monotonic() + DISCOVERY_WAIT_SECONDS
        while True:
            conditions = (self.http.get(path).json().get("status") or {}).get("conditions") or []
            if any(c.get("type") == "Established" and c.get("status") == "True" for c in conditions):
                return
            if time.monotonic() > deadline:
                raise ApplyError(f"CustomResourceDefinition {name} was not established in time")
            time.sleep(0.25)


def _message(r: httpx.Response) -> str:
    try:
        return str(r.json().get("message", r.text))
    except ValueError:
        return r.text.strip()[:200]


def documents(paths: list[str]) -> Iterator[tuple[Path, dict[str, Any]]]:
    """Every object of the files (directories: their ``*.yaml`` in name order), ``List``s unpacked."""
    for given in paths:
        path = Path(given)
        files = sorted(path.glob("*.yaml")) if path.is_dir() else [path]
        for file in files:
            for doc in yaml.safe_load_all(file.read_text(encoding="utf-8")):
                if not isinstance(doc, dict):
                    continue
                items = doc.get("items") if str(doc.get("kind", "")).endswith("List") else [doc]
                for item in items or []:
                    if isinstance(item, dict):
                        yield file, item


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--server", required=True, help="the API server's https URL")
    p.add_argument("--ca-file", required=True, help="the CA that signed its serving certificate")
    p.add_argument("--token-file", required=True, help="a bearer token allowed to create the objects")
    p.add_argument("--namespace", default="default", help="for namespaced objects that name none")
    p.add_argument("-q", "--quiet", action="store_true", help="print nothing on success")
    p.add_argument("paths", nargs="+", metavar="FILE_OR_DIR")
    args = p.parse_args(argv)
    token = Path(args.token_file).read_text(encoding="utf-8").strip()
    cluster = Cluster(args.server, args.ca_file, token)
    count = 0
    try:
        for file, obj in documents(args.paths):
            try:
                done = cluster.apply(obj, args.namespace)
            except ApplyError as exc:
                raise ApplyError(f"{file}: {exc}") from exc
            count += 1
            if not args.quiet:
                print(done)
    except (ApplyError, httpx.HTTPError, OSError, yaml.YAMLError) as exc:
        print(f"kube_apply: {exc}", file=sys.stderr)
        return 1
    finally:
        cluster.http.close()
    if not args.quiet:
        print(f"{count} objects applied")
    return 0


if __name__ == "__main__":
    sys.exit(main())
