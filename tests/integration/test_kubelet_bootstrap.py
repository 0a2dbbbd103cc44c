"""TLS bootstrapping against a real apiserver process: a kubelet with only a bootstrap token joins, its
CSR is approved and signed here (as the controller-manager would), its certificate rotates, a denied
CSR stops it, and a serving-certificate CSR waits for ``kubectl certificate approve``."""

from __future__ import annotations

import asyncio
import base64
import datetime as dt
import os
import socket
import ssl
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
from cryptography import x509
from cryptography.x509.oid import NameOID

from miniapi.client import ClientError, KubeClient
from pki.certs import issue_cert
from pki.files import read_cert, read_key
from pki.pem import dump_cert_pem
from pki.signer import KUBE_APISERVER_CLIENT_KUBELET, KUBELET_SERVING, parse_csr
from tests.e2e.cluster import Cluster, make_cluster
from tests.integration.kubelet_harness import (
    CERTS,
    KubeletProc,
    admin,
    bootstrap_secret,
    decide,
    issue,
    wait_for,
    wait_node_ready,
)

Obj = dict[str, Any]


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    """No controller-manager: the tests approve, deny and sign CSRs themselves."""
    c = make_cluster(tmp_path_factory.mktemp("kubelet-bootstrap"), controller_manager=False)
    try:
        yield c
    finally:
        c.stop()


async def with_bootstrap_token(cluster: Cluster) -> AsyncIterator[KubeClient]:
    async with admin(cluster) as client:
        try:
            await client.create("secrets", bootstrap_secret(cluster), "kube-system")
        except ClientError as e:
            if e.code != 409:
                raise
        yield client


@pytest.fixture
async def kc(cluster: Cluster) -> AsyncIterator[KubeClient]:
    async for client in with_bootstrap_token(cluster):
        yield client


@pytest.fixture
def kubelets() -> Iterator[list[KubeletProc]]:
    started: list[KubeletProc] = []
    try:
        yield started
    finally:
        for k in started:
            k.cleanup()


def joining(cluster: Cluster, name: str, ip: str, *extra: str) -> KubeletProc:
    d = cluster.root / f"kubelet-{name}"
    return KubeletProc(cluster, name, ip, d, d / "kubelet.conf",
                       ["--bootstrap-kubeconfig", str(cluster.root / "bootstrap-kubelet.conf"), *extra])


async def csr_from(kc: KubeClient, username: str, signer: str) -> Obj:
    csr = await wait_for(kc, "certificatesigningrequests", lambda c: c is not None and
                         c["spec"].get("username") == username and c["spec"]["signerName"] == signer
                         and not (c.get("status") or {}).get("conditions"), group=CERTS)
    assert csr is not None
    return csr


def short_lived(cluster: Cluster, csr: Obj, seconds: int) -> bytes:
    """A client certificate that is already most of the way through its life (rotation due soon)."""
    request = parse_csr(base64.b64decode(csr["spec"]["request"]))
    cn = str(request.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value)
    now = dt.datetime.now(dt.UTC)
    cert = issue_cert(read_cert(cluster.pki / "ca.crt"), read_key(cluster.pki / "ca.key"), request.public_key(),
                      cn, ["system:nodes"], client=True, not_before=now - dt.timedelta(seconds=seconds),
                      not_after=now + dt.timedelta(seconds=seconds // 4))
    return dump_cert_pem(cert)


async def test_a_node_joins_with_a_bootstrap_token_and_rotates_its_certificate(
        cluster: Cluster, kc: KubeClient, kubelets: list[KubeletProc]) -> None:
    token_id = cluster.root.joinpath("bootstrap-token").read_text().split(".")[0]
    k = joining(cluster, "joiner", "127.0.1.22", "--rotate-certificates")
    kubelets.append(k.start())
    csr = await csr_from(kc, f"system:bootstrap:{token_id}", KUBE_APISERVER_CLIENT_KUBELET)
    spec = csr["spec"]
    assert csr["metadata"]["name"].startswith("node-csr-")
    assert spec["usages"] == ["digital signature", "client auth"] and "system:bootstrappers" in spec["groups"]
    request = parse_csr(base64.b64decode(spec["request"]))
    assert request.subject.rfc4514_string() == "CN=system:node:joiner,O=system:nodes"
    await decide(kc, csr)
    # issue a certificate whose rotation deadline (70-90% of 50s) is at most ~5s away
    await issue(kc, cluster, csr, short_lived(cluster, csr, 40))
    await wait_node_ready(kc, "joiner")
    pem = k.root_dir / "pki" / "kubelet-client-current.pem"
    assert os.path.islink(pem) and os.stat(pem).st_mode & 0o777 == 0o600
    assert str(pem) in k.kubeconfig.read_text() and not (k.root_dir / "pki" / "kubelet-client.key.tmp").exists()
    first = x509.load_pem_x509_certificate(pem.read_bytes()).serial_number
    renewal = await csr_from(kc, "system:node:joiner", KUBE_APISERVER_CLIENT_KUBELET)
    assert renewal["metadata"]["name"].startswith("csr-")  # generateName: rotation, not bootstrap
    await decide(kc, renewal)
    await issue(kc, cluster, renewal)
    async with asyncio.timeout(20):  # a file on disk has no event to wait for
        while x509.load_pem_x509_certificate(pem.read_bytes()).serial_number == first:
            await asyncio.sleep(0.05)
    lease = await kc.get("leases", "joiner", "kube-node-lease", "coordination.k8s.io")
    assert lease["spec"]["holderIdentity"] == "joiner" and k.alive(), k.log_text()


async def test_a_denied_csr_stops_the_kubelet_with_a_clear_error(cluster: Cluster, kc: KubeClient,
                                                                 kubelets: list[KubeletProc]) -> None:
    token_id = cluster.root.joinpath("bootstrap-token").read_text().split(".")[0]
    k = joining(cluster, "refused", "127.0.1.23")
    kubelets.append(k.start())
    csr = await csr_from(kc, f"system:bootstrap:{token_id}", KUBE_APISERVER_CLIENT_KUBELET)
    assert "system:node:refused" in parse_csr(base64.b64decode(csr["spec"]["request"])).subject.rfc4514_string()
    await decide(kc, csr, "Denied")
    assert k.proc is not None
    code = await asyncio.to_thread(k.proc.wait, 20)
    assert code != 0
    assert "certificate signing request is denied, reason: KubectlDeny" in k.log_text()
    assert not k.kubeconfig.exists()


def served_issuer(ip: str, port: int) -> str:
    ctx = ssl.create_default_context()
    ctx.check_hostname, ctx.verify_mode = False, ssl.CERT_NONE
    with socket.create_connection((ip, port), timeout=5) as raw, ctx.wrap_socket(raw) as tls:
        der = tls.getpeercert(binary_form=True)
    assert der is not None
    return x509.load_der_x509_certificate(der).issuer.rfc4514_string()


async def test_the_serving_certificate_waits_for_approval(cluster: Cluster, kc: KubeClient,
                                                          kubelets: list[KubeletProc]) -> None:
    d = cluster.root / "kubelet-node2-serving"
    k = KubeletProc(cluster, "node2", "127.0.1.24", d, cluster.root / "nodes" / "node2" / "kubelet.conf",
                    ["--rotate-server-certificates"])
    kubelets.append(k.start())
    csr = await csr_from(kc, "system:node:node2", KUBELET_SERVING)
    assert csr["metadata"]["name"].startswith("csr-") and csr["spec"]["usages"] == ["digital signature",
                                                                                   "server auth"]
    sans = parse_csr(base64.b64decode(csr["spec"]["request"])).extensions.get_extension_for_class(
        x509.SubjectAlternativeName).value
    assert sans.get_values_for_type(x509.DNSName) == ["node2"]
    assert [str(ip) for ip in sans.get_values_for_type(x509.IPAddress)] == ["127.0.1.24"]
    await wait_node_ready(kc, "node2")
    assert served_issuer(k.ip, k.port).startswith("CN=node2-ca@")  # self-signed while Pending
    still = await kc.get("certificatesigningrequests", csr["metadata"]["name"], group=CERTS)
    assert not (still.get("status") or {}).get("conditions")  # nobody approves serving certs automatically
    await decide(kc, csr)
    await issue(kc, cluster, csr)
    async with asyncio.timeout(20):  # the kubelet reloads its TLS context; handshakes are the probe
        while served_issuer(k.ip, k.port) != "CN=kubernetes":
            await asyncio.sleep(0.05)
    assert (k.root_dir / "pki" / "kubelet-server-current.pem").is_symlink()


async def test_with_a_controller_manager_the_token_is_all_a_node_needs(
        tmp_path_factory: pytest.TempPathFactory, kubelets: list[KubeletProc]) -> None:
    """The real flow: csrapproving approves (nodeclient), csrsigning signs, the node appears Ready."""
    c = make_cluster(tmp_path_factory.mktemp("kubelet-bootstrap-kcm"))
    try:
        async for client in with_bootstrap_token(c):
            k = joining(c, "autojoin", "127.0.1.25")
            kubelets.append(k.start())
            await wait_node_ready(client, "autojoin")
            csrs = (await client.list("certificatesigningrequests", group=CERTS))["items"]
            mine = [x for x in csrs if x["spec"]["username"].startswith("system:bootstrap:")]
            assert len(mine) == 1 and mine[0]["status"]["certificate"]
            assert {cond["type"] for cond in mine[0]["status"]["conditions"]} == {"Approved"}
    finally:
        for k in kubelets:
            k.cleanup()
        kubelets.clear()
        c.stop()
