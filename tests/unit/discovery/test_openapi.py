from __future__ import annotations

import hashlib
import json
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

from miniapi import openapi
from miniapi.resources import RESOURCES, ResourceType

GV_PATHS = ["api/v1", "apis/authentication.k8s.io/v1", "apis/authorization.k8s.io/v1",
            "apis/certificates.k8s.io/v1", "apis/coordination.k8s.io/v1", "apis/rbac.authorization.k8s.io/v1"]


def _ops(doc: dict[str, Any], method: str) -> list[dict[str, Any]]:
    return [item[method] for item in doc["paths"].values() if method in item]


def test_root_lists_every_group_version_with_matching_hash() -> None:
    root = openapi.openapi_v3_root()
    assert sorted(root["paths"]) == sorted(GV_PATHS)
    for path, entry in root["paths"].items():
        url = urlsplit(entry["serverRelativeURL"])
        assert url.path == f"/openapi/v3/{path}"
        [digest] = parse_qs(url.query)["hash"]
        body = openapi.openapi_v3_doc_bytes(path)
        assert body is not None
        assert digest == hashlib.sha512(body).hexdigest().upper()
        assert json.loads(body) == openapi.openapi_v3_doc(path)


def test_hash_is_stable_and_distinct() -> None:
    first = [openapi.openapi_v3_hash(p) for p in GV_PATHS]
    assert first == [openapi.openapi_v3_hash(p) for p in GV_PATHS]
    assert len(set(first)) == len(GV_PATHS)


def test_doc_is_a_copy() -> None:
    doc = openapi.openapi_v3_doc("api/v1")
    assert doc is not None
    doc["paths"].clear()
    assert openapi.openapi_v3_doc("api/v1")["paths"]  # type: ignore[index]


@pytest.mark.parametrize("rt", RESOURCES, ids=lambda rt: rt.key)
def test_every_kind_has_a_patch_with_field_validation(rt: ResourceType) -> None:
    doc = openapi.openapi_v3_doc(openapi.gv_path(rt.group, rt.version))
    assert doc is not None and doc["openapi"].startswith("3.")
    gvk = {"group": rt.group, "version": rt.version, "kind": rt.kind}
    patches = [op for op in _ops(doc, "patch") if op["x-kubernetes-group-version-kind"] == gvk]
    assert patches
    posts = [op for op in _ops(doc, "post") if op["x-kubernetes-group-version-kind"] == gvk]
    assert len(posts) == 1
    schema = doc["components"]["schemas"][openapi.schema_name(rt)]
    assert schema["x-kubernetes-group-version-kind"] == [gvk]


@pytest.mark.parametrize("path", GV_PATHS)
def test_patch_ops_follow_the_rules(path: str) -> None:
    doc = openapi.openapi_v3_doc(path)
    assert doc is not None
    for op in _ops(doc, "patch"):
        params = {(p["name"], p["in"]) for p in op["parameters"]}
        assert ("fieldValidation", "query") in params  # rule 1
        assert "requestBody" not in op  # rule 2: kubectl apply falls back to its built-in types


def test_names_follow_the_real_spec() -> None:
    by_key = {rt.key: rt for rt in RESOURCES}
    assert openapi.schema_name(by_key["pods"]) == "io.k8s.api.core.v1.Pod"
    assert openapi.schema_name(by_key["roles.rbac.authorization.k8s.io"]) == "io.k8s.api.rbac.v1.Role"
    doc = openapi.openapi_v3_doc("api/v1")
    assert doc is not None
    assert "/api/v1/namespaces/{namespace}/pods/{name}" in doc["paths"]
    assert "/api/v1/nodes/{name}" in doc["paths"]
    assert "/api/v1/pods" in doc["paths"]  # list across namespaces


@pytest.mark.parametrize("path", ["apis/apps/v1", "api/v2", "", "version"])
def test_unknown_paths(path: str) -> None:
    assert openapi.openapi_v3_doc(path) is None
    assert openapi.openapi_v3_doc_bytes(path) is None
    assert openapi.openapi_v3_hash(path) is None
