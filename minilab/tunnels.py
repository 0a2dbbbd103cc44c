"""Files and command lines for the two tunnel modes of the lab (tests and bench/tunnels.py use them too).

**Konnectivity** (``konnectivity_pki`` + ``server_argv`` + ``agent_argv`` + ``egress_config``), laid out
like the setup-konnectivity task page (kubeadm's /etc/kubernetes)::

    DIR/konnectivity/ca.crt, ca.key        the tunnel CA (agents' client certs, server's cert for agents,
                                           the TCP frontend's certs)
    DIR/konnectivity/server.crt|key        --cluster-cert/--cluster-key (SAN 127.0.0.1): agents verify it
    DIR/konnectivity/frontend.crt|key      --server-cert/--server-key for the mTLS TCP frontend
    DIR/konnectivity/apiserver-client.crt|key   the egress selector's tlsConfig.clientCert/clientKey
    DIR/konnectivity/agent-<node>.crt|key  an agent's client certificate (CN system:konnectivity-agent:<node>)
    DIR/konnectivity/konnectivity-server.socket   the UDS frontend
    DIR/egress-selector-configuration.yaml --egress-selector-config-file

**SSH** (:mod:`minilab.sshd`): a node's sshd; the apiserver's key goes into its authorized_keys.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path

from pki.certs import issue_cert, make_ca, make_key
from pki.files import write_cert, write_key


@dataclass(frozen=True)
class KonnectivityPki:
    dir: Path

    def path(self, name: str) -> str:
        return str(self.dir / name)

    @property
    def socket(self) -> str:
        return self.path("konnectivity-server.socket")


def konnectivity_pki(root: Path, nodes: list[str], server_ips: tuple[str, ...] = ("127.0.0.1",),
                     server_names: tuple[str, ...] = ("localhost",)) -> KonnectivityPki:
    """``server_ips``/``server_names``: the SANs of the server's certificates (the address agents dial)."""
    d = root / "konnectivity"
    d.mkdir(parents=True, exist_ok=True)
    ca, ca_key = make_ca("konnectivity-ca", key_type="ec")
    write_cert(d / "ca.crt", ca)
    write_key(d / "ca.key", ca_key)
    leaves = [("server", "konnectivity-server", True), ("frontend", "konnectivity-server", True),
              ("apiserver-client", "system:kube-apiserver", False),
              *((f"agent-{n}", f"system:konnectivity-agent:{n}", False) for n in nodes)]
    for name, cn, server in leaves:
        key = make_key("ec")
        cert = issue_cert(ca, ca_key, key.public_key(), cn, [], ip_addresses=list(server_ips) if server else [],
                          dns_names=list(server_names) if server else [], server=server)
        write_cert(d / f"{name}.crt", cert)
        write_key(d / f"{name}.key", key)
    return KonnectivityPki(d)


def server_argv(pki: KonnectivityPki, agent_port: int, *, uds: bool = True, server_port: int = 0,
                health_port: int = 0, admin_port: int = 0, strategies: str = "destHost,default",
                token_auth: tuple[str, str, str] | None = None) -> list[str]:
    """``token_auth``: (kubeconfig, namespace, service account) for SA-token agents instead of mTLS."""
    argv = [sys.executable, "-m", "miniapi.konnectivity", "server", "--mode", "http-connect",
            "--agent-port", str(agent_port), "--agent-bind-address", "127.0.0.1",
            "--cluster-cert", pki.path("server.crt"), "--cluster-key", pki.path("server.key"),
            "--health-port", str(health_port), "--health-bind-address", "127.0.0.1", "--admin-port", str(admin_port),
            "--proxy-strategies", strategies]
    if uds:
        argv += ["--uds-name", pki.socket, "--delete-existing-uds-file", "--server-port", "0"]
    else:
        argv += ["--server-port", str(server_port), "--server-bind-address", "127.0.0.1", "--server-cert",
                 pki.path("frontend.crt"), "--server-key", pki.path("frontend.key"), "--server-ca-cert",
                 pki.path("ca.crt")]
    if token_auth is None:
        argv += ["--cluster-ca-cert", pki.path("ca.crt")]
    else:
        kubeconfig, namespace, sa = token_auth
        argv += ["--authentication-audience", "system:konnectivity-server", "--kubeconfig", kubeconfig,
                 "--agent-namespace", namespace, "--agent-service-account", sa]
    return argv


def agent_argv(pki: KonnectivityPki, agent_port: int, node: str, ip: str, *, pod_cidr: str = "",
               token_path: str = "") -> list[str]:
    identifiers = f"host={node}&ipv4={ip}" + (f"&cidr={pod_cidr}" if pod_cidr else "")
    argv = [sys.executable, "-m", "miniapi.konnectivity", "agent", "--proxy-server-host", "127.0.0.1",
            "--proxy-server-port", str(agent_port), "--ca-cert", pki.path("ca.crt"), "--agent-id", node,
            "--agent-identifiers", identifiers, "--sync-interval", "0.2", "--sync-interval-cap", "2"]
    if token_path:
        return [*argv, "--service-account-token-path", token_path]
    return [*argv, "--agent-cert", pki.path(f"agent-{node}.crt"), "--agent-key", pki.path(f"agent-{node}.key")]


def egress_config(root: Path, pki: KonnectivityPki, *, uds: bool = True, server_port: int = 0) -> Path:
    """The EgressSelectorConfiguration file, in the block style of the setup-konnectivity page."""
    if uds:
        transport = ["      uds:", f"        udsName: {pki.socket}"]
    else:
        transport = ["      tcp:", f"        url: https://127.0.0.1:{server_port}", "        tlsConfig:",
                     f"          caBundle: {pki.path('ca.crt')}",
                     f"          clientKey: {pki.path('apiserver-client.key')}",
                     f"          clientCert: {pki.path('apiserver-client.crt')}"]
    text = "\n".join(["apiVersion: apiserver.k8s.io/v1beta1", "kind: EgressSelectorConfiguration",
                      "egressSelections:", "# traffic to nodes, pods and services (kubelet, proxies)",
                      "- name: cluster", "  connection:", "    proxyProtocol: HTTPConnect", "    transport:",
                      *transport]) + "\n"
    path = root / "egress-selector-configuration.yaml"
    path.write_text(text)
    return path
