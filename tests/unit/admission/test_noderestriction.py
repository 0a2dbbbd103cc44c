"""NodeRestriction: each numbered rule, with the real plugin's messages; non-nodes pass untouched."""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from miniapi import errors
from miniapi.admission import Admission, Attributes, Operation, effective_plugins
from miniapi.registry.base import stamp_new
from miniapi.store.memory import MemoryStore
from miniapi.user import UserInfo

N1 = UserInfo("system:node:n1", groups=("system:nodes", "system:authenticated"))
ADMIN = UserInfo("kubernetes-admin", groups=("kubeadm:cluster-admins", "system:authenticated"))
COORD, CERTS = "coordination.k8s.io", "certificates.k8s.io"


def stamped(obj: dict[str, Any]) -> dict[str, Any]:
    stamp_new(obj)
    return obj


def node(name: str, labels: dict[str, str] | None = None, **spec: Any) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Node", "metadata": {"name": name, "labels": labels or {}}, "spec": spec}


def pod(name: str, node_name: str, **meta: Any) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "namespace": "default", **meta},
            "spec": {"nodeName": node_name, "containers": [{"name": "c", "image": "busybox"}]}}


def csr_request(cn: str) -> str:
    key = ec.generate_private_key(ec.SECP256R1())
    csr = x509.CertificateSigningRequestBuilder().subject_name(
        x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])).sign(key, hashes.SHA256())
    return base64.b64encode(csr.public_bytes(serialization.Encoding.PEM)).decode()


@pytest.fixture
async def chain() -> AsyncIterator[tuple[Admission, dict[str, Any]]]:
    async with MemoryStore() as store:
        n1 = await store.create("nodes", stamped(node("n1")))
        await store.create("nodes", stamped(node("n2")))
        pods = {p: await store.create("pods", stamped(pod(p, n))) for p, n in (("mine", "n1"), ("theirs", "n2"))}
        yield Admission(("NodeRestriction",), store), {"n1": n1, **pods}


def attrs(op: Operation, resource: str, name: str = "", obj: Any = None, old: Any = None, *, sub: str = "",
          ns: str = "", group: str = "", user: UserInfo = N1) -> Attributes:
    return Attributes(user, op, group, resource, sub, ns, name, obj, old)


async def refused(chain: Admission, a: Attributes) -> str:
    with pytest.raises(errors.ApiError) as info:
        await chain.admit(a)
    assert info.value.code == 403 and info.value.reason == "Forbidden"
    return info.value.message


U, C, D = Operation.UPDATE, Operation.CREATE, Operation.DELETE


async def test_a_node_may_not_modify_another_node(chain: tuple[Admission, Any]) -> None:
    adm, _ = chain
    for sub in ("", "status"):
        msg = await refused(adm, attrs(U, "nodes", "n2", node("n2", {"x": "y"}), node("n2"), sub=sub))
        assert msg == 'nodes "n2" is forbidden: node "n1" is not allowed to modify node "n2"'
    await adm.admit(attrs(U, "nodes", "n1", node("n1", {"x": "y"}), node("n1")))  # its own, a plain label
    await adm.admit(attrs(U, "nodes", "n2", node("n2", {"x": "y"}), node("n2"), user=ADMIN))  # not a node


@pytest.mark.parametrize("labels, bad", [
    ({"node-restriction.kubernetes.io/pool": "a"}, "node-restriction.kubernetes.io/pool"),
    ({"node-role.kubernetes.io/control-plane": ""}, "node-role.kubernetes.io/control-plane"),
    ({"example.k8s.io/x": "1", "kubernetes.io/hostname": "n1"}, "example.k8s.io/x"),
], ids=["node-restriction-prefix", "role-label", "k8s-io-label"])
async def test_labels_a_kubelet_may_not_set_on_itself(chain: tuple[Admission, Any], labels: dict[str, str],
                                                      bad: str) -> None:
    adm, _ = chain
    msg = await refused(adm, attrs(C, "nodes", "n1", node("n1", labels)))
    assert msg == f'nodes "n1" is forbidden: node "n1" is not allowed to set the following labels: {bad}'
    msg = await refused(adm, attrs(U, "nodes", "n1", node("n1", labels), node("n1")))
    assert msg == f'nodes "n1" is forbidden: is not allowed to modify labels: {bad}'
    kubelet_labels = {"kubernetes.io/hostname": "n1", "kubernetes.io/os": "linux",
                      "node.kubernetes.io/exclude-from-external-load-balancers": "", "team": "a"}
    await adm.admit(attrs(C, "nodes", "n1", node("n1", kubelet_labels)))


async def test_taints_and_config_source(chain: tuple[Admission, Any]) -> None:
    adm, _ = chain
    taint = [{"key": "k", "effect": "NoSchedule"}]
    await adm.admit(attrs(C, "nodes", "n1", node("n1", taints=taint)))  # registering with taints is fine
    msg = await refused(adm, attrs(U, "nodes", "n1", node("n1"), node("n1", taints=taint), sub="status"))
    assert msg.endswith('node "n1" is not allowed to modify taints')
    msg = await refused(adm, attrs(C, "nodes", "n1", node("n1", configSource={"configMap": {}})))
    assert msg.endswith('node "n1" is not allowed to create pods with a non-nil configSource')


async def test_pods(chain: tuple[Admission, Any]) -> None:
    adm, objs = chain
    mine, theirs = objs["mine"], objs["theirs"]
    msg = await refused(adm, attrs(D, "pods", "theirs", None, theirs, ns="default"))
    assert msg == 'pods "theirs" is forbidden: node "n1" can only delete pods with spec.nodeName set to itself'
    await adm.admit(attrs(D, "pods", "mine", None, mine, ns="default"))
    msg = await refused(adm, attrs(U, "pods", "theirs", theirs, theirs, ns="default", sub="status"))
    assert msg.endswith('node "n1" can only update pod status for pods with spec.nodeName set to itself')
    relabelled = {**mine, "metadata": {**mine["metadata"], "labels": {"app": "evil"}}}
    msg = await refused(adm, attrs(U, "pods", "mine", relabelled, mine, ns="default", sub="status"))
    assert msg.endswith('node "n1" cannot update labels through pod status')
    await adm.admit(attrs(U, "pods", "mine", {**mine, "status": {"phase": "Running"}}, mine, ns="default",
                          sub="status"))
    msg = await refused(adm, attrs(U, "pods", "mine", mine, mine, ns="default"))
    assert msg.endswith('unexpected operation "UPDATE", node "n1" can only create and delete mirror pods')


async def test_mirror_pods_only(chain: tuple[Admission, Any]) -> None:
    adm, objs = chain
    plain = pod("static-n1", "n1")
    msg = await refused(adm, attrs(C, "pods", "static-n1", plain, ns="default"))
    assert msg == ('pods "static-n1" is forbidden: pod does not have "kubernetes.io/config.mirror" annotation, '
                   'node "n1" can only create mirror pods')
    owner = {"apiVersion": "v1", "kind": "Node", "name": "n1", "uid": objs["n1"]["metadata"]["uid"],
             "controller": True}
    mirror = pod("static-n1", "n1", annotations={"kubernetes.io/config.mirror": "abc"}, ownerReferences=[owner])
    await adm.admit(attrs(C, "pods", "static-n1", mirror, ns="default"))
    elsewhere = {**mirror, "spec": {**mirror["spec"], "nodeName": "n2"}}
    assert (await refused(adm, attrs(C, "pods", "static-n1", elsewhere, ns="default"))).endswith(
        'node "n1" can only create pods with spec.nodeName set to itself')
    with_sa = {**mirror, "spec": {**mirror["spec"], "serviceAccountName": "default"}}
    assert (await refused(adm, attrs(C, "pods", "static-n1", with_sa, ns="default"))).endswith(
        'node "n1" can not create pods that reference a service account')
    with_secret = {**mirror, "spec": {**mirror["spec"], "volumes": [{"name": "s", "secret": {"secretName": "x"}}]}}
    assert (await refused(adm, attrs(C, "pods", "static-n1", with_secret, ns="default"))).endswith(
        'node "n1" can not create pods that reference secrets')
    wrong_uid = {**mirror, "metadata": {**mirror["metadata"], "ownerReferences": [{**owner, "uid": "u"}]}}
    assert (await refused(adm, attrs(C, "pods", "static-n1", wrong_uid, ns="default"))).endswith(
        f"node n1 UID mismatch: expected u got {objs['n1']['metadata']['uid']}")


async def test_tokens_only_for_pods_on_the_node(chain: tuple[Admission, Any]) -> None:
    adm, objs = chain

    def token(p: str, uid: str | None = None) -> Attributes:
        ref = {"apiVersion": "v1", "kind": "Pod", "name": p, "uid": uid or objs[p]["metadata"]["uid"]}
        return attrs(C, "serviceaccounts", "default", {"spec": {"boundObjectRef": ref}}, ns="default", sub="token")

    await adm.admit(token("mine"))
    assert (await refused(adm, token("theirs"))) == ('serviceaccounts "default" is forbidden: node requested token '
                                                     "bound to a pod scheduled on a different node")
    assert (await refused(adm, token("mine", "stale"))).endswith("The object might have been deleted and then "
                                                                 "recreated")
    unbound = attrs(C, "serviceaccounts", "default", {"spec": {}}, ns="default", sub="token")
    assert (await refused(adm, unbound)).endswith("node requested token not bound to a pod")


async def test_leases_and_csrs(chain: tuple[Admission, Any]) -> None:
    adm, _ = chain
    lease = {"metadata": {"name": "n2", "namespace": "kube-node-lease"}}
    msg = await refused(adm, attrs(C, "leases", "n2", lease, ns="kube-node-lease", group=COORD))
    assert msg == ('leases.coordination.k8s.io "n2" is forbidden: can only access node lease with the same name '
                   "as the requesting node")
    await adm.admit(attrs(C, "leases", "n1", {"metadata": {"name": "n1"}}, ns="kube-node-lease", group=COORD))

    def csr(cn: str, signer: str = "kubernetes.io/kube-apiserver-client-kubelet") -> Attributes:
        obj = {"metadata": {"generateName": "csr-"}, "spec": {"signerName": signer, "request": csr_request(cn)}}
        return attrs(C, "certificatesigningrequests", "", obj, group=CERTS)

    await adm.admit(csr("system:node:n1"))
    await adm.admit(csr("system:node:n2", "example.com/other"))  # not a kubelet signer: not this plugin's
    msg = await refused(adm, csr("system:node:n2", "kubernetes.io/kubelet-serving"))
    assert msg == ('certificatesigningrequests.certificates.k8s.io "csr-" is forbidden: can only create a node '
                   "CSR with CN=system:node:n1")


def test_effective_plugins_follow_the_real_defaults() -> None:
    default = effective_plugins((), ())
    assert "NodeRestriction" not in default and "ServiceAccount" in default
    assert "NodeRestriction" in effective_plugins(("NodeRestriction",), ())
    assert "ResourceQuota" not in effective_plugins((), ("ResourceQuota",))


async def test_off_by_default() -> None:
    async with MemoryStore() as store:
        chain = Admission(effective_plugins((), ()), store)
        await chain.admit(attrs(U, "nodes", "n2", node("n2", {"x": "y"}), node("n2")))
