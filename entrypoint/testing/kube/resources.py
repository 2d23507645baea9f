"""The resources the Kubernetes API double stores, their URLs, and the ``Status`` errors about them.

The wording of each error is kube-apiserver's (``k8s.io/apimachinery/pkg/api/errors``), built from a
resource's group and plural as ``schema.GroupResource`` prints them (``taskruns.tekton.dev``, ``pods``).
"""

from __future__ import annotations

import json
import re
import urllib.parse
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from entrypoint.testing.kube.objects import APIError, status_body


@dataclass(frozen=True)
class Resource:
    """A namespaced resource: its plural, kind and API group, and how its writes are treated."""

    plural: str
    kind: str
    group: str  # "" for the core group
    version: str = "v1"
    # Writes to the main resource keep the stored status; only the /status subresource changes it.
    status_subresource: bool = False
    tracks_generation: bool = False  # metadata.generation counts changes outside metadata and status
    custom: bool = False  # a CRD's resource (unstructured), as opposed to a built-in type
    create_status: Mapping[str, Any] | None = field(default=None, compare=False)

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    @property
    def qualified(self) -> str:
        """``schema.GroupResource.String()``: the name errors call the resource by."""
        return f"{self.plural}.{self.group}" if self.group else self.plural

    @property
    def qualified_kind(self) -> str:
        """``schema.GroupKind.String()``, which validation errors use."""
        return f"{self.kind}.{self.group}" if self.group else self.kind

    def path(self, namespace: str | None = None, name: str | None = None, subresource: str = "") -> str:
        base = f"/apis/{self.group}/{self.version}" if self.group else f"/api/{self.version}"
        where = f"{base}/namespaces/{namespace}/{self.plural}" if namespace else f"{base}/{self.plural}"
        return where + (f"/{name}" if name else "") + (f"/{subresource}" if subresource else "")


TASKRUNS = Resource(
    "taskruns", "TaskRun", "tekton.dev", status_subresource=True, tracks_generation=True, custom=True
)
PODS = Resource(
    "pods", "Pod", "", status_subresource=True, tracks_generation=True, create_status={"phase": "Pending"}
)
LEASES = Resource("leases", "Lease", "coordination.k8s.io")
EVENTS = Resource("events", "Event", "")
CONFIGMAPS = Resource("configmaps", "ConfigMap", "")
RESOURCES: tuple[Resource, ...] = (TASKRUNS, PODS, LEASES, EVENTS, CONFIGMAPS)
_BY_URL = {(r.group, r.version, r.plural): r for r in RESOURCES}
_BY_KIND = {(r.api_version, r.kind): r for r in RESOURCES}
_BY_PLURAL = {r.plural: r for r in RESOURCES}

_PATH = re.compile(r"^/(?:api/(?P<core>[^/]+)|apis/(?P<group>[^/]+)/(?P<version>[^/]+))/(?P<rest>.+)$")


@dataclass(frozen=True)
class Target:
    """What a request's path names: a collection (``name`` None), an object, or its subresource."""

    resource: Resource
    namespace: str | None  # None: across all namespaces (list and watch only)
    name: str | None
    subresource: str = ""


def parse_path(path: str) -> Target | None:
    """The object a path names, or None when it is none of :data:`RESOURCES`' paths."""
    match = _PATH.match(path)
    if match is None:
        return None
    group, version = ("", match["core"]) if match["core"] else (match["group"], match["version"])
    parts = [urllib.parse.unquote(p) for p in match["rest"].split("/")]
    namespace: str | None = None
    if parts[0] == "namespaces" and len(parts) >= 3:
        namespace, parts = parts[1], parts[2:]
    resource = _BY_URL.get((group, version, parts[0]))
    if resource is None or not all(parts) or len(parts) > 3:
        return None
    if namespace is None and len(parts) > 1:
        return None  # a namespaced object has no cluster-scoped URL
    name = parts[1] if len(parts) > 1 else None
    subresource = parts[2] if len(parts) > 2 else ""
    if subresource and (subresource != "status" or not resource.status_subresource):
        return None
    return Target(resource, namespace, name, subresource)


def resource_of(obj: Mapping[str, Any]) -> Resource:
    """The resource of an object, by its ``apiVersion`` and ``kind``."""
    resource = _BY_KIND.get((str(obj.get("apiVersion", "")), str(obj.get("kind", ""))))
    if resource is None:
        known = ", ".join(f"{r.api_version} {r.kind}" for r in RESOURCES)
        raise ValueError(f"this server stores {known}; got {obj.get('apiVersion')} {obj.get('kind')}")
    return resource


def resource_named(plural: str) -> Resource:
    try:
        return _BY_PLURAL[plural]
    except KeyError:
        raise ValueError(f"this server stores {', '.join(_BY_PLURAL)}; got {plural!r}") from None


# -- the errors ---------------------------------------------------------------------------------------


def _details(resource: Resource, name: str, **extra: Any) -> dict[str, Any]:
    # Go's omitempty: an empty name or the core group's "" are left out.
    details: dict[str, Any] = {"name": name, "group": resource.group, "kind": resource.plural, **extra}
    return {k: v for k, v in details.items() if v}


def object_not_found(resource: Resource, name: str) -> APIError:
    return APIError(404, f'{resource.qualified} "{name}" not found', _details(resource, name))


def already_exists(resource: Resource, name: str) -> APIError:
    return APIError(
        409, f'{resource.qualified} "{name}" already exists', _details(resource, name), "AlreadyExists"
    )


def conflict(resource: Resource, name: str) -> APIError:
    return APIError(
        409,
        f'Operation cannot be fulfilled on {resource.qualified} "{name}": the object has been modified;'
        " please apply your changes to the latest version and try again",
        _details(resource, name),
        "Conflict",
    )


def forbidden(
    resource: Resource, name: str, user: str, verb: str, subresource: str, namespace: str | None
) -> APIError:
    # responsewriters.forbiddenMessage inside errors.NewForbidden.
    what = resource.plural + (f"/{subresource}" if subresource else "")
    where = f'in the namespace "{namespace}"' if namespace else "at the cluster scope"
    reason = f'User "{user}" cannot {verb} resource "{what}" in API group "{resource.group}" {where}'
    subject = f'{resource.qualified} "{name}"' if name else resource.qualified
    return APIError(403, f"{subject} is forbidden: {reason}", _details(resource, name))


def invalid(
    resource: Resource, name: str, field_path: str, error: str, cause: str = "FieldValueInvalid"
) -> APIError:
    """errors.NewInvalid with one field error, ``error`` its body ("Invalid value: ...: why")."""
    return APIError(
        422,
        f'{resource.qualified_kind} "{name}" is invalid: {field_path}: {error}',
        {
            **_details(resource, name),
            "kind": resource.kind,
            "causes": [{"reason": cause, "message": error, "field": field_path}],
        },
    )


def immutable(resource: Resource, name: str, field_path: str, value: object) -> APIError:
    return invalid(resource, name, field_path, f"Invalid value: {json.dumps(value)}: field is immutable")


def name_mismatch(given: object, url_name: str) -> APIError:
    return bad_request(f"the name of the object ({given}) does not match the name on the URL ({url_name})")


def namespace_mismatch() -> APIError:
    return bad_request(
        "the namespace of the provided object does not match the namespace sent on the request"
    )


def patch_rejected(detail: str) -> APIError:
    """A JSON patch that does not apply: errors.NewGenericServerResponse(422, ...) around its error."""
    return APIError(
        422,
        "the server rejected our request due to an error in our request",
        {"causes": [{"reason": "UnexpectedServerResponse", "message": detail}]},
    )


def bad_request(message: str) -> APIError:
    return APIError(400, message)


def method_not_allowed() -> APIError:
    return APIError(405, "the server does not allow this method on the requested resource")


def expired_status(message: str) -> dict[str, Any]:
    """errors.NewResourceExpired's ``Status`` (410 Expired), as a watch's ERROR event or a list answer."""
    return status_body(410, message, reason="Expired")
