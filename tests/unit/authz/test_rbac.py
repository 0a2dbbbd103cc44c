"""The RBAC authorizer over a live store: subjects, scoping, reasons, watch-fed index, rules_for."""

from __future__ import annotations

import pytest

from miniapi.authz.base import Decision, NonResourceRule, ResourceRule
from miniapi.authz.rbac import RBACAuthorizer
from miniapi.store.memory import MemoryStore
from miniapi.user import UserInfo

from .conftest import binding, key, put, req, role, subject, url, user

READ_PODS = {"verbs": ["get", "list"], "apiGroups": [""], "resources": ["pods"]}
ALICE = user("alice", "dev", "system:authenticated")
SA = user("system:serviceaccount:team:builder", "system:serviceaccounts", "system:serviceaccounts:team")


@pytest.mark.parametrize(("subj", "who", "reason"), [
    (subject("User", "alice"), ALICE, 'User "alice"'),
    (subject("Group", "dev"), ALICE, 'Group "dev"'),
    (subject("ServiceAccount", "builder", "team"), SA, 'ServiceAccount "builder/team"'),
], ids=["user", "group", "serviceaccount"])
async def test_cluster_binding_per_subject_kind(store: MemoryStore, rbac: RBACAuthorizer,
                                                subj: dict[str, str], who: UserInfo, reason: str) -> None:
    await put(store, role("reader", READ_PODS), binding("b", "reader", subj))
    await rbac.synced()
    assert await rbac.authorize(req(who, "list", "pods", ns="any")) == (
        Decision.ALLOW, f'RBAC: allowed by ClusterRoleBinding "b" of ClusterRole "reader" to {reason}')


@pytest.mark.parametrize("who", [user("bob", "ops"), user("system:serviceaccount:other:builder"),
                                 user("Alice")], ids=["other-user", "sa-other-namespace", "case-sensitive"])
async def test_subjects_do_not_match_others(store: MemoryStore, rbac: RBACAuthorizer, who: UserInfo) -> None:
    await put(store, role("reader", READ_PODS), binding("b", "reader", subject("User", "alice"),
                                                        subject("ServiceAccount", "builder", "team")))
    await rbac.synced()
    assert await rbac.authorize(req(who, "get", "pods", ns="x", name="p")) == (Decision.NO_OPINION, "")


async def test_rolebinding_to_clusterrole_is_scoped_to_its_namespace(store: MemoryStore,
                                                                     rbac: RBACAuthorizer) -> None:
    await put(store, role("reader", READ_PODS), binding("rb", "reader", subject("User", "alice"), ns="dev"))
    await rbac.synced()
    decision, reason = await rbac.authorize(req(ALICE, "list", "pods", ns="dev"))
    assert decision is Decision.ALLOW
    assert reason == 'RBAC: allowed by RoleBinding "rb/dev" of ClusterRole "reader" to User "alice"'
    assert (await rbac.authorize(req(ALICE, "list", "pods", ns="prod")))[0] is Decision.NO_OPINION
    assert (await rbac.authorize(req(ALICE, "list", "pods")))[0] is Decision.NO_OPINION  # all namespaces


async def test_rolebinding_to_role_and_sa_namespace_default(store: MemoryStore, rbac: RBACAuthorizer) -> None:
    sa_without_ns = {"kind": "ServiceAccount", "name": "builder"}  # defaults to the binding's namespace
    await put(store, role("r", READ_PODS, ns="team"),
              binding("rb", "r", sa_without_ns, ns="team", role_kind="Role"))
    await rbac.synced()
    decision, reason = await rbac.authorize(req(SA, "get", "pods", ns="team", name="p"))
    assert decision is Decision.ALLOW
    assert reason == 'RBAC: allowed by RoleBinding "rb/team" of Role "r" to ServiceAccount "builder/team"'


async def test_missing_role_is_reported(store: MemoryStore, rbac: RBACAuthorizer) -> None:
    await put(store, binding("b", "ghost", subject("User", "alice")),
              binding("rb", "gone", subject("User", "alice"), ns="dev", role_kind="Role"))
    await rbac.synced()
    assert await rbac.authorize(req(ALICE, "get", "pods", ns="dev")) == (
        Decision.NO_OPINION, 'RBAC: [clusterrole.rbac.authorization.k8s.io "ghost" not found, '
                             'role.rbac.authorization.k8s.io "gone" not found]')


async def test_index_follows_writes_and_deletes(store: MemoryStore, rbac: RBACAuthorizer) -> None:
    attrs = req(ALICE, "get", "pods", ns="x", name="p")
    assert (await rbac.authorize(attrs))[0] is Decision.NO_OPINION
    await put(store, role("reader", READ_PODS), binding("b", "reader", subject("User", "alice")))
    await rbac.synced()
    assert (await rbac.authorize(attrs))[0] is Decision.ALLOW

    crb = await store.get(key("ClusterRoleBinding"), "", "b")
    crb["subjects"] = [subject("User", "bob")]
    await store.update(key("ClusterRoleBinding"), crb)
    await rbac.synced()
    assert (await rbac.authorize(attrs))[0] is Decision.NO_OPINION
    assert (await rbac.authorize(req(user("bob"), "get", "pods", ns="x")))[0] is Decision.ALLOW

    await store.delete(key("ClusterRole"), "", "reader")
    await rbac.synced()
    assert (await rbac.authorize(req(user("bob"), "get", "pods", ns="x")))[1].endswith('"reader" not found')


async def test_relists_after_expired_watch(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level("INFO", "miniapi.authz.informer")
    async with MemoryStore(history=2, watch_queue=1) as store:
        rbac = RBACAuthorizer(store)
        await rbac.start()
        try:
            # a burst longer than the store's history (and the watcher's queue): the watch expires
            await put(store, role("reader", READ_PODS), *(binding(f"b{i}", "reader", subject("User", f"u{i}"))
                                                          for i in range(5)))
            await rbac.synced()
            for i in range(5):
                assert (await rbac.authorize(req(user(f"u{i}"), "get", "pods", ns="x")))[0] is Decision.ALLOW
            assert "clusterrolebindings.rbac.authorization.k8s.io expired; relisting" in caplog.text
        finally:
            await rbac.stop()


async def test_rules_for(store: MemoryStore, rbac: RBACAuthorizer) -> None:
    await put(store, role("reader", READ_PODS, {"verbs": ["get"], "nonResourceURLs": ["/healthz"]}),
              binding("b", "reader", subject("Group", "dev")),
              role("secrets", {"verbs": ["get"], "apiGroups": [""], "resources": ["secrets"],
                               "resourceNames": ["s"]}, ns="dev"),
              binding("rb", "secrets", subject("User", "alice"), ns="dev", role_kind="Role"),
              binding("rb2", "missing", subject("User", "alice"), ns="dev"))
    await rbac.synced()
    result = await rbac.rules_for(ALICE, "dev")
    assert result.resource_rules == (ResourceRule(("get", "list"), ("",), ("pods",)),
                                     ResourceRule(("get",), ("",), ("secrets",), ("s",)))
    assert result.non_resource_rules == (NonResourceRule(("get",), ("/healthz",)),)
    assert not result.incomplete
    assert result.evaluation_error == 'clusterrole.rbac.authorization.k8s.io "missing" not found'
    assert len((await rbac.rules_for(ALICE, "")).resource_rules) == 1


async def test_non_resource_request(store: MemoryStore, rbac: RBACAuthorizer) -> None:
    await put(store, role("probe", {"verbs": ["get"], "nonResourceURLs": ["/healthz", "/healthz/*"]}),
              binding("b", "probe", subject("Group", "system:authenticated")))
    await rbac.synced()
    assert (await rbac.authorize(url(ALICE, "get", "/healthz/etcd")))[0] is Decision.ALLOW
    assert (await rbac.authorize(url(ALICE, "get", "/metrics")))[0] is Decision.NO_OPINION


# -- rule 7: remembered decisions ----------------------------------------------------------------------

async def test_remembered_decision_is_forgotten_when_a_role_changes(store: MemoryStore,
                                                                    rbac: RBACAuthorizer) -> None:
    await put(store, role("reader", READ_PODS), binding("b", "reader", subject("User", "alice")))
    await rbac.synced()
    attrs = req(ALICE, "list", "pods", ns="x")
    assert (await rbac.authorize(attrs))[0] is Decision.ALLOW
    assert (await rbac.authorize(attrs))[0] is Decision.ALLOW  # now from the cache
    reader = await store.get(key("ClusterRole"), "", "reader")
    reader["rules"] = [{"verbs": ["get"], "apiGroups": [""], "resources": ["pods"]}]  # no more list
    await store.update(key("ClusterRole"), reader)
    await rbac.synced()
    assert await rbac.authorize(attrs) == (Decision.NO_OPINION, "")
    assert (await rbac.authorize(req(ALICE, "get", "pods", ns="x", name="p")))[0] is Decision.ALLOW


@pytest.mark.parametrize(("kind", "after"), [
    ("ClusterRoleBinding", ""), ("ClusterRole", 'RBAC: clusterrole.rbac.authorization.k8s.io "reader" not found'),
    ("RoleBinding", ""), ("Role", 'RBAC: role.rbac.authorization.k8s.io "r" not found'),
])
async def test_remembered_decision_is_forgotten_on_any_delete(store: MemoryStore, rbac: RBACAuthorizer,
                                                              kind: str, after: str) -> None:
    if kind.startswith("Cluster"):
        await put(store, role("reader", READ_PODS), binding("b", "reader", subject("User", "alice")))
    else:
        await put(store, role("r", READ_PODS, ns="x"),
                  binding("rb", "r", subject("User", "alice"), ns="x", role_kind="Role"))
    await rbac.synced()
    attrs = req(ALICE, "get", "pods", ns="x", name="p")
    assert (await rbac.authorize(attrs))[0] is Decision.ALLOW
    assert (await rbac.authorize(attrs))[0] is Decision.ALLOW
    namespace, name = {"ClusterRoleBinding": ("", "b"), "RoleBinding": ("x", "rb"), "ClusterRole": ("", "reader"),
                       "Role": ("x", "r")}[kind]
    await store.delete(key(kind), namespace, name)
    await rbac.synced()
    assert await rbac.authorize(attrs) == (Decision.NO_OPINION, after)


async def test_remembered_decisions_are_per_user_groups_and_request(store: MemoryStore,
                                                                    rbac: RBACAuthorizer) -> None:
    await put(store, role("reader", READ_PODS), binding("b", "reader", subject("Group", "dev")))
    await rbac.synced()
    assert (await rbac.authorize(req(user("alice", "dev"), "get", "pods", ns="x", name="p")))[0] is Decision.ALLOW
    # same name, other groups; same user, other verb / subresource / group / namespace: decided anew
    assert (await rbac.authorize(req(user("alice"), "get", "pods", ns="x", name="p")))[0] is Decision.NO_OPINION
    for attrs in (req(user("alice", "dev"), "delete", "pods", ns="x", name="p"),
                  req(user("alice", "dev"), "get", "pods", ns="x", name="p", sub="log"),
                  req(user("alice", "dev"), "get", "pods", ns="x", name="p", group="apps")):
        assert (await rbac.authorize(attrs))[0] is Decision.NO_OPINION
    for path in ("/healthz", "/metrics"):
        assert (await rbac.authorize(url(user("alice", "dev"), "get", path)))[0] is Decision.NO_OPINION


async def test_remembered_decisions_are_bounded(store: MemoryStore, rbac: RBACAuthorizer,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    from miniapi.authz import rbac as module

    monkeypatch.setattr(module, "DECISION_CACHE_SIZE", 3)
    await put(store, role("reader", READ_PODS), binding("b", "reader", subject("User", "alice")))
    await rbac.synced()
    for i in range(10):
        assert (await rbac.authorize(req(ALICE, "get", "pods", ns="x", name=f"p{i}")))[0] is Decision.ALLOW
    assert len(rbac._decisions) == 3
    long_name = "p" * (module.DECISION_CACHE_MAX_KEY + 1)
    assert (await rbac.authorize(req(ALICE, "get", "pods", ns="x", name=long_name)))[0] is Decision.ALLOW
    assert all(k[8] != long_name for k in rbac._decisions)
