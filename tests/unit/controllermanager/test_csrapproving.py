"""csrapproving: which CSRs are recognized (the decision table), then the controller as a playbook:
a CSR and the apiserver's SubjectAccessReview answers in, the writes out."""

from __future__ import annotations

import pytest

from miniapi.controllermanager.csrapproving import (
    NODECLIENT,
    NODECLIENT_MESSAGE,
    SELFNODECLIENT,
    CSRApprovingController,
    access_review,
    is_pending,
    recognize,
)
from pki.signer import KUBE_APISERVER_CLIENT, KUBELET_SERVING
from tests.unit.controllermanager.conftest import Start
from tests.unit.controllermanager.csrs import BOOTSTRAPPER, Obj, csr
from tests.unit.controllermanager.fakes import FakeClient, make_ctx

RSA_USAGES = ("digital signature", "key encipherment", "client auth")


@pytest.mark.parametrize(("obj", "expected"), [
    (csr(), (NODECLIENT,)),
    (csr(usages=RSA_USAGES), (NODECLIENT,)),
    (csr(username="system:node:node1", groups=["system:nodes"]), (SELFNODECLIENT, NODECLIENT)),
    (csr(signer=KUBELET_SERVING, usages=("digital signature", "server auth"), dns=("node1",)), ()),
    (csr(signer=KUBE_APISERVER_CLIENT), ()),
    (csr(orgs=("system:masters",)), ()),
    (csr(orgs=("system:nodes", "system:masters")), ()),
    (csr(cn="admin"), ()),
    (csr(dns=("node1",)), ()),
    (csr(usages=("digital signature", "client auth", "server auth")), ()),
    (csr(request="bm90IGEgY3NyCg=="), ()),
], ids=["bootstrap-nodeclient", "rsa-usages", "renewal-selfnodeclient-first", "kubelet-serving-never",
        "apiserver-client-never", "wrong-org", "extra-org", "cn-not-a-node", "sans-not-allowed",
        "server-auth-usage", "garbage-request"])
def test_recognize(obj: Obj, expected: tuple[object, ...]) -> None:
    assert recognize(obj) == expected


@pytest.mark.parametrize(("obj", "pending"), [
    (csr(), True), (csr(conditions=("Approved",)), False), (csr(conditions=("Denied",)), False),
    (csr(certificate="Y2VydA=="), False), (csr(conditions=("Failed",)), True)],
    ids=["new", "approved", "denied", "issued", "failed-only"])
def test_is_pending(obj: Obj, pending: bool) -> None:
    assert is_pending(obj) is pending


def test_access_review_is_about_the_requester() -> None:
    obj = csr(groups=["system:bootstrappers"])
    obj["spec"]["extra"] = {"scopes": ["a"]}
    spec = access_review(obj, "nodeclient")["spec"]
    assert spec["user"] == BOOTSTRAPPER and spec["groups"] == ["system:bootstrappers"]
    assert spec["extra"] == {"scopes": ["a"]}
    assert spec["resourceAttributes"] == {"group": "certificates.k8s.io", "resource": "certificatesigningrequests",
                                          "subresource": "nodeclient", "verb": "create", "version": "*"}


def _allow(*subresources: str) -> FakeClient:
    return FakeClient(sar=lambda spec: spec["resourceAttributes"]["subresource"] in subresources)


@pytest.mark.parametrize(("obj", "allowed", "reviews", "message"), [
    (csr(), ("nodeclient",), ["nodeclient"], NODECLIENT_MESSAGE),
    (csr(username="system:node:node1"), ("selfnodeclient",), ["selfnodeclient"],
     "Auto approving self kubelet client certificate after SubjectAccessReview."),
    (csr(username="system:node:node1"), ("nodeclient",), ["selfnodeclient", "nodeclient"], NODECLIENT_MESSAGE),
    (csr(username="system:node:node2"), ("selfnodeclient",), ["nodeclient"], None),
    (csr(), (), ["nodeclient"], None),
    (csr(signer=KUBELET_SERVING, usages=("digital signature", "server auth"), dns=("n1",)), ("nodeclient",), [], None),
], ids=["bootstrap-approved", "renewal-approved", "renewal-falls-back-to-nodeclient",
        "other-node-cannot-renew", "unprivileged-stays-pending", "serving-never-asked"])
async def test_controller_playbook(start: Start, obj: Obj, allowed: tuple[str, ...], reviews: list[str],
                                   message: str | None) -> None:
    fake = _allow(*allowed)
    fake.put("certificatesigningrequests", obj)
    ctx = make_ctx(fake)
    controller = CSRApprovingController(ctx)
    await start(ctx)
    try:
        await controller.sync("node-csr-1")
    except Exception as exc:  # "not approved" is a Requeue, as the real IgnorableError
        assert message is None, exc
    asked = [c.body["spec"]["resourceAttributes"]["subresource"] for c in fake.calls
             if c.resource == "subjectaccessreviews"]
    assert asked == reviews
    writes = fake.writes()
    if message is None:
        assert writes == []
        return
    assert [(w.verb, w.subresource) for w in writes] == [("update", "approval")]
    cond = writes[0].body["status"]["conditions"][-1]
    assert (cond["type"], cond["status"], cond["reason"], cond["message"]) == \
        ("Approved", "True", "AutoApproved", message)


async def test_running_controller_approves_a_new_csr_once(start: Start) -> None:
    fake = _allow("nodeclient")
    ctx = make_ctx(fake)
    await start(ctx, CSRApprovingController(ctx))
    fake.put("certificatesigningrequests", csr())
    await fake.wait_for(lambda: len(fake.writes()) == 1)
    fake.put("certificatesigningrequests", fake.obj("certificatesigningrequests", "node-csr-1") or {})  # resync
    fake.put("certificatesigningrequests", csr("node-csr-2"))  # handled after the resync event
    await fake.wait_for(lambda: len(fake.writes()) == 2)
    assert [(w.name, w.subresource) for w in fake.writes()] == [("node-csr-1", "approval"),
                                                                ("node-csr-2", "approval")]
    assert len(fake.calls) == 4  # one SubjectAccessReview per CSR, none for the approved one
