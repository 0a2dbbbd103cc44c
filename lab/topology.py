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
"""

from __future__ import annotations

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
        joined=parse_nodes(e.get("LAB_JOIN_NODES", "")),
    )
