"""API discovery documents, built from the resource catalogue (:mod:`miniapi.resources`).

kubectl starts almost every command by asking what the server serves (PROTOCOLS.md 1.1):

1. ``GET /api`` and ``GET /apis`` with
   ``Accept: application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList,application/json``.
2. If the reply's Content-Type carries ``g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList`` the
   client has everything in two requests (*aggregated* discovery, :func:`aggregated_core`,
   :func:`aggregated_groups`).
3. Otherwise it reads the *legacy* documents: ``/api`` (:func:`api_versions`), ``/apis``
   (:func:`api_group_list`), then ``/api/v1`` and every ``/apis/<g>/<v>`` (:func:`api_resource_list`).

One aggregated resource entry on the wire::

    {"resource": "pods", "responseKind": {"group": "", "version": "v1", "kind": "Pod"},
     "scope": "Namespaced", "singularResource": "pod", "shortNames": ["po"], "categories": ["all"],
     "verbs": ["create", "delete", ...],
     "subresources": [{"subresource": "log", "responseKind": {"group": "", "version": "v1",
                       "kind": "Pod"}, "verbs": ["get"]}]}

and its legacy twin in an APIResourceList::

    {"name": "pods", "singularName": "pod", "namespaced": true, "kind": "Pod", "verbs": [...],
     "shortNames": ["po"], "categories": ["all"]}
    {"name": "pods/log", "singularName": "", "namespaced": true, "kind": "Pod", "verbs": ["get"]}

Pure functions, no I/O: the HTTP layer picks the document and the Content-Type.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from miniapi.resources import GROUPS, RESOURCES, ResourceType, Subresource, versions_of

AGGREGATED_CONTENT_TYPE = "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList"

# kubectl get all == every resource in category "all"; of ours, only pods and services are in it
# (k8s pkg/registry/core/{pod,service}/storage: Categories() -> ["all"]).
CATEGORIES: dict[str, tuple[str, ...]] = {"pods": ("all",), "services": ("all",)}


@dataclass(frozen=True)
class MediaRange:
    """One element of an Accept header: ``application/json;as=Table;v=v1;g=meta.k8s.io``."""

    type: str
    params: dict[str, str] = field(default_factory=dict)


def parse_accept(header: str | None) -> list[MediaRange]:
    """Split an Accept header into media ranges; parameter names lower-cased, order kept."""
    out: list[MediaRange] = []
    for part in (header or "").split(","):
        pieces = [p.strip() for p in part.split(";")]
        if not pieces[0]:
            continue
        params: dict[str, str] = {}
        for p in pieces[1:]:
            name, sep, value = p.partition("=")
            if sep:
                params[name.strip().lower()] = value.strip().strip('"')
        out.append(MediaRange(pieces[0].lower(), params))
    return out


def accepts_aggregated(accept_header: str | None) -> bool:
    """True if the client asked for APIGroupDiscoveryList v2 (parameters in any order)."""
    for mr in parse_accept(accept_header):
        p = mr.params
        if (mr.type == "application/json" and p.get("g") == "apidiscovery.k8s.io"
                and p.get("v") == "v2" and p.get("as") == "APIGroupDiscoveryList"
                and p.get("q", "1") not in ("0", "0.0")):
            return True
    return False


def _resources_in(group: str, version: str) -> list[ResourceType]:
    return sorted((r for r in RESOURCES if r.group == group and r.version == version),
                  key=lambda r: r.resource)


def _gv(group: str, version: str) -> str:
    return f"{group}/{version}" if group else version


# --- aggregated (apidiscovery.k8s.io/v2) -----------------------------------------------------------

def _kind_ref(group: str, version: str, kind: str) -> dict[str, str]:
    return {"group": group, "version": version, "kind": kind}


def _aggregated_subresource(rt: ResourceType, sub: Subresource) -> dict[str, Any]:
    return {"subresource": sub.name,
            "responseKind": _kind_ref(sub.group, sub.version, sub.kind),
            "verbs": list(sub.verbs)}


def _aggregated_resource(rt: ResourceType) -> dict[str, Any]:
    out: dict[str, Any] = {
        "resource": rt.resource,
        "responseKind": _kind_ref(rt.group, rt.version, rt.kind),
        "scope": "Namespaced" if rt.namespaced else "Cluster",
        "singularResource": rt.singular,
    }
    if rt.short_names:
        out["shortNames"] = list(rt.short_names)
    if rt.key in CATEGORIES:
        out["categories"] = list(CATEGORIES[rt.key])
    out["verbs"] = list(rt.verbs)
    if rt.subresources:
        out["subresources"] = [_aggregated_subresource(rt, s)
                               for s in sorted(rt.subresources, key=lambda s: s.name)]
    return out


def _aggregated_group(group: str) -> dict[str, Any]:
    versions = [{"version": v, "freshness": "Current",
                 "resources": [_aggregated_resource(r) for r in _resources_in(group, v)]}
                for v in versions_of(group)]
    return {"metadata": {"name": group, "creationTimestamp": None}, "versions": versions}


def _discovery_list(groups: Iterator[str]) -> dict[str, Any]:
    return {"kind": "APIGroupDiscoveryList", "apiVersion": "apidiscovery.k8s.io/v2",
            "metadata": {}, "items": [_aggregated_group(g) for g in groups]}


def aggregated_core() -> dict[str, Any]:
    """Body of ``GET /api`` when :func:`accepts_aggregated`: the legacy core group only."""
    return _discovery_list(iter([""]))


def aggregated_groups() -> dict[str, Any]:
    """Body of ``GET /apis`` when :func:`accepts_aggregated`: every named group."""
    return _discovery_list(g for g in GROUPS if g)


# --- legacy documents ------------------------------------------------------------------------------

def api_versions(server_address: str) -> dict[str, Any]:
    """``GET /api`` (legacy): APIVersions; *server_address* is ``host:port`` clients should use."""
    return {"kind": "APIVersions", "versions": list(versions_of("")),
            "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0",
                                            "serverAddress": server_address}]}


def _group_doc(group: str) -> dict[str, Any]:
    versions = [{"groupVersion": _gv(group, v), "version": v} for v in versions_of(group)]
    return {"name": group, "versions": versions, "preferredVersion": versions[0]}


def api_group_list() -> dict[str, Any]:
    """``GET /apis`` (legacy): every named group and its preferred version."""
    return {"kind": "APIGroupList", "apiVersion": "v1",
            "groups": [_group_doc(g) for g in GROUPS if g]}


def api_group(group: str) -> dict[str, Any] | None:
    """``GET /apis/<group>``: one APIGroup, or None (404) for a group we do not serve."""
    if not group or group not in GROUPS:
        return None
    return {"kind": "APIGroup", "apiVersion": "v1", **_group_doc(group)}


def _legacy_resource(rt: ResourceType) -> dict[str, Any]:
    out: dict[str, Any] = {"name": rt.resource, "singularName": rt.singular,
                           "namespaced": rt.namespaced, "kind": rt.kind, "verbs": list(rt.verbs)}
    if rt.short_names:
        out["shortNames"] = list(rt.short_names)
    if rt.key in CATEGORIES:
        out["categories"] = list(CATEGORIES[rt.key])
    return out


def _legacy_subresource(rt: ResourceType, sub: Subresource) -> dict[str, Any]:
    out: dict[str, Any] = {"name": f"{rt.resource}/{sub.name}", "singularName": "",
                           "namespaced": rt.namespaced}
    if (sub.group, sub.version) != (rt.group, rt.version):
        # e.g. serviceaccounts/token answers authentication.k8s.io/v1 TokenRequest
        out["group"], out["version"] = sub.group, sub.version
    out["kind"] = sub.kind
    out["verbs"] = list(sub.verbs)
    return out


def api_resource_list(group: str, version: str) -> dict[str, Any] | None:
    """``GET /api/v1`` or ``GET /apis/<group>/<version>``: APIResourceList, or None (404)."""
    if group not in GROUPS or version not in versions_of(group):
        return None
    resources: list[dict[str, Any]] = []
    for rt in _resources_in(group, version):
        resources.append(_legacy_resource(rt))
        resources.extend(_legacy_subresource(rt, s)
                         for s in sorted(rt.subresources, key=lambda s: s.name))
    return {"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": _gv(group, version),
            "resources": resources}
