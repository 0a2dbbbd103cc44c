"""RuleAllows, one row per rule of the matcher, and the apiserver's 403 wording."""

from __future__ import annotations

import pytest

from miniapi.authz.base import Attributes
from miniapi.authz.rbac import PolicyRule, forbidden_message

from .conftest import req, url, user

ALICE = user("alice", "system:authenticated")


def r(verbs: str, groups: str = "", resources: str = "", names: str = "", urls: str = "") -> PolicyRule:
    def split(s: str) -> tuple[str, ...]:
        return tuple(s.split(",")) if s else ()
    return PolicyRule(split(verbs), tuple(groups.split(",")) if resources else (), split(resources),
                      split(names), split(urls))


CASES = [
    # (id, rule, request, allowed)
    ("exact", r("get", "", "pods"), req(ALICE, "get", "pods", ns="d", name="p"), True),
    ("other-verb", r("get", "", "pods"), req(ALICE, "delete", "pods", ns="d", name="p"), False),
    ("verb-star", r("*", "", "pods"), req(ALICE, "escalate", "pods"), True),
    ("other-group", r("get", "apps", "pods"), req(ALICE, "get", "pods"), False),
    ("group-star", r("get", "*", "pods"), req(ALICE, "get", "pods", group="x.io"), True),
    ("resource-star", r("get", "", "*"), req(ALICE, "get", "secrets"), True),
    ("resource-star-covers-subresource", r("get", "", "*"), req(ALICE, "get", "pods", sub="log"), True),
    ("plain-does-not-cover-subresource", r("get", "", "pods"), req(ALICE, "get", "pods", sub="log"), False),
    ("subresource-exact", r("get", "", "pods/log"), req(ALICE, "get", "pods", sub="log"), True),
    ("subresource-not-parent", r("get", "", "pods/log"), req(ALICE, "get", "pods"), False),
    ("pods/*-is-not-a-wildcard", r("get", "", "pods/*"), req(ALICE, "get", "pods", sub="log"), False),
    ("star-slash-scale", r("update", "*", "*/scale"), req(ALICE, "update", "deployments", group="apps",
                                                           sub="scale"), True),
    ("star-slash-scale-not-status", r("update", "*", "*/scale"), req(ALICE, "update", "pods", sub="status"),
     False),
    ("name-match", r("get", "", "secrets", "s1"), req(ALICE, "get", "secrets", ns="d", name="s1"), True),
    ("name-mismatch", r("get", "", "secrets", "s1"), req(ALICE, "get", "secrets", ns="d", name="s2"), False),
    ("names-never-match-list", r("list", "", "secrets", "s1"), req(ALICE, "list", "secrets", ns="d"), False),
    ("names-never-match-create", r("create", "", "secrets", "s1"), req(ALICE, "create", "secrets", ns="d"),
     False),
    ("url-exact", r("get", urls="/healthz"), url(ALICE, "get", "/healthz"), True),
    ("url-exact-only", r("get", urls="/healthz"), url(ALICE, "get", "/healthz/etcd"), False),
    ("url-prefix", r("get", urls="/apis/*"), url(ALICE, "get", "/apis/apps/v1"), True),
    ("url-prefix-needs-prefix", r("get", urls="/apis/*"), url(ALICE, "get", "/apis"), False),
    ("url-star", r("get", urls="*"), url(ALICE, "get", "/anything"), True),
    ("url-verb", r("get", urls="*"), url(ALICE, "post", "/anything"), False),
    ("url-rule-ignores-resources", r("get", urls="*"), req(ALICE, "get", "pods"), False),
    ("resource-rule-ignores-urls", r("get", "*", "*"), url(ALICE, "get", "/healthz"), False),
]


@pytest.mark.parametrize(("rule", "attrs", "allowed"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_rule_allows(rule: PolicyRule, attrs: Attributes, allowed: bool) -> None:
    assert rule.allows(attrs) is allowed


MESSAGES = [
    ("namespaced-list", req(ALICE, "list", "pods", ns="default"),
     'pods is forbidden: User "alice" cannot list resource "pods" in API group "" '
     'in the namespace "default"'),
    ("cluster-named", req(ALICE, "get", "nodes", name="n1"),
     'nodes "n1" is forbidden: User "alice" cannot get resource "nodes" in API group "" '
     'at the cluster scope'),
    ("subresource", req(user("x"), "create", "pods", ns="default", name="p1", sub="exec"),
     'pods "p1" is forbidden: User "x" cannot create resource "pods/exec" in API group "" in the namespace '
     '"default"'),
    ("group", req(ALICE, "create", "clusterroles", group="rbac.authorization.k8s.io"),
     'clusterroles.rbac.authorization.k8s.io is forbidden: User "alice" cannot create resource '
     '"clusterroles" in API group "rbac.authorization.k8s.io" at the cluster scope'),
    ("non-resource", url(user("system:anonymous"), "get", "/foo"),
     'forbidden: User "system:anonymous" cannot get path "/foo"'),
    ("sanitized", url(user("<b>&"), "get", "/x"),
     'forbidden: User "&lt;b&gt;&amp;" cannot get path "/x"'),
]


@pytest.mark.parametrize(("attrs", "message"), [m[1:] for m in MESSAGES], ids=[m[0] for m in MESSAGES])
def test_forbidden_message(attrs: Attributes, message: str) -> None:
    assert forbidden_message(attrs) == message
