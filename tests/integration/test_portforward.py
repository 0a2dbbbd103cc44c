"""``kubectl port-forward`` and the Python client through the apiserver to a real kubelet and a real pod.

Real processes: ``python -m miniapi`` (tests/e2e/cluster.py) with ``--kubelet-client-certificate/-key``
and ``--kubelet-preferred-address-types=InternalIP,ExternalIP,Hostname``, a ``minikubelet`` on
127.0.5.x with webhook authn/authz (only the apiserver's identity may forward), a pod running the
servers of tests/integration/portforward_kit.py on its pod IP, the real kubectl and the official
Python client. The last module-level test kills the kubelet; the verified-TLS cluster comes after it.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import signal
import socket
import subprocess
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager

import aiohttp
import pytest
from kubernetes import client, config
from kubernetes.stream import portforward

from miniapi.client import ClientError, KubeClient
from miniapi.tlsconfig import client_ssl_context
from tests.e2e.cluster import Cluster, Kubectl, free_port, make_cluster
from tests.integration.kubelet_harness import (
    KubeletProc,
    admin,
    container_status,
    kubelet_client_args,
    wait_for,
    wait_node_ready,
    webhook_kubelet_args,
)
from tests.integration.portforward_kit import ECHO, SINK, SOURCE, pattern, pod_manifest
from tests.integration.test_pod_logs import fds, serving_cert, start_kubelet

NODE_IP = "127.0.5.2"
DEAD = 7099  # nobody listens there


@contextmanager
def port_forward(kubectl: Kubectl, target: str, *remote: int, env: dict[str, str] | None = None
                 ) -> Iterator[tuple[subprocess.Popen[str], list[int]]]:
    """``kubectl port-forward target L1:R1 ...`` until it says it is forwarding all of them."""
    local = [free_port() for _ in remote]
    cmd = [kubectl.binary, "--kubeconfig", str(kubectl.kubeconfig), "--cache-dir", str(kubectl.cache_dir),
           "port-forward", target, *(f"{lp}:{rp}" for lp, rp in zip(local, remote, strict=True))]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "HOME": str(kubectl.cache_dir), **(env or {})})
    try:
        assert proc.stdout is not None
        waiting = {f"Forwarding from 127.0.0.1:{lp} -> {rp}" for lp, rp in zip(local, remote, strict=True)}
        while waiting:
            line = proc.stdout.readline()
            assert line, f"kubectl port-forward ended: {proc.stderr.read() if proc.stderr else ''}"
            waiting.discard(line.strip())
        yield proc, local
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


async def exchange(port: int, payload: bytes, *, host: str = "127.0.0.1", timeout: float = 60) -> bytes:
    """Connect, send ``payload``, half-close, read to EOF."""
    reader, writer = await asyncio.open_connection(host, port)
    try:
        async def send() -> None:
            writer.write(payload)
            await writer.drain()
            writer.write_eof()
        sender = asyncio.create_task(send())
        async with asyncio.timeout(timeout):
            answer = await reader.read()
        await sender
        return answer
    finally:
        writer.close()


def sink_answer(data: bytes) -> bytes:
    return f"{len(data)} {hashlib.sha256(data).hexdigest()}\n".encode()


async def running_pod(kc: KubeClient, name: str, node: str) -> dict:
    await kc.create("pods", pod_manifest(name, node), "default")
    pod = await wait_for(kc, "pods", lambda p: bool(container_status(p).get("ready")), name=name, namespace="default")
    assert pod is not None
    ip = pod["status"]["podIP"]
    for _ in range(200):  # the container process is up; its sockets a moment later
        try:
            socket.create_connection((ip, ECHO), 1).close()
            return pod
        except OSError:
            await asyncio.sleep(0.05)
    raise AssertionError(f"the pod never listened on {ip}:{ECHO}")


# -- the unverified cluster (the real default) --------------------------------------------------------------

@pytest.fixture(scope="module")
def plain(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    root = tmp_path_factory.mktemp("pf-plain")
    c = make_cluster(root, extra_args=kubelet_client_args(root))
    try:
        yield c
    finally:
        c.stop()


@pytest.fixture(scope="module")
def kubelet(plain: Cluster) -> Iterator[KubeletProc]:
    k = start_kubelet(plain, "node1", NODE_IP, webhook_kubelet_args(plain))
    try:
        yield k
    finally:
        k.cleanup()


@pytest.fixture
async def kc(plain: Cluster, kubelet: KubeletProc) -> AsyncIterator[KubeClient]:
    async with admin(plain) as kc:
        await wait_node_ready(kc, "node1")
        try:
            await kc.get("pods", "pf", "default")
        except ClientError as exc:
            if exc.code != 404:
                raise
            await running_pod(kc, "pf", "node1")
        yield kc


async def test_kubectl_echo_concurrent_connections_and_100_mb(plain: Cluster, kc: KubeClient) -> None:
    with port_forward(plain.kubectl("admin.conf"), "pod/pf", ECHO, SINK, SOURCE) as (proc, (echo, sink, source)):
        assert await exchange(echo, b"hello") == b"hello"
        payloads = [os.urandom(n) for n in (10, 100_000, 5_000_000)]  # three streams pairs at once
        assert await asyncio.gather(*(exchange(echo, p) for p in payloads)) == payloads
        big = os.urandom(1 << 20) * 100  # 100 MiB, checked by the pod
        assert await exchange(sink, big, timeout=120) == sink_answer(big)
        down = await exchange(source, b"30000000\n")
        assert down == pattern(30_000_000)
        assert proc.poll() is None
    assert "port-forward started pod=default/pf node=node1 client=tunnel" in plain.log_text()
    assert "mode=unverified reason=no-kubelet-certificate-authority" in plain.log_text()


async def test_a_port_nobody_listens_on(plain: Cluster, kc: KubeClient) -> None:
    """kubectl 1.37 prints the kubelet's error and gives up the whole forward; a new one works."""
    pod = await kc.get("pods", "pf", "default")
    kubectl = plain.kubectl("admin.conf")
    with port_forward(kubectl, "pod/pf", DEAD, ECHO) as (proc, (dead, echo)):
        assert await exchange(echo, b"before") == b"before"
        assert await exchange(dead, b"x") == b""
        assert proc.wait(20) == 1
        assert proc.stderr is not None
        stderr = proc.stderr.read()
    assert (f'"An error occurred forwarding" err="error forwarding port {DEAD} to pod pf, uid '
            f'{pod["metadata"]["uid"]}: dial tcp4 {NODE_IP}:{DEAD}: connect: connection refused"') in stderr
    assert stderr.rstrip().endswith("error: lost connection to pod")
    with port_forward(kubectl, "pod/pf", ECHO) as (_, (echo,)):
        assert await exchange(echo, b"after") == b"after"


async def test_kubectl_spdy_fallback(plain: Cluster, kc: KubeClient) -> None:
    """KUBECTL_PORT_FORWARD_WEBSOCKETS=false: a SPDY/3.1 POST, passed through to the kubelet."""
    with port_forward(plain.kubectl("admin.conf"), "pod/pf", ECHO, SINK,
                      env={"KUBECTL_PORT_FORWARD_WEBSOCKETS": "false"}) as (_, (echo, sink)):
        assert await asyncio.gather(exchange(echo, b"one"), exchange(echo, b"two")) == [b"one", b"two"]
        data = os.urandom(3_000_000)
        assert await exchange(sink, data) == sink_answer(data)
    assert "port-forward started pod=default/pf node=node1 client=spdy" in plain.log_text()


def test_python_client(plain: Cluster, kc: KubeClient) -> None:
    cfg = client.Configuration()
    config.load_kube_config(config_file=str(plain.root / "admin.conf"), client_configuration=cfg)
    with client.ApiClient(cfg) as api:
        core = client.CoreV1Api(api)
        pf = portforward(core.connect_get_namespaced_pod_portforward, "pf", "default",
                         ports=f"{ECHO},{SOURCE},{DEAD}")
        try:
            s = pf.socket(ECHO)
            s.settimeout(10)
            s.sendall(b"hello python")
            assert s.recv(100) == b"hello python"
            s = pf.socket(SOURCE)
            s.settimeout(10)
            s.sendall(b"5000000\n")
            got = bytearray()
            while len(got) < 5_000_000:  # (v4 has no per-port EOF: the port's channel just goes quiet)
                got += s.recv(1 << 20)
            assert bytes(got) == pattern(5_000_000)
            dead = pf.socket(DEAD)
            dead.settimeout(10)
            assert dead.recv(10) == b""
            assert pf.error(DEAD).endswith(f"dial tcp4 {NODE_IP}:{DEAD}: connect: connection refused")
        finally:
            pf.close()
        with pytest.raises(client.ApiException) as info:
            portforward(core.connect_get_namespaced_pod_portforward, "nope", "default", ports=str(ECHO))
        assert info.value.status == 0  # the client's wording of a failed handshake, with our Status in it
        assert str(info.value.reason).startswith("Handshake status 404 Not Found")
        assert '"message":"pods \\"nope\\" not found"' in str(info.value.reason)
    assert "client=websocket" in plain.log_text()


async def test_bad_requests_fail_like_a_real_cluster(plain: Cluster, kc: KubeClient,
                                                     kubelet: KubeletProc) -> None:
    kubectl = plain.kubectl("admin.conf")
    await kc.create("pods", {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "pending"},
                             "spec": {"nodeSelector": {"example.com/nowhere": "true"},
                                      "containers": [{"name": "c", "image": "busybox"}]}}, "default")
    proc = kubectl.run("port-forward", "pending", "17000:80", timeout=30)
    assert (proc.returncode, proc.stderr.strip()) == (
        1, "error: unable to forward port because pod is not running. Current status=Pending")
    proc = kubectl.run("port-forward", "nope", "17000:80", timeout=30)
    assert proc.stderr.strip() == 'Error from server (NotFound): pods "nope" not found'
    # the apiserver's own checks, as a client that does not look first sees them
    ctx = client_ssl_context(str(plain.pki / "ca.crt"), str(plain.root / "admin-client.pem"))
    base = f"{plain.url}/api/v1/namespaces/default/pods"
    async with aiohttp.ClientSession() as http:
        async with http.post(f"{base}/pending/portforward", ssl=ctx) as resp:
            assert (resp.status, (await resp.json())["message"]) == (400, "Upgrade request required")
        ws = {"Connection": "Upgrade", "Upgrade": "websocket", "Sec-WebSocket-Version": "13",
              "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ==", "Sec-WebSocket-Protocol": "v4.channel.k8s.io"}
        for path, message in [
                ("pending/portforward?ports=80", "pod pending does not have a host assigned"),
                ("pf/portforward?ports=http",
                 'cannot convert to []int32: strconv.ParseUint: parsing "http": invalid syntax')]:
            async with http.get(f"{base}/{path}", ssl=ctx, headers=ws) as resp:
                assert (resp.status, (await resp.json())["message"]) == (400, message)
        # a pod the kubelet does not have: its refusal comes back as it wrote it
        ghost = {"apiVersion": "v1", "kind": "Node", "metadata": {"name": "ghost"}}
        await kc.create("nodes", ghost)
        node = await kc.get("nodes", "node1")
        ghost = await kc.get("nodes", "ghost")
        ghost["status"] = {k: node["status"][k] for k in ("addresses", "daemonEndpoints")}
        await kc.update("nodes", ghost, subresource="status")
        await kc.create("pods", pod_manifest("haunted", "ghost"), "default")
    # (kubectl would stop at the phase check: the pod never runs. Ask the apiserver as client-go does)
    async with aiohttp.ClientSession() as http:
        with pytest.raises(aiohttp.WSServerHandshakeError) as err:
            await http.ws_connect(f"{base}/haunted/portforward", protocols=("SPDY/3.1+portforward.k8s.io",),
                                  ssl=ctx)
        assert err.value.status == 404
        spdy = {"Connection": "Upgrade", "Upgrade": "SPDY/3.1", "X-Stream-Protocol-Version": "portforward.k8s.io"}
        async with http.post(f"{base}/haunted/portforward", ssl=ctx, headers=spdy) as r:
            assert (r.status, await r.text()) == (404, "pod does not exist")


async def test_rbac_a_websocket_needs_create_too(plain: Cluster, kc: KubeClient) -> None:
    rbac = "rbac.authorization.k8s.io"
    alice = plain.kubectl(plain.token_kubeconfig("alice", plain.token("alice")))
    role = {"apiVersion": f"{rbac}/v1", "kind": "Role", "metadata": {"name": "forwarder"},
            "rules": [{"apiGroups": [""], "resources": ["pods", "pods/portforward"], "verbs": ["get"]}]}
    binding = {"apiVersion": f"{rbac}/v1", "kind": "RoleBinding", "metadata": {"name": "alice-forwards"},
               "roleRef": {"apiGroup": rbac, "kind": "Role", "name": "forwarder"},
               "subjects": [{"kind": "User", "name": "alice", "apiGroup": rbac}]}
    await kc.create("roles", role, "default", rbac)
    await kc.create("rolebindings", binding, "default", rbac)
    want = ('error: error upgrading connection: unable to upgrade connection: pods "pf" is forbidden: User "alice" '
            'cannot create resource "pods/portforward" in API group "" in the namespace "default"')
    proc = None
    for _ in range(100):  # the RBAC informer of another process catches up
        proc = alice.run("port-forward", "pf", f"{free_port()}:{ECHO}", timeout=30)
        if proc.stderr.strip() == want:
            break
        await asyncio.sleep(0.1)
    assert proc is not None and proc.stderr.strip() == want, proc.stderr if proc else None
    role["rules"][0]["verbs"] = ["get", "create"]
    role["metadata"] = (await kc.get("roles", "forwarder", "default", rbac))["metadata"]
    await kc.update("roles", role, "default", rbac)
    end = time.monotonic() + 10
    while True:
        try:
            with port_forward(alice, "pod/pf", ECHO) as (_, (echo,)):
                assert await exchange(echo, b"alice") == b"alice"
            break
        except AssertionError:
            if time.monotonic() > end:
                raise
            await asyncio.sleep(0.2)


async def test_with_kubelet_authn_authz_only_the_apiserver_may_forward(plain: Cluster, kc: KubeClient,
                                                                     kubelet: KubeletProc) -> None:
    url = f"https://{kubelet.ip}:{kubelet.port}/portForward/default/pf"
    headers = {"Connection": "Upgrade", "Upgrade": "SPDY/3.1", "X-Stream-Protocol-Version": "portforward.k8s.io"}
    insecure = client_ssl_context(verify=False)
    async with aiohttp.ClientSession() as http:
        async with http.post(url, ssl=insecure, headers=headers) as resp:
            assert (resp.status, await resp.text()) == (401, "Unauthorized")
        alice = {**headers, "Authorization": f"Bearer {plain.token('alice')}"}
        async with http.post(url, ssl=insecure, headers=alice) as resp:
            assert resp.status == 403
            assert (await resp.text()).startswith("Forbidden (user=alice, verb=create, resource=nodes")


async def test_kubectl_killed_mid_transfer_releases_everything(plain: Cluster, kc: KubeClient,
                                                               kubelet: KubeletProc) -> None:
    assert plain.proc is not None and kubelet.proc is not None
    with port_forward(plain.kubectl("admin.conf"), "pod/pf", ECHO) as (_, (echo,)):
        assert await exchange(echo, b"warm") == b"warm"
    await asyncio.sleep(0.5)
    base_api, base_kubelet = fds(plain.proc.pid), fds(kubelet.proc.pid)
    for _ in range(3):
        with port_forward(plain.kubectl("admin.conf"), "pod/pf", SINK) as (proc, (sink,)):
            reader, writer = await asyncio.open_connection("127.0.0.1", sink)
            writer.write(os.urandom(20_000_000))
            await asyncio.sleep(0.3)  # mid-transfer
            proc.kill()
            proc.wait(10)
            writer.close()
    end = time.monotonic() + 15
    while time.monotonic() < end:
        now = fds(plain.proc.pid), fds(kubelet.proc.pid)
        if now <= (base_api + 2, base_kubelet + 2):
            break
        await asyncio.sleep(0.1)
    assert now <= (base_api + 2, base_kubelet + 2), (base_api, base_kubelet, now)


async def test_kubelet_dies_mid_transfer(plain: Cluster, kc: KubeClient, kubelet: KubeletProc) -> None:
    """kubectl reports the lost connection, the apiserver lets go; a new kubelet serves again (last test)."""
    assert plain.proc is not None
    base_api = fds(plain.proc.pid)
    with port_forward(plain.kubectl("admin.conf"), "pod/pf", SINK) as (proc, (sink,)):
        reader, writer = await asyncio.open_connection("127.0.0.1", sink)
        writer.write(os.urandom(5_000_000))
        await asyncio.sleep(0.3)
        kubelet.kill9()
        assert proc.wait(20) == 1
        assert proc.stderr is not None and proc.stderr.read().rstrip().endswith("error: lost connection to pod")
        writer.close()
    end = time.monotonic() + 15
    while fds(plain.proc.pid) > base_api + 2 and time.monotonic() < end:
        await asyncio.sleep(0.1)
    assert fds(plain.proc.pid) <= base_api + 2
    kubelet.start()  # adopts the pod, which kept running
    await wait_node_ready(kc, "node1")
    end = time.monotonic() + 20
    while True:
        try:
            with port_forward(plain.kubectl("admin.conf"), "pod/pf", ECHO) as (_, (echo,)):
                assert await exchange(echo, b"back") == b"back"
            break
        except (AssertionError, OSError):
            if time.monotonic() > end:
                raise
            await asyncio.sleep(0.3)


# -- verified kubelet TLS --------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def verified(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    root = tmp_path_factory.mktemp("pf-verified")
    c = make_cluster(root, extra_args=[*kubelet_client_args(root), "--kubelet-certificate-authority",
                                       str(root / "pki" / "ca.crt")])
    try:
        yield c
    finally:
        c.stop()


@pytest.fixture(scope="module")
def verified_kubelets(verified: Cluster) -> Iterator[dict[str, KubeletProc]]:
    plan = {"good": ("node1", "127.0.5.11", serving_cert(verified, "node1", ["127.0.5.11"])),
            "self-signed": ("node2", "127.0.5.12",
                            serving_cert(verified, "node2", ["127.0.5.12"], self_signed=True))}
    kubelets = {key: start_kubelet(verified, node, ip, extra) for key, (node, ip, extra) in plan.items()}
    try:
        yield kubelets
    finally:
        for k in kubelets.values():
            k.cleanup()


async def test_verified_kubelet_tls(verified: Cluster, verified_kubelets: dict[str, KubeletProc]) -> None:
    kubectl = verified.kubectl("admin.conf")
    async with admin(verified) as kc:
        for k in verified_kubelets.values():
            await wait_node_ready(kc, k.name)
        await running_pod(kc, "p-good", "node1")
        await running_pod(kc, "p-self-signed", "node2")
    with port_forward(kubectl, "pod/p-good", ECHO, SINK) as (_, (echo, sink)):
        assert await exchange(echo, b"verified") == b"verified"
        data = os.urandom(10_000_000)
        assert await exchange(sink, data) == sink_answer(data)
    assert "node=node1 address=127.0.5.11" in verified.log_text() and "mode=verified" in verified.log_text()
    proc = kubectl.run("port-forward", "p-self-signed", f"{free_port()}:{ECHO}", timeout=30)
    assert proc.returncode == 1
    assert proc.stderr.strip() == ("error: error upgrading connection: unable to upgrade connection: tls: failed to "
                                   "verify certificate: x509: certificate signed by unknown authority")
