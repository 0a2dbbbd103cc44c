"""The filters' remembered values: Attributes per (user object, RequestInfo object)."""

from __future__ import annotations

import pytest

from miniapi.filters import authorization
from miniapi.requestinfo import parse
from miniapi.user import UserInfo


def test_attributes_are_reused_only_for_the_same_objects(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(authorization, "_attributes", {})
    alice, info = UserInfo("alice", groups=("devs",)), parse("GET", "/api/v1/namespaces/ns/pods/p")
    first = authorization.attributes_of(alice, info)
    assert (first.user, first.verb, first.namespace, first.resource, first.name, first.path) == (
        alice, "get", "ns", "pods", "p", "/api/v1/namespaces/ns/pods/p")
    assert authorization.attributes_of(alice, info) is first
    # an equal but distinct user or request info gets its own (equal) Attributes
    twin = UserInfo("alice", groups=("devs",))
    assert authorization.attributes_of(twin, info) == first
    other = authorization.attributes_of(UserInfo("alice", groups=("devs", "admins")), info)
    assert other.user.groups == ("devs", "admins")
    listing = authorization.attributes_of(alice, parse("GET", "/api/v1/namespaces/ns/pods"))
    assert (listing.verb, listing.name) == ("list", "")


def test_remembered_attributes_are_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(authorization, "_attributes", {})
    monkeypatch.setattr(authorization, "CACHE_SIZE", 5)
    users = [UserInfo(f"u{i}") for i in range(20)]
    info = parse("GET", "/healthz")
    for u in users:
        assert authorization.attributes_of(u, info).user is u
    assert len(authorization._attributes) == 5
    long_path = parse("GET", "/" + "x" * authorization.CACHE_MAX_PATH)  # never held by a cache
    assert authorization.attributes_of(users[0], long_path).path == long_path.path
    assert all(entry[1] is not long_path for entry in authorization._attributes.values())


def test_routes_are_remembered_per_request_info_object(monkeypatch: pytest.MonkeyPatch) -> None:
    from types import SimpleNamespace

    from miniapi import app as app_module
    from miniapi.errors import ApiError

    router = app_module.Router(SimpleNamespace(config=SimpleNamespace()))  # type: ignore[arg-type]
    pods = parse("GET", "/api/v1/namespaces/ns/pods/p")
    rt = router.resource_type(pods)
    assert rt.resource == "pods" and router.resource_type(pods) is rt
    for bad in ("/api/v1/namespaces/ns/nosuch/p", "/api/v2/namespaces/ns/pods/p", "/api/v1/namespaces//pods"):
        info = parse("GET", bad)
        for _ in range(2):  # errors are never remembered: the same Status each time
            with pytest.raises(ApiError) as caught:
                router.resource_type(info)
            assert caught.value.code == 404
    monkeypatch.setattr(app_module, "ROUTE_CACHE_SIZE", 3)
    for i in range(10):
        assert router.resource_type(parse("GET", f"/api/v1/namespaces/n{i}/configmaps")).resource == "configmaps"
    assert len(router._routed) == 3
    long_path = parse("GET", "/api/v1/namespaces/ns/configmaps/" + "c" * 2000)
    assert router.resource_type(long_path).resource == "configmaps"
    assert all(entry[0] is not long_path for entry in router._routed.values())
