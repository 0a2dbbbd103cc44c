"""The union, the built-in authorizers and build_authorizer for --authorization-mode."""

from __future__ import annotations

import pytest

from miniapi.authz.always import AlwaysAllow, AlwaysDeny, PrivilegedGroups
from miniapi.authz.base import Attributes, Decision, NonResourceRule, ResourceRule, Revision
from miniapi.authz.policy import ensure_default_policy
from miniapi.authz.rbac import ROLEBINDINGS, ROLES, forbidden_message
from miniapi.authz.union import UnionAuthorizer, build_authorizer
from miniapi.store.memory import MemoryStore
from miniapi.user import UserInfo

from .conftest import req, url, user

ALICE = user("alice", "system:authenticated")
ROOT = user("root", "system:masters")


class Fixed:
    def __init__(self, decision: Decision, reason: str) -> None:
        self.name, self.answer, self.calls = "fixed", (decision, reason), 0

    async def authorize(self, attrs: Attributes) -> tuple[Decision, str]:
        self.calls += 1
        return self.answer


@pytest.mark.parametrize(("answers", "expected"), [
    ([(Decision.NO_OPINION, "a"), (Decision.ALLOW, "yes"), (Decision.DENY, "no")], (Decision.ALLOW, "yes")),
    ([(Decision.NO_OPINION, ""), (Decision.DENY, "no"), (Decision.ALLOW, "yes")], (Decision.DENY, "no")),
    ([(Decision.NO_OPINION, "a"), (Decision.NO_OPINION, ""), (Decision.NO_OPINION, "b")],
     (Decision.NO_OPINION, "a\nb")),
    ([], (Decision.NO_OPINION, "")),
], ids=["first-allow-wins", "first-deny-wins", "reasons-joined", "empty"])
async def test_union(answers: list[tuple[Decision, str]], expected: tuple[Decision, str]) -> None:
    parts = [Fixed(*a) for a in answers]
    assert await UnionAuthorizer(parts).authorize(req(ALICE, "get", "pods")) == expected
    decided = next((i for i, a in enumerate(answers) if a[0] is not Decision.NO_OPINION), len(answers) - 1)
    assert [p.calls for p in parts] == [1] * (decided + 1) + [0] * (len(parts) - decided - 1)


@pytest.mark.parametrize("modes", [[], ["RBAC", "Webhook"], ["RBAC", "RBAC"]],
                         ids=["none", "unknown", "repeated"])
def test_bad_modes_refuse(modes: list[str]) -> None:
    with pytest.raises(ValueError, match="authorization-mode"):
        build_authorizer(modes, MemoryStore())


@pytest.mark.parametrize(("modes", "who", "decision"), [
    (["AlwaysAllow"], ALICE, Decision.ALLOW),
    (["AlwaysDeny"], ALICE, Decision.DENY),
    (["AlwaysDeny"], ROOT, Decision.ALLOW),  # the system:masters authorizer always comes first
    (["AlwaysDeny", "AlwaysAllow"], ALICE, Decision.DENY),
    (["Node", "RBAC"], ALICE, Decision.NO_OPINION),
    (["Node", "RBAC"], ROOT, Decision.ALLOW),
], ids=["allow", "deny", "masters-beat-deny", "order-matters", "node-rbac-nobody", "node-rbac-masters"])
async def test_build_authorizer(modes: list[str], who: UserInfo, decision: Decision) -> None:
    async with MemoryStore() as store:
        authorizer, _, indexes = build_authorizer(modes, store)
        await indexes.start()
        try:
            assert (await authorizer.authorize(req(who, "delete", "nodes", name="n1")))[0] is decision
        finally:
            await indexes.stop()


async def test_node_rbac_chain_end_to_end() -> None:
    async with MemoryStore() as store:
        await ensure_default_policy(store)
        chain = build_authorizer(["Node", "RBAC"], store)
        await chain.indexes.start()
        try:
            assert chain.indexes.rbac is not None and chain.indexes.node is not None
            anonymous = user("system:anonymous", "system:unauthenticated")
            assert (await chain.authorizer.authorize(url(anonymous, "get", "/healthz")))[0] is Decision.ALLOW
            node = user("system:node:n1", "system:nodes", "system:authenticated")
            attrs = req(node, "get", "secrets", ns="default", name="s")
            decision, reason = await chain.authorizer.authorize(attrs)
            assert decision is Decision.NO_OPINION
            assert f"{forbidden_message(attrs)}: {reason}" == (
                'secrets "s" is forbidden: User "system:node:n1" cannot get resource "secrets" '
                'in API group "" in the namespace "default": '
                "no relationship found between node 'n1' and this object")
            rules = await chain.rule_resolver.rules_for(ALICE, "default")
            assert rules.resource_rules and not rules.incomplete
            assert (await chain.rule_resolver.rules_for(node, "")).incomplete
        finally:
            await chain.indexes.stop()


async def test_always_rule_resolvers() -> None:
    everything = await AlwaysAllow().rules_for(ALICE, "")
    assert everything.resource_rules == (ResourceRule(("*",), ("*",), ("*",)),)
    assert everything.non_resource_rules == (NonResourceRule(("*",), ("*",)),)
    nothing = await AlwaysDeny().rules_for(ALICE, "")
    assert not nothing.resource_rules and not nothing.non_resource_rules


class Versioned(Fixed):
    """An authorizer whose answer depends on state it announces through a Revision."""

    def __init__(self, decision: Decision, reason: str) -> None:
        super().__init__(decision, reason)
        self.revision = Revision()


async def test_union_without_revisions_decides_every_request() -> None:
    part = Fixed(Decision.ALLOW, "")
    union, attrs = UnionAuthorizer([part]), req(ALICE, "get", "pods")
    for _ in range(3):
        assert await union.authorize(attrs) == (Decision.ALLOW, "")
    assert part.calls == 3


async def test_union_remembers_an_answer_until_a_revision_changes() -> None:
    stateless, part = AlwaysDeny(), Versioned(Decision.ALLOW, "")
    union, attrs = UnionAuthorizer([PrivilegedGroups(), part, stateless]), req(ALICE, "get", "pods")
    for _ in range(3):
        assert await union.authorize(attrs) == (Decision.ALLOW, "")
    assert part.calls == 1
    part.answer = (Decision.NO_OPINION, "changed")
    part.revision.bump()  # what RBAC and Node do on an index change
    assert await union.authorize(attrs) == (Decision.DENY, "")
    assert part.calls == 2
    assert await union.authorize(req(ALICE, "get", "pods")) == (Decision.DENY, "")  # another Attributes object
    assert part.calls == 3


async def test_rbac_and_node_changes_reach_the_next_request() -> None:
    """Through the real indexes: the same Attributes object (a repeat request) is decided anew after a
    RoleBinding or a pod's node binding changes, and a pod status update keeps the Node answer."""
    async with MemoryStore() as store:
        chain = build_authorizer(["Node", "RBAC"], store)
        await chain.indexes.start()
        try:
            reader = req(ALICE, "get", "pods", ns="default")
            assert (await chain.authorizer.authorize(reader))[0] is Decision.NO_OPINION
            role = {"metadata": {"name": "r", "namespace": "default"},
                    "rules": [{"apiGroups": [""], "resources": ["pods"], "verbs": ["get"]}]}
            binding = {"metadata": {"name": "b", "namespace": "default"},
                       "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "r"},
                       "subjects": [{"kind": "User", "name": "alice", "apiGroup": "rbac.authorization.k8s.io"}]}
            await store.create(ROLES, role)
            await store.create(ROLEBINDINGS, binding)
            await chain.indexes.synced()
            assert (await chain.authorizer.authorize(reader))[0] is Decision.ALLOW
            await store.delete(ROLEBINDINGS, "default", "b")
            await chain.indexes.synced()
            assert (await chain.authorizer.authorize(reader))[0] is Decision.NO_OPINION

            node = user("system:node:n1", "system:nodes", "system:authenticated")
            secret = req(node, "get", "secrets", ns="default", name="s")
            assert (await chain.authorizer.authorize(secret))[0] is Decision.NO_OPINION
            pod = await store.create("pods", {"metadata": {"name": "p", "namespace": "default"}, "spec": {
                "nodeName": "n1", "volumes": [{"name": "v", "secret": {"secretName": "s"}}]}})
            await chain.indexes.synced()
            assert (await chain.authorizer.authorize(secret))[0] is Decision.ALLOW
            revision = chain.indexes.node.revision.value if chain.indexes.node else -1
            await store.update("pods", {**pod, "status": {"phase": "Running"}})
            await chain.indexes.synced()
            assert chain.indexes.node is not None and chain.indexes.node.revision.value == revision
            assert (await chain.authorizer.authorize(secret))[0] is Decision.ALLOW
            await store.delete("pods", "default", "p")
            await chain.indexes.synced()
            assert (await chain.authorizer.authorize(secret))[0] is Decision.NO_OPINION
        finally:
            await chain.indexes.stop()
