"""``kubectl logs`` through the apiserver to a real kubelet, in both modes of the apiserver -> kubelet path.

Real processes: ``python -m miniapi`` (tests/e2e/cluster.py) with ``--kubelet-client-certificate/-key``
and ``--kubelet-preferred-address-types=InternalIP,ExternalIP,Hostname`` (kubeadm's order: the nodes'
Hostnames do not resolve here), real ``minikubelet`` processes on 127.0.4.x, the real kubectl and the
official Python client.

* ``plain``: no ``--kubelet-certificate-authority`` (unverified, the real default); its kubelet runs
  with webhook authentication/authorization, so only the apiserver's identity may read logs.
* ``verified``: ``--kubelet-certificate-authority=ca.crt``; kubelets serving a CA-signed certificate
  for their IP, a self-signed one, one for the wrong IP, and one waiting for its CSR's approval.

The leak test runs an in-process apiserver against an in-process kubelet stand-in, so that tasks
and file descriptors can be counted where they live.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import select
import signal
import subprocess
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web
from kubernetes import client, config

from miniapi.client import ClientError, KubeClient
from miniapi.tlsconfig import client_ssl_context, server_ssl_context
from pki.certs import issue_cert, make_ca, make_key
from pki.files import read_cert, read_key, write_cert, write_key
from pki.init import init_pki
from tests.e2e.cluster import Cluster, Kubectl, make_cluster
from tests.integration.conftest import Pki, running
from tests.integration.kubelet_harness import (
    KubeletProc,
    admin,
    container_status,
    kubelet_client_args,
    pod_manifest,
    wait_for,
    wait_node_ready,
    webhook_kubelet_args,
)

SCRIPT = ["sh", "-c", "for i in 1 2 3; do echo line$i; done; sleep 30"]
LINES = "line1\nline2\nline3\n"
STAMP = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{9}Z line1$")



def serving_cert(cluster: Cluster, name: str, ips: list[str], *, self_signed: bool = False) -> list[str]:
    """--tls-cert-file/--tls-private-key-file flags for a kubelet serving certificate made now."""
    if self_signed:
        ca_cert, ca_key = make_ca(f"{name}-ca@1", key_type="ec")
    else:
        ca_cert, ca_key = read_cert(cluster.pki / "ca.crt"), read_key(cluster.pki / "ca.key")
    key = make_key("ec")
    cert = issue_cert(ca_cert, ca_key, key.public_key(), f"system:node:{name}", ["system:nodes"],
                      dns_names=[name], ip_addresses=ips, server=True)
    d = cluster.root / "serving" / name
    write_cert(d / "kubelet.crt", cert)
    write_key(d / "kubelet.key", key)
    return ["--tls-cert-file", str(d / "kubelet.crt"), "--tls-private-key-file", str(d / "kubelet.key")]


def start_kubelet(cluster: Cluster, name: str, ip: str, extra: list[str]) -> KubeletProc:
    kubeconfig = cluster.root / "nodes" / name / "kubelet.conf"
    if not kubeconfig.exists():  # kubeadm join: a kubeconfig for another node from the same CA
        init_pki(cluster.root, apiserver_url=cluster.url, nodes=(name,), key_type="ec")
    return KubeletProc(cluster, name, ip, cluster.root / f"kubelet-{name}", kubeconfig,
                       ["--node-status-update-frequency", "1s", *extra]).start()


async def running_pod(kc: KubeClient, name: str, node: str, command: list[str] | None = None) -> None:
    await kc.create("pods", pod_manifest(name, node, command=command or SCRIPT), "default")
    await wait_for(kc, "pods", lambda p: bool(container_status(p).get("ready")), name=name, namespace="default")


def logs_until(kubectl: Kubectl, *args: str, want: str, timeout: float = 20) -> str:
    """kubectl logs until its output is ``want`` (the container writes asynchronously)."""
    end = time.monotonic() + timeout
    out = ""
    while time.monotonic() < end:
        out = kubectl.ok("logs", *args)
        if out == want:
            return out
        time.sleep(0.1)
    raise AssertionError(f"kubectl logs {' '.join(args)} gave {out!r}, wanted {want!r}")


def fds(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


# -- the unverified cluster ------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def plain(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    root = tmp_path_factory.mktemp("logs-plain")
    c = make_cluster(root, extra_args=kubelet_client_args(root))
    try:
        yield c
    finally:
        c.stop()


@pytest.fixture(scope="module")
def secured_kubelet(plain: Cluster) -> Iterator[KubeletProc]:
    """Self-signed serving pair (the kubelet's default) + webhook authn/authz, no anonymous access."""
    k = start_kubelet(plain, "node1", "127.0.4.2", webhook_kubelet_args(plain))
    try:
        yield k
    finally:
        k.cleanup()


@pytest.fixture
async def plain_kc(plain: Cluster, secured_kubelet: KubeletProc) -> AsyncIterator[KubeClient]:
    async with admin(plain) as kc:
        await wait_node_ready(kc, "node1")
        try:
            await kc.get("pods", "p", "default")
        except ClientError as exc:  # the module's first test makes the pod
            if exc.code != 404:
                raise
            await running_pod(kc, "p", "node1")
        yield kc
    assert secured_kubelet.alive(), secured_kubelet.log_text()


async def test_kubectl_logs_and_its_flags(plain: Cluster, plain_kc: KubeClient) -> None:
    kubectl = plain.kubectl("admin.conf")
    assert logs_until(kubectl, "p", want=LINES) == LINES
    assert kubectl.ok("logs", "p", "-c", "c1") == LINES
    assert kubectl.ok("logs", "p", "--tail=1") == "line3\n"
    assert kubectl.ok("logs", "p", "--since=1h") == LINES
    assert kubectl.ok("logs", "p", "--limit-bytes=8") == "line1\nli"
    stamped = kubectl.ok("logs", "p", "--timestamps").splitlines()
    assert len(stamped) == 3 and STAMP.match(stamped[0]), stamped
    assert "mode=unverified reason=no-kubelet-certificate-authority" in plain.log_text()


async def test_kubectl_logs_follow_streams_before_the_container_ends(plain: Cluster, plain_kc: KubeClient) -> None:
    kubectl = plain.kubectl("admin.conf")
    logs_until(kubectl, "p", want=LINES)
    cmd = [kubectl.binary, "--kubeconfig", str(kubectl.kubeconfig), "--cache-dir", str(kubectl.cache_dir),
           "logs", "-f", "p"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        ready, _, _ = select.select([proc.stdout], [], [], 15)
        assert ready, "no line within 15 s"
        assert proc.stdout.readline() == "line1\n"
        assert proc.poll() is None  # still following: the container sleeps on, and so does the stream
        pod = await plain_kc.get("pods", "p", "default")
        assert "running" in container_status(pod)["state"]
    finally:
        proc.send_signal(signal.SIGINT)
        proc.wait(10)


def test_python_client_reads_and_follows(plain: Cluster, plain_kc: KubeClient) -> None:
    cfg = client.Configuration()
    config.load_kube_config(config_file=str(plain.root / "admin.conf"), client_configuration=cfg)
    with client.ApiClient(cfg) as api:
        core = client.CoreV1Api(api)
        assert core.read_namespaced_pod_log("p", "default") == LINES
        assert core.read_namespaced_pod_log("p", "default", container="c1", tail_lines=2) == "line2\nline3\n"
        with pytest.raises(client.ApiException) as info:  # the server's own check (kubectl checks first)
            core.read_namespaced_pod_log("p", "default", container="c9")
        assert info.value.status == 400
        assert json.loads(info.value.body)["message"] == "container c9 is not valid for pod p"
        resp = core.read_namespaced_pod_log("p", "default", follow=True, _preload_content=False)
        try:
            assert resp.headers["Content-Type"] == "text/plain"
            assert next(resp.stream(6)) == b"line1\n"
        finally:
            resp.release_conn()


async def test_bad_requests_fail_like_a_real_apiserver(plain: Cluster, plain_kc: KubeClient) -> None:
    kubectl = plain.kubectl("admin.conf")
    cases = [
        # kubectl GETs the pod itself first, and words that failure its own way
        (("logs", "nope"), 'error: error from server (NotFound): pods "nope" not found in namespace "default"'),
        (("logs", "p", "-c", "c9"), "error: container c9 is not valid for pod p out of: c1"),  # kubectl, too
        (("logs", "p", "--tail=-5"), "error: --tail must be greater than or equal to -1"),  # and this
        # what the apiserver itself says, through kubectl's raw mode
        (("get", "--raw", "/api/v1/namespaces/default/pods/p/log?tailLines=-5"),
         'The PodLogOptions "p" is invalid: tailLines: Invalid value: -5: must be greater than or equal to 0'),
        (("get", "--raw", "/api/v1/namespaces/default/pods/p/log?container=c9"),
         "Error from server (BadRequest): container c9 is not valid for pod p"),
    ]
    for args, message in cases:
        proc = kubectl.run(*args)
        assert proc.returncode == 1 and proc.stderr.strip() == message, (args, proc.stderr)
    await plain_kc.create("pods", {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "unbound"},
                                   "spec": {"nodeSelector": {"example.com/nowhere": "true"},  # unschedulable
                                            "containers": [{"name": "c", "image": "busybox"}]}}, "default")
    proc = kubectl.run("logs", "unbound")  # no node yet: 204, kubectl prints nothing
    assert (proc.returncode, proc.stdout, proc.stderr) == (0, "", "")


async def test_rbac_asks_for_get_pods_log(plain: Cluster, plain_kc: KubeClient) -> None:
    alice = plain.kubectl(plain.token_kubeconfig("alice", plain.token("alice")))
    role = {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role", "metadata": {"name": "pod-reader"},
            "rules": [{"apiGroups": [""], "resources": ["pods"], "verbs": ["get"]}]}
    binding = {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
               "metadata": {"name": "alice-reads-pods"},
               "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "pod-reader"},
               "subjects": [{"kind": "User", "name": "alice", "apiGroup": "rbac.authorization.k8s.io"}]}
    rbac = "rbac.authorization.k8s.io"
    await plain_kc.create("roles", role, "default", rbac)
    await plain_kc.create("rolebindings", binding, "default", rbac)
    proc = alice.run("logs", "p")
    assert proc.stderr.strip() == ('Error from server (Forbidden): pods "p" is forbidden: User "alice" cannot get '
                                   'resource "pods/log" in API group "" in the namespace "default"'), proc.stderr
    role["rules"].append({"apiGroups": [""], "resources": ["pods/log"], "verbs": ["get"]})
    role["metadata"] = (await plain_kc.get("roles", "pod-reader", "default", rbac))["metadata"]
    await plain_kc.update("roles", role, "default", rbac)
    end = asyncio.get_running_loop().time() + 10
    while (proc := alice.run("logs", "p")).returncode != 0 and asyncio.get_running_loop().time() < end:
        await asyncio.sleep(0.1)  # the RBAC informer of another process catches up
    assert proc.stdout == LINES, proc.stderr


async def test_with_kubelet_authn_authz_only_the_apiserver_identity_reads_logs(
        plain: Cluster, plain_kc: KubeClient, secured_kubelet: KubeletProc) -> None:
    url = f"https://{secured_kubelet.ip}:{secured_kubelet.port}/containerLogs/default/p/c1"
    insecure = client_ssl_context(verify=False)
    async with aiohttp.ClientSession() as http:
        async with http.get(url, ssl=insecure) as resp:  # anyone who reaches port 10250, no credentials
            assert (resp.status, await resp.text()) == (401, "Unauthorized")
        alice = {"Authorization": f"Bearer {plain.token('alice')}"}  # a real user, but not allowed nodes/proxy
        async with http.get(url, ssl=insecure, headers=alice) as resp:
            assert resp.status == 403
            assert (await resp.text()).startswith("Forbidden (user=alice, verb=get, resource=nodes")
    assert plain.kubectl("admin.conf").ok("logs", "p") == LINES  # the apiserver's kubelet-client identity


async def test_aborted_follows_release_the_kubelet_connections(plain: Cluster, plain_kc: KubeClient,
                                                               secured_kubelet: KubeletProc) -> None:
    assert plain.proc is not None and secured_kubelet.proc is not None
    ctx = client_ssl_context(str(plain.pki / "ca.crt"), str(plain.root / "admin-client.pem"))
    url = f"{plain.url}/api/v1/namespaces/default/pods/p/log?container=c1&follow=true"

    async def aborted_follow(http: aiohttp.ClientSession) -> None:
        async with http.get(url, ssl=ctx) as resp:
            assert resp.status == 200 and await resp.content.readline() == b"line1\n"
            resp.close()  # hang up mid-follow

    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(force_close=True)) as http:
        await aborted_follow(http)
        base_api, base_kubelet = fds(plain.proc.pid), fds(secured_kubelet.proc.pid)
        for _ in range(20):
            await asyncio.gather(*(aborted_follow(http) for _ in range(10)))
    end = asyncio.get_running_loop().time() + 15
    while asyncio.get_running_loop().time() < end:  # other processes: watch /proc until they let go
        now_api, now_kubelet = fds(plain.proc.pid), fds(secured_kubelet.proc.pid)
        if now_api <= base_api + 2 and now_kubelet <= base_kubelet + 2:
            break
        await asyncio.sleep(0.1)
    assert (now_api, now_kubelet) <= (base_api + 2, base_kubelet + 2), (base_api, now_api, base_kubelet,
                                                                         now_kubelet)


# -- the verified cluster --------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def verified(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    root = tmp_path_factory.mktemp("logs-verified")
    c = make_cluster(root, extra_args=[*kubelet_client_args(root), "--kubelet-certificate-authority",
                                       str(root / "pki" / "ca.crt")])
    try:
        yield c
    finally:
        c.stop()


@pytest.fixture(scope="module")
def verified_kubelets(verified: Cluster) -> Iterator[dict[str, KubeletProc]]:
    plan = {"good": ("node1", "127.0.4.11", serving_cert(verified, "node1", ["127.0.4.11"])),
            "self-signed": ("node2", "127.0.4.12", serving_cert(verified, "node2", ["127.0.4.12"], self_signed=True)),
            "wrong-ip": ("node3", "127.0.4.13", serving_cert(verified, "node3", ["127.0.0.9"])),
            "csr": ("node4", "127.0.4.14", ["--rotate-server-certificates"])}
    kubelets = {key: start_kubelet(verified, node, ip, extra) for key, (node, ip, extra) in plan.items()}
    try:
        yield kubelets
    finally:
        for k in kubelets.values():
            k.cleanup()


@pytest.fixture
async def verified_kc(verified: Cluster, verified_kubelets: dict[str, KubeletProc]) -> AsyncIterator[KubeClient]:
    async with admin(verified) as kc:
        for k in verified_kubelets.values():
            await wait_node_ready(kc, k.name)
        yield kc


def log_error(kubectl: Kubectl, pod: str) -> str:
    proc = kubectl.run("logs", pod)
    assert proc.returncode == 1, proc.stdout
    return proc.stderr.strip()


async def test_verified_mode_accepts_the_right_certificate_and_names_every_x509_problem(
        verified: Cluster, verified_kc: KubeClient, verified_kubelets: dict[str, KubeletProc]) -> None:
    kubectl = verified.kubectl("admin.conf")
    k = verified_kubelets
    for key in ("good", "self-signed", "wrong-ip"):
        await running_pod(verified_kc, f"p-{key}", k[key].name)
    assert logs_until(kubectl, "p-good", want=LINES) == LINES
    assert "mode=verified" in verified.log_text()

    def url(key: str) -> str:
        return f"https://{k[key].ip}:{k[key].port}/containerLogs/default/p-{key}/c1"

    assert log_error(kubectl, "p-self-signed") == (
        f'Error from server: Get "{url("self-signed")}": tls: failed to verify certificate: x509: certificate '
        'signed by unknown authority')
    assert log_error(kubectl, "p-wrong-ip") == (
        f'Error from server: Get "{url("wrong-ip")}": tls: failed to verify certificate: x509: certificate is '
        f'valid for 127.0.0.9, not {k["wrong-ip"].ip}')
    # a real kubectl flag: skip verification for this one request
    assert kubectl.ok("logs", "p-self-signed", "--insecure-skip-tls-verify-backend") == LINES
    text = verified.log_text()
    assert "node=node2" in text and "mode=unverified reason=insecureSkipTLSVerifyBackend" in text
    assert re.search(r"kubelet connection failed node=node3 .* mode=verified error=tls: failed to verify", text)


async def test_a_kubelet_works_once_its_serving_csr_is_approved(
        verified: Cluster, verified_kc: KubeClient, verified_kubelets: dict[str, KubeletProc]) -> None:
    kubectl = verified.kubectl("admin.conf")
    k = verified_kubelets["csr"]
    await running_pod(verified_kc, "p-csr", k.name)
    # until approved the kubelet serves its own pair, which names node4 but not its IP
    assert log_error(kubectl, "p-csr") == (
        f'Error from server: Get "https://{k.ip}:{k.port}/containerLogs/default/p-csr/c1": tls: failed to verify '
        f'certificate: x509: cannot validate certificate for {k.ip} because it doesn\'t contain any IP SANs')
    csrs = (await verified_kc.list("certificatesigningrequests", group="certificates.k8s.io"))["items"]
    pending = [c["metadata"]["name"] for c in csrs if c["spec"]["signerName"] == "kubernetes.io/kubelet-serving"
               and c["spec"]["username"] == "system:node:node4"]
    assert pending
    kubectl.ok("certificate", "approve", *pending)
    assert logs_until(kubectl, "p-csr", want=LINES, timeout=30) == LINES  # signed, rotated, verified


# -- leaks, counted in process ---------------------------------------------------------------------------

async def test_200_aborted_follows_leave_no_task_or_socket_behind(pki: Pki, tmp_path: Path) -> None:
    ip = "127.0.4.30"
    active: set[asyncio.Task[object]] = set()
    all_gone = asyncio.Event()

    async def endless(request: web.Request) -> web.StreamResponse:
        task = asyncio.current_task()
        assert task is not None
        active.add(task)
        all_gone.clear()
        try:
            resp = web.StreamResponse(headers={"Content-Type": "text/plain"})
            await resp.prepare(request)
            await resp.write(b"first\n")
            while True:
                await asyncio.sleep(3600)
        finally:
            active.discard(task)
            if not active:
                all_gone.set()

    ca_cert, ca_key = make_ca("kubelet-ca@1", key_type="ec")
    key = make_key("ec")
    write_cert(tmp_path / "k.crt", issue_cert(ca_cert, ca_key, key.public_key(), "node9", ip_addresses=[ip],
                                               server=True))
    write_key(tmp_path / "k.key", key)
    app = web.Application()
    app.router.add_get("/containerLogs/{ns}/{pod}/{c}", endless)
    runner = web.AppRunner(app, handler_cancellation=True, shutdown_timeout=0.1)
    await runner.setup()
    site = web.TCPSite(runner, ip, 0, ssl_context=server_ssl_context(str(tmp_path / "k.crt"),
                                                                      str(tmp_path / "k.key")))
    await site.start()
    port = runner.addresses[0][1]
    p = pki.root / "pki"
    cfg = pki.config(kubelet_client_certificate=str(p / "apiserver-kubelet-client.crt"),
                     kubelet_client_key=str(p / "apiserver-kubelet-client.key"),
                     kubelet_preferred_address_types=("InternalIP",))
    try:
        async with running(cfg, pki) as (srv, http):
            node = {"metadata": {"name": "node9"}, "status": {
                "addresses": [{"type": "InternalIP", "address": ip}],
                "daemonEndpoints": {"kubeletEndpoint": {"Port": port}}}}
            assert (await http.call("POST", "/api/v1/nodes", node)).status == 201
            pod = pod_manifest("endless", "node9")
            assert (await http.call("POST", "/api/v1/namespaces/default/pods", pod)).status == 201
            url = f"{srv.url}/api/v1/namespaces/default/pods/endless/log?follow=true"

            async def aborted(session: aiohttp.ClientSession) -> None:
                async with session.get(url) as resp:
                    assert resp.status == 200 and await resp.content.readline() == b"first\n"
                    resp.close()

            connector = aiohttp.TCPConnector(ssl=pki.ssl(), force_close=True)
            async with aiohttp.ClientSession(connector=connector) as session:
                await aborted(session)
                await asyncio.wait_for(all_gone.wait(), 10)
                tasks, files = len(asyncio.all_tasks()), len(os.listdir("/proc/self/fd"))
                for _ in range(20):
                    await asyncio.gather(*(aborted(session) for _ in range(10)))
                await asyncio.wait_for(all_gone.wait(), 10)  # every kubelet-side handler was cancelled
            end = asyncio.get_running_loop().time() + 10
            while asyncio.get_running_loop().time() < end:
                if len(asyncio.all_tasks()) <= tasks and len(os.listdir("/proc/self/fd")) <= files:
                    break
                await asyncio.sleep(0.05)  # closing TLS transports finish on the next loop turns
            assert len(asyncio.all_tasks()) <= tasks, [t.get_coro() for t in asyncio.all_tasks()]
            assert len(os.listdir("/proc/self/fd")) <= files
            assert not active
    finally:
        await runner.cleanup()

