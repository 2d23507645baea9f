"""What a write may change, as the apiserver's registry strategies decide (``PrepareForCreate``,
``PrepareForUpdate``, ``rest.BeforeCreate``/``BeforeUpdate``).

On create the server owns the system fields (uid, creationTimestamp, generation) and, for a resource
with a status subresource, the status.  On update of the main resource the stored status is kept; on
update of ``/status`` only the status is taken, with the request's resourceVersion as precondition.
Both functions return new objects and leave their arguments alone (the store's objects are shared).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from entrypoint.testing.kube.objects import APIError
from entrypoint.testing.kube.resources import (
    Resource,
    bad_request,
    immutable,
    invalid,
    name_mismatch,
    namespace_mismatch,
)

_SYSTEM_FIELDS = ("uid", "creationTimestamp", "generation", "deletionTimestamp", "selfLink", "managedFields")


def check_type(resource: Resource, obj: Mapping[str, Any]) -> dict[str, Any]:
    """``obj`` with its apiVersion and kind, which may be absent but not another's."""
    api_version, kind = obj.get("apiVersion", resource.api_version), obj.get("kind", resource.kind)
    if api_version != resource.api_version:
        raise bad_request(
            f"the API version in the data ({api_version}) does not match the expected API version"
            f" ({resource.api_version})"
        )
    if kind != resource.kind:
        raise bad_request(f"the kind in the data ({kind}) does not match the expected kind ({resource.kind})")
    metadata = obj.get("metadata", {})
    if not isinstance(metadata, dict):
        raise bad_request(f"{resource.kind} in version {resource.version!r}: metadata must be an object")
    return {**obj, "apiVersion": api_version, "kind": kind, "metadata": metadata}


def prepare_create(resource: Resource, obj: Mapping[str, Any], namespace: str) -> dict[str, Any]:
    """A created object as it is stored, before the store names it and gives it a resourceVersion."""
    checked = check_type(resource, obj)
    meta = dict(checked["metadata"])
    if meta.get("namespace", namespace) != namespace:
        raise namespace_mismatch()
    if meta.get("resourceVersion"):
        # etcd3's store refuses it with a plain error, which the apiserver answers as an internal error.
        raise APIError(500, "resourceVersion should not be set on objects to be created")
    if not meta.get("name") and not meta.get("generateName"):
        raise invalid(
            resource,
            "",
            "metadata.name",
            "Required value: name or generateName is required",
            "FieldValueRequired",
        )
    for key in (*_SYSTEM_FIELDS, "resourceVersion"):
        meta.pop(key, None)
    meta["namespace"] = namespace
    created = {**checked, "metadata": meta}
    if resource.status_subresource:
        created.pop("status", None)
        if resource.create_status is not None:
            created["status"] = dict(resource.create_status)
    return created


def prepare_update(
    resource: Resource, old: dict[str, Any], new: Mapping[str, Any], *, status_only: bool
) -> dict[str, Any]:
    """The object an update of ``old`` to ``new`` stores (the store then checks the precondition)."""
    checked = check_type(resource, new)
    old_meta, meta = old["metadata"], dict(checked["metadata"])
    if meta.get("name", old_meta["name"]) != old_meta["name"]:
        raise name_mismatch(meta.get("name"), old_meta["name"])
    if meta.get("namespace", old_meta["namespace"]) != old_meta["namespace"]:
        raise namespace_mismatch()
    if status_only:
        updated = {**old, "metadata": {**old_meta, "resourceVersion": meta.get("resourceVersion")}}
        if "status" in checked:
            updated["status"] = checked["status"]
        else:
            updated.pop("status", None)
        return updated
    if meta.get("uid") and meta["uid"] != old_meta["uid"]:
        raise immutable(resource, old_meta["name"], "metadata.uid", meta["uid"])
    for key in _SYSTEM_FIELDS:
        if key in old_meta:
            meta[key] = old_meta[key]
        else:
            meta.pop(key, None)
    meta["name"], meta["namespace"] = old_meta["name"], old_meta["namespace"]
    updated = {**checked, "metadata": meta}
    if resource.status_subresource:
        if "status" in old:
            updated["status"] = old["status"]
        else:
            updated.pop("status", None)
    return updated
