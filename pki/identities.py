"""Who is who in the lab cluster: the subject, usages and SANs of every certificate init makes.

The apiserver reads a client certificate's CN as the user name and each O as a group:

====================================  ====================================================  ======
file (see files.py for the layout)    subject                                               usage
====================================  ====================================================  ======
pki/ca.crt, ca.key                    CN=kubernetes                                         CA
pki/apiserver.crt, .key               CN=kube-apiserver                                     server
pki/apiserver-kubelet-client.crt      O=system:masters, CN=kube-apiserver-kubelet-client    client
admin.conf                            O=system:masters, CN=kubernetes-admin                 client
controller-manager.conf               CN=system:kube-controller-manager                     client
kube-proxy.conf                       CN=system:kube-proxy                                  client
nodes/N/pki/kubelet-client-current    O=system:nodes, CN=system:node:N                      client
nodes/N/pki/kubelet.crt, .key         O=system:nodes, CN=system:node:N                      server
nodes/N/kubelet.conf                  uses kubelet-client-current.pem by (relative) path
pki/sa.key, sa.pub                    service account token signing key pair
bootstrap-token, -kubelet.conf        system:bootstrap:<id>, a bearer token
tokens.csv                            admin (system:masters) and alice (developers)
====================================  ====================================================  ======

The apiserver certificate's SANs: DNS kubernetes, kubernetes.default, kubernetes.default.svc,
kubernetes.default.svc.cluster.local, localhost; IP the service VIP (first address of
``--service-cidr``, 10.96.0.1), 127.0.0.1; the host of ``apiserver_url``; and every extra SAN.
A kubelet's serving certificate names the node (DNS) and its IP if given.

Deviations from kubeadm, on purpose:

1. admin.conf and apiserver-kubelet-client are ``O=system:masters``. kubeadm >= 1.29 puts admin.conf
   in ``kubeadm:cluster-admins`` (bound by RBAC) and keeps system:masters for super-admin.conf.
2. kubelet.crt is signed by the cluster CA (kubeadm lets the kubelet self-sign it unless
   ``serverTLSBootstrap``), so ``--kubelet-certificate-authority`` can be switched on in the lab.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from dataclasses import dataclass
from urllib.parse import urlsplit

from pki.errors import PkiError

DEFAULT_APISERVER_URL = "https://127.0.0.1:6443"
DEFAULT_SERVICE_CIDR = "10.96.0.0/12"
APISERVER_DNS_NAMES = (
    "kubernetes",
    "kubernetes.default",
    "kubernetes.default.svc",
    "kubernetes.default.svc.cluster.local",
    "localhost",
)
MASTERS = ("system:masters",)
NODES = ("system:nodes",)
NODE_USER_PREFIX = "system:node:"


@dataclass(frozen=True)
class LeafSpec:
    """Who a leaf certificate says it is and what it may be used for."""

    cn: str
    organizations: tuple[str, ...] = ()
    dns_names: tuple[str, ...] = ()
    ip_addresses: tuple[str, ...] = ()
    server: bool = False
    client: bool = False


def apiserver_spec(apiserver_url: str, extra_sans: Iterable[str], service_cidr: str) -> LeafSpec:
    """kube-apiserver's serving identity with kubeadm's SANs plus the URL host and the extras."""
    dns, ips = list(APISERVER_DNS_NAMES), [*service_vips(service_cidr), "127.0.0.1"]
    host = urlsplit(apiserver_url).hostname
    for san in [*([host] if host else []), *extra_sans]:
        ip = as_ip(san)
        (ips if ip else dns).append(ip or san)
    return LeafSpec("kube-apiserver", (), tuple(dict.fromkeys(dns)), tuple(dict.fromkeys(ips)), server=True)


def service_vips(service_cidr: str) -> list[str]:
    """The first address of each service CIDR (``10.96.0.0/12`` -> ``10.96.0.1``), as kubeadm picks."""
    vips = []
    for cidr in filter(None, (c.strip() for c in service_cidr.split(","))):
        try:
            net = ipaddress.ip_network(cidr)
        except ValueError as e:
            raise PkiError(f"invalid --service-cidr {cidr!r}: {e}") from None
        if net.num_addresses < 2:
            raise PkiError(f"--service-cidr {cidr!r} is too small to hold a service VIP")
        vips.append(str(net[1]))
    return vips


APISERVER_KUBELET_CLIENT = LeafSpec("kube-apiserver-kubelet-client", MASTERS, client=True)
ADMIN = LeafSpec("kubernetes-admin", MASTERS, client=True)
CONTROLLER_MANAGER = LeafSpec("system:kube-controller-manager", client=True)
# "Kubernetes The Hard Way" style: the bootstrap policy binds ClusterRole system:node-proxier to this
# user (kubeadm runs kube-proxy as a pod with a service account instead; ours is a host process).
KUBE_PROXY = LeafSpec("system:kube-proxy", client=True)
BOOTSTRAP_USER = "tls-bootstrap-token-user"  # the user name kubeadm gives it in bootstrap-kubelet.conf


def kubelet_client_spec(node: str) -> LeafSpec:
    """The identity the Node authorizer recognises: user system:node:NAME in group system:nodes."""
    return LeafSpec(NODE_USER_PREFIX + node, NODES, client=True)


def kubelet_serving_spec(node: str, ip: str | None) -> LeafSpec:
    ips = (require_ip(ip, node),) if ip else ()
    return LeafSpec(NODE_USER_PREFIX + node, NODES, dns_names=(node,), ip_addresses=ips, server=True)


def as_ip(value: str) -> str | None:
    try:
        return str(ipaddress.ip_address(value.strip("[]")))
    except ValueError:
        return None


def require_ip(value: str, node: str) -> str:
    ip = as_ip(value)
    if ip is None:
        raise PkiError(f"node {node}: {value!r} is not an IP address")
    return ip
