"""Per-resource strategy: defaults, validation, and the hooks the generic REST handlers call.

Mirrors k8s.io/apiserver's rest.RESTCreateStrategy / RESTUpdateStrategy: the REST layer owns the
request flow (decode, preconditions, store calls, responses); a :class:`Strategy` owns what is specific
to one kind:

1. ``prepare_create`` sets defaults and server-owned fields (status reset, requester identity...);
2. ``validate`` returns field causes (``{"reason","message","field"}``) -> 422 Invalid;
3. ``prepare_update`` keeps what a main-resource write must not change (status, immutable fields),
   ``prepare_status_update`` keeps everything but status;
4. ``delete`` decides between immediate and graceful deletion; ``after_delete`` cleans up.
"""

from __future__ import annotations

import datetime as dt
import re
import uuid
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from miniapi.requestinfo import RequestInfo
from miniapi.resources import ResourceType
from miniapi.user import UserInfo

if TYPE_CHECKING:
    from miniapi.server import APIServer

Obj = dict[str, Any]
Cause = dict[str, str]

DNS1123_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
DNS1123_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_SUBDOMAIN_MSG = ("a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' "
                  "or '.', and must start and end with an alphanumeric character (e.g. 'example.com', "
                  "regex used for validation is "
                  "'[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')")
_LABEL_MSG = ("a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and "
              "must start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex "
              "used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')")


def now_rfc3339() -> str:
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def cause(field: str, message: str, reason: str = "FieldValueInvalid") -> Cause:
    return {"reason": reason, "message": message, "field": field}


def required(field: str) -> Cause:
    return cause(field, "Required value", "FieldValueRequired")


def invalid_value(field: str, value: object, why: str) -> Cause:
    shown = f'"{value}"' if isinstance(value, str) else str(value)
    return cause(field, f"Invalid value: {shown}: {why}")


@dataclass
class Ctx:
    """What a strategy hook may look at: the server, who is asking, and the parsed request."""

    server: APIServer
    user: UserInfo
    info: RequestInfo
    dry_run: bool = False


def name_rule_subdomain(name: str) -> str | None:
    if len(name) > 253:
        return "must be no more than 253 characters"
    return None if DNS1123_SUBDOMAIN.match(name) else _SUBDOMAIN_MSG


def name_rule_label(name: str) -> str | None:
    if len(name) > 63:
        return "must be no more than 63 characters"
    return None if DNS1123_LABEL.match(name) else _LABEL_MSG


def name_rule_path_segment(name: str) -> str | None:
    if name in (".", ".."):
        return f"may not be '{name}'"
    for bad in ("/", "%"):
        if bad in name:
            return f"may not contain '{bad}'"
    return None


def _string_map(meta: Obj, key: str) -> list[Cause]:
    value = meta.get(key)
    if value is None:
        return []
    if not isinstance(value, dict) or not all(isinstance(k, str) and isinstance(v, str)
                                              for k, v in value.items()):
        return [cause(f"metadata.{key}", "Invalid value: must be a map of string keys to string values")]
    return []


class Strategy:
    """Defaults for a kind with no special rules; subclasses override the hooks they need."""

    name_rule = staticmethod(name_rule_subdomain)
    has_status = False

    def __init__(self, rt: ResourceType) -> None:
        self.rt = rt

    # -- create ---------------------------------------------------------------------------------
    async def prepare_create(self, ctx: Ctx, obj: Obj) -> None:
        if self.has_status:
            obj["status"] = self.initial_status(obj)

    def initial_status(self, obj: Obj) -> Obj:
        return {}

    def validate(self, obj: Obj) -> list[Cause]:
        return self.validate_metadata(obj)

    def validate_metadata(self, obj: Obj) -> list[Cause]:
        meta = obj.get("metadata")
        if not isinstance(meta, dict):
            return [required("metadata")]
        causes: list[Cause] = []
        name = meta.get("name")
        if not isinstance(name, str) or not name:
            causes.append(cause("metadata.name", "name or generateName is required",
                                "FieldValueRequired"))
        else:
            why = self.name_rule(name)
            if why:
                causes.append(invalid_value("metadata.name", name, why))
        causes += _string_map(meta, "labels") + _string_map(meta, "annotations")
        return causes

    # -- update ---------------------------------------------------------------------------------
    async def prepare_update(self, ctx: Ctx, new: Obj, old: Obj) -> None:
        if self.has_status:
            if "status" in old:
                new["status"] = old["status"]
            else:
                new.pop("status", None)

    async def prepare_status_update(self, ctx: Ctx, new: Obj, old: Obj) -> None:
        status = new.get("status")
        for key in list(new):
            if key not in ("status", "apiVersion", "kind"):
                new.pop(key)
        new.update({k: v for k, v in old.items() if k != "status"})
        if status is not None:
            new["status"] = status
        else:
            new.pop("status", None)

    def validate_update(self, new: Obj, old: Obj) -> list[Cause]:
        return self.validate(new)

    # -- delete ---------------------------------------------------------------------------------
    def graceful(self, obj: Obj, grace_seconds: int | None) -> bool:
        """True when deletion should only mark the object (deletionTimestamp) for someone to finish."""
        return False

    async def after_create(self, ctx: Ctx, obj: Obj) -> None:
        return None

    async def after_delete(self, ctx: Ctx, obj: Obj) -> None:
        return None


def stamp_new(obj: Obj) -> None:
    """Server-owned metadata of a new object."""
    meta = obj.setdefault("metadata", {})
    meta["uid"] = str(uuid.uuid4())
    meta["creationTimestamp"] = now_rfc3339()
    for key in ("resourceVersion", "deletionTimestamp", "deletionGracePeriodSeconds", "selfLink"):
        meta.pop(key, None)
    if "generation" in meta or isinstance(obj.get("spec"), dict):
        meta["generation"] = 1
    drop_empty_metadata(meta)


def keep_immutable_metadata(new: Obj, old: Obj) -> None:
    """uid, creationTimestamp, deletionTimestamp... come from the stored object, never the client."""
    nm, om = new.setdefault("metadata", {}), old.get("metadata", {})
    for key in ("uid", "creationTimestamp", "deletionTimestamp", "deletionGracePeriodSeconds",
                "namespace", "name"):
        if key in om:
            nm[key] = om[key]
        else:
            nm.pop(key, None)
    if "generation" in om:
        nm["generation"] = om["generation"] + (1 if new.get("spec") != old.get("spec") else 0)
    drop_empty_metadata(nm)


# ObjectMeta fields tagged ``omitempty`` whose zero value is an empty map or list.
_OMIT_EMPTY = ("labels", "annotations", "finalizers", "ownerReferences", "managedFields")


def drop_empty_metadata(meta: Obj) -> None:
    """Drop ``labels: {}`` and the like, as a Go round trip does: removing the last label (a merge
    patch ``{"labels":{"app":null}}``, ``kubectl label pod p app-``) leaves no ``labels`` key at all."""
    for key in _OMIT_EMPTY:
        if key in meta and meta[key] in ({}, [], None):
            del meta[key]
