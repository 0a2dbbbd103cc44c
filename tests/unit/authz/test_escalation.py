"""Escalation prevention: Covers, the escalate/bind shortcuts, and kube's exact refusal text."""

from __future__ import annotations

from typing import Any

import pytest

from miniapi.authz.escalation import check_escalation, uncovered
from miniapi.authz.rbac import PolicyRule, RBACAuthorizer
from miniapi.store.memory import MemoryStore

from .conftest import binding, put, role, subject, user

ALICE = user("alice", "system:authenticated")
PODS = {"verbs": ["get", "list"], "apiGroups": [""], "resources": ["pods"]}
SECRETS_GET = {"verbs": ["get"], "apiGroups": [""], "resources": ["secrets"]}
HEADER = ('user "alice" (groups=["system:authenticated"]) is attempting to grant RBAC permissions not '
          'currently held:\n')


@pytest.fixture
async def alice_reads_pods_in_dev(store: MemoryStore, rbac: RBACAuthorizer) -> RBACAuthorizer:
    await put(store, role("pod-reader", PODS),
              binding("rb", "pod-reader", subject("User", "alice"), ns="dev"))
    await rbac.synced()
    return rbac


async def check(store: MemoryStore, rbac: RBACAuthorizer, obj: dict[str, Any], who: Any = ALICE,
                old: dict[str, Any] | None = None) -> str | None:
    return await check_escalation(store, rbac, who, obj, obj["kind"], old=old)


async def test_role_within_held_permissions(store: MemoryStore,
                                            alice_reads_pods_in_dev: RBACAuthorizer) -> None:
    narrower = {"verbs": ["get"], "apiGroups": [""], "resources": ["pods"], "resourceNames": ["p"]}
    assert await check(store, alice_reads_pods_in_dev, role("r", narrower, ns="dev")) is None


async def test_role_beyond_held_permissions(store: MemoryStore,
                                            alice_reads_pods_in_dev: RBACAuthorizer) -> None:
    message = await check(store, alice_reads_pods_in_dev, role("r", PODS, SECRETS_GET, ns="dev"))
    assert message == ('roles.rbac.authorization.k8s.io "r" is forbidden: ' + HEADER
                       + '{APIGroups:[""], Resources:["secrets"], Verbs:["get"]}')


async def test_missing_rules_are_compacted_and_sorted(store: MemoryStore,
                                                      alice_reads_pods_in_dev: RBACAuthorizer) -> None:
    rules = {"verbs": ["get", "list"], "apiGroups": [""], "resources": ["secrets", "configmaps"]}
    message = await check(store, alice_reads_pods_in_dev, role("r", rules, ns="dev"))
    assert message is not None
    assert message.split("\n", 1)[1] == ('{APIGroups:[""], Resources:["configmaps"], Verbs:["get" "list"]}\n'
                                         '{APIGroups:[""], Resources:["secrets"], Verbs:["get" "list"]}')


async def test_namespace_grants_do_not_count_cluster_wide(store: MemoryStore,
                                                          alice_reads_pods_in_dev: RBACAuthorizer) -> None:
    assert await check(store, alice_reads_pods_in_dev, role("r", PODS, ns="prod")) is not None
    message = await check(store, alice_reads_pods_in_dev, role("cr", PODS))
    assert message == ('clusterroles.rbac.authorization.k8s.io "cr" is forbidden: ' + HEADER
                       + '{APIGroups:[""], Resources:["pods"], Verbs:["get" "list"]}')


@pytest.mark.parametrize(("names", "is_update", "allowed"), [
    ((), False, True), (("r",), False, False), (("r",), True, True)],
    ids=["escalate-any", "escalate-named-not-on-create", "escalate-named-on-update"])
async def test_escalate_verb(store: MemoryStore, rbac: RBACAuthorizer, names: tuple[str, ...],
                             is_update: bool, allowed: bool) -> None:
    escalate: dict[str, Any] = {"verbs": ["escalate"], "apiGroups": ["rbac.authorization.k8s.io"],
                                "resources": ["roles"], **({"resourceNames": list(names)} if names else {})}
    await put(store, role("escalator", escalate), binding("b", "escalator", subject("User", "alice")))
    await rbac.synced()
    obj = role("r", SECRETS_GET, ns="dev")
    result = await check(store, rbac, obj, old=obj | {"rules": []} if is_update else None)
    assert (result is None) is allowed


@pytest.mark.parametrize(("bind_names", "allowed"),
                         [(None, False), (["admin-ish"], True), (["other"], False)],
                         ids=["no-bind", "bind-that-role", "bind-another-role"])
async def test_binding_needs_permissions_or_bind(store: MemoryStore, alice_reads_pods_in_dev: RBACAuthorizer,
                                                 bind_names: list[str] | None, allowed: bool) -> None:
    await put(store, role("admin-ish", {"verbs": ["*"], "apiGroups": ["*"], "resources": ["*"]}))
    if bind_names is not None:
        bind = {"verbs": ["bind"], "apiGroups": ["rbac.authorization.k8s.io"], "resources": ["clusterroles"],
                "resourceNames": bind_names}
        await put(store, role("binder", bind), binding("b", "binder", subject("User", "alice")))
        await alice_reads_pods_in_dev.synced()
    rb = binding("rb2", "admin-ish", subject("User", "mallory"), ns="dev")
    message = await check(store, alice_reads_pods_in_dev, rb)
    assert (message is None) is allowed
    if not allowed:
        assert message is not None
        assert message.startswith('rolebindings.rbac.authorization.k8s.io "rb2" is forbidden: ' + HEADER)
        assert '{APIGroups:["*"], Resources:["*"], Verbs:["*"]}' in message


async def test_binding_to_held_role(store: MemoryStore, alice_reads_pods_in_dev: RBACAuthorizer) -> None:
    rb = binding("share", "pod-reader", subject("User", "bob"), ns="dev")
    assert await check(store, alice_reads_pods_in_dev, rb) is None
    crb = binding("share-everywhere", "pod-reader", subject("User", "bob"))
    assert await check(store, alice_reads_pods_in_dev, crb) is not None  # held only in dev


async def test_binding_to_missing_role(store: MemoryStore, rbac: RBACAuthorizer) -> None:
    message = await check(store, rbac, binding("rb", "nope", subject("User", "bob"), ns="dev"))
    assert message == ('rolebindings.rbac.authorization.k8s.io "rb" is forbidden: '
                       'clusterroles.rbac.authorization.k8s.io "nope" not found')


async def test_system_masters_bypass(store: MemoryStore, rbac: RBACAuthorizer) -> None:
    root = user("root", "system:masters")
    assert await check(store, rbac, role("god", {"verbs": ["*"], "apiGroups": ["*"], "resources": ["*"]}),
                       who=root) is None


async def test_aggregation_rule_needs_full_authority(store: MemoryStore,
                                                     alice_reads_pods_in_dev: RBACAuthorizer) -> None:
    cr = role("agg") | {"aggregationRule": {"clusterRoleSelectors": [{"matchLabels": {"x": "y"}}]}}
    assert await check(store, alice_reads_pods_in_dev, cr) == (
        'clusterroles.rbac.authorization.k8s.io "agg" is forbidden: '
        "must have cluster-admin privileges to use the aggregationRule")


async def test_gc_only_update_is_not_checked(store: MemoryStore, rbac: RBACAuthorizer) -> None:
    old = role("r", SECRETS_GET, ns="dev")
    new = {**old, "metadata": {**old["metadata"], "finalizers": ["x"]}}
    assert await check(store, rbac, new, old=old) is None
    assert await check(store, rbac, new | {"rules": [PODS]}, old=old) is not None


@pytest.mark.parametrize(("owner", "servant", "covered"), [
    (PolicyRule(("update",), ("apps",), ("*/scale",)),
     PolicyRule(("update",), ("apps",), ("deployments/scale",)), True),
    (PolicyRule(("get",), ("",), ("pods",)), PolicyRule(("get",), ("",), ("pods/log",)), False),
    (PolicyRule(("get",), non_resource_urls=("/apis/*",)),
     PolicyRule(("get",), non_resource_urls=("/apis/x",)), True),
    (PolicyRule(("get",), ("",), ("secrets",), ("a",)), PolicyRule(("get",), ("",), ("secrets",)), False),
    (PolicyRule(("get",), ("",), ("secrets",)), PolicyRule(("get",), ("",), ("secrets",), ("a", "b")), True),
    (PolicyRule(("*",), ("*",), ("*",)), PolicyRule(("get",), non_resource_urls=("/healthz",)), False),
], ids=["star-slash-subresource", "parent-not-subresource", "url-prefix", "named-owner-not-unnamed",
        "unnamed-owner-covers-named", "resource-star-not-urls"])
def test_covers(owner: PolicyRule, servant: PolicyRule, covered: bool) -> None:
    assert (not uncovered([owner], [servant])) is covered
