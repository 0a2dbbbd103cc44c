"""``LAB_TUNNEL=direct|ssh|konnectivity``: how the apiserver reaches the nodes in the compose lab.

``direct`` (default)  the apiserver dials each kubelet itself (scenarios 1-5).
``ssh``               the historical SSH tunnels (scenario 7, ``ssh-tunnel``): the apiserver runs with
                      ``--ssh-user kube-tunnel --ssh-keyfile /etc/kubernetes/ssh/tunnel.key``; every node runs
                      the real OpenSSH ``sshd`` on its port 22 that lets ``kube-tunnel`` do nothing but port
                      forwarding (minilab/sshd.py's configuration). Row ``ssh-host-key`` of the profile table
                      decides whether the apiserver checks the nodes' host keys (``--ssh-known-hosts``).
``konnectivity``      the agent tunnel that replaced them (scenario 8, ``agent-tunnel``): the Konnectivity-style
                      server runs in the apiserver's container (the setup-konnectivity page runs it as a static
                      pod next to the apiserver, sharing a Unix socket: same here, ``/run/konnectivity``), the
                      apiserver gets ``--egress-selector-config-file``, an agent on every node dials OUT to
                      ``10.221.1.10:8132`` over mutual TLS, and each node drops NEW inbound connections from the
                      control-plane network (iptables INPUT), so nothing on the control plane can dial a node.

Who makes the keys (the pki job, :func:`provision`, in place of the cloud provider that historically pushed the
apiserver's tunnel key to every instance and the image builder that made the host keys)::

    /etc/kubernetes/ssh/tunnel.key, tunnel.key.pub   the apiserver's key pair (--ssh-keyfile; RSA 2048, as the
                                                     apiserver would generate it)
    /etc/kubernetes/ssh/known_hosts                  every node's host key, by address: what the apiserver
                                                     copies to /var/lib/miniapi/known_hosts (it appends to it)
    <node volume>/ssh/ssh_host_ed25519_key(.pub)     the node's own host key
    <node volume>/ssh/authorized_keys                the apiserver's key: restrict,port-forwarding,command=...
    /etc/kubernetes/konnectivity/                    the tunnel CA, server and per-agent certificates
    <node volume>/konnectivity/ca.crt, agent.crt|key the agent's part
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Mapping
from pathlib import Path

from lab.topology import Topology
from minilab.profiles import Component, Level, flags_for

MODES = ("direct", "ssh", "konnectivity")
SSH_USER = "kube-tunnel"
AGENT_PORT = 8132  # the setup-konnectivity page's agent port
KONN_SOCKET = "/run/konnectivity/konnectivity-server.socket"
KNOWN_HOSTS = "/var/lib/miniapi/known_hosts"  # writable copy: KnownHosts appends first-seen nodes


class TunnelError(ValueError):
    pass


def mode(env: Mapping[str, str] | None = None) -> str:
    value = (os.environ if env is None else env).get("LAB_TUNNEL", "direct") or "direct"
    if value not in MODES:
        raise TunnelError(f"LAB_TUNNEL must be one of {', '.join(MODES)}, not {value!r}")
    return value


# -- the pki job ----------------------------------------------------------------------------------------------
def provision(top: Topology, kube: Path) -> None:
    """Tunnel material for both tunnel modes, made once (kept on a re-run), so a lab can switch LAB_TUNNEL."""
    from miniapi.proxy.sshkeys import authorized_key, ensure_keypair
    from minilab.sshd import authorized_key_line
    from minilab.tunnels import konnectivity_pki

    ssh = kube / "ssh"
    ssh.mkdir(parents=True, exist_ok=True)
    ensure_keypair(str(ssh / "tunnel.key"))
    tunnel_pub = authorized_key(str(ssh / "tunnel.key"))
    known = []
    for node in top.all_nodes:
        d = kube / "nodes" / node.name / "ssh"
        d.mkdir(parents=True, exist_ok=True)
        host_key = d / "ssh_host_ed25519_key"
        if not host_key.exists():
            subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", f"root@{node.name}",
                            "-f", str(host_key)], check=True)
        algorithm, blob = host_key.with_suffix(".pub").read_text().split()[:2]
        known.append(f"{node.ip} {algorithm} {blob}\n")
        (d / "authorized_keys").write_text(authorized_key_line(tunnel_pub))
    (ssh / "known_hosts").write_text("".join(known))
    print(f"ssh: tunnel key {ssh / 'tunnel.key'}, {len(known)} node host keys in {ssh / 'known_hosts'}", flush=True)

    konn = kube / "konnectivity"
    if not (konn / "ca.crt").exists():
        konnectivity_pki(kube, [n.name for n in top.all_nodes], server_ips=(top.apiserver_ip, "127.0.0.1"),
                         server_names=("apiserver", "localhost"))
    for node in top.all_nodes:
        d = kube / "nodes" / node.name / "konnectivity"
        d.mkdir(parents=True, exist_ok=True)
        shutil.copy2(konn / "ca.crt", d / "ca.crt")
        shutil.copy2(konn / f"agent-{node.name}.crt", d / "agent.crt")
        shutil.copy2(konn / f"agent-{node.name}.key", d / "agent.key")
    print(f"konnectivity: CA and server certificates in {konn}, an agent certificate per node", flush=True)


# -- the apiserver container ----------------------------------------------------------------------------------
def apiserver_flags(top: Topology, levels: Mapping[str, Level], kube: Path, tunnel: str) -> list[str]:
    if tunnel == "ssh":
        return ["--ssh-user", SSH_USER, "--ssh-keyfile", str(kube / "ssh" / "tunnel.key"),
                *flags_for(Component.SSH_TUNNEL, levels, known_hosts=KNOWN_HOSTS)]
    if tunnel == "konnectivity":
        return ["--egress-selector-config-file", str(egress_config_path())]
    return []


def egress_config_path() -> Path:
    return Path("/var/lib/miniapi/egress-selector-configuration.yaml")


def prepare_apiserver(levels: Mapping[str, Level], kube: Path, tunnel: str) -> list[list[str]]:
    """Files the apiserver needs before it starts; returns the processes to run NEXT to it (before it)."""
    if tunnel == "ssh" and levels["ssh-host-key"] is Level.HARDENED:
        Path(KNOWN_HOSTS).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(kube / "ssh" / "known_hosts", KNOWN_HOSTS)
        print(f"ssh: {KNOWN_HOSTS} holds the nodes' real host keys (from the pki job):", flush=True)
        print(Path(KNOWN_HOSTS).read_text().rstrip(), flush=True)
    if tunnel != "konnectivity":
        return []
    Path(KONN_SOCKET).parent.mkdir(parents=True, exist_ok=True)
    egress_config_path().write_text("\n".join([
        "apiVersion: apiserver.k8s.io/v1beta1", "kind: EgressSelectorConfiguration", "egressSelections:",
        "# traffic to nodes, pods and services (kubelet, proxies): through the Konnectivity server's socket",
        "- name: cluster", "  connection:", "    proxyProtocol: HTTPConnect", "    transport:", "      uds:",
        f"        udsName: {KONN_SOCKET}"]) + "\n")
    k = kube / "konnectivity"
    server = ["python", "-m", "miniapi.konnectivity", "server", "--mode", "http-connect",
              "--uds-name", KONN_SOCKET, "--delete-existing-uds-file", "--server-port", "0",
              "--agent-port", str(AGENT_PORT), "--agent-bind-address", "0.0.0.0",
              "--cluster-cert", str(k / "server.crt"), "--cluster-key", str(k / "server.key"),
              "--cluster-ca-cert", str(k / "ca.crt"), "--health-port", "8092", "--health-bind-address", "127.0.0.1",
              "--admin-port", "0", "--proxy-strategies", "destHost,default"]
    return [server]


# -- a node container -----------------------------------------------------------------------------------------
def node_processes(top: Topology, name: str, kube: Path, tunnel: str) -> list[list[str]]:
    """The tunnel's processes on a node (after the kubelet): sshd, or the agent."""
    node = top.node(name)
    if tunnel == "ssh":
        return [["/usr/sbin/sshd", "-D", "-e", "-f", str(kube / "ssh" / "sshd_config")]]
    if tunnel == "konnectivity":
        k = kube / "konnectivity"
        return [["python", "-m", "miniapi.konnectivity", "agent", "--proxy-server-host", top.apiserver_ip,
                 "--proxy-server-port", str(AGENT_PORT), "--ca-cert", str(k / "ca.crt"),
                 "--agent-cert", str(k / "agent.crt"), "--agent-key", str(k / "agent.key"), "--agent-id", name,
                 "--agent-identifiers", f"host={name}&ipv4={node.ip}", "--sync-interval", "0.5",
                 "--sync-interval-cap", "5"]]
    return []


def prepare_node(top: Topology, name: str, kube: Path, tunnel: str) -> None:
    """ssh: the tunnel user and sshd's configuration; konnectivity: no inbound connection from the control plane."""
    from minilab.sshd import config_text

    node = top.node(name)
    if tunnel == "ssh":
        if subprocess.run(["id", SSH_USER], capture_output=True).returncode != 0:
            # '*': no password, but not "locked" (sshd refuses locked accounts with UsePAM no)
            _run(["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", "--password", "*",
                  SSH_USER])
        d = kube / "ssh"
        (d / "sshd_config").write_text(config_text(d, node.ip, 22, SSH_USER))
        (d / "authorized_keys").chmod(0o600)
        Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)
    if tunnel == "konnectivity":
        # Replies to the node's own outbound connections (the agent's, the kubelet's) still pass.
        _run(["iptables", "-A", "INPUT", "-s", top.control_cidr, "-m", "conntrack", "--ctstate", "NEW",
              "-j", "DROP"])


def _run(argv: list[str]) -> None:
    import shlex

    print("+ " + shlex.join(argv), flush=True)
    subprocess.run(argv, check=True)
