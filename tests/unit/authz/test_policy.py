"""The default policy, evaluated by the RBAC authorizer, and its reconciliation on restart."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from miniapi.authz import policy
from miniapi.authz.base import Attributes, Decision
from miniapi.authz.policy import AUTOUPDATE, LABEL, ensure_default_policy
from miniapi.authz.rbac import RBACAuthorizer
from miniapi.store.memory import MemoryStore

from .conftest import binding, key, put, req, subject, url, user

AUTHN = "system:authenticated"
ANON = user("system:anonymous", "system:unauthenticated")
ALICE = user("alice", AUTHN)
ROOT = user("root", "system:masters", AUTHN)
BOOTSTRAP = user("system:bootstrap:abcdef", "system:bootstrappers", AUTHN)
NODE = user("system:node:n1", "system:nodes", AUTHN)
CERTS = "certificates.k8s.io"


@pytest.fixture
async def policy_rbac(store: MemoryStore) -> AsyncIterator[RBACAuthorizer]:
    await ensure_default_policy(store)
    authorizer = RBACAuthorizer(store)
    await authorizer.start()
    yield authorizer
    await authorizer.stop()


CASES = [
    ("masters-delete-nodes", req(ROOT, "delete", "nodes", name="n1"), True),
    ("masters-escalate", req(ROOT, "escalate", "clusterroles", group="rbac.authorization.k8s.io"), True),
    ("masters-exec", req(ROOT, "create", "pods", ns="kube-system", name="p", sub="exec"), True),
    ("masters-any-url", url(ROOT, "get", "/debug/pprof"), True),
    ("anonymous-healthz", url(ANON, "get", "/healthz"), True),
    ("anonymous-livez", url(ANON, "get", "/livez"), True),
    ("anonymous-readyz", url(ANON, "get", "/readyz"), True),
    ("anonymous-version", url(ANON, "get", "/version"), True),
    ("anonymous-no-api-discovery", url(ANON, "get", "/api"), False),
    ("anonymous-no-pods", req(ANON, "list", "pods", ns="default"), False),
    ("anonymous-no-ssar", req(ANON, "create", "selfsubjectaccessreviews", group="authorization.k8s.io"),
     False),
    ("authenticated-discovery", url(ALICE, "get", "/apis/rbac.authorization.k8s.io/v1"), True),
    ("authenticated-ssar", req(ALICE, "create", "selfsubjectaccessreviews", group="authorization.k8s.io"),
     True),
    ("authenticated-ssrr", req(ALICE, "create", "selfsubjectrulesreviews", group="authorization.k8s.io"),
     True),
    ("authenticated-whoami", req(ALICE, "create", "selfsubjectreviews", group="authentication.k8s.io"), True),
    ("authenticated-no-pods", req(ALICE, "list", "pods", ns="default"), False),
    ("authenticated-no-metrics", url(ALICE, "get", "/metrics"), False),
    ("bootstrapper-create-csr", req(BOOTSTRAP, "create", "certificatesigningrequests", group=CERTS), True),
    ("bootstrapper-watch-csr", req(BOOTSTRAP, "watch", "certificatesigningrequests", group=CERTS), True),
    ("bootstrapper-nodeclient", req(BOOTSTRAP, "create", "certificatesigningrequests", group=CERTS,
                                    sub="nodeclient"), True),
    ("bootstrapper-not-selfnodeclient", req(BOOTSTRAP, "create", "certificatesigningrequests", group=CERTS,
                                            sub="selfnodeclient"), False),
    ("bootstrapper-no-approval", req(BOOTSTRAP, "update", "certificatesigningrequests", group=CERTS,
                                     name="csr-1", sub="approval"), False),
    ("node-selfnodeclient", req(NODE, "create", "certificatesigningrequests", group=CERTS,
                                sub="selfnodeclient"), True),
    ("node-nothing-via-rbac", req(NODE, "get", "secrets", ns="default", name="s"), False),
    ("apiserver-kubelet-proxy", req(user("kube-apiserver-kubelet-client", AUTHN), "get", "nodes", name="n1",
                                    sub="proxy"), True),
    ("apiserver-kubelet-no-secrets", req(user("kube-apiserver-kubelet-client", AUTHN), "get", "secrets",
                                         ns="x", name="s"), False),
    ("kcm-approve", req(user("system:kube-controller-manager", AUTHN), "update", "certificatesigningrequests",
                        group=CERTS, name="csr-1", sub="approval"), True),
    ("kcm-approve-signer", req(user("system:kube-controller-manager"), "approve", "signers", group=CERTS,
                               name="kubernetes.io/kube-apiserver-client-kubelet"), True),
    ("kcm-sign-signer", req(user("system:kube-controller-manager"), "sign", "signers", group=CERTS,
                            name="kubernetes.io/kubelet-serving"), True),
    ("kcm-not-approve-other-signer", req(user("system:kube-controller-manager"), "approve", "signers",
                                         group=CERTS, name="example.com/x"), False),
    ("monitoring-metrics", url(user("prom", "system:monitoring"), "get", "/metrics"), True),
    ("serviceaccount-oidc", url(user("system:serviceaccount:a:b", "system:serviceaccounts"), "get",
                                "/openid/v1/jwks"), True),
    ("kube-proxy-list-services", req(user("system:kube-proxy"), "list", "services"), True),
]


@pytest.mark.parametrize(("attrs", "allowed"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
async def test_default_policy(policy_rbac: RBACAuthorizer, attrs: Attributes, allowed: bool) -> None:
    decision, _ = await policy_rbac.authorize(attrs)
    assert (decision is Decision.ALLOW) is allowed


@pytest.mark.parametrize(("role_name", "attrs", "allowed"), [
    ("view", req(ALICE, "list", "pods", ns="team"), True),
    ("view", req(ALICE, "get", "secrets", ns="team", name="s"), False),
    ("edit", req(ALICE, "get", "secrets", ns="team", name="s"), True),
    ("edit", req(ALICE, "create", "pods", ns="team", name="p", sub="exec"), True),
    ("edit", req(ALICE, "create", "rolebindings", ns="team", group="rbac.authorization.k8s.io"), False),
    ("admin", req(ALICE, "create", "rolebindings", ns="team", group="rbac.authorization.k8s.io"), True),
    ("admin", req(ALICE, "list", "pods", ns="other"), False),
], ids=["view-pods", "view-no-secrets", "edit-secrets", "edit-exec", "edit-no-rbac", "admin-rbac",
        "admin-only-its-namespace"])
async def test_aggregated_user_roles(store: MemoryStore, policy_rbac: RBACAuthorizer, role_name: str,
                                     attrs: Attributes, allowed: bool) -> None:
    await put(store, binding("b", role_name, subject("User", "alice"), ns="team"))
    await policy_rbac.synced()
    assert ((await policy_rbac.authorize(attrs))[0] is Decision.ALLOW) is allowed


def test_every_default_object_is_marked() -> None:
    objs = policy.cluster_roles() + policy.cluster_role_bindings()
    assert len({o["metadata"]["name"] for o in policy.cluster_roles()}) == len(policy.cluster_roles())
    for obj in objs:
        assert obj["metadata"]["labels"].items() >= LABEL.items(), obj["metadata"]["name"]
        assert obj["metadata"]["annotations"] == {AUTOUPDATE: "true"}
    roles = {o["metadata"]["name"] for o in policy.cluster_roles()}
    assert all(b["roleRef"]["name"] in roles for b in policy.cluster_role_bindings())


async def test_ensure_is_idempotent(store: MemoryStore) -> None:
    await ensure_default_policy(store)
    revision = store.revision
    await ensure_default_policy(store)
    assert store.revision == revision


async def test_reconcile_restores_adds_and_respects_opt_out(store: MemoryStore) -> None:
    await ensure_default_policy(store)
    basic = await store.get(key("ClusterRole"), "", "system:basic-user")
    basic["rules"] = [basic["rules"][0]]  # someone removed selfsubjectreviews
    await store.update(key("ClusterRole"), basic)
    view = await store.get(key("ClusterRole"), "", "system:public-info-viewer")
    view["rules"] = []
    view["metadata"]["annotations"][AUTOUPDATE] = "false"
    await store.update(key("ClusterRole"), view)
    crb = await store.get(key("ClusterRoleBinding"), "", "system:basic-user")
    crb["subjects"].append(subject("User", "extra"))
    await store.update(key("ClusterRoleBinding"), crb)
    await store.delete(key("ClusterRoleBinding"), "", "system:discovery")
    await store.create(key("ClusterRoleBinding"), binding("system:discovery", "view", subject("User", "x")))

    await ensure_default_policy(store)

    basic = await store.get(key("ClusterRole"), "", "system:basic-user")
    assert {"verbs": ["create"], "apiGroups": ["authentication.k8s.io"],
            "resources": ["selfsubjectreviews"]} in basic["rules"]
    assert (await store.get(key("ClusterRole"), "", "system:public-info-viewer"))["rules"] == []
    subjects = (await store.get(key("ClusterRoleBinding"), "", "system:basic-user"))["subjects"]
    assert [s["name"] for s in subjects] == ["system:authenticated", "extra"]
    discovery = await store.get(key("ClusterRoleBinding"), "", "system:discovery")
    assert discovery["roleRef"]["name"] == "system:discovery"
    assert [s["name"] for s in discovery["subjects"]] == ["system:authenticated"]
