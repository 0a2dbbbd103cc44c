"""The historical SSH tunnels (``--ssh-user``/``--ssh-keyfile``) against real OpenSSH sshd servers.

Real processes: ``python -m miniapi`` with the SSH flags, one Debian OpenSSH ``sshd`` per node on the
node's own loopback address (port 22 when this runs as root, else one high port for all, passed as
``--ssh-port``), minikubelets, the real kubectl. The apiserver generates its key pair; the test then
writes the public key into each node's authorized_keys, as the lab documents (the real feature pushed
it through the cloud provider), and the tunnels come up on their next attempt.

The in-process tests drive :class:`~miniapi.proxy.ssh.SSHTunnelDialer` directly against a real sshd:
host-key modes, health checks, what the node's sshd allows, dial errors.
"""

from __future__ import annotations

import asyncio
import getpass
import logging
import os
import ssl
import subprocess
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import asyncssh
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from miniapi.proxy.errors import ConnectError
from miniapi.proxy.ssh import NodeTarget, SSHOptions, SSHTunnelDialer, State, Tunnel
from miniapi.proxy.sshkeys import authorized_key
from miniapi.selfsigned import ensure_self_signed
from miniapi.store import MemoryStore
from minilab.sshd import NodeSSHD, pick_ssh_port, sshd_binary
from tests.e2e.cluster import Cluster, make_cluster
from tests.integration.conftest import Pki, running
from tests.integration.kubelet_harness import KubeletProc, kubelet_client_args
from tests.integration.tunnel_kit import (
    LINES,
    exercise,
    log_lines,
    make_pods,
    start_kubelet,
    tcp_conns,
    until,
)

pytestmark = pytest.mark.skipif(sshd_binary() is None, reason="OpenSSH sshd missing: scripts/test.sh installs "
                                "openssh-server (apt-get install -y openssh-server)")

USER = getpass.getuser()
NODES = {"node1": "127.0.6.2", "node2": "127.0.6.3"}
CIDRS = {"node1": "127.248.1.0/24", "node2": "127.248.2.0/24", "node3": "127.248.3.0/24"}
NODE3 = "127.0.6.4"


@pytest.fixture(scope="module")
def ssh_port() -> int:
    return pick_ssh_port([*NODES.values(), NODE3])


@pytest.fixture(scope="module")
def sshds(tmp_path_factory: pytest.TempPathFactory, ssh_port: int) -> Iterator[dict[str, NodeSSHD]]:
    root = tmp_path_factory.mktemp("sshd")
    servers = {n: NodeSSHD(root / n, ip, ssh_port, USER).prepare().start() for n, ip in NODES.items()}
    try:
        yield servers
    finally:
        for s in servers.values():
            s.stop()


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory, sshds: dict[str, NodeSSHD], ssh_port: int) -> Iterator[Cluster]:
    root = tmp_path_factory.mktemp("ssh-cluster")
    keyfile = root / "ssh" / "apiserver-ssh"
    keyfile.parent.mkdir()
    c = make_cluster(root, extra_args=[*kubelet_client_args(root), "--ssh-user", USER, "--ssh-keyfile", str(keyfile),
                                       "--ssh-port", str(ssh_port)])
    try:
        until(lambda: keyfile.with_suffix(".pub").exists(), what="the apiserver's generated key pair")
        for sshd in sshds.values():  # the lab's key install (the cloud provider's AddSSHKeyToAllInstances)
            sshd.authorize(authorized_key(str(keyfile)))
        yield c
    finally:
        c.stop()


@pytest.fixture(scope="module")
def kubelets(cluster: Cluster) -> Iterator[dict[str, KubeletProc]]:
    procs = {n: start_kubelet(cluster, n, ip, CIDRS[n]) for n, ip in NODES.items()}
    try:
        make_pods(cluster, {"p1": "node1", "p2": "node2"}, service="svc")
        yield procs
    finally:
        for k in procs.values():
            k.cleanup()


def tunnels_up(cluster: Cluster, ips: list[str]) -> bool:
    return all(log_lines(cluster, f'Successfully added tunnel for "{ip}:') for ip in ips)


# -- the apiserver process --------------------------------------------------------------------------------

def test_the_apiserver_generates_its_key_pair_as_the_historical_tunneler(cluster: Cluster) -> None:
    keyfile = cluster.root / "ssh" / "apiserver-ssh"
    assert keyfile.stat().st_mode & 0o777 == 0o600
    key = serialization.load_pem_private_key(keyfile.read_bytes(), None)
    assert keyfile.read_bytes().startswith(b"-----BEGIN RSA PRIVATE KEY-----")
    assert isinstance(key, rsa.RSAPrivateKey) and key.key_size == 2048
    assert keyfile.with_suffix(".pub").read_bytes().startswith(b"-----BEGIN PUBLIC KEY-----")
    assert log_lines(cluster, "Flag --ssh-user has been deprecated, This flag will be removed in a future version.")
    assert log_lines(cluster, "INSECURE: SSH tunnels do not verify the nodes' host keys")


def test_kubectl_paths_go_through_the_tunnels(cluster: Cluster, kubelets: dict[str, KubeletProc]) -> None:
    until(lambda: tunnels_up(cluster, list(NODES.values())), what="both tunnels")
    kubectl = cluster.kubectl("admin.conf")
    r1 = exercise(kubectl, "node1", "p1", service="svc")
    r2 = exercise(kubectl, "node2", "p2")
    assert "logs" in r1.done and "logs" in r2.done
    print(f"ssh mode: ran {r1.done}, no route yet for {r1.missing}")
    assert log_lines(cluster, "dialer=ssh") and not log_lines(cluster, "dialer=direct")
    warnings = log_lines(cluster, "ssh host key NOT verified node=node1 address=127.0.6.2")
    assert warnings and "fingerprint=SHA256:" in warnings[0]


def test_no_tcp_connection_goes_from_the_apiserver_to_a_kubelet(cluster: Cluster, kubelets: dict[str, KubeletProc],
                                                               ssh_port: int) -> None:
    until(lambda: tunnels_up(cluster, list(NODES.values())), what="both tunnels")
    kubectl = cluster.kubectl("admin.conf")
    follow = subprocess.Popen([kubectl.binary, "--kubeconfig", str(kubectl.kubeconfig), "logs", "-f", "p1"],
                              stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env={**os.environ,
                              "HOME": str(kubectl.cache_dir)})
    try:
        assert follow.stdout is not None
        assert follow.stdout.readline() == b"line1\n"  # the kubelet connection is open now
        conns = tcp_conns()
        assert cluster.proc is not None
        pid = f"pid={cluster.proc.pid},"
        outbound = [c for c in conns if c.state == "ESTAB" and pid in c.process and
                    not c.local.endswith(f":{cluster.port}")]
        kubelet = kubelets["node1"]
        to_kubelet = [c for c in conns if c.state == "ESTAB" and c.peer == f"{kubelet.ip}:{kubelet.port}"]
    finally:
        follow.terminate()
        follow.wait(10)
    assert outbound and {c.peer for c in outbound} <= {f"{ip}:{ssh_port}" for ip in NODES.values()}, outbound
    assert to_kubelet and all('"sshd' in c.process for c in to_kubelet), to_kubelet  # the node's sshd dialled it


def test_healthz_has_the_ssh_tunnel_check(cluster: Cluster, kubelets: dict[str, KubeletProc]) -> None:
    kubectl = cluster.kubectl("admin.conf")
    assert "[+]SSH Tunnel Check ok" in kubectl.ok("get", "--raw", "/healthz?verbose")
    assert kubectl.ok("get", "--raw", "/healthz/SSH%20Tunnel%20Check") == "ok"
    assert kubectl.ok("get", "--raw", "/readyz") == "ok"


def test_a_restarted_node_sshd_is_redialled(cluster: Cluster, kubelets: dict[str, KubeletProc],
                                            sshds: dict[str, NodeSSHD]) -> None:
    until(lambda: tunnels_up(cluster, list(NODES.values())), what="both tunnels")
    added = len(log_lines(cluster, 'Successfully added tunnel for "127.0.6.2:'))
    sshds["node1"].restart(connections=True)  # a reboot: the listener and every connection
    until(lambda: log_lines(cluster, 'SSH tunnel down "127.0.6.2:'), what="the tunnel going down")
    until(lambda: len(log_lines(cluster, 'Successfully added tunnel for "127.0.6.2:')) > added, what="re-dial")
    assert cluster.kubectl("admin.conf").ok("logs", "p1") == LINES


def test_tunnels_follow_nodes_coming_and_going(cluster: Cluster, kubelets: dict[str, KubeletProc],
                                               tmp_path: Path, ssh_port: int) -> None:
    sshd = NodeSSHD(tmp_path / "node3", NODE3, ssh_port, USER).prepare()
    sshd.authorize(authorized_key(str(cluster.root / "ssh" / "apiserver-ssh")))
    sshd.start()
    kubelet = start_kubelet(cluster, "node3", NODE3, CIDRS["node3"])
    try:
        until(lambda: tunnels_up(cluster, [NODE3]), what="a tunnel to the new node")
    finally:
        kubelet.cleanup()
        sshd.stop()
    cluster.kubectl("admin.conf").ok("delete", "node", "node3")
    until(lambda: log_lines(cluster, f'Removing tunnel to deleted node at "{NODE3}:'), what="tunnel removal")


# -- in process: SSHTunnelDialer against a real sshd ------------------------------------------------------

@pytest.fixture
def node(tmp_path: Path) -> Iterator[NodeSSHD]:
    ip = "127.0.6.10"
    sshd = NodeSSHD(tmp_path / "sshd", ip, pick_ssh_port([ip]), USER).prepare()
    try:
        yield sshd
    finally:
        sshd.stop()


async def dialer_for(node: NodeSSHD, tmp_path: Path, kubelet_port: int = 1, **options: object
                     ) -> SSHTunnelDialer:
    keyfile = str(tmp_path / "key")
    dialer = SSHTunnelDialer(SSHOptions(USER, keyfile, port=node.port, **options))  # type: ignore[arg-type]
    node.authorize(authorized_key(keyfile))
    if node.proc is None:
        node.start()
    store = MemoryStore()
    await store.create("nodes", {"metadata": {"name": "n1", "namespace": ""}, "status": {
        "addresses": [{"type": "InternalIP", "address": node.address}],
        "daemonEndpoints": {"kubeletEndpoint": {"Port": kubelet_port}}}})
    await dialer.start(store)
    return dialer


async def wait_state(dialer: SSHTunnelDialer, state: State, timeout: float = 15) -> Tunnel:
    async with asyncio.timeout(timeout):
        while not ((t := dialer.tunnels.get("n1")) and t.state is state):
            await asyncio.sleep(0.02)
    return t


@pytest.fixture
async def kubelet_standin(tmp_path: Path) -> AsyncIterator[int]:
    """Something answering HTTPS on the node's address, as a kubelet's /healthz would (401 counts)."""
    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b"HTTP/1.1 401 Unauthorized\r\nContent-Length: 0\r\n\r\n")
        await writer.drain()
        writer.close()

    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(*ensure_self_signed(str(tmp_path / "standin"), "127.0.6.10"))
    server = await asyncio.start_server(answer, "127.0.6.10", 0, ssl=ctx)
    yield server.sockets[0].getsockname()[1]
    server.close()


async def test_known_hosts_mode_refuses_a_changed_host_key(node: NodeSSHD, tmp_path: Path, kubelet_standin: int,
                                                           caplog: pytest.LogCaptureFixture) -> None:
    known = tmp_path / "known_hosts"
    dialer = await dialer_for(node, tmp_path, kubelet_standin, known_hosts=str(known), backoff=(0.1, 0.2))
    try:
        await wait_state(dialer, State.UP)
        old = asyncssh.read_public_key(str(node.host_key) + ".pub").get_fingerprint()
        assert known.read_text().split()[0] == (node.address if node.port == 22 else f"[{node.address}]:{node.port}")
        new_line = node.rotate_host_key()
        new = asyncssh.import_public_key(new_line).get_fingerprint()
        node.restart(connections=True)
        tunnel = await wait_state(dialer, State.DOWN)
        async with asyncio.timeout(10):
            while "host key mismatch" not in tunnel.error:
                await asyncio.sleep(0.02)
        where = node.address if node.port == 22 else f"[{node.address}]:{node.port}"
        assert f"ssh: host key mismatch for {where}: {known} has {old}, the node presented {new}" in tunnel.error
        with pytest.raises(ConnectError, match='No SSH tunnels currently open. Were the targets able to accept an '
                                               f'ssh-key for user "{USER}"'):
            await dialer.dial(node.address, kubelet_standin)
        assert any("host key mismatch" in r.getMessage() and r.levelno == logging.ERROR for r in caplog.records)
    finally:
        await dialer.stop()


async def test_historical_mode_accepts_a_changed_host_key_with_a_warning(
        node: NodeSSHD, tmp_path: Path, kubelet_standin: int, caplog: pytest.LogCaptureFixture) -> None:
    dialer = await dialer_for(node, tmp_path, kubelet_standin, backoff=(0.1, 0.2))
    try:
        await wait_state(dialer, State.UP)
        new = asyncssh.import_public_key(node.rotate_host_key()).get_fingerprint()
        caplog.clear()
        node.restart(connections=True)
        await wait_state(dialer, State.DOWN)
        await wait_state(dialer, State.UP)
        warned = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING and "NOT verified" in
                  r.getMessage()]
        assert warned and f"fingerprint={new}" in warned[-1]
        reader, writer = await dialer.dial(node.address, kubelet_standin)  # usable: nobody checked the key
        writer.close()
    finally:
        await dialer.stop()


async def test_health_check_through_the_tunnel(node: NodeSSHD, tmp_path: Path, kubelet_standin: int,
                                               caplog: pytest.LogCaptureFixture) -> None:
    dialer = await dialer_for(node, tmp_path, kubelet_standin, health_interval=0.2, max_lag=0.5)
    try:
        tunnel = await wait_state(dialer, State.UP)
        await asyncio.sleep(0.6)
        assert not [r for r in caplog.records if "Healthcheck failed" in r.getMessage()]
        assert dialer.check() is None
        first = tunnel.conn
        tunnel.target = NodeTarget("n1", node.address, 1)  # the kubelet port stops answering
        async with asyncio.timeout(10):
            while not [r for r in caplog.records if "Healthcheck failed" in r.getMessage()]:
                await asyncio.sleep(0.02)
        message = next(r.getMessage() for r in caplog.records if "Healthcheck failed" in r.getMessage())
        assert f'Healthcheck failed for tunnel to "{node.address}:{node.port}" node=n1' in message
        assert "ssh: rejected" in message
        tunnel = await wait_state(dialer, State.UP)  # closed and dialled again
        assert tunnel.conn is not first
    finally:
        await dialer.stop()


async def test_the_healthz_check_fails_once_a_tunnel_is_down_too_long(tmp_path: Path) -> None:
    dialer = SSHTunnelDialer(SSHOptions(USER, str(tmp_path / "key"), max_lag=0.2, backoff=(5, 5)))
    store = MemoryStore()
    await store.create("nodes", {"metadata": {"name": "n1", "namespace": ""}, "status": {
        "addresses": [{"type": "InternalIP", "address": "127.0.6.11"}]}})
    await dialer.start(store)  # nobody listens on 127.0.6.11:22
    try:
        assert dialer.check() is None
        await asyncio.sleep(0.4)
        assert (dialer.check() or "").startswith("Tunnel sync is taking too long: 0 (node n1 at 127.0.6.11:22: ")
    finally:
        await dialer.stop()


async def test_the_node_sshd_allows_port_forwarding_only(node: NodeSSHD, tmp_path: Path) -> None:
    """OpenSSH interop and the node's restrictions, with a plain asyncssh client."""
    keyfile = str(tmp_path / "key")
    SSHTunnelDialer(SSHOptions(USER, keyfile))  # generates the pair
    node.authorize(authorized_key(keyfile))
    node.start()
    opts = {"known_hosts": None, "client_keys": [keyfile], "agent_path": None, "config": []}
    async with asyncssh.connect(node.address, node.port, username=USER, **opts) as conn:
        result = await conn.run("id", check=False)  # ForceCommand /bin/false: nothing runs
        assert (result.exit_status, result.stdout) == (1, "")
        with pytest.raises(asyncssh.ChannelListenError):  # AllowTcpForwarding local: no listener on the node
            await conn.forward_remote_port(node.address, 0, "127.0.0.1", 1)
        with pytest.raises(asyncssh.ChannelOpenError):  # no pty, whatever the command
            await conn.create_process(term_type="xterm", request_pty="force")
    with pytest.raises(asyncssh.PermissionDenied):  # AllowUsers: only the tunnel user
        await asyncssh.connect(node.address, node.port, username="nobody", **opts)
    with pytest.raises(asyncssh.PermissionDenied):  # PasswordAuthentication no
        await asyncssh.connect(node.address, node.port, username=USER, password="x", known_hosts=None,
                               client_keys=None, agent_path=None, config=[], preferred_auth="password")


async def test_dial_errors_read_like_go(node: NodeSSHD, tmp_path: Path, kubelet_standin: int,
                                        caplog: pytest.LogCaptureFixture) -> None:
    long_user = USER + "x" * 40
    SSHTunnelDialer(SSHOptions(long_user, str(tmp_path / "k2")))
    assert "SSH User is too long, truncating to 32 chars" in caplog.text
    dialer = await dialer_for(node, tmp_path, kubelet_standin)
    try:
        await wait_state(dialer, State.UP)
        with pytest.raises(ConnectError, match=r"^ssh: rejected: connect failed \(Connection refused\)$"):
            await dialer.dial(node.address, 1)
        caplog.clear()
        with pytest.raises(ConnectError, match="Connection refused"):  # no such node: a random tunnel tries
            await dialer.dial("127.0.6.99", kubelet_standin)
        assert 'SSH tunnel not found for address "127.0.6.99", picking random node' in caplog.text
    finally:
        await dialer.stop()


def test_pick_prefers_the_nodes_tunnel_then_its_pod_cidr(tmp_path: Path) -> None:
    dialer = SSHTunnelDialer(SSHOptions(USER, str(tmp_path / "key")))
    for name, ip, cidr in (("a", "127.0.6.20", "127.248.20.0/24"), ("b", "127.0.6.21", "127.248.21.0/24")):
        t = dialer.tunnels[name] = Tunnel(NodeTarget(name, ip, 10250, (cidr,)), dialer)
        t.state, t.conn = State.UP, object()  # type: ignore[assignment]
    assert dialer.pick("127.0.6.21").target.name == "b"
    assert dialer.pick("127.248.20.7").target.name == "a"
    assert dialer.pick("10.96.0.1").target.name in ("a", "b")


def test_ssh_flags_are_checked() -> None:
    from miniapi.config import ConfigError, from_args

    base = ["--service-account-issuer", "x", "--service-account-signing-key-file", __file__]
    for extra, message in ((["--ssh-user", "u"], "--ssh-user and --ssh-keyfile must be given together"),
                           (["--ssh-known-hosts", "f"], "--ssh-known-hosts only applies to SSH tunnels"),
                           (["--ssh-user", "u", "--ssh-keyfile", "k", "--egress-selector-config-file", __file__],
                            "are alternatives")):
        with pytest.raises(ConfigError, match=message):
            from_args([*base, *extra])
    cfg, _ = from_args([*base, "--ssh-user", "u", "--ssh-keyfile", "k"])
    assert any("INSECURE: SSH tunnels do not verify" in w for w in cfg.warnings)
    cfg, _ = from_args([*base, "--ssh-user", "u", "--ssh-keyfile", "k", "--ssh-known-hosts", "kh"])
    assert not any("INSECURE: SSH" in w for w in cfg.warnings)


async def test_a_failing_tunnel_check_fails_healthz_as_k8s_renders_it(pki: Pki) -> None:
    async with running(pki.config(), pki) as (srv, http):
        srv.health_checks["SSH Tunnel Check"] = lambda: None
        ok = await http.call("GET", "/healthz?verbose")
        assert ok.status == 200 and ok.body.decode().endswith("[+]SSH Tunnel Check ok\nhealthz check passed\n")
        srv.health_checks["SSH Tunnel Check"] = lambda: "Tunnel sync is taking too long: 612"
        bad = await http.call("GET", "/healthz")
        assert bad.status == 500
        assert bad.body.decode().endswith("[-]SSH Tunnel Check failed: reason withheld\nhealthz check failed\n")
        one = await http.call("GET", "/healthz/SSH%20Tunnel%20Check")
        assert (one.status, one.body) == (500, b"internal server error: Tunnel sync is taking too long: 612\n")
        assert (await http.call("GET", "/readyz")).status == 500
