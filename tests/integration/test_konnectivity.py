"""The Konnectivity-style replacement: apiserver -> egress selector (HTTP CONNECT) -> proxy server <- agents.

Real processes: ``python -m miniapi`` with ``--egress-selector-config-file`` (UDS transport), the proxy
server (``python -m miniapi.konnectivity server``, mTLS agents, ``--proxy-strategies destHost,default``),
and per node a minikubelet and an agent, both inside the node's own **network namespace**.

Why a network namespace proves "nodes need no inbound port": the namespace has only its own ``lo``
(127.0.0.0/8 there is private to it), so nothing in the control plane's namespace can open a TCP
connection to any port of the node at all - a firewall that rejects every inbound connection, with no
exception to get wrong. The node's own connections leave through two one-way relays joined by a Unix
socket (tests/integration/netns_relay.py): kubelet -> apiserver, agent -> proxy server, both dialled
from inside. If the apiserver tried the kubelet directly it would reach nothing (the test shows
``connection refused`` from outside); that kubectl logs/exec/port-forward/proxies still work shows
every byte came through the agents' tunnels.

In-process tests cover token authentication (TokenReview against the real apiserver), the mutual-TLS
TCP frontend, and the dial errors.
"""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
import urllib.request
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from miniapi.client import KubeClient
from miniapi.konnectivity import AgentOptions, ProxyAgent, ProxyServer, ServerOptions
from miniapi.proxy.egress import Connection, HTTPConnectDialer, parse
from miniapi.proxy.errors import ConnectError
from minilab.tunnels import KonnectivityPki, agent_argv, egress_config, konnectivity_pki, server_argv
from tests.e2e.cluster import ROOT, Cluster, free_port, make_cluster
from tests.integration.kubelet_harness import KubeletProc, kubelet_client_args
from tests.integration.tunnel_kit import (
    LINES,
    NodeNetns,
    exercise,
    log_lines,
    make_pods,
    start_kubelet,
    tcp_conns,
    until,
)

NODES = {"node1": "127.0.7.2", "node2": "127.0.7.3"}
CIDRS = {"node1": "127.249.1.0/24", "node2": "127.249.2.0/24"}
NETNS_WHY = NodeNetns.available()


class ServerProc:
    def __init__(self, root: Path, pki: KonnectivityPki) -> None:
        self.root, self.pki = root, pki
        self.agent_port, self.health_port = free_port(), free_port()
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> ServerProc:
        with open(self.root / "konnectivity-server.log", "ab") as log:
            self.proc = subprocess.Popen(server_argv(self.pki, self.agent_port, health_port=self.health_port),
                                         cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)
        until(lambda: self.get("/healthz") == "ok", what="konnectivity server /healthz")
        return self

    def get(self, path: str) -> str:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.health_port}{path}", timeout=2) as resp:
                return str(resp.read().decode())
        except OSError:
            return ""

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(10)


class Node:
    """A node: network namespace, exits, kubelet and agent."""

    def __init__(self, cluster: Cluster, server: ServerProc, name: str) -> None:
        self.name, self.ip = name, NODES[name]
        self.netns = NodeNetns(f"mcp-{os.getpid()}-{name}", cluster.root / "netns" / name).create()
        self.netns.exit_to(cluster.port)
        self.netns.exit_to(server.agent_port)
        self.kubelet: KubeletProc = start_kubelet(cluster, name, self.ip, CIDRS[name], netns=self.netns)
        with open(cluster.root / f"agent-{name}.log", "ab") as log:
            self.agent = subprocess.Popen(self.netns.argv(agent_argv(server.pki, server.agent_port, name, self.ip,
                                                                     pod_cidr=CIDRS[name])),
                                          cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)

    def close(self) -> None:
        self.agent.terminate()
        self.agent.wait(10)
        self.kubelet.cleanup()
        self.netns.delete()


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Cluster, ServerProc, dict[str, Node]]]:
    if NETNS_WHY:
        pytest.skip(f"the node-isolation tests need network namespaces: {NETNS_WHY}")
    root = tmp_path_factory.mktemp("konn")
    pki = konnectivity_pki(root, list(NODES))
    server = ServerProc(root, pki).start()
    cluster = make_cluster(root, extra_args=[*kubelet_client_args(root), "--egress-selector-config-file",
                                             str(egress_config(root, pki))])
    nodes: dict[str, Node] = {}
    try:
        for name in NODES:
            nodes[name] = Node(cluster, server, name)
        until(lambda: server.get("/readyz") == "ok", what="an agent connected")
        make_pods(cluster, {"p1": "node1", "p2": "node2"}, service="svc")
        yield cluster, server, nodes
    finally:
        for node in nodes.values():
            node.close()
        cluster.stop()
        server.stop()


def test_kubectl_paths_go_through_the_agents(env: tuple[Cluster, ServerProc, dict[str, Node]]) -> None:
    cluster, _, _ = env
    kubectl = cluster.kubectl("admin.conf")
    r1 = exercise(kubectl, "node1", "p1", service="svc")
    r2 = exercise(kubectl, "node2", "p2")  # destHost: node2's agent, the only one that can reach it
    assert "logs" in r1.done and "logs" in r2.done
    print(f"agent mode: ran {r1.done}, no route yet for {r1.missing}")
    assert log_lines(cluster, "dialer=konnectivity") and not log_lines(cluster, "dialer=direct")


def test_the_nodes_accept_no_inbound_connection(env: tuple[Cluster, ServerProc, dict[str, Node]]) -> None:
    cluster, server, nodes = env
    node = nodes["node1"]
    kubelet = node.kubelet
    listening = [c for c in tcp_conns(node.netns.name) if c.state == "LISTEN"]
    assert any(c.local == f"{kubelet.ip}:{kubelet.port}" for c in listening)  # it is there, inside
    with pytest.raises(ConnectionRefusedError):  # and unreachable from the control plane's namespace
        socket.create_connection((kubelet.ip, kubelet.port), 2)
    kubectl = cluster.kubectl("admin.conf")
    follow = subprocess.Popen([kubectl.binary, "--kubeconfig", str(kubectl.kubeconfig), "logs", "-f", "p1"],
                              stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                              env={**os.environ, "HOME": str(kubectl.cache_dir)})
    try:
        assert follow.stdout is not None and follow.stdout.readline() == b"line1\n"
        assert cluster.proc is not None
        pid = f"pid={cluster.proc.pid},"
        outbound = [c for c in tcp_conns() if c.state == "ESTAB" and pid in c.process and
                    not c.local.endswith(f":{cluster.port}")]
        inside = [c for c in tcp_conns(node.netns.name) if c.state == "ESTAB"]
    finally:
        follow.terminate()
        follow.wait(10)
    assert outbound == [], outbound  # the apiserver's only way out is the proxy server's Unix socket
    to_kubelet = [c for c in inside if c.peer == f"{kubelet.ip}:{kubelet.port}"]
    assert to_kubelet and all(f"pid={node.agent.pid}," in c.process for c in to_kubelet), to_kubelet
    agent_out = [c.peer for c in inside if f"pid={node.agent.pid}," in c.process and c not in to_kubelet]
    assert agent_out == [f"127.0.0.1:{server.agent_port}"]  # the agent's one tunnel, dialled from the node


def test_the_agents_reconnect_after_the_server_restarts(env: tuple[Cluster, ServerProc, dict[str, Node]]) -> None:
    cluster, server, _ = env
    kubectl = cluster.kubectl("admin.conf")
    server.stop()
    proc = kubectl.run("logs", "p1")
    assert proc.returncode != 0 and f"dial unix {server.pki.socket}: connect: " in proc.stderr, proc.stderr
    server.start()
    until(lambda: server.get("/readyz") == "ok", what="the agents' reconnect")
    until(lambda: kubectl.run("logs", "p1").stdout == LINES and kubectl.run("logs", "p2").stdout == LINES,
          what="logs through the new server")


# -- in process ---------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> KonnectivityPki:
    return konnectivity_pki(tmp_path_factory.mktemp("konn-pki"), ["n1"])


@pytest.fixture
async def echo() -> AsyncIterator[int]:
    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
        writer.close()
    server = await asyncio.start_server(handle, "127.0.7.20", 0)
    yield server.sockets[0].getsockname()[1]
    server.close()


def server_options(pki: KonnectivityPki, tmp_path: Path, **changes: object) -> ServerOptions:
    base: dict[str, object] = dict(
        mode="http-connect", uds_name=str(tmp_path / "k.sock"), server_port=0, agent_port=0,
        agent_bind_address="127.0.0.1", cluster_cert=pki.path("server.crt"), cluster_key=pki.path("server.key"),
        cluster_ca_cert=pki.path("ca.crt"), admin_port=0, health_port=0, proxy_strategies=("destHost",))
    return ServerOptions(**{**base, **changes})  # type: ignore[arg-type]


def agent_options(pki: KonnectivityPki, port: int, **changes: object) -> AgentOptions:
    base: dict[str, object] = dict(proxy_server_port=port, ca_cert=pki.path("ca.crt"), agent_id="n1",
                                   agent_cert=pki.path("agent-n1.crt"), agent_key=pki.path("agent-n1.key"),
                                   agent_identifiers="host=n1&ipv4=127.0.7.20", sync_interval=0.1)
    return AgentOptions(**{**base, **changes})  # type: ignore[arg-type]


async def roundtrip(dialer: HTTPConnectDialer, port: int) -> bytes:
    reader, writer = await dialer.dial("127.0.7.20", port)
    writer.write(b"ping\n")
    line = await reader.readline()
    writer.close()
    return line


async def test_mtls_tcp_frontend_and_dial_errors(pki: KonnectivityPki, tmp_path: Path, echo: int) -> None:
    port = free_port()
    async with ProxyServer(server_options(pki, tmp_path, uds_name="", server_port=port, server_bind_address="127.0.0.1",
                                          server_cert=pki.path("frontend.crt"), server_key=pki.path("frontend.key"),
                                          server_ca_cert=pki.path("ca.crt"))) as server:
        config = parse({"apiVersion": "apiserver.k8s.io/v1beta1", "kind": "EgressSelectorConfiguration",
                        "egressSelections": [{"name": "cluster", "connection": {
                            "proxyProtocol": "HTTPConnect", "transport": {"tcp": {
                                "url": f"https://127.0.0.1:{port}", "tlsConfig": {
                                    "caBundle": pki.path("ca.crt"), "clientCert": pki.path("apiserver-client.crt"),
                                    "clientKey": pki.path("apiserver-client.key")}}}}}]})
        dialer = HTTPConnectDialer(config["cluster"])
        with pytest.raises(ConnectError, match=r"code 500: 500 Internal Server Error: currently no tunnels available"):
            await dialer.dial("127.0.7.20", echo)
        agent = ProxyAgent(agent_options(pki, server.agent_port))
        task = asyncio.create_task(agent.run())
        try:
            await asyncio.wait_for(agent.connected.wait(), 10)
            assert await roundtrip(dialer, echo) == b"ping\n"
            with pytest.raises(ConnectError, match=rf"proxy error from 127.0.0.1:{port} while dialing "
                                                   rf"127.0.7.20:1, code 502: 502 Bad Gateway: dial tcp "
                                                   r"127.0.7.20:1: connect: connection refused"):
                await dialer.dial("127.0.7.20", 1)
            with pytest.raises(ConnectError, match="currently no tunnels available"):  # destHost only: no agent
                await dialer.dial("127.0.7.21", echo)
            no_cert = HTTPConnectDialer(Connection("HTTPConnect", url=f"https://127.0.0.1:{port}",
                                                   ca_bundle=pki.path("ca.crt")))
            with pytest.raises(ConnectError):  # the frontend wants the apiserver's client certificate
                await roundtrip(no_cert, echo)
        finally:
            task.cancel()


async def test_an_agent_without_a_client_certificate_is_refused(pki: KonnectivityPki, tmp_path: Path,
                                                                caplog: pytest.LogCaptureFixture) -> None:
    async with ProxyServer(server_options(pki, tmp_path)) as server:
        token = tmp_path / "token"
        token.write_text("not-a-token")
        agent = ProxyAgent(agent_options(pki, server.agent_port, agent_cert="", agent_key="",
                                         service_account_token_path=str(token)))
        task = asyncio.create_task(agent.run())
        await asyncio.sleep(1)
        task.cancel()
        assert not server.agents and not agent.connected.is_set()
        assert "cannot connect to proxy server" in caplog.text


async def test_service_account_token_agents(env: tuple[Cluster, ServerProc, dict[str, Node]], pki: KonnectivityPki,
                                            tmp_path: Path, echo: int, caplog: pytest.LogCaptureFixture) -> None:
    """Token mode: the agent's SA token (audience system:konnectivity-server) is checked by a TokenReview."""
    cluster = env[0]
    async with KubeClient.from_kubeconfig(cluster.root / "admin.conf") as kc:
        for sa in ("konnectivity-agent", "intruder"):
            await kc.create("serviceaccounts", {"metadata": {"name": sa}}, "kube-system")
        tokens: dict[str, str] = {}
        for name, sa, audiences in (("good", "konnectivity-agent", ["system:konnectivity-server"]),
                                    ("audience", "konnectivity-agent", []), ("account", "intruder",
                                                                           ["system:konnectivity-server"])):
            spec = {"spec": {"audiences": audiences, "expirationSeconds": 3600}} if audiences else {"spec": {}}
            review = await kc.create("serviceaccounts", {"apiVersion": "authentication.k8s.io/v1",
                                                         "kind": "TokenRequest", **spec}, "kube-system",
                                     name=sa, subresource="token")
            path = tmp_path / f"token-{name}"
            path.write_text(review["status"]["token"])
            tokens[name] = str(path)
    options = server_options(pki, tmp_path, authentication_audience="system:konnectivity-server",
                             kubeconfig=str(cluster.root / "admin.conf"), agent_namespace="kube-system",
                             agent_service_account="konnectivity-agent", cluster_ca_cert="")
    async with ProxyServer(options) as server:
        results: dict[str, bytes] = {}
        for name, token_path in tokens.items():
            agent = ProxyAgent(agent_options(pki, server.agent_port, agent_cert="", agent_key="",
                                             service_account_token_path=token_path, sync_interval=5))
            task = asyncio.create_task(agent.run())
            try:
                await asyncio.wait_for(agent.connected.wait(), 3)
                results[name] = await roundtrip(HTTPConnectDialer(Connection("HTTPConnect",
                                                                             uds_name=options.uds_name)), echo)
            except TimeoutError:
                results[name] = b""
            finally:
                task.cancel()
                await asyncio.gather(task, return_exceptions=True)
    assert results == {"good": b"ping\n", "audience": b"", "account": b""}
    assert "Failed to authenticate request: system:serviceaccount:kube-system:intruder is not " \
           "system:serviceaccount:kube-system:konnectivity-agent" in caplog.text
    assert "the proxy server refused this agent: Failed to authenticate request" in caplog.text


async def test_a_server_that_speaks_first_loses_no_byte(pki: KonnectivityPki, tmp_path: Path) -> None:
    """An SSH-like peer sends its banner as soon as it accepts: the banner's DATA can arrive in the same
    read as the DIAL_RSP, and must still reach the client (the relay is attached as DIAL_RSP is read)."""
    async def banner(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b"SSH-2.0-banner\r\n" + b"x" * 100_000)
        await writer.drain()
        await reader.read()
        writer.close()

    target = await asyncio.start_server(banner, "127.0.7.20", 0)
    port = target.sockets[0].getsockname()[1]
    async with ProxyServer(server_options(pki, tmp_path)) as server:
        agent = ProxyAgent(agent_options(pki, server.agent_port))
        task = asyncio.create_task(agent.run())
        try:
            await asyncio.wait_for(agent.connected.wait(), 10)
            dialer = HTTPConnectDialer(Connection("HTTPConnect", uds_name=str(tmp_path / "k.sock")))
            for _ in range(20):
                reader, writer = await dialer.dial("127.0.7.20", port)
                got = await asyncio.wait_for(reader.readexactly(16 + 100_000), 10)
                assert got.startswith(b"SSH-2.0-banner\r\n")
                writer.close()
        finally:
            task.cancel()
            target.close()


def test_the_server_refuses_grpc_mode() -> None:
    proc = subprocess.run([sys.executable, "-m", "miniapi.konnectivity", "server", "--uds-name", "/tmp/x.sock",
                           "--server-port", "0"], capture_output=True, text=True, cwd=ROOT)
    assert proc.returncode != 0 and "--mode grpc: only http-connect is implemented" in proc.stderr
