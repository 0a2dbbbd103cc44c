"""requestinfo.parse: the table of URL shapes from k8s.io/apiserver's requestinfo_test.go, plus
hypothesis: any method and path parse without raising."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from miniapi.requestinfo import RequestInfo, parse

RBAC = "rbac.authorization.k8s.io"

# method, path, query -> verb, api_group, namespace, resource, name, subresource
CASES = [
    ("GET", "/api/v1/namespaces", {}, "list", "", "", "namespaces", "", ""),
    ("GET", "/api/v1/namespaces/default", {}, "get", "", "default", "namespaces", "default", ""),
    ("DELETE", "/api/v1/namespaces/other", {}, "delete", "", "other", "namespaces", "other", ""),
    ("GET", "/api/v1/pods", {}, "list", "", "", "pods", "", ""),
    ("GET", "/api/v1/namespaces/default/pods", {}, "list", "", "default", "pods", "", ""),
    ("HEAD", "/api/v1/namespaces/default/pods/p1", {}, "get", "", "default", "pods", "p1", ""),
    ("GET", "/api/v1/namespaces/default/pods/p1", {}, "get", "", "default", "pods", "p1", ""),
    ("GET", "/api/v1/namespaces/default/pods", {"watch": "true"}, "watch", "", "default", "pods", "", ""),
    ("GET", "/api/v1/namespaces/default/pods", {"watch": "1"}, "watch", "", "default", "pods", "", ""),
    ("GET", "/api/v1/namespaces/default/pods", {"watch": "false"}, "list", "", "default", "pods", "", ""),
    ("GET", "/api/v1/watch/pods", {}, "watch", "", "", "pods", "", ""),
    ("GET", "/api/v1/watch/namespaces/default/pods", {}, "watch", "", "default", "pods", "", ""),
    ("GET", "/api/v1/watch/namespaces/default/pods/p1", {}, "watch", "", "default", "pods", "p1", ""),
    ("POST", "/api/v1/namespaces/default/pods", {}, "create", "", "default", "pods", "", ""),
    ("PUT", "/api/v1/namespaces/default/pods/p1", {}, "update", "", "default", "pods", "p1", ""),
    ("PATCH", "/api/v1/namespaces/default/pods/p1", {}, "patch", "", "default", "pods", "p1", ""),
    ("DELETE", "/api/v1/namespaces/default/pods/p1", {}, "delete", "", "default", "pods", "p1", ""),
    ("DELETE", "/api/v1/namespaces/default/pods", {}, "deletecollection", "", "default", "pods", "", ""),
    ("PUT", "/api/v1/namespaces/default/pods/p1/status", {}, "update", "", "default", "pods", "p1",
     "status"),
    ("GET", "/api/v1/namespaces/default/pods/p1/log", {}, "get", "", "default", "pods", "p1", "log"),
    ("POST", "/api/v1/namespaces/default/pods/p1/exec", {}, "create", "", "default", "pods", "p1", "exec"),
    ("GET", "/api/v1/namespaces/default/pods/p1/exec", {}, "get", "", "default", "pods", "p1", "exec"),
    ("POST", "/api/v1/namespaces/ns/serviceaccounts/default/token", {}, "create", "", "ns",
     "serviceaccounts", "default", "token"),
    ("GET", "/api/v1/nodes/node1/proxy/stats", {}, "get", "", "", "nodes", "node1", "proxy"),
    ("PATCH", f"/apis/{RBAC}/v1/clusterroles/admin", {}, "patch", RBAC, "", "clusterroles", "admin", ""),
    ("GET", f"/apis/{RBAC}/v1/namespaces/ns/rolebindings", {}, "list", RBAC, "ns", "rolebindings", "", ""),
    ("PUT", "/apis/certificates.k8s.io/v1/certificatesigningrequests/csr1/approval", {}, "update",
     "certificates.k8s.io", "", "certificatesigningrequests", "csr1", "approval"),
    ("POST", "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews", {}, "create",
     "authorization.k8s.io", "", "selfsubjectaccessreviews", "", ""),
    ("GET", "/api/v1/namespaces//pods", {}, "list", "", "", "pods", "", ""),  # the router 404s this
]


@pytest.mark.parametrize("method, path, query, verb, group, namespace, resource, name, sub", CASES,
                         ids=[f"{c[0]} {c[1]}{'?' + str(c[2]) if c[2] else ''}" for c in CASES])
def test_resource_requests(method: str, path: str, query: dict[str, str], verb: str, group: str,
                           namespace: str, resource: str, name: str, sub: str) -> None:
    info = parse(method, path, query)
    assert info.is_resource_request
    assert (info.verb, info.api_group, info.namespace, info.resource, info.name, info.subresource) == (
        verb, group, namespace, resource, name, sub)
    assert info.api_version == "v1"


@pytest.mark.parametrize("sub", ["status", "finalize"])
def test_namespace_subresources(sub: str) -> None:
    info = parse("PUT", f"/api/v1/namespaces/ns1/{sub}")
    assert (info.resource, info.name, info.subresource, info.namespace) == ("namespaces", "ns1", sub, "ns1")


@pytest.mark.parametrize("method, path, verb", [
    ("GET", "/healthz", "get"),
    ("GET", "/readyz/etcd", "get"),
    ("POST", "/healthz", "post"),
    ("GET", "/", "get"),
    ("GET", "", "get"),
    ("GET", "/api", "get"),
    ("GET", "/apis", "get"),
    ("GET", "/apis/rbac.authorization.k8s.io", "get"),
    ("GET", "/openapi/v3/api/v1", "get"),
    ("PUT", "/version", "put"),
    ("GET", "/apiextensions/v1", "get"),
], ids=lambda v: v if isinstance(v, str) and v.startswith("/") else None)
def test_non_resource_requests(method: str, path: str, verb: str) -> None:
    info = parse(method, path)
    assert not info.is_resource_request
    assert (info.verb, info.path, info.resource, info.name) == (verb, path, "", "")


@pytest.mark.parametrize("path, group, version", [
    ("/api/v1", "", "v1"),
    (f"/apis/{RBAC}/v1", RBAC, "v1"),
])
def test_group_version_roots_are_discovery(path: str, group: str, version: str) -> None:
    info = parse("GET", path)
    assert not info.is_resource_request
    assert (info.api_group, info.api_version) == (group, version)


def test_unknown_method_passes_through_lowercased() -> None:
    assert parse("OPTIONS", "/api/v1/pods").verb == "options"
    assert parse("options", "/healthz").verb == "options"


METHODS = st.sampled_from(["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "get"]) | st.text(
    max_size=8)
SEGMENT = st.sampled_from(["api", "apis", "v1", "namespaces", "watch", "pods", "p1", "status", "", ".."]) \
    | st.text(max_size=10)


@given(method=METHODS, segments=st.lists(SEGMENT, max_size=8), lead=st.sampled_from(["/", "", "//"]),
       query=st.dictionaries(st.sampled_from(["watch", "x"]), st.text(max_size=5), max_size=2))
def test_parse_never_raises(method: str, segments: list[str], lead: str, query: dict[str, str]) -> None:
    path = lead + "/".join(segments)
    info = parse(method, path, query)
    assert isinstance(info, RequestInfo) and info.path == path and isinstance(info.verb, str)
    if info.is_resource_request:
        assert info.api_prefix in ("api", "apis") and info.resource == info.parts[0]
        assert info.verb in ("get", "list", "watch", "create", "update", "patch", "delete",
                             "deletecollection") or info.verb == method.lower()


# -- the filter's remembered parses -------------------------------------------------------------------

@pytest.mark.parametrize(("method", "path", "watch"), [
    ("GET", "/api/v1/namespaces/default/pods", None), ("GET", "/api/v1/namespaces/default/pods", "true"),
    ("GET", "/api/v1/namespaces/default/pods", "0"), ("HEAD", "/api/v1/namespaces/default/pods/p", "1"),
    ("DELETE", "/api/v1/namespaces/default/pods", None), ("get", "/healthz", None),
])
def test_remembered_parse_equals_the_parse(method: str, path: str, watch: str | None) -> None:
    from miniapi.filters.requestinfo import request_info

    query = {"watch": watch} if watch is not None else {}
    first = request_info(method, path, watch)
    assert first == parse(method, path, query)
    assert request_info(method, path, watch) is first  # remembered
    other = "true" if watch in (None, "0") else None
    assert request_info(method, path, other) == parse(method, path, {"watch": other} if other else {})


def test_remembered_parses_are_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    from miniapi.filters import requestinfo as module

    monkeypatch.setattr(module, "CACHE_SIZE", 4)
    monkeypatch.setattr(module, "_parsed", {})
    for i in range(10):
        assert module.request_info("GET", f"/api/v1/namespaces/n{i}/pods", None).namespace == f"n{i}"
    assert len(module._parsed) == 4
    long_path = "/api/v1/namespaces/default/pods/" + "p" * module.CACHE_MAX_PATH
    assert module.request_info("GET", long_path, None).name.startswith("ppp")
    assert all(k[1] != long_path for k in module._parsed)
