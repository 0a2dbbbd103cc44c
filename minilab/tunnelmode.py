"""``minilab up --tunnel direct|ssh|konnectivity``: how the apiserver reaches the kubelets, pods and services.

1. **direct** (the real default): the apiserver opens a TCP connection to each kubelet (and pod) itself.
2. **ssh** (the deprecated SSH tunnels, removed in Kubernetes 1.22): every node runs the real OpenSSH
   ``sshd`` on its own loopback address, port 22 (a free high port where 22 cannot be had), that lets
   the tunnel user do nothing but local port forwarding (:mod:`minilab.sshd`). The lab makes the
   apiserver's key pair (``ssh/apiserver-ssh``, as the apiserver itself would) and writes its public key
   into each node's authorized_keys, which the real feature did through the cloud provider. The
   apiserver runs with ``--ssh-user``/``--ssh-keyfile`` and sends every node connection through its one
   SSH connection per node. INSECURE by default, as historically: it does not verify the nodes' host
   keys. The profile row ``ssh-host-key`` (``--set ssh-host-key=hardened``) adds
   ``--ssh-known-hosts=ssh/known_hosts``, which the lab fills with the nodes' real host keys.
3. **konnectivity** (the replacement): a proxy server (``konnectivity-server``: Unix-socket frontend
   for the apiserver, agent port with mutual TLS) and one agent per node that dials OUT to it; the
   apiserver runs with ``--egress-selector-config-file`` (files: :mod:`minilab.tunnels`).

Processes (in lab.json, stopped by ``down`` after the apiserver): ``sshd/NODE`` (and its per-connection
children), ``konnectivity-server``, ``konnectivity-agent/NODE``. ``up`` waits until every node's tunnel
is up; ``status`` says how each is.
"""

from __future__ import annotations

import asyncio
import contextlib
import getpass
import socket
import time
import urllib.error
import urllib.request
from pathlib import Path

from minilab import procs
from minilab.profiles import Level
from minilab.sshd import NodeSSHD, pick_ssh_port, sshd_binary
from minilab.state import LabDir, LabState, NodeSpec
from minilab.tunnels import KonnectivityPki, agent_argv, egress_config, konnectivity_pki, server_argv
from minilab.waits import LabError

MODES = ("direct", "ssh", "konnectivity")
SERVER = "konnectivity-server"
AGENT_PORT, ADMIN_PORT, HEALTH_PORT = 8132, 8133, 8134  # the setup-konnectivity page's ports
HOST_KEY_ROW = "ssh-host-key"


def sshd_key(node: str) -> str:
    return f"sshd/{node}"


def agent_key(node: str) -> str:
    return f"konnectivity-agent/{node}"


def is_tunnel_proc(key: str) -> bool:
    return key == SERVER or key.startswith(("sshd/", "konnectivity-agent/"))


def keyfile(lab: LabDir) -> Path:
    return lab.root / "ssh" / "apiserver-ssh"


def known_hosts(lab: LabDir) -> Path:
    return lab.root / "ssh" / "known_hosts"


def node_sshd(lab: LabDir, node: NodeSpec, port: int) -> NodeSSHD:
    return NodeSSHD(lab.root / "ssh" / node.name, node.ip, port, getpass.getuser())


def host_key_checked(levels: dict[str, Level]) -> bool:
    """Row ``ssh-host-key`` of the profile table; a table without that row means the historical default."""
    return levels.get(HOST_KEY_ROW, Level.INSECURE) is Level.HARDENED


# -- ssh ----------------------------------------------------------------------------------------------------

def pick_port(state: LabState) -> int:
    """22 on every node address if free (root), else one high port free on all of them."""
    return pick_ssh_port([n.ip for n in state.nodes])


def prepare_ssh(lab: LabDir, state: LabState, levels: dict[str, Level]) -> list[str]:
    """Key pair, node sshd files, authorized_keys and (hardened) known_hosts; returns the apiserver flags."""
    from miniapi.proxy.sshkeys import authorized_key, ensure_keypair

    if sshd_binary() is None:
        raise LabError("--tunnel ssh needs OpenSSH's sshd: apt-get install -y openssh-server")
    key = keyfile(lab)
    key.parent.mkdir(parents=True, exist_ok=True)
    ensure_keypair(str(key))  # what the apiserver would do; the lab then "pushes" the public key to the nodes
    public = authorized_key(str(key))
    port = state.settings.ssh_port
    lines = []
    for node in state.nodes:
        sshd = node_sshd(lab, node, port).prepare()
        sshd.authorize(public)
        where = node.ip if port == 22 else f"[{node.ip}]:{port}"
        kind, blob = sshd.host_key.with_suffix(".pub").read_text().split()[:2]
        lines.append(f"{where} {kind} {blob}\n")
    flags = ["--ssh-user", getpass.getuser(), "--ssh-keyfile", str(key)]
    if port != 22:
        flags += ["--ssh-port", str(port)]
    if host_key_checked(levels):
        known_hosts(lab).write_text("".join(lines))  # the nodes' real host keys, as an admin would collect them
        flags += [f"--ssh-known-hosts={known_hosts(lab)}"]
    return flags


def sshd_argv(lab: LabDir, node: NodeSpec, port: int) -> list[str]:
    binary = sshd_binary() or "sshd"
    return [binary, "-D", "-e", "-f", str(node_sshd(lab, node, port).dir / "sshd_config")]


def wait_sshd(node: NodeSpec, port: int, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError), socket.create_connection((node.ip, port), 0.5) as s:
            s.settimeout(2)
            if s.recv(64).startswith(b"SSH-2.0-"):
                return
        time.sleep(0.02)
    raise LabError(f"the sshd of {node.name} on {node.ip}:{port} did not answer; see its log")


def established(ip: str, port: int) -> int:
    """ESTABLISHED TCP connections to ip:port on this host (/proc/net/tcp: the apiserver's SSH tunnels)."""
    want = f"{socket.inet_aton(ip)[::-1].hex().upper()}:{port:04X}"
    count = 0
    with contextlib.suppress(OSError), open("/proc/net/tcp") as f:
        for line in list(f)[1:]:
            fields = line.split()
            if len(fields) > 3 and fields[2] == want and fields[3] == "01":
                count += 1
    return count


# -- konnectivity -------------------------------------------------------------------------------------------

def konnectivity_ports(state: LabState) -> tuple[int, int, int]:
    """The agent, admin and health ports: the docs' 8132-8134 if free, else free ones; a running server's
    own (from its recorded command line)."""
    info = state.procs.get(SERVER)
    if info is not None and procs.alive(info):
        argv = list(info.argv)
        agent, admin, health = (int(argv[argv.index(f) + 1]) for f in ("--agent-port", "--admin-port", "--health-port"))
    else:
        agent, admin, health = (p if procs.port_free("127.0.0.1", p) else procs.free_port("127.0.0.1")
                                for p in (AGENT_PORT, ADMIN_PORT, HEALTH_PORT))
    return agent, admin, health


def prepare_konnectivity(lab: LabDir, state: LabState) -> tuple[KonnectivityPki, list[str]]:
    pki = konnectivity_pki(lab.root, [n.name for n in state.nodes])
    return pki, ["--egress-selector-config-file", str(egress_config(lab.root, pki))]


def konnectivity_server_argv(pki: KonnectivityPki, state: LabState) -> list[str]:
    agent, admin, health = konnectivity_ports(state)
    return server_argv(pki, agent, admin_port=admin, health_port=health)


def konnectivity_agent_argv(pki: KonnectivityPki, state: LabState, node: NodeSpec) -> list[str]:
    return agent_argv(pki, konnectivity_ports(state)[0], node.name, node.ip)


def server_get(state: LabState, path: str, admin: bool = False) -> tuple[int, str]:
    """GET on the proxy server's health (or admin) port: (status, body); (0, why) if it does not answer."""
    _, admin_port, health_port = konnectivity_ports(state)
    url = f"http://127.0.0.1:{admin_port if admin else health_port}{path}"
    try:
        with urllib.request.urlopen(url, timeout=2) as resp:
            return resp.status, resp.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()
    except OSError as e:
        return 0, str(e)


def agents_connected(state: LabState) -> int:
    code, body = server_get(state, "/metrics", admin=True)
    for line in body.splitlines() if code == 200 else ():
        if line.startswith("konnectivity_network_proxy_server_ready_backend_connections "):
            return int(float(line.split()[1]))
    return 0


# -- both -----------------------------------------------------------------------------------------------------

def tunnels_up(state: LabState) -> list[str]:
    """The nodes whose tunnel is not up yet (empty: all are, or the mode has none)."""
    mode = state.settings.tunnel
    if mode == "ssh":
        return [n.name for n in state.nodes if not established(n.ip, state.settings.ssh_port)]
    if mode == "konnectivity":
        n = agents_connected(state)
        return [] if n >= len(state.nodes) else [f"{len(state.nodes) - n} of {len(state.nodes)} agents"]
    return []


async def wait_tunnels(state: LabState) -> None:
    while tunnels_up(state):
        await asyncio.sleep(0.05)


def status_lines(state: LabState, levels: dict[str, Level]) -> list[str]:
    """What ``minilab status`` prints about the tunnels."""
    mode = state.settings.tunnel
    if mode == "direct":
        return ["tunnel direct: the apiserver dials each kubelet itself"]
    if mode == "ssh":
        port = state.settings.ssh_port
        checked = ("host keys checked against ssh/known_hosts (--ssh-known-hosts)" if host_key_checked(levels)
                   else "INSECURE: node host keys NOT verified (the historical default; --set ssh-host-key=hardened)")
        out = [f"tunnel ssh: the apiserver's SSH connections to each node's sshd on port {port}; {checked}"]
        for n in state.nodes:
            up = established(n.ip, port)
            out.append(f"  {n.name:10} {n.ip}:{port}  {'up' if up else 'DOWN'} ({up} connection(s))")
        return out
    code, body = server_get(state, "/readyz")
    agents = agents_connected(state)
    return [f"tunnel konnectivity: proxy server /readyz {code or 'unreachable'} {body.strip()}; "
            f"{agents} of {len(state.nodes)} agent(s) connected (mutual TLS)"]
