"""The controller-manager as a real process against a real apiserver process, over TLS on 127.0.0.1.

The apiserver is ``tests.e2e.cluster.make_cluster`` (Node,RBAC, bootstrap tokens on); the
controller-manager runs ``python -m miniapi.controllermanager`` with ``controller-manager.conf``
(CN=system:kube-controller-manager) and the cluster CA as signer, so every write here went through
authentication and RBAC exactly as kube-controller-manager's would. Effects cross a process
boundary, so tests poll the apiserver with a deadline; negative checks ("stays Pending") use a
later CSR that *is* handled as a barrier instead of a sleep.
"""

from __future__ import annotations

import asyncio
import base64
import datetime as dt
import re
import signal
import subprocess
import sys
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from typing import Any, TypeVar

import pytest
from cryptography import x509

from miniapi.client import ClientError, KubeClient, ssl_context_for
from pki.certinfo import chains_to, describe
from pki.certs import make_csr, make_key
from pki.pem import dump_cert_pem, dump_key_pem
from pki.signer import KUBE_APISERVER_CLIENT_KUBELET, KUBELET_SERVING
from tests.e2e.cluster import ROOT, Cluster, make_cluster

Obj = dict[str, Any]
T = TypeVar("T")
CERTS = "certificates.k8s.io"
CLIENT_USAGES = ["digital signature", "client auth"]
HOUR_AGO = "2000-01-01T00:00:00Z"


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    c = make_cluster(tmp_path_factory.mktemp("kcm"), controller_manager=False)
    try:
        yield c
    finally:
        c.stop()


class Kcm:
    def __init__(self, cluster: Cluster) -> None:
        self.log = cluster.root / "controller-manager.log"
        pki = cluster.pki
        args = [sys.executable, "-m", "miniapi.controllermanager",
                "--kubeconfig", str(cluster.root / "controller-manager.conf"),
                "--cluster-signing-cert-file", str(pki / "ca.crt"), "--cluster-signing-key-file", str(pki / "ca.key"),
                "--root-ca-file", str(pki / "ca.crt"), "--node-monitor-period", "200ms",
                "--leader-elect-retry-period", "500ms"]
        self.proc = subprocess.Popen(args, stdout=open(self.log, "ab"), stderr=subprocess.STDOUT, cwd=ROOT)

    def text(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""


@pytest.fixture(scope="module")
def kcm(cluster: Cluster) -> Iterator[Kcm]:
    k = Kcm(cluster)
    try:
        yield k
    finally:
        if k.proc.poll() is None:
            k.proc.send_signal(signal.SIGTERM)
            try:
                k.proc.wait(10)
            except subprocess.TimeoutExpired:
                k.proc.kill()
                k.proc.wait()


@pytest.fixture
async def admin(cluster: Cluster, kcm: Kcm) -> AsyncIterator[KubeClient]:
    async with KubeClient.from_kubeconfig(cluster.root / "admin.conf") as kc:
        yield kc


async def until(kcm: Kcm, what: str, probe: Callable[[], Awaitable[T | None]], timeout: float = 20) -> T:
    """Poll ``probe`` (a cross-process effect) until it returns something truthy."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        if kcm.proc.poll() is not None:
            raise AssertionError(f"controller-manager exited {kcm.proc.returncode}:\n{kcm.text()[-4000:]}")
        result = await probe()
        if result:
            return result
        if loop.time() > deadline:
            raise AssertionError(f"timed out waiting for {what}\n{kcm.text()[-4000:]}")
        await asyncio.sleep(0.1)


def token_client(cluster: Cluster, token: str) -> KubeClient:
    return KubeClient(cluster.url, ssl_context_for((cluster.pki / "ca.crt").read_bytes()), token=token)


@pytest.fixture
async def bootstrap(cluster: Cluster, admin: KubeClient) -> AsyncIterator[KubeClient]:
    """A client authenticating with the bootstrap token, after its Secret exists (as kubeadm makes it)."""
    token = (cluster.root / "bootstrap-token").read_text().strip()
    token_id, secret = token.split(".")
    data = {"token-id": token_id, "token-secret": secret, "usage-bootstrap-authentication": "true",
            "usage-bootstrap-signing": "true", "auth-extra-groups": "system:bootstrappers:kubeadm:default-node-token"}
    body = {"apiVersion": "v1", "kind": "Secret", "type": "bootstrap.kubernetes.io/token",
            "metadata": {"name": f"bootstrap-token-{token_id}", "namespace": "kube-system"},
            "data": {k: base64.b64encode(v.encode()).decode() for k, v in data.items()}}
    try:
        await admin.create("secrets", body, namespace="kube-system")
    except ClientError as exc:
        assert exc.code == 409, exc
    async with token_client(cluster, token) as kc:
        yield kc


def csr_body(name: str, key: Any, cn: str, signer: str = KUBE_APISERVER_CLIENT_KUBELET,
             usages: list[str] | None = None, dns: tuple[str, ...] = (), ips: tuple[str, ...] = ()) -> Obj:
    pem = make_csr(key, cn, ["system:nodes"], dns, ips)
    return {"apiVersion": f"{CERTS}/v1", "kind": "CertificateSigningRequest", "metadata": {"name": name},
            "spec": {"request": base64.b64encode(pem).decode(), "signerName": signer,
                     "usages": usages or CLIENT_USAGES}}


async def issued(kcm: Kcm, admin: KubeClient, name: str) -> Obj:
    async def probe() -> Obj | None:
        obj = await admin.get("certificatesigningrequests", name, group=CERTS)
        return obj if obj.get("status", {}).get("certificate") else None
    return await until(kcm, f"csr {name} to be issued", probe)


def certificate(csr: Obj) -> x509.Certificate:
    return x509.load_pem_x509_certificate(base64.b64decode(csr["status"]["certificate"]))


def conditions(csr: Obj) -> list[tuple[str, str]]:
    return [(c["type"], c.get("reason", "")) for c in csr.get("status", {}).get("conditions") or ()]


# (a) ---------------------------------------------------------------------------------------------------
async def test_bootstrap_token_csr_is_auto_approved_and_signed(cluster: Cluster, kcm: Kcm, admin: KubeClient,
                                                                bootstrap: KubeClient) -> None:
    key = make_key("ec")
    created = await bootstrap.create("certificatesigningrequests", csr_body("node-csr-nodex", key,
                                                                            "system:node:nodeX"), group=CERTS)
    assert created["spec"]["username"].startswith("system:bootstrap:")
    csr = await issued(kcm, admin, "node-csr-nodex")
    approved = csr["status"]["conditions"][0]
    assert (approved["type"], approved["status"], approved["reason"], approved["message"]) == (
        "Approved", "True", "AutoApproved", "Auto approving kubelet client certificate after SubjectAccessReview.")
    cert = certificate(csr)
    ca = x509.load_pem_x509_certificate((cluster.pki / "ca.crt").read_bytes())
    info = describe(cert)
    assert chains_to(cert, ca)
    assert (info.common_name, info.organizations, info.extended_usages) == (
        "system:node:nodeX", ("system:nodes",), ("client auth",))
    # the new credential works: the apiserver now sees the node identity
    ctx = ssl_context_for((cluster.pki / "ca.crt").read_bytes(), dump_cert_pem(cert), dump_key_pem(key))
    async with KubeClient(cluster.url, ctx) as node:
        review = await node.create("selfsubjectreviews", {"apiVersion": "authentication.k8s.io/v1",
                                                          "kind": "SelfSubjectReview"}, group="authentication.k8s.io")
    assert review["status"]["userInfo"]["username"] == "system:node:nodeX"
    assert "system:nodes" in review["status"]["userInfo"]["groups"]


# (b) ---------------------------------------------------------------------------------------------------
async def test_kubelet_serving_csr_waits_for_an_admin(cluster: Cluster, kcm: Kcm, admin: KubeClient,
                                                      bootstrap: KubeClient) -> None:
    async with KubeClient.from_kubeconfig(cluster.root / "nodes" / "node1" / "kubelet.conf") as node1:
        await node1.create("certificatesigningrequests", csr_body(
            "csr-serving-node1", make_key("ec"), "system:node:node1", KUBELET_SERVING,
            ["digital signature", "server auth"], dns=("node1",), ips=("127.0.0.2",)), group=CERTS)
    # barrier: a later CSR through the same informer and queue gets handled, so the serving one was seen
    await bootstrap.create("certificatesigningrequests", csr_body("node-csr-barrier-b", make_key("ec"),
                                                                  "system:node:barrier-b"), group=CERTS)
    await issued(kcm, admin, "node-csr-barrier-b")
    serving = await admin.get("certificatesigningrequests", "csr-serving-node1", group=CERTS)
    assert conditions(serving) == [] and not serving["status"].get("certificate")

    serving["status"] = {"conditions": [{"type": "Approved", "status": "True", "reason": "KubectlApprove",
                                         "message": "This CSR was approved by kubectl certificate approve."}]}
    await admin.update("certificatesigningrequests", serving, group=CERTS, subresource="approval")
    info = describe(certificate(await issued(kcm, admin, "csr-serving-node1")))
    assert (info.common_name, info.dns_names, info.ip_addresses, info.extended_usages) == (
        "system:node:node1", ("node1",), ("127.0.0.2",), ("server auth",))


# (c) ---------------------------------------------------------------------------------------------------
async def test_unprivileged_users_client_csr_is_not_auto_approved(cluster: Cluster, kcm: Kcm, admin: KubeClient,
                                                                  bootstrap: KubeClient) -> None:
    rbac = "rbac.authorization.k8s.io"
    await admin.create("clusterroles", {"apiVersion": f"{rbac}/v1", "kind": "ClusterRole",
                                        "metadata": {"name": "csr-creator"},
                                        "rules": [{"apiGroups": [CERTS], "resources": ["certificatesigningrequests"],
                                                   "verbs": ["create", "get"]}]}, group=rbac)
    await admin.create("clusterrolebindings", {
        "apiVersion": f"{rbac}/v1", "kind": "ClusterRoleBinding", "metadata": {"name": "alice-csr-creator"},
        "roleRef": {"apiGroup": rbac, "kind": "ClusterRole", "name": "csr-creator"},
        "subjects": [{"kind": "User", "apiGroup": rbac, "name": "alice"}]}, group=rbac)
    async with token_client(cluster, cluster.token("alice")) as alice:
        created = await alice.create("certificatesigningrequests", csr_body(
            "node-csr-by-alice", make_key("ec"), "system:node:evil"), group=CERTS)
    assert created["spec"]["username"] == "alice"
    await bootstrap.create("certificatesigningrequests", csr_body("node-csr-barrier-c", make_key("ec"),
                                                                  "system:node:barrier-c"), group=CERTS)
    await issued(kcm, admin, "node-csr-barrier-c")
    by_alice = await admin.get("certificatesigningrequests", "node-csr-by-alice", group=CERTS)
    assert conditions(by_alice) == [] and not by_alice["status"].get("certificate")


# (d) ---------------------------------------------------------------------------------------------------
async def test_default_service_account_and_root_ca_are_restored(cluster: Cluster, kcm: Kcm,
                                                                admin: KubeClient) -> None:
    ca = (cluster.pki / "ca.crt").read_text()
    await admin.create("namespaces", {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "team-d"}})

    async def get(resource: str, name: str) -> Obj | None:
        try:
            return await admin.get(resource, name, namespace="team-d")
        except ClientError as exc:
            if exc.code == 404:
                return None
            raise

    sa = await until(kcm, "default SA", lambda: get("serviceaccounts", "default"))
    await admin.delete("serviceaccounts", "default", namespace="team-d")

    async def recreated() -> Obj | None:
        new = await get("serviceaccounts", "default")
        return new if new and new["metadata"]["uid"] != sa["metadata"]["uid"] else None
    await until(kcm, "default SA to be recreated", recreated)

    cm = await until(kcm, "kube-root-ca.crt", lambda: get("configmaps", "kube-root-ca.crt"))
    cm["data"] = {"ca.crt": "tampered"}
    await admin.update("configmaps", cm, namespace="team-d")

    async def restored() -> Obj | None:
        now = await get("configmaps", "kube-root-ca.crt")
        return now if now and now.get("data") == {"ca.crt": ca} else None
    fixed = await until(kcm, "kube-root-ca.crt to be restored", restored)
    assert fixed["metadata"]["annotations"]["kubernetes.io/description"].startswith("Contains a CA bundle")
    await admin.delete("configmaps", "kube-root-ca.crt", namespace="team-d")
    await until(kcm, "kube-root-ca.crt to be recreated", restored)


# (e) ---------------------------------------------------------------------------------------------------
def node_body(name: str, ready: str, heartbeat: str, labels: dict[str, str] | None = None) -> Obj:
    return {"apiVersion": "v1", "kind": "Node", "metadata": {"name": name, "labels": labels or {}},
            "status": {"conditions": [{"type": "Ready", "status": ready, "reason": "KubeletReady",
                                       "message": "kubelet is posting ready status",
                                       "lastHeartbeatTime": heartbeat, "lastTransitionTime": heartbeat}]}}


def now_stamp() -> str:
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def taint_keys(node: Obj) -> list[str]:
    return sorted(f"{t['key']}:{t['effect']}" for t in node.get("spec", {}).get("taints") or ())


async def test_silent_node_becomes_unknown_and_tainted_then_recovers(kcm: Kcm, admin: KubeClient) -> None:
    await admin.create("nodes", node_body("silent", "True", HOUR_AGO))
    unreachable = ["node.kubernetes.io/unreachable:NoExecute", "node.kubernetes.io/unreachable:NoSchedule"]

    async def tainted() -> Obj | None:
        node = await admin.get("nodes", "silent")
        return node if taint_keys(node) == unreachable else None
    node = await until(kcm, "node silent to be tainted unreachable", tainted)
    ready = next(c for c in node["status"]["conditions"] if c["type"] == "Ready")
    assert (ready["status"], ready["reason"], ready["message"]) == (
        "Unknown", "NodeStatusUnknown", "Kubelet stopped posting node status.")

    node["status"]["conditions"] = node_body("silent", "True", now_stamp())["status"]["conditions"]
    await admin.update("nodes", node, subresource="status")  # the kubelet posts again

    async def untainted() -> Obj | None:
        n = await admin.get("nodes", "silent")
        return n if taint_keys(n) == [] else None
    await until(kcm, "node silent to be untainted", untainted)


# (f) ---------------------------------------------------------------------------------------------------
async def test_pod_waits_with_failed_scheduling_then_binds_to_the_ready_node(kcm: Kcm, admin: KubeClient) -> None:
    await admin.create("nodes", node_body("f-node", "False", now_stamp(), {"lab": "f"}))
    pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "f-pod", "namespace": "default"},
           "spec": {"nodeSelector": {"lab": "f"}, "containers": [{"name": "c", "image": "busybox"}]}}
    await admin.create("pods", pod, namespace="default")

    async def failed_event() -> Obj | None:
        events = await admin.list("events", namespace="default", fieldSelector="involvedObject.name=f-pod")
        return next((e for e in events["items"] if e["reason"] == "FailedScheduling"), None)
    event = await until(kcm, "a FailedScheduling event", failed_event)
    assert event["type"] == "Warning" and event["source"]["component"] == "default-scheduler"
    assert re.fullmatch(r"0/\d+ nodes are available: .*1 node\(s\) were not ready.*\.", event["message"])
    assert event["involvedObject"]["kind"] == "Pod" and event["count"] >= 1

    async def pod_condition() -> Obj | None:
        p = await admin.get("pods", "f-pod", namespace="default")
        return next((c for c in p["status"].get("conditions") or () if c["type"] == "PodScheduled"), None)
    cond = await until(kcm, "PodScheduled=False", pod_condition)
    assert (cond["status"], cond["reason"]) == ("False", "Unschedulable")

    node = await admin.get("nodes", "f-node")
    node["status"]["conditions"] = node_body("f-node", "True", now_stamp())["status"]["conditions"]
    await admin.update("nodes", node, subresource="status")

    async def bound() -> str | None:
        p = await admin.get("pods", "f-pod", namespace="default")
        return p["spec"].get("nodeName")
    assert await until(kcm, "f-pod to be bound", bound) == "f-node"


# process hygiene ----------------------------------------------------------------------------------------
async def test_holds_the_lease_logs_no_secrets_and_stops_cleanly_on_sigterm(cluster: Cluster, kcm: Kcm,
                                                                          admin: KubeClient) -> None:
    lease = await admin.get("leases", "kube-controller-manager", namespace="kube-system", group="coordination.k8s.io")
    assert lease["spec"]["holderIdentity"]
    kcm.proc.send_signal(signal.SIGTERM)
    assert await asyncio.to_thread(kcm.proc.wait, 10) == 0
    log = kcm.text()
    token_secret = (cluster.root / "bootstrap-token").read_text().strip().split(".")[1]
    assert "Traceback" not in log and token_secret not in log and "PRIVATE KEY" not in log
    assert "released lease kube-system/kube-controller-manager" in log
    assert all(" I " in line or " W " in line or " E " in line for line in log.splitlines()), "one line per event"
    released = await admin.get("leases", "kube-controller-manager", namespace="kube-system",
                               group="coordination.k8s.io")
    assert released["spec"]["holderIdentity"] == ""

