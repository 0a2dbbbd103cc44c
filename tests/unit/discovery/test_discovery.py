from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from miniapi import discovery
from miniapi.resources import GROUPS, RESOURCES

KUBECTL_ACCEPT = "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList,application/json"


@pytest.mark.parametrize("accept", [
    KUBECTL_ACCEPT,
    "application/json;as=APIGroupDiscoveryList;v=v2;g=apidiscovery.k8s.io",
    "application/json, application/json; charset=utf-8; v=v2; g=apidiscovery.k8s.io; "
    "as=APIGroupDiscoveryList",
    'Application/JSON;G=apidiscovery.k8s.io;V=v2;AS="APIGroupDiscoveryList"',
], ids=["kubectl", "reordered", "spaces-and-charset", "case-and-quotes"])
def test_accepts_aggregated(accept: str) -> None:
    assert discovery.accepts_aggregated(accept)


@pytest.mark.parametrize("accept", [
    None, "", "application/json", "*/*",
    "application/json;g=apidiscovery.k8s.io;v=v2beta1;as=APIGroupDiscoveryList",
    "application/json;g=apidiscovery.k8s.io;as=APIGroupDiscoveryList",
    "application/yaml;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList",
    "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList;q=0",
], ids=["none", "empty", "plain-json", "any", "v2beta1", "no-version", "yaml", "q0"])
def test_not_aggregated(accept: str | None) -> None:
    assert not discovery.accepts_aggregated(accept)


@given(st.text())
def test_parse_accept_never_raises(header: str) -> None:
    for mr in discovery.parse_accept(header):
        assert mr.type and mr.type == mr.type.lower()
    discovery.accepts_aggregated(header)


def _aggregated_entries() -> dict[tuple[str, str], dict[str, Any]]:
    out = {}
    for doc in (discovery.aggregated_core(), discovery.aggregated_groups()):
        assert (doc["kind"], doc["apiVersion"]) == ("APIGroupDiscoveryList", "apidiscovery.k8s.io/v2")
        for item in doc["items"]:
            for version in item["versions"]:
                assert version["freshness"] == "Current"
                for r in version["resources"]:
                    out[(item["metadata"]["name"], r["resource"])] = r
    return out


def test_aggregated_lists_every_catalogue_resource_once() -> None:
    entries = _aggregated_entries()
    assert set(entries) == {(r.group, r.resource) for r in RESOURCES}
    for rt in RESOURCES:
        e = entries[(rt.group, rt.resource)]
        assert e["responseKind"] == {"group": rt.group, "version": rt.version, "kind": rt.kind}
        assert e["scope"] == ("Namespaced" if rt.namespaced else "Cluster")
        assert e["singularResource"] == rt.singular
        assert e["verbs"] == list(rt.verbs)
        assert e.get("shortNames", []) == list(rt.short_names)


def test_aggregated_core_is_only_the_legacy_group() -> None:
    [item] = discovery.aggregated_core()["items"]
    assert item["metadata"]["name"] == ""
    names = [i["metadata"]["name"] for i in discovery.aggregated_groups()["items"]]
    assert names == [g for g in GROUPS if g]


def test_aggregated_details() -> None:
    e = _aggregated_entries()
    assert e[("", "pods")]["categories"] == ["all"] and e[("", "services")]["categories"] == ["all"]
    assert "categories" not in e[("", "configmaps")]
    [token] = e[("", "serviceaccounts")]["subresources"]
    assert token == {"subresource": "token", "verbs": ["create"],
                     "responseKind": {"group": "authentication.k8s.io", "version": "v1",
                                      "kind": "TokenRequest"}}
    for review in ("tokenreviews", "selfsubjectreviews"):
        assert e[("authentication.k8s.io", review)]["verbs"] == ["create"]
    assert e[("authorization.k8s.io", "localsubjectaccessreviews")]["scope"] == "Namespaced"
    assert e[("authorization.k8s.io", "subjectaccessreviews")]["scope"] == "Cluster"


def test_legacy_core_resource_list() -> None:
    doc = discovery.api_resource_list("", "v1")
    assert doc is not None and doc["groupVersion"] == "v1"
    by_name = {r["name"]: r for r in doc["resources"]}
    assert by_name["pods"] == {"name": "pods", "singularName": "pod", "namespaced": True, "kind": "Pod",
                               "verbs": list(by_name["pods"]["verbs"]), "shortNames": ["po"],
                               "categories": ["all"]}
    assert by_name["pods/status"] == {"name": "pods/status", "singularName": "", "namespaced": True,
                                      "kind": "Pod", "verbs": ["get", "patch", "update"]}
    assert by_name["serviceaccounts/token"] == {
        "name": "serviceaccounts/token", "singularName": "", "namespaced": True,
        "group": "authentication.k8s.io", "version": "v1", "kind": "TokenRequest", "verbs": ["create"]}
    names = [r["name"] for r in doc["resources"]]
    assert names.index("pods") < names.index("pods/status") < names.index("secrets")


def test_legacy_group_documents() -> None:
    groups = discovery.api_group_list()
    assert [g["name"] for g in groups["groups"]] == [g for g in GROUPS if g]
    rbac = discovery.api_group("rbac.authorization.k8s.io")
    assert rbac is not None
    assert rbac["preferredVersion"] == {"groupVersion": "rbac.authorization.k8s.io/v1", "version": "v1"}
    csr = discovery.api_resource_list("certificates.k8s.io", "v1")
    assert csr is not None
    assert {r["name"] for r in csr["resources"]} == {
        "certificatesigningrequests", "certificatesigningrequests/approval",
        "certificatesigningrequests/status"}
    versions = discovery.api_versions("10.0.0.1:6443")
    assert versions["serverAddressByClientCIDRs"][0]["serverAddress"] == "10.0.0.1:6443"


@pytest.mark.parametrize("group,version", [("apps", "v1"), ("", "v2"),
                                           ("rbac.authorization.k8s.io", "v1beta1")])
def test_unknown_group_versions(group: str, version: str) -> None:
    assert discovery.api_resource_list(group, version) is None


def test_unknown_group() -> None:
    assert discovery.api_group("apps") is None and discovery.api_group("") is None
