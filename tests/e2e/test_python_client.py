"""The official Python client (``kubernetes`` 37) against a real ``python -m miniapi`` process.

Covers what PROTOCOLS.md sections 1, 2 and 8 promise the client: CRUD with strategic-merge patches,
label/field selectors, watch (ADDED/MODIFIED/DELETED), TokenRequest sent without kind and without a
Content-Type, the authentication and authorization reviews, CSR approval, RBAC, and ApiException
codes and reasons as a real cluster gives them.
"""

from __future__ import annotations

import base64
import json
import queue
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from kubernetes import client, config, watch
from kubernetes.client.rest import ApiException

from tests.e2e.cluster import Cluster

pytestmark = pytest.mark.e2e

NS = "pyclient"


def api_client(kubeconfig: Path) -> client.ApiClient:
    cfg = client.Configuration()
    config.load_kube_config(config_file=str(kubeconfig), client_configuration=cfg)
    return client.ApiClient(cfg)


def token_client(cluster: Cluster, name: str, token: str) -> client.ApiClient:
    return api_client(cluster.token_kubeconfig(name, token))


def status_of(exc: ApiException) -> dict[str, Any]:
    body = json.loads(exc.body)
    assert body["kind"] == "Status" and body["code"] == exc.status, body
    return body


@pytest.fixture(scope="module")
def admin(cluster: Cluster) -> Iterator[client.ApiClient]:
    with api_client(cluster.root / "admin.conf") as api:
        yield api


@pytest.fixture(scope="module")
def admin_token(cluster: Cluster) -> Iterator[client.ApiClient]:
    with token_client(cluster, "py-admin-token", cluster.token("admin")) as api:
        yield api


@pytest.fixture(scope="module")
def alice(cluster: Cluster) -> Iterator[client.ApiClient]:
    with token_client(cluster, "py-alice", cluster.token("alice")) as api:
        yield api


@pytest.fixture(scope="module")
def ns(admin: client.ApiClient) -> str:
    v1 = client.CoreV1Api(admin)
    v1.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=NS)))
    return NS


def pod(name: str, labels: dict[str, str] | None = None) -> client.V1Pod:
    return client.V1Pod(
        metadata=client.V1ObjectMeta(name=name, labels=labels),
        spec=client.V1PodSpec(containers=[client.V1Container(name="c", image="busybox:1.36")]))


def wait_for_sa(v1: client.CoreV1Api, namespace: str, name: str = "default", timeout: float = 30) -> None:
    """The controller-manager's serviceaccount controller makes ``default`` soon after the namespace
    (as in a real cluster, where a pod created at once may be refused for the same reason)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            v1.read_namespaced_service_account(name, namespace)
            return
        except ApiException as exc:
            if exc.status != 404 or time.monotonic() > deadline:
                raise
        time.sleep(0.1)


# -- credentials --------------------------------------------------------------------------------

@pytest.mark.parametrize("who", ["client-cert", "token"])
def test_list_namespaces(who: str, admin: client.ApiClient, admin_token: client.ApiClient) -> None:
    api = admin if who == "client-cert" else admin_token
    names = {n.metadata.name for n in client.CoreV1Api(api).list_namespace().items}
    assert {"default", "kube-system", "kube-public", "kube-node-lease"} <= names


@pytest.mark.parametrize("who, username", [("client-cert", "kubernetes-admin"), ("token", "admin")])
def test_self_subject_review_v1(who: str, username: str, admin: client.ApiClient,
                                admin_token: client.ApiClient) -> None:
    api = admin if who == "client-cert" else admin_token
    review = client.AuthenticationV1Api(api).create_self_subject_review(client.V1SelfSubjectReview())
    info = review.status.user_info
    assert info.username == username
    assert "system:masters" in info.groups and "system:authenticated" in info.groups


# -- CRUD ---------------------------------------------------------------------------------------

def test_pod_create_read_patch_delete(admin: client.ApiClient, ns: str) -> None:
    v1 = client.CoreV1Api(admin)
    wait_for_sa(v1, ns)
    created = v1.create_namespaced_pod(ns, pod("p1", {"app": "web"}))
    assert created.metadata.uid and created.metadata.resource_version
    assert created.status.phase == "Pending"
    assert created.spec.restart_policy == "Always"  # defaulted by the server

    read = v1.read_namespaced_pod("p1", ns)
    assert read.metadata.uid == created.metadata.uid

    patched = v1.patch_namespaced_pod("p1", ns, {"metadata": {"labels": {"tier": "front"}}})
    assert patched.metadata.labels == {"app": "web", "tier": "front"}
    assert int(patched.metadata.resource_version) > int(created.metadata.resource_version)

    v1.delete_namespaced_pod("p1", ns)
    with pytest.raises(ApiException) as err:
        v1.read_namespaced_pod("p1", ns)
    assert err.value.status == 404


def test_configmap_crud_and_json_patch(admin: client.ApiClient, ns: str) -> None:
    v1 = client.CoreV1Api(admin)
    cm = client.V1ConfigMap(metadata=client.V1ObjectMeta(name="cm1"), data={"a": "1"})
    v1.create_namespaced_config_map(ns, cm)
    v1.patch_namespaced_config_map("cm1", ns, {"data": {"b": "2"}})  # strategic merge
    v1.patch_namespaced_config_map("cm1", ns, [{"op": "replace", "path": "/data/a", "value": "x"}])
    assert v1.read_namespaced_config_map("cm1", ns).data == {"a": "x", "b": "2"}

    got = v1.read_namespaced_config_map("cm1", ns)
    got.data = {"only": "this"}
    replaced = v1.replace_namespaced_config_map("cm1", ns, got)
    assert replaced.data == {"only": "this"}

    got.data = {"stale": "write"}  # got still carries the old resourceVersion
    with pytest.raises(ApiException) as err:
        v1.replace_namespaced_config_map("cm1", ns, got)
    assert err.value.status == 409 and status_of(err.value)["reason"] == "Conflict"

    status = v1.delete_namespaced_config_map("cm1", ns)
    assert status["status"] == "Success"  # delete_* return the raw Status


def test_secret_roundtrip(admin: client.ApiClient, ns: str) -> None:
    v1 = client.CoreV1Api(admin)
    secret = client.V1Secret(metadata=client.V1ObjectMeta(name="s1"), string_data={"password": "hunter2"},
                             type="Opaque")
    v1.create_namespaced_secret(ns, secret)
    got = v1.read_namespaced_secret("s1", ns)
    assert got.string_data is None  # folded into data by the server
    assert base64.b64decode(got.data["password"]) == b"hunter2"
    v1.patch_namespaced_secret("s1", ns, {"data": {"user": base64.b64encode(b"root").decode()}})
    assert set(v1.read_namespaced_secret("s1", ns).data) == {"password", "user"}
    v1.delete_namespaced_secret("s1", ns)


def test_service_gets_a_cluster_ip(admin: client.ApiClient, ns: str) -> None:
    v1 = client.CoreV1Api(admin)
    svc = client.V1Service(metadata=client.V1ObjectMeta(name="web"), spec=client.V1ServiceSpec(
        selector={"app": "web"}, ports=[client.V1ServicePort(port=80, target_port=8080)]))
    created = v1.create_namespaced_service(ns, svc)
    assert created.spec.cluster_ip and created.spec.cluster_ip.startswith("10.")
    patched = v1.patch_namespaced_service("web", ns, {"metadata": {"annotations": {"a": "b"}}})
    assert patched.spec.cluster_ip == created.spec.cluster_ip
    gone = v1.delete_namespaced_service("web", ns)  # ReturnDeletedObject: the Service, not a Status
    assert gone.metadata.uid == created.metadata.uid


def test_list_with_label_and_field_selectors(admin: client.ApiClient, ns: str) -> None:
    v1 = client.CoreV1Api(admin)
    for name, env in (("sel-a", "prod"), ("sel-b", "dev"), ("sel-c", "prod")):
        v1.create_namespaced_config_map(ns, client.V1ConfigMap(
            metadata=client.V1ObjectMeta(name=name, labels={"env": env, "sel": "yes"})))

    def names(**kw: str) -> list[str]:
        return [o.metadata.name for o in v1.list_namespaced_config_map(ns, **kw).items]

    assert names(label_selector="env=prod") == ["sel-a", "sel-c"]
    assert names(label_selector="sel,env!=prod") == ["sel-b"]
    assert names(label_selector="env in (dev)") == ["sel-b"]
    assert names(field_selector="metadata.name=sel-c") == ["sel-c"]
    assert names(label_selector="env=prod", field_selector="metadata.name!=sel-a") == ["sel-c"]
    first = v1.list_namespaced_config_map(ns, label_selector="sel", limit=2)
    assert [o.metadata.name for o in first.items] == ["sel-a", "sel-b"]
    rest = v1.list_namespaced_config_map(ns, label_selector="sel", limit=2, _continue=first.metadata._continue)
    assert [o.metadata.name for o in rest.items] == ["sel-c"]
    with pytest.raises(ApiException) as err:
        v1.list_namespaced_config_map(ns, label_selector="env in (")
    assert err.value.status == 400 and status_of(err.value)["reason"] == "BadRequest"
    v1.delete_collection_namespaced_config_map(ns, label_selector="sel")
    assert names(label_selector="sel") == []


def test_watch_sees_added_modified_deleted(admin: client.ApiClient, ns: str) -> None:
    v1 = client.CoreV1Api(admin)
    v1.create_namespaced_pod(ns, pod("w1", {"watch": "me"}))
    events: queue.Queue[tuple[str, str, dict[str, str] | None]] = queue.Queue()
    w = watch.Watch()

    def run() -> None:
        for ev in w.stream(v1.list_namespaced_pod, ns, label_selector="watch=me", timeout_seconds=30):
            obj = ev["object"]
            events.put((ev["type"], obj.metadata.name, obj.metadata.labels))
            if ev["type"] == "DELETED":
                break  # leaving the loop closes the stream; Watch.stop() would cut the socket
        events.put(("END", "", None))

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    try:
        assert events.get(timeout=10)[:2] == ("ADDED", "w1")  # the synthetic ADDED: the stream is live
        v1.patch_namespaced_pod("w1", ns, {"metadata": {"labels": {"step": "2"}}})
        kind, name, labels = events.get(timeout=10)
        assert (kind, name) == ("MODIFIED", "w1") and labels == {"watch": "me", "step": "2"}
        v1.delete_namespaced_pod("w1", ns)
        assert events.get(timeout=10)[:2] == ("DELETED", "w1")
        assert events.get(timeout=10)[0] == "END"
    finally:
        thread.join(timeout=35)


# -- tokens and reviews -------------------------------------------------------------------------

def _create_sa(v1: client.CoreV1Api, ns: str, name: str) -> None:
    v1.create_namespaced_service_account(ns, client.V1ServiceAccount(metadata=client.V1ObjectMeta(name=name)))


def test_token_request_without_kind_or_content_type(cluster: Cluster, admin: client.ApiClient,
                                                    ns: str) -> None:
    v1 = client.CoreV1Api(admin)
    _create_sa(v1, ns, "robot")
    # the generated client sends {"spec": {...}} with no kind/apiVersion and no Content-Type header
    body = client.AuthenticationV1TokenRequest(spec=client.V1TokenRequestSpec(
        audiences=["https://kubernetes.default.svc.cluster.local"], expiration_seconds=600))
    tr = v1.create_namespaced_service_account_token("robot", ns, body)
    assert tr.spec.expiration_seconds == 600 and tr.status.token.count(".") == 2

    with token_client(cluster, "py-robot", tr.status.token) as robot:
        info = client.AuthenticationV1Api(robot).create_self_subject_review(
            client.V1SelfSubjectReview()).status.user_info
    assert info.username == f"system:serviceaccount:{ns}:robot"
    assert set(info.groups) == {"system:serviceaccounts", f"system:serviceaccounts:{ns}",
                                "system:authenticated"}


def test_token_request_raw_call_has_no_content_type(admin: client.ApiClient, ns: str) -> None:
    """Exactly what PROTOCOLS.md 8 observed: JSON without kind, and no Content-Type at all."""
    resp = admin.call_api("POST", f"{admin.configuration.host}/api/v1/namespaces/{ns}/serviceaccounts/"
                          "default/token", header_params={"Accept": "application/json"},
                          body={"spec": {"expirationSeconds": 3600}})
    resp.read()
    assert resp.status == 201
    out = json.loads(resp.data)
    assert out["kind"] == "TokenRequest" and out["spec"]["expirationSeconds"] == 3600
    assert out["spec"]["audiences"] == ["https://kubernetes.default.svc.cluster.local"]


def test_token_request_too_short_is_invalid(admin: client.ApiClient, ns: str) -> None:
    body = client.AuthenticationV1TokenRequest(spec=client.V1TokenRequestSpec(audiences=[],
                                                                              expiration_seconds=60))
    with pytest.raises(ApiException) as err:
        client.CoreV1Api(admin).create_namespaced_service_account_token("default", ns, body)
    assert err.value.status == 422 and status_of(err.value)["reason"] == "Invalid"


def test_token_review(admin: client.ApiClient, ns: str) -> None:
    v1 = client.CoreV1Api(admin)
    tr = v1.create_namespaced_service_account_token("default", ns, client.AuthenticationV1TokenRequest(
        spec=client.V1TokenRequestSpec(audiences=[])))
    auth = client.AuthenticationV1Api(admin)
    ok = auth.create_token_review(client.V1TokenReview(spec=client.V1TokenReviewSpec(token=tr.status.token)))
    assert ok.status.authenticated is True
    assert ok.status.user.username == f"system:serviceaccount:{ns}:default"
    bad = auth.create_token_review(client.V1TokenReview(spec=client.V1TokenReviewSpec(token="nope")))
    assert bad.status.authenticated is not True


@pytest.mark.parametrize("user, groups, verb, resource, allowed", [
    ("alice", ["developers"], "list", "pods", False),
    ("root", ["system:masters"], "delete", "nodes", True),
    ("system:kube-proxy", [], "watch", "endpoints", True),
    ("system:kube-proxy", [], "get", "secrets", False),
], ids=["alice-cannot", "masters-can", "kube-proxy-can", "kube-proxy-cannot"])
def test_subject_access_review(admin: client.ApiClient, user: str, groups: list[str], verb: str,
                               resource: str, allowed: bool) -> None:
    res, _, sub = resource.partition("/")
    spec = client.V1SubjectAccessReviewSpec(user=user, groups=groups, resource_attributes=client.
                                            V1ResourceAttributes(verb=verb, resource=res, subresource=sub
                                                                 or None, namespace="default"))
    review = client.AuthorizationV1Api(admin).create_subject_access_review(client.V1SubjectAccessReview(
        spec=spec))
    assert review.status.allowed is allowed


def test_self_subject_access_review(admin: client.ApiClient, alice: client.ApiClient) -> None:
    def can(api: client.ApiClient, verb: str, resource: str) -> bool:
        review = client.AuthorizationV1Api(api).create_self_subject_access_review(
            client.V1SelfSubjectAccessReview(spec=client.V1SelfSubjectAccessReviewSpec(
                resource_attributes=client.V1ResourceAttributes(verb=verb, resource=resource,
                                                                namespace="default"))))
        return bool(review.status.allowed)

    assert can(admin, "delete", "secrets")
    assert not can(alice, "delete", "secrets")
    # every authenticated user may ask about itself (system:basic-user)
    assert client.AuthorizationV1Api(alice).create_self_subject_access_review(
        client.V1SelfSubjectAccessReview(spec=client.V1SelfSubjectAccessReviewSpec(
            non_resource_attributes=client.V1NonResourceAttributes(path="/healthz", verb="get")))
    ).status.allowed


def _csr_pem(common_name: str) -> str:
    key = ec.generate_private_key(ec.SECP256R1())
    csr = x509.CertificateSigningRequestBuilder().subject_name(x509.Name([
        x509.NameAttribute(NameOID.COMMON_NAME, common_name)])).sign(key, hashes.SHA256())
    return base64.b64encode(csr.public_bytes(serialization.Encoding.PEM)).decode()


def test_csr_create_and_approve(admin: client.ApiClient) -> None:
    certs = client.CertificatesV1Api(admin)
    name = f"py-csr-{uuid.uuid4().hex[:6]}"
    csr = certs.create_certificate_signing_request(client.V1CertificateSigningRequest(
        metadata=client.V1ObjectMeta(name=name), spec=client.V1CertificateSigningRequestSpec(
            request=_csr_pem("bob"), signer_name="kubernetes.io/kube-apiserver-client",
            usages=["client auth"], expiration_seconds=3600)))
    assert csr.spec.username == "kubernetes-admin"  # the requester, filled in by the server
    csr.status = client.V1CertificateSigningRequestStatus(conditions=[
        client.V1CertificateSigningRequestCondition(type="Approved", status="True", reason="PyTest",
                                                    message="approved by the python client")])
    approved = certs.replace_certificate_signing_request_approval(name, csr)
    kinds = [(c.type, c.status) for c in approved.status.conditions]
    assert kinds == [("Approved", "True")]
    certs.delete_certificate_signing_request(name)


# -- RBAC ---------------------------------------------------------------------------------------

def test_rbac_role_and_binding_grant_alice(admin: client.ApiClient, alice: client.ApiClient,
                                           ns: str) -> None:
    rbac = client.RbacAuthorizationV1Api(admin)
    rbac.create_namespaced_role(ns, client.V1Role(
        metadata=client.V1ObjectMeta(name="cm-reader"),
        rules=[client.V1PolicyRule(api_groups=[""], resources=["configmaps"], verbs=["get", "list"])]))
    as_alice = client.CoreV1Api(alice)
    with pytest.raises(ApiException) as err:
        as_alice.list_namespaced_config_map(ns)
    assert err.value.status == 403
    assert 'User "alice" cannot list resource "configmaps"' in status_of(err.value)["message"]

    rbac.create_namespaced_role_binding(ns, client.V1RoleBinding(
        metadata=client.V1ObjectMeta(name="alice-reads"),
        role_ref=client.V1RoleRef(api_group="rbac.authorization.k8s.io", kind="Role", name="cm-reader"),
        subjects=[client.RbacV1Subject(kind="User", name="alice", api_group="rbac.authorization.k8s.io")]))
    assert {c.metadata.name for c in as_alice.list_namespaced_config_map(ns).items} >= {"kube-root-ca.crt"}
    with pytest.raises(ApiException) as err:
        as_alice.list_namespaced_config_map("default")  # a Role grants only in its namespace
    assert err.value.status == 403
    with pytest.raises(ApiException) as err:
        as_alice.delete_namespaced_config_map("kube-root-ca.crt", ns)
    assert err.value.status == 403

    roles = [r.metadata.name for r in rbac.list_namespaced_role(ns).items]
    assert roles == ["cm-reader"]
    assert any(c.metadata.name == "cluster-admin" for c in rbac.list_cluster_role().items)
    rbac.delete_namespaced_role_binding("alice-reads", ns)
    with pytest.raises(ApiException) as err:
        as_alice.list_namespaced_config_map(ns)
    assert err.value.status == 403


# -- errors -------------------------------------------------------------------------------------

def test_not_found_404(admin: client.ApiClient, ns: str) -> None:
    with pytest.raises(ApiException) as err:
        client.CoreV1Api(admin).read_namespaced_pod("nosuch", ns)
    status = status_of(err.value)
    assert (err.value.status, status["reason"]) == (404, "NotFound")
    assert status["message"] == 'pods "nosuch" not found'
    assert status["details"] == {"name": "nosuch", "kind": "pods"}


def test_already_exists_409(admin: client.ApiClient, ns: str) -> None:
    v1 = client.CoreV1Api(admin)
    cm = client.V1ConfigMap(metadata=client.V1ObjectMeta(name="twice"))
    v1.create_namespaced_config_map(ns, cm)
    with pytest.raises(ApiException) as err:
        v1.create_namespaced_config_map(ns, cm)
    status = status_of(err.value)
    assert (err.value.status, status["reason"]) == (409, "AlreadyExists")
    assert status["message"] == 'configmaps "twice" already exists'


def test_forbidden_403(alice: client.ApiClient) -> None:
    with pytest.raises(ApiException) as err:
        client.CoreV1Api(alice).list_node()
    status = status_of(err.value)
    assert (err.value.status, status["reason"]) == (403, "Forbidden")
    assert status["message"].startswith('nodes is forbidden: User "alice" cannot list resource "nodes" in '
                                        'API group "" at the cluster scope')


def test_unauthorized_401(cluster: Cluster) -> None:
    with token_client(cluster, "py-bogus", "not-a-real-token") as bogus:
        with pytest.raises(ApiException) as err:
            client.CoreV1Api(bogus).list_namespace()
    status = status_of(err.value)
    assert (err.value.status, status["reason"]) == (401, "Unauthorized")


@pytest.mark.parametrize("name, containers, field", [
    ("Bad_Name", [client.V1Container(name="c", image="busybox")], "metadata.name"),
    ("no-containers", [], "spec.containers"),
    ("no-image", [client.V1Container(name="c")], "spec.containers[0].image"),
], ids=["bad-name", "no-containers", "no-image"])
def test_invalid_422(admin: client.ApiClient, ns: str, name: str, containers: list[client.V1Container],
                     field: str) -> None:
    bad = client.V1Pod(metadata=client.V1ObjectMeta(name=name), spec=client.V1PodSpec(containers=containers))
    with pytest.raises(ApiException) as err:
        client.CoreV1Api(admin).create_namespaced_pod(ns, bad)
    status = status_of(err.value)
    assert (err.value.status, status["reason"]) == (422, "Invalid")
    assert status["message"].startswith(f'Pod "{name}" is invalid: {field}')
    assert [c["field"] for c in status["details"]["causes"]] == [field]


def test_token_of_deleted_service_account_is_401(cluster: Cluster, admin: client.ApiClient,
                                                  ns: str) -> None:
    v1 = client.CoreV1Api(admin)
    _create_sa(v1, ns, "ephemeral")
    token = v1.create_namespaced_service_account_token("ephemeral", ns, client.AuthenticationV1TokenRequest(
        spec=client.V1TokenRequestSpec(audiences=[]))).status.token
    with token_client(cluster, "py-ephemeral", token) as eph:
        auth = client.AuthenticationV1Api(eph)
        assert auth.create_self_subject_review(client.V1SelfSubjectReview()).status.user_info.username \
            == f"system:serviceaccount:{ns}:ephemeral"
        v1.delete_namespaced_service_account("ephemeral", ns)
        with pytest.raises(ApiException) as err:
            auth.create_self_subject_review(client.V1SelfSubjectReview())
    assert err.value.status == 401 and status_of(err.value)["reason"] == "Unauthorized"
    review = client.AuthenticationV1Api(admin).create_token_review(client.V1TokenReview(
        spec=client.V1TokenReviewSpec(token=token)))
    assert review.status.authenticated is not True
