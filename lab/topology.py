"""The lab's addresses, one place: the compose file sets them as environment variables
(``LAB_*``), and the defaults here are the same values, so a tool run by hand in a container agrees.

Two networks and a router between them; the attacker lives in the router's network namespace, so it
is literally on the path from the control plane to the nodes::

    control-plane 10.221.1.0/24              nodes 10.221.2.0/24
      apiserver 10.221.1.10  --+          +--  node1 10.221.2.11  (kubelet :10250, :10255)
      controller-manager       +- router -+--  node2 10.221.2.12
      client (kubectl)         |  .1.254  |
                               |  .2.254  |
                               +-attacker-+  (mitmproxy, in the router's namespace)

Pod addresses (scenarios 4 and 5) are routed, like a cloud network's routes to each node's podCIDR:

1. Each node gets a fixed block of the cluster CIDR 10.244.0.0/16, in LAB_NODES order: node1
   10.244.1.0/24, node2 10.244.2.0/24 (``minikubelet --pod-cidr``; the controller-manager's node IPAM
   keeps a podCIDR the node registered with and only fills in nodes without one). Fixed blocks, so
   the router's routes exist before any node registers.
2. Pods are processes in their node's network namespace (no veth per pod), so the node makes its
   whole block local (``ip route replace local 10.244.1.0/24 dev lo``, lab/podnet.py): a pod binds its
   own ``status.podIP`` and packets to it are delivered on that node.
3. The router routes each block to its node (``ip route replace 10.244.1.0/24 via 10.221.2.11``); the
   control plane reaches 10.244.0.0/16 via the router (LAB_ROUTES), so the apiserver's proxy
   connections to pods cross the untrusted network, where the attacker sits.
4. A pod's connections to a Service VIP (the ``kubernetes`` service 10.96.0.1:443, DNAT by
   ``minikubeproxy``) leave with the node's pod gateway address 10.244.N.1 (an SNAT rule in the node,
   lab/podnet.py), as a real pod's leave with its pod IP: the attacker tells a pod from the kubelet
   by source address, and so does the apiserver's audit log.
"""

from __future__ import annotations

import ipaddress
import os
from dataclasses import dataclass


@dataclass(frozen=True)
class Node:
    name: str
    ip: str


@dataclass(frozen=True)
class Topology:
    apiserver_ip: str
    apiserver_port: int
    nodes: tuple[Node, ...]
    control_cidr: str
    nodes_cidr: str
    cluster_cidr: str = "10.244.0.0/16"
    service_cidr: str = "10.96.0.0/12"
    joined: tuple[Node, ...] = ()  # LAB_JOIN_NODES: nodes with no pre-made credentials (TLS bootstrapping)

    @property
    def apiserver_url(self) -> str:
        return f"https://{self.apiserver_ip}:{self.apiserver_port}"

    @property
    def all_nodes(self) -> tuple[Node, ...]:
        return self.nodes + self.joined

    def node(self, name: str) -> Node:
        for n in self.all_nodes:
            if n.name == name:
                return n
        raise KeyError(f"no node {name!r} in LAB_NODES/LAB_JOIN_NODES ({', '.join(n.name for n in self.all_nodes)})")

    def pod_cidr(self, name: str) -> str:
        """Node number i (1-based, LAB_NODES order) -> the i-th /24 of the cluster CIDR."""
        index = [n.name for n in self.nodes].index(self.node(name).name) + 1
        return str(list(ipaddress.ip_network(self.cluster_cidr).subnets(new_prefix=24))[index])

    def pod_gateway(self, name: str) -> str:
        """The first address of the node's pod CIDR: the source of its pods' Service connections."""
        return str(next(ipaddress.ip_network(self.pod_cidr(name)).hosts()))

    def node_of_pod_ip(self, ip: str) -> Node | None:
        for n in self.nodes:
            if ipaddress.ip_address(ip) in ipaddress.ip_network(self.pod_cidr(n.name)):
                return n
        return None


def parse_nodes(text: str) -> tuple[Node, ...]:
    """``"node1=10.221.2.11 node2=10.221.2.12"`` (spaces or commas) -> nodes."""
    out = []
    for item in text.replace(",", " ").split():
        name, sep, ip = item.partition("=")
        if not sep or not name or not ip:
            raise ValueError(f"LAB_NODES: {item!r} is not NAME=IP")
        out.append(Node(name, ip))
    return tuple(out)


def from_env(env: os._Environ[str] | dict[str, str] | None = None) -> Topology:
    e = os.environ if env is None else env
    return Topology(
        apiserver_ip=e.get("LAB_APISERVER_IP", "10.221.1.10"),
        apiserver_port=int(e.get("LAB_APISERVER_PORT", "443")),
        nodes=parse_nodes(e.get("LAB_NODES", "node1=10.221.2.11 node2=10.221.2.12")),
        control_cidr=e.get("LAB_CONTROL_CIDR", "10.221.1.0/24"),
        nodes_cidr=e.get("LAB_NODES_CIDR", "10.221.2.0/24"),
        cluster_cidr=e.get("LAB_CLUSTER_CIDR", "10.244.0.0/16"),
        service_cidr=e.get("LAB_SERVICE_CIDR", "10.96.0.0/12"),
        joined=parse_nodes(e.get("LAB_JOIN_NODES", "")),
    )
