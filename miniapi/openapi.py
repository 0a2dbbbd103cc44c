"""A minimal OpenAPI v3 so that kubectl's default ``--validate=strict`` trusts the server.

kubectl (cli-runtime ``query_param_verifier_v3.go``) decides where to validate a manifest:

1. ``GET /openapi/v3`` lists one path per group-version (:func:`openapi_v3_root`)::

       {"paths": {"api/v1": {"serverRelativeURL": "/openapi/v3/api/v1?hash=9F3A..."}, ...}}

2. It fetches that group-version's document (:func:`openapi_v3_doc`) and looks for a PATCH
   operation tagged with the kind's ``x-kubernetes-group-version-kind`` that lists the
   ``fieldValidation`` query parameter. Found => it sends ``?fieldValidation=Strict`` and leaves
   validation to the server. Missing => it falls back to ``/openapi/v2`` (protobuf), which we do not
   serve, and fails with "failed to download openapi".

Rules this module keeps:

1. Every PATCH operation carrying a GVK also lists ``fieldValidation`` (kubectl stops at the first
   PATCH operation for the GVK it meets, in map order).
2. PATCH operations carry **no requestBody**. ``kubectl apply`` computes strategic-merge patches from
   the OpenAPI schema only if the PATCH operation advertises
   ``application/strategic-merge-patch+json``; our schemas are loose (no merge keys), so we let it fall
   back to its compiled-in Go types, which give the same patches as a full real spec.
3. Create-only review kinds (TokenReview, SubjectAccessReview, ...) also get a PATCH operation,
   which the real spec does not have: a real kubectl then falls back to ``/openapi/v2``, which we
   do not serve, and ``kubectl create -f tokenreview.yaml`` would fail. The PATCH itself is still
   refused (discovery lists only ``create``).
4. The ``?hash=`` is the upper-case hex SHA-512 of the exact bytes of :func:`openapi_v3_doc_bytes`,
   like the real apiserver; serve those bytes so the hash matches what clients cache.

Pure functions over :mod:`miniapi.resources`; documents are computed once and cached.
"""

from __future__ import annotations

import hashlib
import json
from functools import cache
from typing import Any

from miniapi.resources import GROUPS, RESOURCES, ResourceType, versions_of

_FIELD_VALIDATION = {
    "name": "fieldValidation", "in": "query", "schema": {"type": "string", "uniqueItems": True},
    "description": "fieldValidation instructs the server on how to handle objects in the request "
                   "(POST/PUT/PATCH) containing unknown or duplicate fields. Valid values are: "
                   "Ignore, Warn (the default), Strict.",
}
_DRY_RUN = {"name": "dryRun", "in": "query", "schema": {"type": "string", "uniqueItems": True},
            "description": "When present, indicates that modifications should not be persisted."}
_FIELD_MANAGER = {"name": "fieldManager", "in": "query", "schema": {"type": "string", "uniqueItems": True},
                  "description": "fieldManager is a name associated with the actor or entity that is "
                                 "making these changes."}
_FORCE = {"name": "force", "in": "query", "schema": {"type": "boolean", "uniqueItems": True},
          "description": "Force is going to \"force\" Apply requests. Must be unset for non-apply "
                         "patch requests."}
_WRITE_PARAMS = [_DRY_RUN, _FIELD_MANAGER, _FIELD_VALIDATION]


def gv_path(group: str, version: str) -> str:
    """``api/v1`` or ``apis/rbac.authorization.k8s.io/v1`` (the keys of the v3 root)."""
    return f"apis/{group}/{version}" if group else f"api/{version}"


def schema_name(rt: ResourceType) -> str:
    """The real component name: ``io.k8s.api.core.v1.Pod``, ``io.k8s.api.rbac.v1.Role``."""
    package = rt.group.split(".")[0] if rt.group else "core"
    return f"io.k8s.api.{package}.{rt.version}.{rt.kind}"


def _gvk(rt: ResourceType) -> dict[str, str]:
    return {"group": rt.group, "version": rt.version, "kind": rt.kind}


def _ref(rt: ResourceType) -> dict[str, Any]:
    return {"$ref": f"#/components/schemas/{schema_name(rt)}"}


def _op(rt: ResourceType, action: str, verb: str, params: list[dict[str, Any]],
        body: bool = False) -> dict[str, Any]:
    op: dict[str, Any] = {
        "tags": [rt.group_version.replace("/", "_")],
        "description": f"{verb} {rt.kind}",
        "operationId": f"{verb}{rt.kind}",
        "parameters": params,
        "responses": {"200": {"description": "OK",
                              "content": {"application/json": {"schema": _ref(rt)}}},
                      "401": {"description": "Unauthorized"}},
        "x-kubernetes-action": action,
        "x-kubernetes-group-version-kind": _gvk(rt),
    }
    if body:
        op["requestBody"] = {"content": {"*/*": {"schema": _ref(rt)}}, "required": True}
    return op


def _paths_for(rt: ResourceType) -> dict[str, dict[str, Any]]:
    base = f"/{gv_path(rt.group, rt.version)}"
    scope = f"{base}/namespaces/{{namespace}}" if rt.namespaced else base
    collection = f"{scope}/{rt.resource}"
    if not rt.stored:  # create-only review kinds; the PATCH op is rule 3 in the docstring
        return {collection: {"post": _op(rt, "post", "create", _WRITE_PARAMS, body=True),
                             "patch": _op(rt, "patch", "patch", _WRITE_PARAMS)}}
    item = f"{collection}/{{name}}"
    paths: dict[str, dict[str, Any]] = {
        collection: {"get": _op(rt, "list", "list", []),
                     "post": _op(rt, "post", "create", _WRITE_PARAMS, body=True)},
        item: {"get": _op(rt, "get", "read", []),
               "put": _op(rt, "put", "replace", _WRITE_PARAMS, body=True),
               "patch": _op(rt, "patch", "patch", [*_WRITE_PARAMS, _FORCE]),
               "delete": _op(rt, "delete", "delete", [_DRY_RUN])},
    }
    if rt.namespaced:
        paths[f"{base}/{rt.resource}"] = {"get": _op(rt, "list", "listForAllNamespaces", [])}
    return paths


def _schema(rt: ResourceType) -> dict[str, Any]:
    return {
        "description": f"{rt.kind} ({rt.group_version}). Schema kept loose by this teaching "
                       "apiserver; the server validates fields.",
        "type": "object",
        "properties": {
            "apiVersion": {"type": "string", "description": "APIVersion defines the versioned schema "
                           "of this representation of an object."},
            "kind": {"type": "string", "description": "Kind is a string value representing the REST "
                     "resource this object represents."},
            "metadata": {"type": "object", "description": "Standard object's metadata."},
        },
        "x-kubernetes-group-version-kind": [_gvk(rt)],
    }


def _all_gv_paths() -> list[str]:
    return [gv_path(g, v) for g in GROUPS for v in versions_of(g)]


@cache
def _doc(path: str) -> dict[str, Any] | None:
    kinds = [rt for rt in RESOURCES if gv_path(rt.group, rt.version) == path]
    if not kinds:
        return None
    paths: dict[str, dict[str, Any]] = {}
    for rt in kinds:
        paths.update(_paths_for(rt))
    return {
        "openapi": "3.0.0",
        "info": {"title": "Kubernetes (mini control plane)", "version": "v1.37.0"},
        "paths": dict(sorted(paths.items())),
        "components": {"schemas": {schema_name(rt): _schema(rt) for rt in kinds}},
    }


def openapi_v3_doc(gv_path: str) -> dict[str, Any] | None:
    """The document for ``/openapi/v3/<gv_path>`` (``api/v1``), or None (404). A fresh copy."""
    doc = _doc(gv_path.strip("/"))
    return json.loads(json.dumps(doc)) if doc is not None else None


@cache
def openapi_v3_doc_bytes(gv_path: str) -> bytes | None:
    """Canonical serialisation of :func:`openapi_v3_doc`; the bytes the hash is computed over."""
    doc = _doc(gv_path.strip("/"))
    if doc is None:
        return None
    return json.dumps(doc, sort_keys=True, separators=(",", ":")).encode()


def openapi_v3_hash(gv_path: str) -> str | None:
    """Upper-case hex SHA-512 of the document bytes, as in the real ``?hash=``."""
    body = openapi_v3_doc_bytes(gv_path)
    return hashlib.sha512(body).hexdigest().upper() if body is not None else None


def openapi_v3_root() -> dict[str, Any]:
    """``GET /openapi/v3``: every group-version with a hash-pinned URL."""
    return {"paths": {p: {"serverRelativeURL": f"/openapi/v3/{p}?hash={openapi_v3_hash(p)}"}
                      for p in _all_gv_paths()}}
