"""A pod executor for the end-to-end tests (issue 14): the kubelet's part, on top of ``podman kube play``.

Given a Pod that Tekton's real controller created in the real kube-apiserver, :class:`Podlet` binds
it to a node (the scheduler's part), translates it into what podman 4.3 accepts, runs it in real
containers, and reports what happened through the pods/NAME/status subresource, as a kubelet does:
``Running`` once the init containers are done, then every container's termination (exit code,
reason, start and finish times, termination message) and ``Succeeded`` or ``Failed``.

What podman gets instead of what it cannot do (every translation is listed in ``PodRun.notes``):

* emptyDir: a fresh host directory per pod and volume, mode 0777 as the kubelet makes it.  podman's
  own emptyDir is a *named* volume called after the pod's volume, shared by every pod that has a
  volume of that name, and chowned to the first container that mounts it.
* the projected service-account volume (``kube-api-access-*``): a host directory with a real
  TokenRequest bound to the pod (its audiences and expirationSeconds), the control plane's CA for
  the ``kube-root-ca.crt`` ConfigMap (no kube-controller-manager publishes it here) and the
  namespace.  The token is not refreshed (a test pod lives far less than its 80 % lifetime).
* configMap volumes: a host directory with the ConfigMap's keys (or its ``items``), read once when
  the pod starts (the kubelet would also update them later).
* downwardAPI volumes (Tekton's ``/tekton/downward/ready``): a host directory whose files the
  executor rewrites (atomically, by rename) whenever the field changes in the API, as the kubelet
  does; Tekton sets ``tekton.dev/ready`` once the pod is reported Running.
* terminationMessagePath: a per-container host file bind-mounted there (as the kubelet does), read
  after the container exited, at most 4096 bytes.
* the network: host networking, so the API server on 127.0.0.1 is reachable; the kubelet's
  ``KUBERNETES_SERVICE_*``/``KUBERNETES_PORT*`` variables name it (127.0.0.1 and its real port).
* env ``valueFrom.fieldRef``: resolved from the Pod object when the pod starts.
* imagePullPolicy: ``Never`` (the images are local; ``Always`` would ask a registry).
* init containers: podman's ``always`` init-container type, so that the exited init containers are
  kept for ``podman inspect`` (the default ``once`` removes them).
* activeDeadlineSeconds: enforced here (the wait's deadline: stopping the pod, reason DeadlineExceeded).

Scheduling and DNS fields (tolerations, priority, schedulerName, dnsPolicy...) mean nothing on one
node with host networking and are left out, noted.  Anything else this executor does not know fails
the run with one line (:class:`Untranslatable`) before anything is started: nothing is silently dropped.
"""

from __future__ import annotations

import functools
import json
import os
import re
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.e2e.kubelet import bind, pod_path, rfc3339
from tests.e2e.realkube import ControlPlane, Kube
from tests.support.podman import podman

INIT_TYPE_ANNOTATION = "io.podman.annotations.init.container.type"
MESSAGE_LIMIT = 4096  # the kubelet's limit for one container's termination message
KUBE_ROOT_CA = "kube-root-ca.crt"
HOST_IP = "127.0.0.1"
POLL_SECONDS = 0.3
NEVER_STARTED = "0001-01-01T00:00:00Z"
# What containerd and CRI-O give a container whose image sets no PATH (podman kube play gives none).
RUNTIME_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

# Pod spec fields, by what becomes of them.
POD_KEPT = {"containers", "initContainers", "volumes", "restartPolicy", "securityContext", "hostname"}
POD_USED = {"serviceAccountName", "serviceAccount", "nodeName", "activeDeadlineSeconds"}
POD_IGNORED = {
    "dnsPolicy": "host networking: the host's resolver",
    "schedulerName": "one node: nothing to schedule",
    "tolerations": "one node: nothing to schedule",
    "priority": "one node: nothing to schedule",
    "priorityClassName": "one node: nothing to schedule",
    "preemptionPolicy": "one node: nothing to schedule",
    "enableServiceLinks": "only the kubernetes service's variables are set",
    "automountServiceAccountToken": "the admission plugin already added the volume, or not",
    "terminationGracePeriodSeconds": "containers are removed only after they exited",
}
CONTAINER_KEPT = {
    "name", "image", "command", "args", "workingDir", "resources", "securityContext", "ports",
}  # fmt: skip
CONTAINER_USED = {
    "env",
    "volumeMounts",
    "imagePullPolicy",
    "terminationMessagePath",
    "terminationMessagePolicy",
}
MOUNT_KEYS = {"name", "mountPath", "readOnly"}


class Untranslatable(Exception):
    """The pod asks for something this executor cannot give podman (one line: what, and where)."""


@dataclass(frozen=True)
class TokenFile:
    """A projected serviceAccountToken source: a TokenRequest bound to the pod."""

    path: Path
    seconds: int
    audiences: list[str] | None
    mode: int


@dataclass(frozen=True)
class FieldFile:
    """A downwardAPI item (or a projected one): the pod's field, kept up to date."""

    path: Path
    field_path: str
    mode: int


@dataclass(frozen=True)
class ConfigMapFile:
    path: Path
    name: str
    key: str
    mode: int


@dataclass(frozen=True)
class ConfigMapDir:
    """A configMap volume without ``items``: every key of the ConfigMap, one file each."""

    directory: Path
    name: str
    mode: int


HostFile = TokenFile | FieldFile | ConfigMapFile | ConfigMapDir


@dataclass
class Translation:
    """What podman is given for one Pod, and what the executor must keep on the host for it."""

    manifest: dict[str, Any]
    pod_name: str  # podman's pod; its containers are ``<pod_name>-<container>``
    init_containers: list[dict[str, Any]]
    containers: list[dict[str, Any]]
    termination: dict[str, Path]  # container name -> host file at its terminationMessagePath
    files: list[HostFile]
    notes: list[str]
    deadline_seconds: float | None

    def podman_name(self, container: str) -> str:
        return f"{self.pod_name}-{container}"

    @property
    def all_containers(self) -> list[dict[str, Any]]:
        """In start order: the init containers, then the containers."""
        return [*self.init_containers, *self.containers]


@dataclass(frozen=True)
class ContainerState:
    """One container as podman saw it (``podman container inspect``), or never created."""

    status: str  # created, running, exited, stopped, or "" when podman has no such container
    exit_code: int
    started_at: str
    finished_at: str
    container_id: str
    image_id: str
    oom_killed: bool = False

    @property
    def ended(self) -> bool:
        return self.status in {"exited", "stopped"}


@dataclass
class PodRun:
    """What the executor saw and reported."""

    namespace: str
    name: str
    uid: str
    phase: str
    statuses: dict[str, dict[str, Any]] = field(default_factory=dict)  # container -> reported status
    logs: dict[str, str] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    reports: int = 0
    play_error: str = ""
    timings: dict[str, float] = field(default_factory=dict)

    def describe(self) -> str:
        """Everything for an assertion message: the statuses and every container's log."""
        parts = [f"pod {self.namespace}/{self.name}: {self.phase} {self.play_error}".rstrip()]
        for name, status in self.statuses.items():
            parts.append(f"--- {name}: {json.dumps(status['state'])}\n{self.logs.get(name, '')}")
        return "\n".join(parts)


# -- translation -----------------------------------------------------------------------------------


def api_env(host: str, port: int) -> list[dict[str, str]]:
    """The variables the kubelet gives every container for the ``kubernetes`` service."""
    url = f"tcp://{host}:{port}"
    return [
        {"name": "KUBERNETES_SERVICE_HOST", "value": host},
        {"name": "KUBERNETES_SERVICE_PORT", "value": str(port)},
        {"name": "KUBERNETES_SERVICE_PORT_HTTPS", "value": str(port)},
        {"name": "KUBERNETES_PORT", "value": url},
        {"name": f"KUBERNETES_PORT_{port}_TCP", "value": url},
        {"name": f"KUBERNETES_PORT_{port}_TCP_PROTO", "value": "tcp"},
        {"name": f"KUBERNETES_PORT_{port}_TCP_PORT", "value": str(port)},
        {"name": f"KUBERNETES_PORT_{port}_TCP_ADDR", "value": host},
    ]


_LABEL_REF = re.compile(r"^metadata\.(labels|annotations)\['([^']+)'\]$")


def field_value(pod: Mapping[str, Any], field_path: str) -> str:
    """A downward-API ``fieldPath`` of ``pod`` (an absent label or annotation is "")."""
    meta, spec = pod["metadata"], pod["spec"]
    simple = {
        "metadata.name": meta["name"],
        "metadata.namespace": meta["namespace"],
        "metadata.uid": meta["uid"],
        "spec.serviceAccountName": spec.get("serviceAccountName", ""),
        "spec.nodeName": spec.get("nodeName", ""),
        "status.hostIP": HOST_IP,
        "status.podIP": HOST_IP,
    }
    if field_path in simple:
        return str(simple[field_path])
    m = _LABEL_REF.match(field_path)
    if m:
        return str(meta.get(m[1], {}).get(m[2], ""))
    raise Untranslatable(f"fieldPath {field_path!r} is not supported")


class Translator:
    """Turns one Pod object into a podman manifest plus the host files it mounts."""

    def __init__(
        self,
        pod: dict[str, Any],
        host_dir: Path,
        api_host: str,
        api_port: int,
        image_env: Callable[[str], Sequence[str]],
    ) -> None:
        self.pod = pod
        self.image_env = image_env
        self.meta, self.spec = pod["metadata"], pod["spec"]
        self.host_dir = host_dir
        self.api = api_env(api_host, api_port)
        self.notes: list[str] = []
        self.files: list[HostFile] = []
        self.volumes: dict[str, dict[str, Any]] = {}  # the pod's volume -> podman's hostPath volume
        self.termination: dict[str, Path] = {}

    def translate(self) -> Translation:
        unknown = set(self.spec) - POD_KEPT - POD_USED - set(POD_IGNORED)
        if unknown:
            raise Untranslatable(f"pod spec fields {sorted(unknown)}")
        for key in sorted(set(self.spec) & set(POD_IGNORED)):
            self.notes.append(f"spec.{key} left out ({POD_IGNORED[key]})")
        if self.spec.get("restartPolicy", "Always") != "Never":
            raise Untranslatable(f"restartPolicy {self.spec.get('restartPolicy', 'Always')!r} (only Never)")
        for volume in self.spec.get("volumes", []):
            self.volumes[volume["name"]] = self.volume(volume)
        inits = [
            self.container(c, f"initContainers[{i}]")
            for i, c in enumerate(self.spec.get("initContainers", []))
        ]
        mains = [self.container(c, f"containers[{i}]") for i, c in enumerate(self.spec["containers"])]
        pod_name = f"{self.meta['name']}-{self.meta['uid'][:8]}"
        self.notes.append(f"podman's pod is {pod_name} (the name with the UID's first 8 characters)")
        spec: dict[str, Any] = {
            "restartPolicy": "Never",
            "hostNetwork": True,
            "containers": mains,
            "volumes": self.podman_volumes(),
        }
        self.notes.append("spec.hostNetwork: true (the API server listens on 127.0.0.1)")
        service = ", ".join(f"{e['name']}={e['value']}" for e in self.api[:2])
        self.notes.append(
            f"every container: the kubelet's KUBERNETES_* variables, at the API server ({service})"
        )
        if inits:
            self.notes.append(
                f"metadata.annotations {INIT_TYPE_ANNOTATION}: always (exited init containers kept)"
            )
            spec["initContainers"] = inits
        self.notes.append(
            "metadata: only the name and labels (the downward files carry the annotations read)"
        )
        for key in ("securityContext", "hostname"):
            if key in self.spec:
                spec[key] = self.spec[key]
        deadline = self.spec.get("activeDeadlineSeconds")
        if deadline is not None:
            self.notes.append(f"spec.activeDeadlineSeconds {deadline} enforced by the executor")
        manifest = {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {
                "name": pod_name,
                "labels": dict(self.meta.get("labels", {})),
                "annotations": {INIT_TYPE_ANNOTATION: "always"},
            },
            "spec": spec,
        }
        return Translation(
            manifest, pod_name, inits, mains, dict(self.termination), list(self.files), list(self.notes),
            float(deadline) if deadline is not None else None,
        )  # fmt: skip

    # -- volumes -----------------------------------------------------------------------------------

    def volume(self, volume: dict[str, Any]) -> dict[str, Any]:
        name = volume["name"]
        kinds = set(volume) - {"name"}
        directory = self.host_dir / "volumes" / name
        if kinds == {"emptyDir"}:
            empty = volume["emptyDir"]
            medium, limit = empty.get("medium", ""), empty.get("sizeLimit")
            if set(empty) - {"medium", "sizeLimit"} or medium not in ("", "Memory"):
                raise Untranslatable(f"volume {name}: emptyDir {empty}")
            extra = (f" (medium {medium}: on disk, not tmpfs)" if medium else "") + (
                f" (sizeLimit {limit} not enforced)" if limit else ""
            )
            self.notes.append(f"volume {name}: emptyDir -> host directory{extra}")
            return self.host_directory(directory, 0o777)
        if kinds == {"projected"}:
            self.projected(name, volume["projected"], directory)
            return self.host_directory(directory, 0o755)
        if kinds == {"configMap"}:
            self.config_map(name, volume["configMap"], directory)
            return self.host_directory(directory, 0o755)
        if kinds == {"downwardAPI"}:
            self.notes.append(f"volume {name}: downwardAPI -> host directory kept up to date")
            mode = volume["downwardAPI"].get("defaultMode", 0o644)
            self.downward_items(name, volume["downwardAPI"].get("items", []), directory, mode)
            return self.host_directory(directory, 0o755)
        raise Untranslatable(f"volume {name}: {sorted(kinds)} volumes are not supported")

    def projected(self, name: str, projected: dict[str, Any], directory: Path) -> None:
        mode = projected.get("defaultMode", 0o644)
        described = []
        for source in projected.get("sources", []):
            [(kind, body)] = source.items()
            if kind == "serviceAccountToken":
                if set(body) - {"path", "expirationSeconds", "audience"}:
                    raise Untranslatable(f"volume {name}: serviceAccountToken {body}")
                audience = body.get("audience")
                self.files.append(TokenFile(
                    directory / body["path"], int(body.get("expirationSeconds", 3600)),
                    [audience] if audience else None, mode,
                ))  # fmt: skip
                described.append(f"{body['path']}: TokenRequest bound to the pod")
            elif kind == "configMap":
                for item in body.get("items", []):
                    self.files.append(
                        ConfigMapFile(directory / item["path"], body["name"], item["key"], mode)
                    )
                    described.append(f"{item['path']}: ConfigMap {body['name']}")
                if not body.get("items"):
                    raise Untranslatable(f"volume {name}: configMap {body['name']} without items")
            elif kind == "downwardAPI":
                self.downward_items(name, body.get("items", []), directory, mode)
                described.append(
                    ", ".join(f"{i['path']}: {i['fieldRef']['fieldPath']}" for i in body["items"])
                )
            else:
                raise Untranslatable(f"volume {name}: projected {kind} sources are not supported")
        self.notes.append(f"volume {name}: projected -> host directory ({'; '.join(described)})")

    def config_map(self, name: str, body: dict[str, Any], directory: Path) -> None:
        items = body.get("items", [])
        if set(body) - {"name", "items", "defaultMode"} or any(set(i) != {"key", "path"} for i in items):
            raise Untranslatable(f"volume {name}: configMap {body}")
        mode = body.get("defaultMode", 0o644)
        if items:
            for item in items:
                self.files.append(ConfigMapFile(directory / item["path"], body["name"], item["key"], mode))
        else:
            self.files.append(ConfigMapDir(directory, body["name"], mode))
        self.notes.append(f"volume {name}: configMap {body['name']} -> host directory (read once)")

    def downward_items(self, name: str, items: Sequence[dict[str, Any]], directory: Path, mode: int) -> None:
        for item in items:
            if "fieldRef" not in item or set(item) - {"path", "fieldRef", "mode"}:
                raise Untranslatable(f"volume {name}: downwardAPI item {item}")
            field_value(self.pod, item["fieldRef"]["fieldPath"])  # supported, or Untranslatable
            self.files.append(FieldFile(directory / item["path"], item["fieldRef"]["fieldPath"],
                                        item.get("mode", mode)))  # fmt: skip

    def host_directory(self, directory: Path, mode: int) -> dict[str, Any]:
        directory.mkdir(parents=True, exist_ok=True)
        directory.chmod(mode)
        return {"hostPath": {"path": str(directory), "type": "Directory"}}

    def podman_volumes(self) -> list[dict[str, Any]]:
        found = [{"name": name, **volume} for name, volume in self.volumes.items()]
        found += [
            {"name": termination_volume(container), "hostPath": {"path": str(path), "type": "File"}}
            for container, path in self.termination.items()
        ]
        return found

    # -- containers --------------------------------------------------------------------------------

    def container(self, c: dict[str, Any], where: str) -> dict[str, Any]:
        name = c["name"]
        where = f"{where} ({name})"
        unknown = set(c) - CONTAINER_KEPT - CONTAINER_USED
        if unknown:
            raise Untranslatable(f"{where}: fields {sorted(unknown)}")
        policy = c.get("terminationMessagePolicy", "File")
        if policy != "File":
            raise Untranslatable(f"{where}: terminationMessagePolicy {policy!r} (only File)")
        changes: list[str] = []
        out = {k: v for k, v in c.items() if k in CONTAINER_KEPT}
        out["imagePullPolicy"] = "Never"
        if c.get("imagePullPolicy") != "Never":
            changes.append(f"imagePullPolicy {c.get('imagePullPolicy', 'unset')} -> Never")
        out["env"] = self.env(c.get("env", []), where, changes)
        has_path = any(e.startswith("PATH=") for e in self.image_env(c["image"]))
        if not has_path and not any(e["name"] == "PATH" for e in out["env"]):
            out["env"].append({"name": "PATH", "value": RUNTIME_PATH})
            changes.append("PATH set to containerd's default (the image sets none)")
        out["volumeMounts"] = [self.mount(m, where) for m in c.get("volumeMounts", [])]
        message_path = c.get("terminationMessagePath", "/dev/termination-log")
        host_file = self.host_dir / "termination" / name
        host_file.parent.mkdir(parents=True, exist_ok=True)
        host_file.write_bytes(b"")
        host_file.chmod(0o666)  # as the kubelet's: any uid writes its message
        self.termination[name] = host_file
        out["volumeMounts"].append({"name": termination_volume(name), "mountPath": message_path})
        changes.append(f"terminationMessagePath {message_path}: a host file")
        self.notes.append(f"{where}: {'; '.join(changes)}")
        return out

    def env(self, env: Sequence[dict[str, Any]], where: str, changes: list[str]) -> list[dict[str, str]]:
        """The kubelet's service variables, then the container's own, ``fieldRef`` ones resolved."""
        own = {e["name"] for e in env}
        out = [e for e in self.api if e["name"] not in own]
        for e in env:
            if "value" in e or "valueFrom" not in e:
                out.append({"name": e["name"], "value": e.get("value", "")})
                continue
            ref = e["valueFrom"].get("fieldRef")
            if ref is None or set(e["valueFrom"]) != {"fieldRef"}:
                raise Untranslatable(f"{where}: env {e['name']} valueFrom {sorted(e['valueFrom'])}")
            out.append({"name": e["name"], "value": field_value(self.pod, ref["fieldPath"])})
            changes.append(f"env {e['name']}: fieldRef {ref['fieldPath']} resolved")
        return out

    def mount(self, m: dict[str, Any], where: str) -> dict[str, Any]:
        if set(m) - MOUNT_KEYS:
            raise Untranslatable(f"{where}: volumeMount {m['mountPath']} with {sorted(set(m) - MOUNT_KEYS)}")
        if m["name"] not in self.volumes:
            raise Untranslatable(f"{where}: volumeMount of an unknown volume {m['name']!r}")
        return {k: v for k, v in m.items() if k in MOUNT_KEYS}


@functools.cache
def podman_image_env(image: str) -> tuple[str, ...]:
    p = podman("image", "inspect", "--format", "{{json .Config.Env}}", image, check=False)
    if p.returncode != 0:
        raise Untranslatable(f"image {image}: not in podman's local storage (imagePullPolicy Never)")
    return tuple(json.loads(p.stdout) or ())


def termination_volume(container: str) -> str:
    return f"podlet-termination-{container}"


def translate(
    pod: dict[str, Any],
    host_dir: Path,
    api_host: str,
    api_port: int,
    image_env: Callable[[str], Sequence[str]] | None = None,
) -> Translation:
    """The podman manifest for ``pod``, or :class:`Untranslatable` naming the pod and what it asks.
    ``image_env``: an image's configured environment (default: podman's image's)."""
    try:
        return Translator(pod, host_dir, api_host, api_port, image_env or podman_image_env).translate()
    except Untranslatable as e:
        meta = pod["metadata"]
        raise Untranslatable(f"pod {meta['namespace']}/{meta['name']}: podlet cannot run {e}") from None


# -- host files ------------------------------------------------------------------------------------


def write_atomically(path: Path, data: bytes, mode: int) -> None:
    """Replace ``path`` by rename, so a container never reads a half-written file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_bytes(data)
    tmp.chmod(mode)
    os.replace(tmp, path)


def write_host_files(files: Sequence[HostFile], admin: Kube, pod: dict[str, Any], ca_file: Path) -> None:
    """The projected and downward files, as the kubelet writes them before the containers start."""
    meta = pod["metadata"]
    for f in files:
        if isinstance(f, TokenFile):
            token = admin.token(meta["namespace"], pod["spec"]["serviceAccountName"],
                                audiences=f.audiences, seconds=f.seconds, pod=pod)  # fmt: skip
            write_atomically(f.path, token.encode(), f.mode)
        elif isinstance(f, ConfigMapFile):
            write_atomically(f.path, config_map_value(admin, meta["namespace"], f, ca_file), f.mode)
        elif isinstance(f, ConfigMapDir):
            data = admin.get(f"/api/v1/namespaces/{meta['namespace']}/configmaps/{f.name}").get("data", {})
            for key, value in data.items():
                write_atomically(f.directory / key, value.encode(), f.mode)
        else:
            write_atomically(f.path, field_value(pod, f.field_path).encode(), f.mode)


def config_map_value(admin: Kube, namespace: str, f: ConfigMapFile, ca_file: Path) -> bytes:
    """A ConfigMap key; ``kube-root-ca.crt`` is the control plane's CA (no kube-controller-manager
    runs here to publish it)."""
    if f.name == KUBE_ROOT_CA:
        return ca_file.read_bytes()
    data: dict[str, str] = admin.get(f"/api/v1/namespaces/{namespace}/configmaps/{f.name}").get("data", {})
    if f.key not in data:
        raise Untranslatable(f"ConfigMap {namespace}/{f.name} has no key {f.key!r}")
    return data[f.key].encode()


def refresh_fields(files: Sequence[HostFile], pod: dict[str, Any]) -> list[str]:
    """Rewrite the downward files whose field changed (e.g. the ``tekton.dev/ready`` annotation);
    the fields that did."""
    changed = []
    for f in files:
        if isinstance(f, FieldFile):
            value = field_value(pod, f.field_path).encode()
            if f.path.read_bytes() != value:
                write_atomically(f.path, value, f.mode)
                changed.append(f.field_path)
    return changed


# -- podman ----------------------------------------------------------------------------------------


def seconds_rfc3339(podman_time: str) -> str:
    """podman's RFC 3339 time (nanoseconds, UTC) at the API's precision, whole seconds."""
    if not podman_time or podman_time.startswith("0001-"):
        return NEVER_STARTED
    return podman_time[:19] + "Z"


def inspect(names: Sequence[str]) -> dict[str, ContainerState]:
    """The containers podman has (one call for all); those it has not are absent."""
    p = podman("container", "inspect", *names, check=False)
    found: dict[str, ContainerState] = {}
    for c in json.loads(p.stdout or "[]"):
        s = c["State"]
        found[c["Name"]] = ContainerState(
            status=s["Status"],
            exit_code=int(s["ExitCode"]),
            started_at=seconds_rfc3339(s["StartedAt"]),
            finished_at=seconds_rfc3339(s["FinishedAt"]),
            container_id=f"podman://{c['Id']}",
            image_id=str(c["Image"]),
            oom_killed=bool(s.get("OOMKilled")),
        )
    return found


def read_message(path: Path) -> str:
    with path.open("rb") as f:
        return f.read(MESSAGE_LIMIT).decode("utf-8", errors="replace")


# -- the kubelet's status --------------------------------------------------------------------------


def container_status(
    c: Mapping[str, Any], state: ContainerState | None, message_file: Path, waiting: str
) -> dict[str, Any]:
    """One entry of ``containerStatuses``/``initContainerStatuses`` for the container's state now."""
    running = state is not None and state.status == "running"
    out: dict[str, Any] = {
        "name": c["name"],
        "image": c["image"],
        "imageID": state.image_id if state else "",
        "ready": running,
        "restartCount": 0,
        "started": running,
    }
    if state is not None and state.container_id:
        out["containerID"] = state.container_id
    if state is None or state.status in {"created", "", "configured", "initialized"}:
        out["state"] = {"waiting": {"reason": waiting}}
    elif running:
        out["state"] = {"running": {"startedAt": state.started_at}}
    else:
        reason = "Completed" if state.exit_code == 0 else ("OOMKilled" if state.oom_killed else "Error")
        terminated: dict[str, Any] = {
            "exitCode": state.exit_code,
            "reason": reason,
            "startedAt": state.started_at,
            # podman's FinishedAt of a quickly exited init container can precede its StartedAt.
            "finishedAt": max(state.finished_at, state.started_at),
            "containerID": state.container_id,
        }
        message = read_message(message_file)
        if message:
            terminated["message"] = message
        out["state"] = {"terminated": terminated}
    return out


def phase_of(init: Sequence[dict[str, Any]], main: Sequence[dict[str, Any]]) -> str:
    """The kubelet's phase for restartPolicy Never."""

    def terminated(s: dict[str, Any]) -> dict[str, Any] | None:
        found: dict[str, Any] | None = s["state"].get("terminated")
        return found

    if any((t := terminated(s)) and t["exitCode"] != 0 for s in init):
        return "Failed"
    if main and all(terminated(s) for s in main):
        return "Succeeded" if all(t["exitCode"] == 0 for s in main if (t := terminated(s))) else "Failed"
    if all(terminated(s) for s in init) and any("waiting" not in s["state"] for s in main):
        return "Running"
    return "Pending"


# -- the executor ----------------------------------------------------------------------------------


class Podlet:
    """The kubelet of one node, for pods the test names: bind, run in podman, report, clean up."""

    def __init__(
        self, plane: ControlPlane, admin: Kube, node: str, work_dir: Path, *, timeout: float = 120
    ) -> None:
        self.plane, self.admin, self.node = plane, admin, node
        self.work_dir = work_dir
        self.timeout = timeout

    def run(self, namespace: str, name: str) -> PodRun:
        """Bind the pod, run it to its end, report every change of its containers; then remove it
        from podman, whatever happened."""
        t0 = time.monotonic()
        pod = bind(self.admin, namespace, name, self.node)
        host_dir = self.work_dir / namespace / name
        tr = translate(pod, host_dir, HOST_IP, self.plane.port)
        run = PodRun(namespace, name, pod["metadata"]["uid"], "Pending", notes=tr.notes)
        manifest = host_dir / "pod.json"
        manifest.write_text(json.dumps(tr.manifest, indent=1))  # JSON is YAML
        write_host_files(tr.files, self.admin, pod, self.plane.ca_file)
        run.timings["bound"] = time.monotonic() - t0
        try:
            # Returns once the init containers have run and the containers are started.
            play = podman("kube", "play", str(manifest), timeout=self.timeout, check=False)
            run.timings["played"] = time.monotonic() - t0
            if play.returncode != 0:
                lines = play.stderr.strip().splitlines()
                run.play_error = lines[-1] if lines else f"podman kube play exited {play.returncode}"
            Follow(self, tr, run, t0).until_ended()
            run.timings["ended"] = time.monotonic() - t0
            run.logs = {c["name"]: logs(tr.podman_name(c["name"])) for c in tr.all_containers}
        finally:
            podman("pod", "rm", "--force", "--time", "0", tr.pod_name, check=False)
        return run

    def put_status(self, run: PodRun, current: dict[str, Any], status: dict[str, Any]) -> None:
        """PUT pods/NAME/status; a conflict (Tekton annotated the pod meanwhile) is retried."""
        path = pod_path(run.namespace, run.name)
        for _ in range(10):
            current["status"] = {**current.get("status", {}), **status}
            r = self.admin.request("PUT", f"{path}/status", current)
            if r.status_code == 200:
                run.reports += 1
                return
            assert r.status_code == 409, f"PUT {path}/status: {r.status_code} {r.text}"
            current = self.admin.get(path)
        raise AssertionError(f"PUT {path}/status: conflicts did not stop")


class Follow:
    """One pod from ``podman kube play`` to its end: its status reported whenever it changes."""

    def __init__(self, podlet: Podlet, tr: Translation, run: PodRun, t0: float) -> None:
        self.podlet, self.tr, self.run, self.t0 = podlet, tr, run, t0
        self.started = time.time()
        self.limit = min(podlet.timeout, tr.deadline_seconds or podlet.timeout)
        self.reason = ""
        # The container podman could not start (kube play failed on it), and podman's error: the
        # kubelet reports such a container terminated, exit code 128, reason StartError.
        self.start_error: tuple[str, str] | None = None

    def until_ended(self) -> None:
        """Until every container has ended, or the deadline passed (the pod is then stopped and
        reported Failed, DeadlineExceeded)."""
        last: dict[str, Any] = {}
        while True:
            current = self.podlet.admin.get(pod_path(self.run.namespace, self.run.name))
            for changed in refresh_fields(self.tr.files, current):
                self.run.timings.setdefault(changed, time.monotonic() - self.t0)
            status = self.status()
            if status != last:
                self.podlet.put_status(self.run, current, status)
                last = status
                if status["phase"] == "Running":
                    self.run.timings.setdefault("running", time.monotonic() - self.t0)
            if status["phase"] in {"Succeeded", "Failed"}:
                self.run.phase = status["phase"]
                self.run.statuses = {s["name"]: s for s in all_statuses(status)}
                return
            if time.monotonic() - self.t0 > self.limit and not self.reason:
                podman("pod", "stop", "--time", "0", self.tr.pod_name, check=False)
                self.reason = "DeadlineExceeded"
                continue
            time.sleep(POLL_SECONDS)

    def status(self) -> dict[str, Any]:
        tr = self.tr
        states = inspect([tr.podman_name(c["name"]) for c in tr.all_containers])
        if self.run.play_error and self.start_error is None:
            self.start_error = (first_unstarted(tr, states), self.run.play_error)

        def of(c: dict[str, Any], waiting: str) -> dict[str, Any]:
            if self.start_error and self.start_error[0] == c["name"]:
                return start_error_status(c, self.start_error[1])
            return container_status(
                c, states.get(tr.podman_name(c["name"])), tr.termination[c["name"]], waiting
            )

        init = [of(c, "PodInitializing") for c in tr.init_containers]
        initialized = all("terminated" in s["state"] for s in init)
        main = [of(c, "ContainerCreating" if initialized else "PodInitializing") for c in tr.containers]
        status: dict[str, Any] = {
            "phase": "Failed" if self.reason else phase_of(init, main),
            "hostIP": HOST_IP,
            "podIP": HOST_IP,
            "startTime": rfc3339(self.started),
            "initContainerStatuses": init,
            "containerStatuses": main,
        }
        if self.reason:
            status["reason"] = self.reason
            status["message"] = f"Pod was active on the node longer than the executor allows ({self.limit} s)"
        return status


def first_unstarted(tr: Translation, states: Mapping[str, ContainerState]) -> str:
    """The container a failed ``podman kube play`` stopped at: the first, in start order, that
    never ran (init containers run one after the other, then the containers)."""
    for c in tr.all_containers:
        state = states.get(tr.podman_name(c["name"]))
        if state is None or not state.started_at or state.started_at == NEVER_STARTED:
            return str(c["name"])
    return str(tr.all_containers[-1]["name"])


def start_error_status(c: Mapping[str, Any], error: str) -> dict[str, Any]:
    now = rfc3339(time.time())
    return {
        "name": c["name"],
        "image": c["image"],
        "imageID": "",
        "ready": False,
        "restartCount": 0,
        "started": False,
        "state": {
            "terminated": {
                "exitCode": 128,
                "reason": "StartError",
                "message": error,
                "startedAt": NEVER_STARTED,
                "finishedAt": now,
            }
        },
    }


def all_statuses(status: Mapping[str, Any]) -> Iterator[dict[str, Any]]:
    yield from status["initContainerStatuses"]
    yield from status["containerStatuses"]


def logs(container: str) -> str:
    p = podman("logs", container, check=False)
    return p.stdout + p.stderr
