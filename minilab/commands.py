"""The command lines of the lab's processes, as pure functions of the lab's settings: what a learner
would type to start each component by hand (``minilab status -v`` prints them).

1. kube-apiserver (``python -m miniapi``): secure port only, client certs from the cluster CA, static
   and bootstrap tokens, service account keys, ``Node,RBAC``, the SQLite store, the audit log, its
   client certificate for kubelets; plus the apiserver rows of the profile (profiles.py).
2. kube-controller-manager (``python -m miniapi.controllermanager``): its own client certificate
   (controller-manager.conf), signing with the cluster CA, node CIDRs from a loopback
   ``--cluster-cidr`` so that pod IPs stay inside 127.0.0.0/8. ``--leader-elect=false``: one instance,
   and a restarted one must not wait out its predecessor's Lease.
3. One kubelet per node (``python -m minikubelet``) on its own loopback address, with its pre-made
   kubeconfig, or only the bootstrap kubeconfig (TLS bootstrapping); plus the kubelet rows of the profile.
4. ONE kube-proxy (``python -m minikubeproxy``) for the host, as ``system:kube-proxy``: every node of
   the local cluster shares the host's network namespace, so one set of rules (or listeners) serves
   them all; a second proxy would only fight over the same VIPs. The apiserver's
   ``--service-cluster-ip-range`` is loopback (127.96.0.0/16) so that the VIPs exist on this host;
   a lab with another range gets its own iptables chain prefix, so two labs can run side by side.
"""

from __future__ import annotations

import base64
import hashlib
import sys
from collections.abc import Mapping, Sequence

from minilab.profiles import Component, Level, flags_for
from minilab.state import LabDir, NodeSpec, Settings

ISSUER = "https://kubernetes.default.svc.cluster.local"


def apiserver(lab: LabDir, s: Settings, levels: Mapping[str, Level], tunnel: Sequence[str] = ()) -> list[str]:
    """``tunnel``: the flags of ``--tunnel ssh|konnectivity`` (tunnelmode.py)."""
    p = lab.pki
    return [sys.executable, "-m", "miniapi", "--secure-port", str(s.port), "--bind-address", s.address,
            "--tls-cert-file", str(p("apiserver.crt")), "--tls-private-key-file", str(p("apiserver.key")),
            "--client-ca-file", str(lab.ca_crt), "--token-auth-file", str(lab.root / "tokens.csv"),
            "--service-account-signing-key-file", str(p("sa.key")), "--service-account-key-file", str(p("sa.pub")),
            "--service-account-issuer", ISSUER, "--authorization-mode", "Node,RBAC",
            "--enable-admission-plugins", "NodeRestriction",  # as kubeadm: not in the real default list
            "--service-cluster-ip-range", s.service_cidr,
            "--enable-bootstrap-token-auth",
            "--kubelet-client-certificate", str(p("apiserver-kubelet-client.crt")),
            "--kubelet-client-key", str(p("apiserver-kubelet-client.key")),
            "--data-dir", str(lab.data), "--audit-log-path", str(lab.audit_log),
            *flags_for(Component.APISERVER, levels, ca=str(lab.ca_crt)), *tunnel]


def controller_manager(lab: LabDir, s: Settings) -> list[str]:
    ca, key = str(lab.ca_crt), str(lab.pki("ca.key"))
    return [sys.executable, "-m", "miniapi.controllermanager",
            "--kubeconfig", str(lab.root / "controller-manager.conf"),
            "--cluster-signing-cert-file", ca, "--cluster-signing-key-file", key, "--root-ca-file", ca,
            "--allocate-node-cidrs=true", "--cluster-cidr", s.cluster_cidr, "--leader-elect=false"]


def kubelet(lab: LabDir, node: NodeSpec, levels: Mapping[str, Level]) -> list[str]:
    argv = [sys.executable, "-m", "minikubelet", "--kubeconfig", str(lab.kubeconfig(node))]
    if node.joined:
        argv += ["--bootstrap-kubeconfig", str(lab.root / "bootstrap-kubelet.conf")]
    node_pki = lab.node_dir(node) / "pki"
    argv += ["--hostname-override", node.name, "--node-ip", node.ip, "--address", node.ip,
             "--port", str(node.port), "--root-dir", str(lab.kubelet_root(node.name)),
             *flags_for(Component.KUBELET, levels, joined=node.joined, ca=str(lab.ca_crt),
                        cert=str(node_pki / "kubelet.crt"), key=str(node_pki / "kubelet.key"),
                        read_only_port=str(node.read_only_port))]
    return argv


def kube_proxy(lab: LabDir, s: Settings, node: str) -> list[str]:
    return [sys.executable, "-m", "minikubeproxy", "--kubeconfig", str(lab.root / "kube-proxy.conf"),
            "--hostname-override", node, "--iptables-chain-prefix", chain_prefix(s.service_cidr)]


def chain_prefix(service_cidr: str) -> str:
    """``KUBE`` for the default range (the real chain names), else ``K`` + 3 characters of its hash."""
    if service_cidr == Settings().service_cidr:
        return "KUBE"
    return "K" + base64.b32encode(hashlib.sha256(service_cidr.encode()).digest()).decode()[:3]
